"""Upscale tab end to end: drop a file, preview, upscale, save; cancel; errors; folders go to Batch."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication
from studio_testutil import write_png


def drop_files(target: object, paths: list[Path]) -> None:
    """Deliver a real drag-enter + drop with file URLs to ``target``, like a file manager does."""
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(target.width() / 2, target.height() / 2)  # type: ignore[attr-defined]
    enter = QDragEnterEvent(  # QDragEnterEvent takes an integer QPoint, QDropEvent a QPointF
        pos.toPoint(), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        pos, Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted()


def test_drop_preview_upscale_save(window: object, qtbot: object, tiny_image: Path, tmp_path: Path) -> None:
    w = window
    view, up = w.upscale_view, w.upscale  # type: ignore[attr-defined]
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        drop_files(view, [tiny_image])
    assert view.pages.currentIndex() == 1
    assert view.compare.patches(), "the live preview painted nothing"
    assert up.loaded.image.width == 40 and tiny_image.name in view.status_label.text()
    assert "dipnet-studio-x4" not in view.info_label.text()  # the status bar names it: once, not twice

    with qtbot.waitSignal(up.resultReady, timeout=30_000):  # type: ignore[attr-defined]
        view.upscale_btn.click()
    assert view.compare.has_after() and view.save_btn.isEnabled()
    assert "Done" in view.status_label.text()
    assert "dipnet-studio-x4" in view.info_label.text()  # model, backend and device are shown

    # Save with the name template (PNG) and check the file.
    view.template_edit.setText("{stem}_x{scale}_{model}")
    view.template_edit.editingFinished.emit()
    target = up.suggested_save_path()
    assert target.name == "tiny_x4_dipnet-studio-x4.png"
    out = tmp_path / "out" / target.name
    out.parent.mkdir()
    with qtbot.waitSignal(up.saved, timeout=20_000) as sig:  # type: ignore[attr-defined]
        up.save(out)
    assert sig.args[0] == out
    with Image.open(out) as im:
        assert im.size == (160, 128)

    # JPEG with quality from the save row.
    view.format_combo.setCurrentIndex(1)
    view.quality_spin.setValue(60)
    jpg = tmp_path / "out" / "q.jpg"
    with qtbot.waitSignal(up.saved, timeout=20_000):  # type: ignore[attr-defined]
        up.save(jpg)
    with Image.open(jpg) as im:
        assert im.format == "JPEG" and im.size == (160, 128)

    up.copy_result()
    assert QApplication.clipboard().image().size().width() == 160

    # The file is in the recent list now.
    assert str(tiny_image) in w.ctx.settings.recent_files  # type: ignore[attr-defined]


def test_cancel_full_upscale(window: object, qtbot: object, tmp_path: Path, monkeypatch: object) -> None:
    import threading

    import dipnet_core.engine as engine

    real = engine.upscale_image

    def held(img: object, upscaler: object, cancel: object = None, progress: object = None,
             **options: object) -> object:
        # After the first tile, wait for the user's cancel, so a fast machine cannot finish first.
        def on_tile(tp: object) -> None:
            progress(tp)  # type: ignore[operator]
            while not cancel.cancelled:  # type: ignore[attr-defined]
                threading.Event().wait(0.005)

        return real(img, upscaler, cancel=cancel, progress=on_tile, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "upscale_image", held)  # type: ignore[attr-defined]
    path = write_png(tmp_path / "big.png", 120, 96, seed=1)
    w = window
    up = w.upscale  # type: ignore[attr-defined]
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        up.open_path(path)
    progressed: list[object] = []
    up.view.upscale_btn.click()
    task = up._upscale_task
    task.progress.connect(progressed.append)
    qtbot.waitUntil(lambda: len(progressed) >= 1, timeout=20_000)  # type: ignore[attr-defined]
    assert up.view.cancel_btn.isVisible() and "left" in up.view.status_label.text()  # progress + ETA
    assert len(up.view.compare.tiles()) == 1  # the finished tile is painted while the job runs
    with qtbot.waitSignal(task.done, timeout=20_000):  # type: ignore[attr-defined]
        up.view.cancel_btn.click()
    assert task.outcome == "cancelled"
    assert up.result is None and not up.view.compare.has_after()
    assert up.view.compare.tiles() == []  # a half-painted result must not look finished
    assert "cancelled" in up.view.status_label.text().lower()
    assert up.view.upscale_btn.isVisible() and not up.view.cancel_btn.isVisible()


def test_full_upscale_paints_each_tile_as_it_finishes(window: object, qtbot: object, tmp_path: Path) -> None:
    import numpy as np

    from app.qt_image import qimage_to_array

    w = window
    up = w.upscale  # type: ignore[attr-defined]
    w.ctx.settings.tile_size = 192  # type: ignore[attr-defined]  # several tiles on a small image
    path = write_png(tmp_path / "tiles.png", 300, 200, seed=2)
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        up.open_path(path)
    shown: list[int] = []
    patches: list[tuple[tuple[int, int, int, int], object]] = []

    def on_progress(payload: tuple[object, object]) -> None:
        tp, patch = payload
        shown.append(len(up.view.compare.tiles()))
        patches.append(patch)  # type: ignore[arg-type]
        assert tp.total > 1  # type: ignore[attr-defined]

    up.view.upscale_btn.click()
    up._upscale_task.progress.connect(on_progress)
    with qtbot.waitSignal(up.resultReady, timeout=60_000):  # type: ignore[attr-defined]
        pass
    assert len(patches) > 1 and shown == list(range(1, len(patches) + 1))
    assert up.view.compare.tiles() == []  # the finished result replaced them
    final = up.result.pixels  # float in [0, 1], 1200x800
    covered = np.zeros(final.shape[:2], bool)
    for (x0, y0, x1, y1), image in patches:  # type: ignore[misc]
        px, _, _ = qimage_to_array(image)  # type: ignore[arg-type]
        tile = np.round(px * 255.0)
        expect = np.round(final[4 * y0:4 * y1, 4 * x0:4 * x1] * 255.0)
        assert tile.shape == expect.shape and np.abs(tile - expect).max() <= 1.0
        covered[4 * y0:4 * y1, 4 * x0:4 * x1] = True
    assert covered.all()


def test_unreadable_file_gives_a_readable_message(window: object, qtbot: object, tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    w = window
    w.upscale.open_path(bad)  # type: ignore[attr-defined]
    banner = w.upscale_view.banner  # type: ignore[attr-defined]
    qtbot.waitUntil(banner.isVisible, timeout=10_000)  # type: ignore[attr-defined]
    text = banner.text.text()
    assert "broken.png" in text and "Traceback" not in text


def test_dropping_a_folder_offers_the_batch_tab(window: object, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_png(folder / "a.png", 20, 20)
    w = window
    drop_files(w.upscale_view, [folder])  # type: ignore[attr-defined]
    banner = w.upscale_view.banner  # type: ignore[attr-defined]
    assert banner.isVisible() and "1 folder" in banner.text.text()
    assert w.tabs.currentIndex() == w.TAB_UPSCALE  # type: ignore[attr-defined]  # only offered so far
    banner.action.click()
    assert w.tabs.currentIndex() == w.TAB_BATCH  # type: ignore[attr-defined]
    assert w.batch.inputs == [folder]  # type: ignore[attr-defined]


def test_dropping_several_files_offers_a_batch_that_can_be_declined(window: object, tmp_path: Path) -> None:
    files = [write_png(tmp_path / f"{n}.png", 20, 20, seed=i) for i, n in enumerate("abc")]
    w = window
    drop_files(w.upscale_view, files)  # type: ignore[attr-defined]
    banner = w.upscale_view.banner  # type: ignore[attr-defined]
    assert "3 images" in banner.text.text() and banner.action.text() == "Add to Batch"
    banner.close_btn.click()  # "no thanks"
    assert not banner.isVisible() and w.batch.inputs == []  # type: ignore[attr-defined]
    assert w.upscale.loaded is None  # type: ignore[attr-defined]  # nothing was opened either


def test_paste_from_clipboard(window: object, qtbot: object) -> None:
    from PySide6.QtGui import QColor, QImage

    img = QImage(24, 20, QImage.Format.Format_RGB888)
    img.fill(QColor(200, 40, 40))
    QApplication.clipboard().setImage(img)
    w = window
    with qtbot.waitSignal(w.upscale.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        w.upscale_view.paste_btn.click()  # type: ignore[attr-defined]
    assert w.upscale.loaded.image.width == 24  # type: ignore[attr-defined]
    assert w.upscale.suggested_save_path().name.startswith("pasted_x4")  # type: ignore[attr-defined]


def test_no_model_installed_still_starts(studio_home: Path, qtbot: object, monkeypatch: object) -> None:
    import app.services.models as models_mod
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore
    from app.window import MainWindow

    monkeypatch.setattr(models_mod, "builtin_model_path", lambda: None)  # type: ignore[attr-defined]
    store = SettingsStore(AppPaths.default().ensure())
    w = MainWindow(AppContext(store, ModelLibrary(store)))
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.show()
    assert "No model installed" in w.upscale_view.banner.text.text()
    assert w.upscale_view.banner.action.text() == "Import model…"
    assert "No model installed" in w.model_status.text()
    w.close()


def test_switching_model_drops_the_old_result(
    window: object, qtbot: object, tiny_image: Path, builtin_weights_path: Path
) -> None:
    w = window
    up = w.upscale  # type: ignore[attr-defined]
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        up.open_path(tiny_image)
    with qtbot.waitSignal(up.resultReady, timeout=30_000):  # type: ignore[attr-defined]
        up.upscale()
    lib = w.ctx.library  # type: ignore[attr-defined]
    lib.rename(w.ctx.current_model().id, "Still the same weights")  # type: ignore[attr-defined]
    assert up.result is not None  # a rename changes nothing the pixels depend on
    other = lib.import_file(builtin_weights_path, name="Another model")
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        lib.set_default(other.id)
    assert up.result is None and not up.view.compare.has_after()
    assert "Another model" in up.view.status_label.text()


def test_first_start_uses_the_builtin_model(studio_home: Path, qtbot: object) -> None:
    """A fresh install (empty settings, empty model folder) is ready to upscale with the shipped model."""
    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore
    from app.window import MainWindow

    store = SettingsStore(AppPaths.default().ensure())
    ctx = AppContext(store, ModelLibrary(store))
    current = ctx.current_model()
    assert current is not None and current.builtin and current.usable
    assert current.origin == "built-in" and current.widths == "48/32"
    w = MainWindow(ctx)
    qtbot.addWidget(w)  # type: ignore[attr-defined]
    w.show()
    assert "No model installed" not in w.upscale_view.banner.text.text()
