"""Inference engine: backends (torch, onnxruntime), tiling, progress, cancellation.

Typical use::

    model = load_model(path)
    backend = create_backend(model)              # fastest measured path on this machine
    upscaler = TiledUpscaler(backend)            # auto tile size, default overlap
    out = upscaler.upscale(pixels, cancel=token, progress=callback)

``upscale_iter`` is the generator form the GUI runs on a worker thread.
"""

from .backends import (
    Backend,
    BackendUnavailable,
    OnnxRuntimeBackend,
    TorchBackend,
    available_backends,
    create_backend,
    export_onnx_bytes,
    is_out_of_memory,
)
from .image import upscale_image, upscale_image_iter
from .tiling import TileBox, plan_tiles
from .upscaler import DEFAULT_OVERLAP, TiledUpscaler, TileProgress, auto_tile_size, default_overlap

__all__ = [
    "DEFAULT_OVERLAP", "Backend", "BackendUnavailable", "OnnxRuntimeBackend", "TileBox", "TileProgress",
    "TiledUpscaler", "TorchBackend", "auto_tile_size", "available_backends", "create_backend", "default_overlap",
    "export_onnx_bytes", "is_out_of_memory", "plan_tiles", "upscale_image", "upscale_image_iter",
]
