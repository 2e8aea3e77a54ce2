"""Model architectures, descriptors and loading.

The architecture classes load lazily (they import torch); descriptors and the
loading of ``.onnx`` files work without torch (the upscale-only install).
"""

from __future__ import annotations

from typing import Any

from .descriptor import ModelDescriptor
from .loader import (
    LoadedModel,
    ModelLoadError,
    detect_dipnet_config,
    dipnet_descriptor,
    load_model,
    read_descriptor,
    save_model,
    unwrap_state_dict,
)

from .config import BlockWidths, DIPNetConfig

_FROM_DIPNET = ("DIPNet", "count_parameters")

__all__ = [
    "BlockWidths", "DIPNet", "DIPNetConfig", "LoadedModel", "ModelDescriptor", "ModelLoadError",
    "count_parameters", "detect_dipnet_config", "dipnet_descriptor", "load_model", "read_descriptor",
    "save_model", "unwrap_state_dict",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_DIPNET:
        from . import dipnet

        return getattr(dipnet, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
