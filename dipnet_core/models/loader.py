"""Load any supported model file into a module plus its :class:`ModelDescriptor`.

Formats: our ``.safetensors`` (descriptor in the metadata), plain PyTorch
state dicts (``.pth``/``.pt``/``.ckpt``, read with ``weights_only=True`` so no
pickled code ever runs), ``.onnx``, and, when the optional ``spandrel`` package
is installed, the third-party architectures it knows. This module only reads
files; which architecture a file holds is decided by the registry
(:mod:`.registry`, entries in :mod:`.architectures`), and every loaded model is
probed once so a lying or broken file is corrected or refused at load, not
discovered in the output image.
"""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import architectures
from .architectures import build_dipnet, detect_dipnet_config, dipnet_descriptor, is_dipnet_state_dict
from .descriptor import DESCRIPTOR_KEY, DescriptorError, ModelDescriptor
from .probe import open_onnx_session
from .registry import LoadedModel, ModelFile, ModelLoadError, ModelWarning, detect

if TYPE_CHECKING:  # torch is imported where weights are read: ONNX files load without it
    import torch
    from torch import nn

__all__ = [
    "MODEL_SUFFIXES", "STATE_DICT_SUFFIXES", "LoadedModel", "ModelLoadError", "ModelWarning",
    "build_dipnet", "detect_dipnet_config", "dipnet_descriptor", "is_dipnet_state_dict", "load_model",
    "read_descriptor", "save_model", "unwrap_state_dict",
]

STATE_DICT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
MODEL_SUFFIXES = (".safetensors", ".onnx") + STATE_DICT_SUFFIXES

# Trainers wrap weights in a dict under one of these keys (BasicSR: params_ema/params).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net", "ema", "weights")
# DataParallel / torch.compile / GAN trainers prefix every key.
_KEY_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "generator.")


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


def save_model(path: str | Path, module: nn.Module, descriptor: ModelDescriptor) -> Path:
    """Write weights + descriptor as ``.safetensors`` atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    from ..io import atomic_output

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_output(path, ".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={DESCRIPTOR_KEY: descriptor.to_json()})
    return path


def _parse_descriptor(path: Path, text: str) -> ModelDescriptor:
    try:
        return ModelDescriptor.from_json(text)
    except DescriptorError as exc:
        raise ModelLoadError(path, f"descriptor metadata is malformed: {exc}") from exc


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:  # metadata only: no torch needed
            return f.metadata() or {}
    except Exception as exc:  # safetensors raises several types on garbage
        raise ModelLoadError(path, f"not a valid safetensors file ({exc})") from exc


def _read_safetensors(path: Path) -> ModelFile:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(path, f"not a valid safetensors file ({exc})") from exc
    descriptor = _parse_descriptor(path, meta[DESCRIPTOR_KEY]) if DESCRIPTOR_KEY in meta else None
    return ModelFile(path=path, state_dict=sd, descriptor=descriptor)


def _read_torch(path: Path) -> ModelFile:
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
    return ModelFile(path=path, state_dict=sd)


def _read_onnx(path: Path) -> ModelFile:
    return ModelFile(path=path, onnx=open_onnx_session(path))


_READERS = {".safetensors": _read_safetensors, ".onnx": _read_onnx}
_READERS.update({suffix: _read_torch for suffix in STATE_DICT_SUFFIXES})


def load_model(path: str | Path) -> LoadedModel:
    """Load a model file of any supported format; errors name the file and the cause.

    Descriptor fields that the probe run contradicts are corrected, each with a
    :class:`ModelWarning` (also listed in ``LoadedModel.warnings``).
    """
    loaded = _load(Path(path))
    for note in loaded.warnings:
        warnings.warn(note, ModelWarning, stacklevel=2)
    return loaded


def _load(path: Path) -> LoadedModel:
    if not path.exists():
        raise ModelLoadError(path, "file not found")
    if path.is_dir():
        raise ModelLoadError(path, "is a folder, not a model file")
    if path.stat().st_size == 0:
        raise ModelLoadError(path, "file is empty (0 bytes)")
    suffix = path.suffix.lower()
    if suffix != ".onnx" and importlib.util.find_spec("torch") is None:
        # The upscale-only install has no torch: a model shipped with its ONNX twin still runs. The
        # grid-aware twin first: the plain graph's tiles miss the whole image by up to ~11 levels
        # (ESA sees each tile's own grid), the grid-aware one stays within 1.
        stem = path.name[: -len(path.suffix)]
        for twin in (path.with_name(stem + ".grid.onnx"), path.with_suffix(".onnx")):
            if twin.is_file():
                loaded = _load(twin)
                loaded.origin = path
                return loaded
        raise ModelLoadError(path, "needs PyTorch, which is not installed here (install torch, or use the "
                                   "model's .onnx export)")
    reader = _READERS.get(suffix)
    if reader is None:
        # Not a format we read; spandrel may still know it.
        loaded = architectures.try_spandrel(path)
        if loaded is None:
            raise ModelLoadError(
                path, f"unsupported file type '{suffix}' (expected one of {', '.join(MODEL_SUFFIXES)})"
            )
        return loaded
    model_file = reader(path)
    architecture = detect(model_file)
    if architecture is None:
        hint = "" if architectures.spandrel_available() else \
            " (install the 'thirdparty' extra for spandrel-supported models)"
        raise ModelLoadError(path, f"unknown architecture: the weights match no supported model{hint}")
    return architecture.load(model_file)


def read_descriptor(path: str | Path) -> ModelDescriptor:
    """Descriptor only, cheap for listings: not probed, so a lie shows only when the model loads.

    Falls back to a full load for files without metadata.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        meta = _safetensors_metadata(path)
        if DESCRIPTOR_KEY in meta:
            return _parse_descriptor(path, meta[DESCRIPTOR_KEY])
    elif suffix == ".onnx" and path.is_file():
        descriptor = architectures.onnx_descriptor(path, _read_onnx(path).onnx)
        if descriptor is not None:
            return descriptor
    return load_model(path).descriptor
