"""Helpers shared by the GUI tests.

A plain module, not a package: a ``tests/app`` package would clash with the ``app`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from synthetic_images import synthetic_photo


def write_png(path: Path, w: int, h: int, seed: int = 0, alpha: bool = False) -> Path:
    """A small natural-looking image: a crop of the synthetic photo, a different one per ``seed``."""
    from PIL import Image

    y, x = 40 + 13 * seed, 60 + 17 * seed
    arr = synthetic_photo("baboon")[y : y + h, x : x + w]
    if alpha:
        a = np.full((h, w, 1), 255, np.uint8)
        a[: h // 2] = 128
        arr = np.concatenate([arr, a], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
    return path


class UnexpectedModalDialog(AssertionError):
    """A test reached a modal dialog it did not answer: offscreen, nobody could close it."""
