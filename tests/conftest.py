"""Fixtures shared by the core and app test suites.

Reference data lives in ``shared/`` beside the repository (never copied into it):
``<repo>/../shared``. Tests that need it skip with a clear reason when it is absent.
"""

from __future__ import annotations

import os

# Before anything imports Qt: the app tests run without a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The engine's automatic CPU choice uses its rules, not a per-machine measurement written to the
# user's cache; tests of the measured choice (test_engine_choice.py) switch it back on.
os.environ.setdefault("DIPNET_MEASURE_BACKENDS", "0")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
OFFICIAL_WEIGHTS = SHARED_DIR / "reference" / "dipnet_official_x4.pth"
SET5_DIR = SHARED_DIR / "benchmarks" / "Set5"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip(f"reference data folder {SHARED_DIR} is absent (expected beside the repository)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def official_weights_path(shared_dir: Path) -> Path:
    if not OFFICIAL_WEIGHTS.is_file():
        pytest.skip(f"official DIPNet weights {OFFICIAL_WEIGHTS} are absent")
    return OFFICIAL_WEIGHTS


@pytest.fixture(scope="session")
def official_model(official_weights_path: Path):  # -> dipnet_core.models.LoadedModel
    from dipnet_core.models import load_model

    return load_model(official_weights_path)


@pytest.fixture(scope="session")
def set5_dir(shared_dir: Path) -> Path:
    if not SET5_DIR.is_dir() or not any(SET5_DIR.glob("*.png")):
        pytest.skip(f"Set5 benchmark images {SET5_DIR} are absent")
    return SET5_DIR


@pytest.fixture
def small_rgb_image(tmp_path: Path, set5_dir: Path) -> Callable[..., Path]:
    """Factory writing a small real-photo crop: ``small_rgb_image("a.png", size=(48, 40))``.

    Real image content (a Set5 crop) rather than noise, so outputs look like what users feed in.
    ``size`` is (width, height); ``source`` picks the Set5 image; ``offset`` the crop corner.
    """
    from PIL import Image

    def make(name: str = "small.png", size: tuple[int, int] = (48, 40), source: str = "baby",
             offset: tuple[int, int] = (200, 180), folder: Path | None = None) -> Path:
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(set5_dir / f"{source}.png") as im:
            x, y = offset
            crop = im.convert("RGB").crop((x, y, x + size[0], y + size[1]))
        crop.save(path)
        return path

    return make
