"""One inference engine per (model, backend, device, tile size), built once and reused (a Qt-free service).

Building means loading weights and creating a torch module or an ONNX Runtime
session: cheap for DIPNet, but never something to repeat per click or per
preview. :class:`EngineCache` is Qt-free and thread safe because workers ask
for the engine from their own threads (so a slow first load never blocks the
GUI); a lock makes concurrent first requests build it only once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EngineKey:
    """What an engine depends on: a different key means a different engine (and different pixels)."""

    model_path: Path
    backend: str
    device: str
    tile_size: int


@dataclass
class Engine:
    """The backend (shared, thread safe) plus one tiler per kind of job.

    A ``TiledUpscaler`` serves one job at a time, and each controller runs at most one
    job of its kind at a time, so every kind gets its own tiler over the shared backend.
    """

    key: EngineKey
    loaded: Any  # dipnet_core.models.LoadedModel
    backend: Any  # dipnet_core.engine.Backend
    upscaler: Any  # TiledUpscaler for the Upscale tab's whole images
    preview_upscaler: Any  # TiledUpscaler for the live preview (iter_regions: one job, centre first)
    batch_upscaler: Any  # TiledUpscaler for the Batch tab

    @property
    def model_name(self) -> str:
        d = self.loaded.descriptor
        return d.name or (self.key.model_path.stem if self.key.model_path else d.arch)

    def describe(self, display_name: str = "") -> str:
        """Model, backend, device and precision, e.g. "DIPNet · torch CPU fp32 (2 threads)"."""
        try:
            how = self.backend.describe()
        except NotImplementedError:
            how = f"{self.backend.name} on {self.backend.device}"
        return f"{display_name or self.model_name} · {how}{int8_note(self.backend)}"


def int8_note(backend: Any, full: bool = False) -> str:
    """A note when the automatic choice rejected the model's int8 twin on this machine, else "".

    Short for the Upscale tab's engine line; ``full`` adds the measured reason (the About box).
    """
    choice = getattr(backend, "choice", None)
    check = getattr(choice, "int8_check", None) or {}
    if not check or check.get("ok", True) or getattr(backend, "precision", "") == "int8":
        return ""
    if full:
        return " · int8 twin not used: " + str(check.get("reason", "")).removeprefix("int8 twin rejected: ")
    return " · int8 twin not used (it computes differently on this CPU)"


class EngineCache:
    """Holds the one engine in use; controllers' workers ask it for the engine (thread safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Engine | None = None

    def current(self) -> Engine | None:
        """The engine built last, if any (without building one)."""
        with self._lock:
            return self._engine

    def get(self, key: EngineKey) -> Engine:
        with self._lock:
            if self._engine is not None and self._engine.key == key:
                return self._engine
            from dipnet_core.engine import TiledUpscaler, create_backend
            from dipnet_core.models import load_model

            from ..edition import model_file_for_inference

            loaded = load_model(model_file_for_inference(key.model_path))
            backend = create_backend(loaded, backend=key.backend, device=key.device)
            tile = key.tile_size or None
            # The previous engine's tilers are simply dropped: a job still running keeps its own
            # reference, and their worker threads end when the executors are collected.
            self._engine = Engine(
                key,
                loaded,
                backend,
                TiledUpscaler(backend, tile_size=tile),
                TiledUpscaler(backend, tile_size=tile),
                TiledUpscaler(backend, tile_size=tile),
            )
            return self._engine
