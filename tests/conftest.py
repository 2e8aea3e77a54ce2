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
# The engine's automatic CPU choice uses its rules, not a per-machine measurement written to the
# user's cache; tests of the measured choice (test_engine_choice.py) switch it back on.
os.environ.setdefault("DIPNET_MEASURE_BACKENDS", "0")
# Engine choices and cached ONNX exports go to a throwaway folder, never the user's cache.
if "DIPNET_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["DIPNET_CACHE_DIR"] = tempfile.mkdtemp(prefix="dipnet-test-cache-")

from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from synthetic_images import synthetic_photo  # noqa: E402

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
