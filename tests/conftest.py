"""Fixtures shared by the core and app test suites.

Tests that need *a* model use the built-in model shipped in ``resources/models`` and a
synthetic photo-like image, so a bare clone runs them. Only the PSNR anchors need the
reference data in ``shared/`` beside the repository (``<repo>/../shared``, or the folder
named by ``DIPNET_SHARED_DIR``); they skip with a clear reason when it is absent.
"""

from __future__ import annotations

import os

# Before anything imports Qt: the app tests run without a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("DIPNET_SHARED_DIR") or REPO_ROOT.parent / "shared")
OFFICIAL_WEIGHTS = SHARED_DIR / "reference" / "dipnet_official_x4.pth"
SET5_DIR = SHARED_DIR / "benchmarks" / "Set5"
ANCHOR_SKIP = "PSNR anchor against the authors' published numbers: needs the reference data"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{ANCHOR_SKIP}; folder {SHARED_DIR} is absent (expected beside the repository)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def official_weights_path(shared_dir: Path) -> Path:
    if not OFFICIAL_WEIGHTS.is_file():
        pytest.skip(f"{ANCHOR_SKIP}; the authors' weights {OFFICIAL_WEIGHTS} are absent")
    return OFFICIAL_WEIGHTS


@pytest.fixture(scope="session")
def official_model(official_weights_path: Path):  # -> dipnet_core.models.LoadedModel
    from dipnet_core.models import load_model

    return load_model(official_weights_path)


@pytest.fixture(scope="session")
def set5_dir(shared_dir: Path) -> Path:
    if not SET5_DIR.is_dir() or not any(SET5_DIR.glob("*.png")):
        pytest.skip(f"{ANCHOR_SKIP}; Set5 images {SET5_DIR} are absent")
    return SET5_DIR


@pytest.fixture(scope="session")
def builtin_weights_path() -> Path:
    """The shipped built-in model (part of the repository: missing is a failure, not a skip)."""
    from dipnet_core.resources import builtin_model_path

    path = builtin_model_path()
    assert path is not None, "the built-in model resources/models/dipnet-studio-x4.safetensors is missing"
    return path


@pytest.fixture(scope="session")
def builtin_model(builtin_weights_path: Path):  # -> dipnet_core.models.LoadedModel
    from dipnet_core.models import load_model

    return load_model(builtin_weights_path)


_PHOTO_SEEDS = {"baby": 1, "butterfly": 2, "bird": 3, "head": 4, "woman": 5}


def synthetic_photo(source: str = "baby", size: int = 512) -> np.ndarray:
    """A reproducible photo-like ``size`` x ``size`` RGB uint8 image.

    Smooth shading, soft and hard edged shapes, a fine stripe texture and sensor-like noise:
    the mix of flat areas, edges and detail a super-resolution model sees in photos, made
    here so the tests need no image files.
    """
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


@pytest.fixture(scope="session")
def photo() -> Callable[..., np.ndarray]:
    """``photo(source="baby")``: the reproducible photo-like 512x512 RGB uint8 image for ``source``."""
    return synthetic_photo


@pytest.fixture
def small_rgb_image(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a small photo-like crop: ``small_rgb_image("a.png", size=(48, 40))``.

    ``size`` is (width, height); ``source`` picks the synthetic photo; ``offset`` the crop corner.
    """
    from PIL import Image

    def make(name: str = "small.png", size: tuple[int, int] = (48, 40), source: str = "baby",
             offset: tuple[int, int] = (200, 180), folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        x, y = offset
        Image.fromarray(synthetic_photo(source)[y:y + size[1], x:x + size[0]]).save(path)
        return path

    return make
