"""Model architectures, descriptors and loading.

The torch modules load lazily: descriptors and ``.onnx`` files work without torch
(the upscale-only install).
"""

from __future__ import annotations

from typing import Any

from .config import BlockWidths, DIPNetConfig
from .descriptor import DescriptorError, ModelDescriptor
from .loader import (
    LoadedModel,
    ModelLoadError,
    ModelWarning,
    detect_dipnet_config,
    dipnet_descriptor,
    load_model,
    read_descriptor,
    save_model,
    unwrap_state_dict,
)
from .probe import ProbeResult, probe_onnx
from .registry import Architecture, ModelFile, register, registered_architectures

_LAZY = {"DIPNet": "dipnet", "DIPNetSkeleton": "dipnet", "count_parameters": "dipnet",
         "min_input_size": "blocks"}

__all__ = [
    "Architecture", "BlockWidths", "DIPNet", "DIPNetConfig", "DIPNetSkeleton", "DescriptorError",
    "LoadedModel", "ModelDescriptor", "ModelFile", "ModelLoadError", "ModelWarning", "ProbeResult",
    "count_parameters", "detect_dipnet_config", "dipnet_descriptor", "load_model", "min_input_size",
    "probe_onnx", "read_descriptor", "register", "registered_architectures", "save_model",
    "unwrap_state_dict",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
