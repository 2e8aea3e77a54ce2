"""Export models for deployment: ONNX (with a parity check), its int8 twin, and safetensors.

Attributes load lazily: the ONNX and safetensors exporters need torch, the int8
quantizer (an ONNX file in, an ONNX file out) does not.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PARITY_TOLERANCE": "onnx_export", "ExportError": "errors", "check_onnx_parity": "onnx_export",
    "export_onnx": "onnx_export", "onnx_to_bytes": "onnx_export",
    "check_safetensors_roundtrip": "safetensors_export", "export_safetensors": "safetensors_export",
    "DEFAULT_RECIPE": "int8", "QAT_RECIPE": "int8", "Int8Recipe": "int8", "quantize_int8": "int8", "calibration_crops": "int8",
    "export_int8": "int8", "is_int8_graph": "int8",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
