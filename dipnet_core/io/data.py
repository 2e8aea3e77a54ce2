"""The in-memory image record passed between reading, processing and writing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ImageData:
    """A decoded image plus the metadata needed to write it back faithfully.

    ``pixels`` is float32 HxWxC in [0, 1] with C = 1 (gray) or 3 (RGB); the alpha
    channel is kept apart in ``alpha`` (float32 HxW) so that models only ever see
    colour. ``bit_depth`` (8 or 16) is the precision the writer should aim for.
    ``mode`` is the Pillow mode of the source file (informative only). ``exif`` is
    a complete EXIF block (starting with ``b"Exif\\0\\0"``) whose orientation is
    already 1, because the pixels are stored upright. ``frames`` is how many frames
    or pages the file holds (animated GIF/WebP/PNG, multi-page TIFF); ``pixels``
    is always the first.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    mode: str = ""
    exif: bytes | None = None
    icc_profile: bytes | None = None
    format: str | None = None
    path: Path | None = None
    frames: int = 1

    def __post_init__(self) -> None:
        px = np.asarray(self.pixels)
        if px.ndim == 2:
            px = px[:, :, None]
        if px.ndim != 3 or px.shape[2] not in (1, 3):
            raise ValueError(f"ImageData.pixels must be HxW, HxWx1 or HxWx3, got shape {px.shape}")
        self.pixels = px.astype(np.float32, copy=False)
        if self.alpha is not None:
            a = np.asarray(self.alpha)
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.shape != px.shape[:2]:
                raise ValueError(f"ImageData.alpha must be {px.shape[:2]}, got shape {a.shape}")
            self.alpha = a.astype(np.float32, copy=False)
        if self.bit_depth not in (8, 16):
            raise ValueError(f"ImageData.bit_depth must be 8 or 16, got {self.bit_depth}")
        if not self.mode:
            self.mode = ("L" if self.is_gray else "RGB") + ("A" if self.has_alpha else "")
        if self.path is not None:
            self.path = Path(self.path)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """Colour channels only (1 or 3); alpha is not counted."""
        return int(self.pixels.shape[2])

    @property
    def has_alpha(self) -> bool:
        return self.alpha is not None

    @property
    def is_gray(self) -> bool:
        return self.pixels.shape[2] == 1
