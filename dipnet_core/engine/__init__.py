"""Inference engine: backends (torch, onnxruntime), tiling, progress, cancellation.

Typical use::

    model = load_model(path)
    backend = create_backend(model)              # fastest measured path on this machine
    upscaler = TiledUpscaler(backend)            # automatic tile size and overlap
    out = upscaler.upscale(pixels, cancel=token, progress=callback)

``upscale_iter`` is the generator form the GUI runs on a worker thread;
``upscale_image`` handles grey, alpha and metadata; ``upscale_image_to_file`` also writes the
file, streaming PNG rows to an encoder thread as tile rows finish (``TiledUpscaler.iter_bands``). Module map:

* ``backends``: :class:`Backend`, torch and onnxruntime implementations, the measured
  automatic choice (``backend.choice.reason``) and ``create_backend``.
* ``grid`` / ``gridnet``: the tile geometry (numpy) and the DIPNet forward pass (torch)
  whose ESA attention follows the whole image's grid, so tiles match a whole-image
  pass within 1/255.
* ``tiling``: pure-Python tile plans.
* ``upscaler``: :class:`TiledUpscaler` (tile workers, progress, cancellation,
  out-of-memory retries) and the measured overlap table.
* ``ensemble``: the x8 self-ensemble ("best quality": 8 flipped/rotated
  whole-image passes averaged), ``upscale_image(..., self_ensemble=True)``.
* ``hardware``: cores, free memory, CPU flags without psutil.
"""

from typing import Any

from .backends import (
    Backend,
    BackendUnavailable,
    EngineChoice,
    OnnxRuntimeBackend,
    available_backends,
    create_backend,
    export_onnx_bytes,
    is_out_of_memory,
    set_thread_spinning,
)
from .ensemble import ENSEMBLE_SIZE, self_ensemble_iter
from .image import upscale_image, upscale_image_iter, upscale_image_to_file
from .tiling import TileBox, plan_tiles
from .upscaler import (
    DEFAULT_OVERLAP,
    OutputBand,
    TiledUpscaler,
    TileProgress,
    auto_tile_size,
    default_overlap,
)

__all__ = [
    "DEFAULT_OVERLAP", "ENSEMBLE_SIZE", "Backend", "BackendUnavailable", "EngineChoice", "OnnxRuntimeBackend",
    "OutputBand", "TileBox", "TileProgress",
    "TiledUpscaler", "TorchBackend", "auto_tile_size", "available_backends", "create_backend", "default_overlap",
    "export_onnx_bytes", "is_out_of_memory", "plan_tiles", "self_ensemble_iter", "set_thread_spinning", "upscale_image",
    "upscale_image_iter", "upscale_image_to_file",
]


def __getattr__(name: str) -> Any:
    # TorchBackend imports torch; the upscale-only (onnxruntime) path never touches it.
    if name == "TorchBackend":
        from .backends.torch_backend import TorchBackend

        return TorchBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
