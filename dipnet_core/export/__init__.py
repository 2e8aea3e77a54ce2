"""Export models for deployment: ONNX (with a parity check) and safetensors with the descriptor."""

from .onnx_export import PARITY_TOLERANCE, ExportError, check_onnx_parity, export_onnx, onnx_to_bytes
from .safetensors_export import check_safetensors_roundtrip, export_safetensors

__all__ = [
    "PARITY_TOLERANCE", "ExportError", "check_onnx_parity", "check_safetensors_roundtrip", "export_onnx",
    "export_safetensors", "onnx_to_bytes",
]
