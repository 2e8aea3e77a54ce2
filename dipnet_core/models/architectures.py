"""The registered architectures: the DIPNet family, ONNX graphs, and spandrel's (optional).

Each entry detects its files and loads them into a :class:`~.registry.LoadedModel`
whose descriptor has been checked against a probe run (see :mod:`.probe`).
torch is imported only where a torch model is built: ONNX files load without it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import BlockWidths, DIPNetConfig
from .descriptor import DESCRIPTOR_KEY, DescriptorError, ModelDescriptor
from .probe import (
    ONNX_PROBE_SIZE,
    ProbeResult,
    note_correction,
    onnx_input_names,
    onnx_metadata,
    onnx_static_input_channels,
    probe_module,
    probe_onnx,
    reconcile,
    refuse_non_finite_weights,
)
from .registry import Architecture, LoadedModel, ModelFile, ModelLoadError, register

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .dipnet import DIPNet

# ----------------------------------------------------------------------------------------- DIPNet family


def is_dipnet_state_dict(sd: dict[str, torch.Tensor]) -> bool:
    """Our deploy-form keys, which are also the authors' (DIPNet) and RLFN's (with biases)."""
    return {"conv_1.weight", "block_1.c1_r.weight", "upsampler.0.weight"} <= sd.keys()


def detect_dipnet_config(sd: dict[str, torch.Tensor]) -> DIPNetConfig:
    """Recover every width (feature, per-block mid, ESA), block count and scale from shapes."""
    if not is_dipnet_state_dict(sd):
        raise ValueError("not a DIPNet-family state dict (conv_1 / block_1.c1_r / upsampler.0 missing)")
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


def _build_from_file(f: ModelFile, notes: list[str]) -> DIPNet:
    """The weights decide the architecture; a descriptor config is used when they agree with it."""
    assert f.state_dict is not None
    path, sd = f.path, f.state_dict
    try:
        detected = detect_dipnet_config(sd)
    except (ValueError, KeyError) as exc:
        raise ModelLoadError(path, f"DIPNet weights do not match their architecture ({exc})") from exc
    claimed_dict = f.descriptor.config if f.descriptor else None
    if claimed_dict:
        try:
            claimed = DIPNetConfig.from_dict(claimed_dict)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                path, f"descriptor metadata is malformed: 'config' is not a DIPNet config ({exc!r})"
            ) from exc
        try:
            # The claim can settle what shapes cannot (e.g. 1 vs 3 output channels).
            return build_dipnet(sd, claimed)
        except (RuntimeError, ValueError, KeyError):
            note_correction(path, f"its descriptor's architecture ({_label(claimed)}) does not fit the "
                                  f"weights; using the one read from the weights ({_label(detected)})", notes)
    try:
        return build_dipnet(sd, detected)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelLoadError(path, f"DIPNet weights do not match their architecture ({exc})") from exc


def _label(config: DIPNetConfig) -> str:
    return f"{config.widths_label()}, x{config.scale}, {config.in_ch}->{config.out_ch} channels"


def _load_dipnet(f: ModelFile) -> LoadedModel:
    from .blocks import min_input_size
    from .dipnet import count_parameters

    assert f.state_dict is not None
    path, notes = f.path, []
    refuse_non_finite_weights(path, f.state_dict)
    model = _build_from_file(f, notes)
    cfg = model.config
    if f.descriptor is None:
        descriptor = dipnet_descriptor(model, name=path.stem, source=str(path))
    else:
        descriptor = f.descriptor
        if descriptor.arch != "dipnet":
            note_correction(path, f"its descriptor says arch '{descriptor.arch}' but the weights are a "
                                  "DIPNet; using 'dipnet'", notes)
        needed = min_input_size()
        if descriptor.min_size < needed:
            note_correction(path, f"its descriptor says min_size={descriptor.min_size}, below the "
                                  f"{needed} px DIPNet's attention needs; using {needed}", notes)
        descriptor = replace(
            descriptor, arch="dipnet", config=cfg.to_dict(), params=count_parameters(model),
            min_size=max(descriptor.min_size, needed), source=descriptor.source or str(path),
        )
        # Channels and scale come from the built model; the probe below checks it computes them.
        built = ProbeResult(scale=cfg.scale, in_channels=cfg.in_ch, out_channels=cfg.out_ch)
        descriptor = reconcile(path, descriptor, built, notes)
    descriptor = reconcile(path, descriptor, probe_module(path, model, descriptor), notes)
    return LoadedModel(descriptor=descriptor, module=model, path=path, warnings=notes)


DIPNET = Architecture(
    name="dipnet",
    detect=lambda f: f.state_dict is not None and is_dipnet_state_dict(f.state_dict),
    load=_load_dipnet,
)


# ------------------------------------------------------------------------------------------------ ONNX


def onnx_descriptor(path: Path, session: Any) -> ModelDescriptor | None:
    """The descriptor in an ONNX file's metadata (arch set to "onnx"), or None when it has none."""
    meta = onnx_metadata(session)
    if DESCRIPTOR_KEY not in meta:
        return None
    try:
        descriptor = ModelDescriptor.from_json(meta[DESCRIPTOR_KEY])
    except DescriptorError as exc:
        raise ModelLoadError(path, f"descriptor metadata is malformed: {exc}") from exc
    return replace(descriptor, arch="onnx", source=str(path))


