"""The interface every inference backend implements, and what all of them share.

A :class:`Backend` turns an NCHW float32 batch in [0, 1] into the upscaled NCHW
float32 batch. Everything slow (weight conversion, ONNX export, session creation,
TensorRT engine builds) happens once in the constructor, never per tile. This
module imports neither torch nor onnxruntime, so the tiler can depend on it in an
environment that has only one of them.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ModelError
from ..grid import TileGrid

if TYPE_CHECKING:
    from ...models import LoadedModel
    from .autoselect import EngineChoice

BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")

_OOM_MARKERS = (
    "out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate",
    "bad_alloc", "bad allocation", "std::bad_alloc",
)


class BackendUnavailable(ModelError, RuntimeError):
    """The requested backend/device/precision cannot run on this machine or for this model."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for allocation failures of torch (CPU or CUDA) and onnxruntime."""
    if isinstance(exc, MemoryError):
        return True
    # Only a torch that is already loaded can have raised its own error; never import it here.
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _OOM_MARKERS)


def model_min_size(model: LoadedModel) -> int:
    """Smallest input side the model accepts: the descriptor's contract.

    A hand-made descriptor around a DIPNet module may leave ``min_size`` at 1; the
    architecture's own minimum (ESA's pooling) then still applies.
    """
    size = max(1, int(model.descriptor.min_size or 1))
    if model.module is not None:  # torch is loaded already when there is a module
        from ...models import DIPNet
        from ...models.blocks import min_input_size

        if isinstance(model.module, DIPNet):
            size = max(size, min_input_size())
    return size


class Backend(ABC):
    """One model ready to run on one device at one precision."""

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    provider: str = ""
    scale: int = 1
    fallback_reason: str | None = None
    #: How many ``run`` calls the tiler should keep in flight (one per core on CPU).
    workers: int = 1
    #: Smallest input side the model accepts; smaller inputs are reflect-padded by the tiler.
    min_size: int = 1
    #: False for models that must see the whole image (the tiler then never splits it).
    tileable: bool = True
    #: Rough peak working memory per input pixel of one ``run`` call, for tile sizing.
    bytes_per_pixel: int = 4096
    #: True when ``run`` follows the whole image's ESA grid given a :class:`TileGrid` (DIPNet family);
    #: tiles must then start on multiples of ``grid_align``.
    grid_aware: bool = False
    grid_align: int = 1
    #: Set by ``create_backend`` when ``auto`` measured or recalled the path (what ran, why, which tile).
    choice: EngineChoice | None = None
    #: Tile side the measured choice found fastest here; None lets the tiler size tiles by memory alone.
    preferred_tile: int | None = None

    def __init__(self, model: LoadedModel) -> None:
        d = model.descriptor
        self.scale = int(d.scale)
        self.in_channels = int(d.in_channels)
        self.min_size = model_min_size(model)
        self.tileable = bool(d.tileable)
        self.model_name = d.name or d.arch

    @abstractmethod
    def run(self, x: np.ndarray, grid: TileGrid | None = None) -> np.ndarray:
        """NCHW float32 in [0, 1] -> NCHW float32 (unclipped), ``scale`` times larger.

        ``grid`` places a tile in its whole image (grid-aware backends only; None
        means ``x`` is the whole image). Safe to call from the tiler's worker
        threads concurrently; the result may be a strided view (channels-last
        memory), not necessarily C-contiguous.
        """

    def init_worker(self) -> None:
        """Called once in each tile worker thread before its first ``run``."""

    def workers_ready(self) -> None:
        """Called in the tiler's thread once every worker ran :meth:`init_worker`."""

    def release_memory(self) -> None:
        """Give cached device memory back after an out-of-memory error."""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @abstractmethod
    def describe(self) -> str:
        """One line for logs, ``dipnet info`` and the app's status bar."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
