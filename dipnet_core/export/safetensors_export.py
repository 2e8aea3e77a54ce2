"""safetensors export: weights plus the descriptor JSON in the file's metadata."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..models import DIPNet, LoadedModel, ModelDescriptor, dipnet_descriptor, load_model, save_model
from .onnx_export import ExportError, _cpu_fp32_eval_copy, _split


def export_safetensors(loaded_or_module: LoadedModel | nn.Module, path: str | Path,
                       descriptor: ModelDescriptor | None = None) -> Path:
    """Write ``path`` atomically via :func:`save_model`; a bare DIPNet gets a descriptor from its config."""
    module, descriptor = _split(loaded_or_module, descriptor)
    if descriptor is None:
        if not isinstance(module, DIPNet):
            raise ExportError("a descriptor is required to save a non-DIPNet module")
        descriptor = dipnet_descriptor(module)
    return save_model(path, module, descriptor)


def check_safetensors_roundtrip(module: LoadedModel | nn.Module, path: str | Path, size: int = 24) -> float:
    """Reload ``path`` and return the max abs output difference against ``module`` on one random input."""
    original, descriptor = _split(module, None)
    reloaded = load_model(path)
    if reloaded.module is None:
        raise ExportError(f"'{path}' did not reload as a PyTorch model")
    in_ch = descriptor.in_channels if descriptor else 3
    x = torch.rand(1, in_ch, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = _cpu_fp32_eval_copy(original)(x)
        b = reloaded.module(x)
    return float((a - b).abs().max())
