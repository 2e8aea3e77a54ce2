"""Folders of images for evaluation and training: find them, and read each as 8-bit RGB.

Shared by the benchmark protocol (:mod:`dipnet_core.eval`) and the training
data (:mod:`dipnet_core.train.data`). Scanning reads headers only; files that
cannot be read or are too small are returned as ``(path, reason)`` instead of
raising, so one bad file never stops a run or a benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .io import ImageReadError, is_image_path, read_image
from .io.formats import DECODER_FORMATS

__all__ = ["IMAGE_SUFFIXES", "READ_ERRORS", "image_size", "read_rgb_uint8", "scan_images"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# The app's reader raises its own error type (not an OSError) besides the usual ones.
READ_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, ImageReadError)


def read_rgb_uint8(path: str | Path) -> np.ndarray:
    """Decode an image to HxWx3 uint8 (grey is replicated, alpha dropped, 16-bit rounded).

    Raises one of :data:`READ_ERRORS`, naming the file, when it cannot be decoded.
    """
    pixels = np.asarray(read_image(path).pixels, dtype=np.float32)
    img = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] > 3:
        img = img[..., :3]
    return np.ascontiguousarray(img)


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the header only; full decoding is deferred to first use."""
    from PIL import Image

    with Image.open(path, formats=DECODER_FORMATS) as im:  # never a plugin that runs a program
        w, h = im.size
    return h, w


def scan_images(dirs: Sequence[str | Path], min_side: int = 0) -> tuple[list[Path], list[tuple[str, str]]]:
    """All images under ``dirs`` (recursive, sorted), plus the skipped ones as ``(path, reason)``."""
    found: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            skipped.append((str(root), "folder not found"))
            continue
        for p in sorted(root.rglob("*")):
            if not p.is_file() or not is_image_path(p):
                continue
            try:
                h, w = image_size(p)
            except Exception as exc:  # unreadable header: corrupt, truncated, not an image
                skipped.append((str(p), f"unreadable: {type(exc).__name__}: {exc}"))
                continue
            if min(h, w) < min_side:
                skipped.append((str(p), f"too small ({w}x{h} px, need at least {min_side} px per side)"))
                continue
            found.append(p)
    return found, skipped


