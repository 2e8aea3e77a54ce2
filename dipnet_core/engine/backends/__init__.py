"""Inference backends behind one small interface.

* :mod:`.base`: :class:`Backend` (the interface the tiler calls), errors, constants.
* :mod:`.torch_backend`: eager PyTorch (CPU bf16/fp32 with oneDNN-fused convs, CUDA fp16).
* :mod:`.onnxruntime_backend`: onnxruntime (CPU fp32 / int8 twin, CUDA, TensorRT); no torch import.
* :mod:`.autoselect`: which CPU path is fastest here, measured once and cached.
* :mod:`.factory`: :func:`create_backend` and :func:`available_backends`.

``TorchBackend`` loads lazily so that importing the engine never imports torch.
"""

from __future__ import annotations

from typing import Any

from .autoselect import Candidate, EngineChoice
from .base import BACKENDS, DEVICES, PRECISIONS, Backend, BackendUnavailable, is_out_of_memory, model_min_size
from .factory import available_backends, create_backend, rule_choice
from .onnxruntime_backend import OnnxRuntimeBackend, export_onnx_bytes, int8_twin_path, set_thread_spinning

__all__ = [
    "BACKENDS", "DEVICES", "PRECISIONS", "Backend", "BackendUnavailable", "Candidate", "EngineChoice",
    "OnnxRuntimeBackend", "TorchBackend", "available_backends", "create_backend", "export_onnx_bytes",
    "int8_twin_path", "is_out_of_memory", "model_min_size", "rule_choice", "set_thread_spinning",
]


def __getattr__(name: str) -> Any:
    if name == "TorchBackend":
        from .torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
