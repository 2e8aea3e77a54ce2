"""The photo model in the app: both built-ins listed with their "use for", and the hint on damaged images.

The photo model is not trained yet: a copy of the real clean built-in model, placed where the photo
model ships, stands in for it (a real model file, so loading and previews run for real).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from dipnet_core import resources
from dipnet_core.resources import BUILTIN_MODELS

PHOTO_FILE = "dipnet-studio-x4-photo.safetensors"


def smooth_image(w: int = 96, h: int = 72) -> np.ndarray:
    """A clean, noise-free picture: gradients and a disc (JPEG blocks and noise would show on it)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 40 + 150 * x / w
    g = 60 + 120 * y / h
    b = 200 - 100 * ((x - w / 2) ** 2 + (y - h / 2) ** 2 < (h / 3) ** 2)
    return np.clip(np.stack([r, g, b + 0 * x], axis=2), 0, 255).astype(np.uint8)


@pytest.fixture
def builtin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builtin_weights_path: Path) -> Path:
    """A built-in models folder with the real clean model; tests add the photo stand-in to it."""
    d = tmp_path / "builtin-models"
    d.mkdir()
    shutil.copy(builtin_weights_path, d / builtin_weights_path.name)
    monkeypatch.setattr(resources, "_CANDIDATE_DIRS", (d,))
    return d


@pytest.fixture
def photo_dir(builtin_dir: Path, builtin_weights_path: Path) -> Path:
    shutil.copy(builtin_weights_path, builtin_dir / PHOTO_FILE)
    return builtin_dir


def _window(qtbot: object) -> object:
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore
    from app.window import MainWindow

    store = SettingsStore(AppPaths.default().ensure())
    w = MainWindow(AppContext(store, ModelLibrary(store)))
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.resize(1000, 700)
    w.show()
    return w


@pytest.fixture
def studio(studio_home: Path, qapp: object, qtbot: object) -> Iterator[object]:
    from app.workers import shutdown

    made: list[object] = []
    yield lambda: made.append(_window(qtbot)) or made[-1]
    for w in made:
        if w.train is not None:  # type: ignore[attr-defined]
            w.train.shutdown(5000)  # type: ignore[attr-defined]
    assert shutdown(10_000)


def _open(w: object, qtbot: object, path: Path) -> None:
    up = w.upscale  # type: ignore[attr-defined]
    up.open_path(path)
    qtbot.waitUntil(lambda: up._damage is not None and up.loaded is not None,  # type: ignore[attr-defined]
                    timeout=20_000)


def test_models_tab_lists_both_built_ins_with_their_use(studio, photo_dir: Path) -> None:
    w = studio()
    lib, table = w.ctx.library, w.models_view.table
    clean, photo = lib.builtin("clean"), lib.builtin("photo")
    assert clean is not None and photo is not None
    assert clean.path.name == "dipnet-studio-x4.safetensors" and photo.path == photo_dir / PHOTO_FILE
    assert w.ctx.current_model().id == clean.id  # the clean model stays the default
    use_col = w.models_view.COLUMNS.index("Use for")
    shown = {table.item(r, use_col).text() for r in range(table.rowCount())}
    assert {BUILTIN_MODELS["clean"][1], BUILTIN_MODELS["photo"][1]} <= shown


def test_low_quality_jpeg_offers_the_photo_model(studio, photo_dir: Path, qtbot, tmp_path: Path) -> None:
    src = tmp_path / "web.jpg"
    Image.fromarray(smooth_image()).save(src, quality=30)
    w = studio()
    view = w.upscale_view
    _open(w, qtbot, src)
    qtbot.waitUntil(lambda: not view.photo_hint.isHidden(), timeout=5_000)
    text = view.photo_hint.text.text()
    assert text.startswith("Looks like JPEG quality about 30")
    assert "the photo model may give a cleaner result" in text
    assert view.photo_hint.action.text() == "Use photo model" and view.photo_hint.action.isVisible()

    qtbot.mouseClick(view.photo_hint.action, Qt.MouseButton.LeftButton)
    current = w.ctx.current_model()
    assert current.builtin_name == "photo" and current.path == photo_dir / PHOTO_FILE
    assert view.photo_hint.isHidden()
    assert "photo" in w.model_status.text() or current.name in w.model_status.text()


def test_clean_png_gets_no_hint(studio, photo_dir: Path, qtbot, tmp_path: Path) -> None:
    src = tmp_path / "clean.png"
    Image.fromarray(smooth_image()).save(src)
    w = studio()
    _open(w, qtbot, src)
    assert not w.upscale._damage.suggest_photo_model
    assert w.upscale_view.photo_hint.isHidden()


def test_no_hint_without_a_photo_model_or_once_dismissed(studio, builtin_dir: Path, qtbot,
                                                        tmp_path: Path, builtin_weights_path: Path) -> None:
    src = tmp_path / "web.jpg"
    Image.fromarray(smooth_image()).save(src, quality=30)
    w = studio()
    _open(w, qtbot, src)
    assert w.upscale._damage.suggest_photo_model  # the image is damaged, but there is nothing to offer
    assert w.upscale_view.photo_hint.isHidden()

    shutil.copy(builtin_weights_path, builtin_dir / PHOTO_FILE)
    w.ctx.library.refresh()  # a photo model appears: the hint does too
    assert not w.upscale_view.photo_hint.isHidden()
    qtbot.mouseClick(w.upscale_view.photo_hint_dismiss, Qt.MouseButton.LeftButton)
    assert w.upscale_view.photo_hint.isHidden()
    w.ctx.library.refresh()
    assert w.upscale_view.photo_hint.isHidden(), "a dismissed hint came back for the same image"
    assert w.ctx.current_model().builtin_name == "clean"
