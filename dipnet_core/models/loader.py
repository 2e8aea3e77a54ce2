"""Load any supported model file into a module plus its :class:`ModelDescriptor`.

Formats: our ``.safetensors`` (descriptor in the metadata), plain PyTorch
state dicts (``.pth``/``.pt``/``.ckpt``, read with ``weights_only=True`` so no
pickled code ever runs), ``.onnx``, and, when the optional ``spandrel`` package
is installed, the third-party architectures it knows. DIPNet-family
architectures and widths are detected from state-dict keys and shapes, so a
pruned or renamed checkpoint loads without a config.
"""

from __future__ import annotations

import json
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .descriptor import DESCRIPTOR_KEY, ModelDescriptor

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .dipnet import DIPNet, DIPNetConfig

# torch is imported inside the functions that need it: loading an .onnx file or a
# descriptor must work in the upscale-only install, which has no torch.

STATE_DICT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
MODEL_SUFFIXES = (".safetensors", ".onnx") + STATE_DICT_SUFFIXES

# Trainers wrap weights in a dict under one of these keys (BasicSR: params_ema/params).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net", "ema", "weights")
# DataParallel / torch.compile / GAN trainers prefix every key.
_KEY_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "generator.")


class ModelLoadError(Exception):
    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot load model '{path}': {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class LoadedModel:
    """A model ready for inference. ``module`` is None for ONNX files (the onnx backend runs them)."""

    descriptor: ModelDescriptor
    module: nn.Module | None = None
    path: Path | None = None


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a checkpoint and strip wrapper prefixes from its keys."""
    import torch

    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        if isinstance(obj, dict):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("no tensor state dict found in the file")
    sd: dict[str, torch.Tensor] = dict(obj)
    changed = True
    while changed:
        changed = False
        for prefix in _KEY_PREFIXES:
            if all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                changed = True
    return sd


def is_dipnet_state_dict(sd: dict[str, torch.Tensor]) -> bool:
    return {"conv_1.weight", "block_1.c1_r.weight", "upsampler.0.weight"} <= sd.keys()


def detect_dipnet_config(sd: dict[str, torch.Tensor]) -> DIPNetConfig:
    """Recover every width (feature, per-block mid, ESA), block count and scale from shapes."""
    if not is_dipnet_state_dict(sd):
        raise ValueError("not a DIPNet-family state dict (conv_1 / block_1.c1_r / upsampler.0 missing)")
    from .dipnet import BlockWidths, DIPNetConfig

    conv1 = sd["conv_1.weight"]
    feat, in_ch = int(conv1.shape[0]), int(conv1.shape[1])
    blocks = []
    i = 1
    while f"block_{i}.c1_r.weight" in sd:
        blocks.append(
            BlockWidths(
                mid1=int(sd[f"block_{i}.c1_r.weight"].shape[0]),
                mid2=int(sd[f"block_{i}.c2_r.weight"].shape[0]),
                esa=int(sd[f"block_{i}.esa.conv1.weight"].shape[0]),
            )
        )
        i += 1
    up = int(sd["upsampler.0.weight"].shape[0])
    out_ch = 3 if up % 3 == 0 and math.isqrt(up // 3) ** 2 == up // 3 else 1
    scale = math.isqrt(up // out_ch)
    if scale * scale * out_ch != up:
        raise ValueError(f"upsampler has {up} output channels, not out_channels * scale^2")
    return DIPNetConfig(
        feat=feat, blocks=tuple(blocks), scale=scale, in_ch=in_ch, out_ch=out_ch,
        bias="conv_1.bias" in sd,
    )


def build_dipnet(sd: dict[str, torch.Tensor], config: DIPNetConfig | None = None) -> DIPNet:
    from .dipnet import DIPNet

    config = config or detect_dipnet_config(sd)
    model = DIPNet(config)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def dipnet_descriptor(model: DIPNet, name: str = "", source: str = "", license: str = "",
                      training: dict[str, Any] | None = None) -> ModelDescriptor:
    from .blocks import min_input_size
    from .dipnet import count_parameters

    cfg = model.config
    return ModelDescriptor(
        arch="dipnet", scale=cfg.scale, in_channels=cfg.in_ch, out_channels=cfg.out_ch,
        config=cfg.to_dict(), name=name, source=source, license=license,
        params=count_parameters(model), min_size=min_input_size(), tileable=True, training=training or {},
    )


def save_model(path: str | Path, module: nn.Module, descriptor: ModelDescriptor) -> Path:
    """Write weights + descriptor as ``.safetensors`` atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    from ..io import atomic_output

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_output(path, ".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={DESCRIPTOR_KEY: descriptor.to_json()})
    return path


def _load_safetensors(path: Path) -> LoadedModel:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(path, f"not a valid safetensors file ({exc})") from exc
    descriptor = ModelDescriptor.from_json(meta[DESCRIPTOR_KEY]) if DESCRIPTOR_KEY in meta else None
    return _from_state_dict(path, sd, descriptor)


def _load_torch(path: Path) -> LoadedModel:
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise ModelLoadError(path, f"not a readable PyTorch checkpoint ({exc})") from exc
        raise ModelLoadError(
            path, "the file holds pickled Python objects, not a plain state dict; refusing to run them"
        ) from exc
    except Exception as exc:  # torch's weights-only unpickler raises arbitrary types on garbage
        raise ModelLoadError(path, f"not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from exc
    try:
        sd = unwrap_state_dict(obj)
    except ValueError as exc:
        raise ModelLoadError(path, str(exc)) from exc
    return _from_state_dict(path, sd, None)


def _from_state_dict(path: Path, sd: dict[str, torch.Tensor], descriptor: ModelDescriptor | None) -> LoadedModel:
    if is_dipnet_state_dict(sd):
        from .dipnet import DIPNetConfig, count_parameters

        try:
            config = DIPNetConfig.from_dict(descriptor.config) if descriptor and descriptor.config else None
            model = build_dipnet(sd, config)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(path, f"DIPNet weights do not match their architecture ({exc})") from exc
        if descriptor is None:
            descriptor = dipnet_descriptor(model, name=path.stem, source=str(path))
        descriptor.params = count_parameters(model)
        descriptor.source = descriptor.source or str(path)
        return LoadedModel(descriptor=descriptor, module=model, path=path)
    spandrel_model = _try_spandrel(path)
    if spandrel_model is not None:
        return spandrel_model
    hint = "" if _spandrel_available() else " (install the 'thirdparty' extra for spandrel-supported models)"
    raise ModelLoadError(path, f"unknown architecture: the weights match no supported model{hint}")


def _spandrel_available() -> bool:
    try:
        import spandrel  # noqa: F401
    except Exception:  # spandrel's import fails in several ways when torchvision is broken
        return False
    return True


def _try_spandrel(path: Path) -> LoadedModel | None:
    if not _spandrel_available():
        return None
    import spandrel

    try:
        desc = spandrel.ModelLoader().load_from_file(str(path))
    except Exception:  # spandrel raises many types for unsupported files
        return None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        return None
    from .dipnet import count_parameters

    module = desc.model.eval()
    req = desc.size_requirements
    descriptor = ModelDescriptor(
        arch=f"spandrel:{desc.architecture.name}", scale=int(desc.scale),
        in_channels=int(desc.input_channels), out_channels=int(desc.output_channels),
        name=path.stem, source=str(path), params=count_parameters(module),
        min_size=int(getattr(req, "minimum", 1) or 1),
        tileable=str(getattr(desc, "tiling", "")).lower().find("internal") < 0,
        supports_half=bool(desc.supports_half),
    )
    return LoadedModel(descriptor=descriptor, module=_spandrel_wrapper(desc), path=path)


def _spandrel_wrapper(desc: Any) -> nn.Module:
    """An nn.Module that calls the spandrel descriptor, so its own padding to size multiples is applied."""
    from torch import nn

    class _SpandrelWrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = desc.model
            self._desc = desc

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self._desc(x)

    return _SpandrelWrapper()


def _onnx_metadata(path: Path) -> dict[str, str]:
    try:
        import onnx
    except ImportError:  # the upscale-only edition has onnxruntime but not the onnx package
        onnx = None
    try:
        if onnx is not None:
            proto = onnx.load(str(path), load_external_data=False)
            return {p.key: p.value for p in proto.metadata_props}
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception as exc:  # onnx / onnxruntime raise DecodeError and others for garbage
        raise ModelLoadError(path, f"not a valid ONNX model ({exc})") from exc


def _load_onnx(path: Path) -> LoadedModel:
    meta = _onnx_metadata(path)
    if DESCRIPTOR_KEY in meta:
        descriptor = ModelDescriptor.from_json(meta[DESCRIPTOR_KEY])
        descriptor.arch = "onnx"
    else:
        descriptor = ModelDescriptor(arch="onnx", scale=_probe_onnx_scale(path), name=path.stem)
    descriptor.source = str(path)
    return LoadedModel(descriptor=descriptor, module=None, path=path)


def _probe_onnx_scale(path: Path) -> int:
    import numpy as np
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        out = sess.run(None, {inp.name: np.zeros((1, 3, 32, 32), np.float32)})[0]
    except Exception as exc:  # onnxruntime raises its own exception family
        raise ModelLoadError(path, f"ONNX model does not run on a 1x3x32x32 input ({exc})") from exc
    scale = out.shape[-1] // 32
    if scale < 1 or out.shape[-1] != 32 * scale:
        raise ModelLoadError(path, f"ONNX model output {out.shape} is not an integer upscale of 32x32")
    return int(scale)


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file of any supported format; errors name the file and the cause."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(path, "file not found")
    if path.is_dir():
        raise ModelLoadError(path, "is a folder, not a model file")
    if path.stat().st_size == 0:
        raise ModelLoadError(path, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _load_safetensors(path)
    if suffix == ".onnx":
        return _load_onnx(path)
    if suffix in STATE_DICT_SUFFIXES:
        return _load_torch(path)
    spandrel_model = _try_spandrel(path)
    if spandrel_model is not None:
        return spandrel_model
    raise ModelLoadError(path, f"unsupported file type '{suffix}' (expected one of {', '.join(MODEL_SUFFIXES)})")


def read_descriptor(path: str | Path) -> ModelDescriptor:
    """Descriptor only, cheap for listings; falls back to a full load for files without metadata."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as exc:  # safetensors raises several types on garbage
            raise ModelLoadError(path, f"not a valid safetensors file ({exc})") from exc
        if DESCRIPTOR_KEY in meta:
            try:
                return ModelDescriptor.from_json(meta[DESCRIPTOR_KEY])
            except (json.JSONDecodeError, TypeError) as exc:
                raise ModelLoadError(path, f"descriptor metadata is malformed ({exc})") from exc
    return load_model(path).descriptor