def _load_onnx(f: ModelFile) -> LoadedModel:
    path, session, notes = f.path, f.onnx, []
    descriptor = onnx_descriptor(path, session)
    if descriptor is not None and onnx_input_names(session)[1:3] == ["ry", "rx_t"]:
        # The engine's grid-aware export needs ESA grid matrices as inputs, which a plain
        # image probe cannot supply; its descriptor was written by our exporter.
        return LoadedModel(descriptor=descriptor, module=None, path=path)
    channels = onnx_static_input_channels(session) or (descriptor.in_channels if descriptor else 3)
    size = max(ONNX_PROBE_SIZE, descriptor.min_size) if descriptor else ONNX_PROBE_SIZE
    input_range = descriptor.input_range if descriptor else (0.0, 1.0)
    measured = probe_onnx(path, channels=channels, size=size, input_range=input_range, session=session)
    if descriptor is None:
        descriptor = ModelDescriptor(arch="onnx", scale=measured.scale, in_channels=measured.in_channels,
                                     out_channels=measured.out_channels, name=path.stem, source=str(path))
    else:
        descriptor = reconcile(path, descriptor, measured, notes)
    return LoadedModel(descriptor=descriptor, module=None, path=path, warnings=notes)


ONNX = Architecture(name="onnx", detect=lambda f: f.onnx is not None, load=_load_onnx)


# -------------------------------------------------------------------------------------------- spandrel


def spandrel_available() -> bool:
    try:
        import spandrel  # noqa: F401
    except Exception:  # spandrel's import fails in several ways when torchvision is broken
        return False
    return True


def _spandrel_wrapper(desc: Any) -> nn.Module:
    """A module that calls the spandrel descriptor, so its own padding to size multiples is applied."""
    from torch import nn

    class SpandrelWrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = desc.model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return desc(x)

    return SpandrelWrapper()


def try_spandrel(path: Path) -> LoadedModel | None:
    """The file loaded by spandrel, or None when spandrel is missing or does not know it."""
    if not spandrel_available():
        return None
    import spandrel

    from .dipnet import count_parameters

    try:
        desc = spandrel.ModelLoader().load_from_file(str(path))
    except Exception:  # spandrel raises many types for unsupported files
        return None
    if not isinstance(desc, spandrel.ImageModelDescriptor):
        return None
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
    wrapper, notes = _spandrel_wrapper(desc), []
    descriptor = reconcile(path, descriptor, probe_module(path, wrapper, descriptor), notes)
    return LoadedModel(descriptor=descriptor, module=wrapper, path=path, warnings=notes)


def _load_spandrel(f: ModelFile) -> LoadedModel:
    if f.state_dict is not None:
        refuse_non_finite_weights(f.path, f.state_dict)
    loaded = try_spandrel(f.path)
    if loaded is None:
        raise ModelLoadError(f.path, "unknown architecture: the weights match no supported model")
    return loaded


# Last: spandrel can only tell by trying, and our own entries are cheaper and exact.
SPANDREL = Architecture(
    name="spandrel", detect=lambda f: f.onnx is None and spandrel_available(), load=_load_spandrel,
)

for _architecture in (DIPNET, ONNX, SPANDREL):
    register(_architecture)
