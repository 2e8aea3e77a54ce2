"""Photo-like test images made in code, so the tests need no image files.

A plain module beside ``tests/conftest.py`` (pytest puts that folder on ``sys.path``), used by
the fixtures there and by ``tests/app/studio_testutil.py``.
"""

from __future__ import annotations

import functools

import numpy as np

_PHOTO_SEEDS = {"baby": 1, "butterfly": 2, "bird": 3, "head": 4, "woman": 5}


def synthetic_photo(source: str = "baby", size: int = 512) -> np.ndarray:
    """A reproducible photo-like ``size`` x ``size`` RGB uint8 image (a fresh copy each call).

    Smooth shading, soft and hard edged shapes, a fine stripe texture and sensor-like noise:
    the mix of flat areas, edges and detail a super-resolution model sees in photos.
    """
    return _make_photo(source, size).copy()


@functools.lru_cache(maxsize=8)
def _make_photo(source: str, size: int) -> np.ndarray:
    rng = np.random.default_rng(_PHOTO_SEEDS.get(source, 7))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    base = rng.uniform(0.2, 0.8, 3)
    tilt = rng.uniform(-0.3, 0.3, (3, 2))
    img = np.stack([base[c] + tilt[c, 0] * xx + tilt[c, 1] * yy for c in range(3)], axis=-1)
    for _ in range(14):  # soft discs (out-of-focus blobs) and hard discs (objects)
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.04, 0.18)
        edge = rng.choice([0.003, 0.03])
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        mask = np.clip((r - d) / edge, 0.0, 1.0)[..., None]
        img = img * (1 - mask) + rng.uniform(0, 1, 3) * mask
    for _ in range(4):  # hard-edged bars at an angle
        angle = rng.uniform(0, np.pi)
        u = (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle)
        v = -(xx - 0.5) * np.sin(angle) + (yy - 0.5) * np.cos(angle)
        u0, v0 = rng.uniform(-0.4, 0.4, 2)
        mask = ((np.abs(u - u0) < 0.015) & (np.abs(v - v0) < 0.25))[..., None]
        img = np.where(mask, rng.uniform(0, 1, 3), img)
    # a patch of fine stripes (fabric, hair): detail near the sampling limit
    ty, tx = rng.integers(0, size // 2, 2)
    t = size // 3
    stripes = 0.5 + 0.35 * np.sin(2 * np.pi * (np.arange(t)[:, None] * 0.23 + np.arange(t)[None] * 0.11))
    img[ty:ty + t, tx:tx + t] *= stripes[..., None] * 1.4
    img += rng.normal(0.0, 0.012, img.shape)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
