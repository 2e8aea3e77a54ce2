"""Helpers shared by the GUI tests.

A plain module, not a package: a ``tests/app`` package would clash with the ``app`` package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SET14 = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks" / "Set14"


def engine_missing() -> str | None:
    """Why the inference engine cannot be used (a colleague's module, landing separately), or None."""
    try:
        from dipnet_core.engine import TiledUpscaler, create_backend, upscale_image  # noqa: F401
    except ImportError as exc:
        return f"dipnet_core.engine not available ({exc})"
    return None


needs_engine = pytest.mark.skipif(engine_missing() is not None, reason="dipnet_core.engine not available")


def write_png(path: Path, w: int, h: int, seed: int = 0, alpha: bool = False) -> Path:
    """A small natural-looking image: a crop of Set14 when available, else smooth noise."""
    from PIL import Image

    src = SET14 / "baboon.png"
    if src.exists():
        with Image.open(src) as im:
            rgb = np.asarray(im.convert("RGB"))
        y, x = 40 + 13 * seed, 60 + 17 * seed
        arr = rgb[y : y + h, x : x + w]
    else:
        rng = np.random.default_rng(seed)
        arr = (np.cumsum(rng.random((h, w, 3)), axis=1) * 255 / w).astype(np.uint8)
    if alpha:
        a = np.full((h, w, 1), 255, np.uint8)
        a[: h // 2] = 128
        arr = np.concatenate([arr, a], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path)
    return path
