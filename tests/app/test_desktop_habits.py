"""What a desktop user expects (issue 17): menus and shortcuts, an honest status line, a view that
stays put, viewer habits (before/after key, zoom and split kept), the Models tab's figures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication
from studio_testutil import write_png


def menu_titles(w: object) -> dict[str, list[str]]:
    bar = w.menuBar()  # type: ignore[attr-defined]
    out: dict[str, list[str]] = {}
    for a in bar.actions():
        out[a.text().replace("&", "")] = [x.text().replace("&", "") for x in a.menu().actions() if x.text()]
    return out


def test_menus_have_what_a_desktop_user_looks_for(window: object) -> None:
    menus = menu_titles(window)
    assert list(menus) == ["File", "View", "Help"]
    assert {"Open Image…", "Open Recent", "Save", "Save As…", "Quit"} <= set(menus["File"])
    assert {"Fit to Window", "Actual Size (100%)", "Split", "Side by Side", "Lens", "Dark Theme"} <= set(menus["View"])
    assert {"About DIPNet Studio", "Open Log Folder"} <= set(menus["Help"])
    w = window
    assert w.open_action.shortcut().toString() == "Ctrl+O"  # type: ignore[attr-defined]
    assert w.save_action.shortcut().toString() == "Ctrl+S"  # type: ignore[attr-defined]
    assert w.quit_action.shortcut().toString() == "Ctrl+Q"  # type: ignore[attr-defined]


def test_ctrl_q_quits(window: object, qtbot: object) -> None:
    w = window
    w.activateWindow()  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)  # type: ignore[attr-defined]
    qtbot.keyClick(w.upscale_view, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=5000)  # type: ignore[attr-defined]


def test_about_names_versions_and_backend_and_log_folder_opens(
    window: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import PySide6
    from PySide6.QtGui import QDesktopServices

    w = window
    text = w.about_text()  # type: ignore[attr-defined]
    assert "DIPNet Studio" in text and f"PySide6 {PySide6.__version__}" in text and "Python 3." in text
    assert "Backend:" in text and "Log file:" in text
    opened: list[str] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()) or True)
    w.log_action.trigger()  # type: ignore[attr-defined]
    assert opened == [str(w.ctx.store.paths.log_file.parent)]  # type: ignore[attr-defined]


def test_dark_theme_from_the_view_menu_is_saved_and_shown_in_settings(window: object) -> None:
    w = window
    w.dark_action.trigger()  # type: ignore[attr-defined]
    assert w.ctx.settings.theme == "dark"  # type: ignore[attr-defined]
    assert w.models_view.theme_combo.currentText() == "Dark"  # type: ignore[attr-defined]
    w.models_view.theme_combo.setCurrentIndex(1)  # type: ignore[attr-defined]  # Light, from the tab
    assert not w.dark_action.isChecked()  # type: ignore[attr-defined]


def test_status_line_after_a_failed_open(window: object, qtbot: object, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    w = window
    view = w.upscale_view  # type: ignore[attr-defined]
    w.upscale.open_path(bad)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not view.banner.isHidden(), timeout=10_000)  # type: ignore[attr-defined]
    assert "Opening" not in view.status_label.text()
    assert "Could not open bad.png" in view.status_label.text()


def test_the_view_does_not_move_while_an_upscale_runs(window: object, qtbot: object, tmp_path: Path) -> None:
    w = window
    up, view = w.upscale, w.upscale_view  # type: ignore[attr-defined]
    w.ctx.settings.tile_size = 96  # type: ignore[attr-defined]  # several tiles: progress arrives before the end
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "a.png", 200, 150, seed=1))

    def canvas_geometry() -> tuple[QPoint, object]:
        return view.compare.mapTo(w, QPoint(0, 0)), view.compare.size()

    before = canvas_geometry()
    during: list[tuple[QPoint, object]] = []
    view.upscale_btn.click()
    up._upscale_task.progress.connect(lambda _p: during.append(canvas_geometry()))
    with qtbot.waitSignal(up.resultReady, timeout=60_000):  # type: ignore[attr-defined]
        pass
    assert during and all(g == before for g in during)
    assert canvas_geometry() == before


def test_space_toggles_before_and_after_at_the_current_zoom(window: object, qtbot: object, tmp_path: Path) -> None:
    w = window
    up, view = w.upscale, w.upscale_view  # type: ignore[attr-defined]
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "a.png", 40, 30))
    view.state.set_view(3.0, QPointF(60, 50))
    canvas = view.compare
    rect = canvas.visible_image_rect().toAlignedRect()
    after = canvas.render_after(rect)
    canvas.setFocus()
    qtbot.keyClick(canvas, Qt.Key.Key_Space)  # type: ignore[attr-defined]
    assert canvas.showing_before and view.state.zoom == 3.0
    assert canvas.render_after(rect) != after  # the upscaled side now shows the original
    qtbot.keyClick(canvas, Qt.Key.Key_Backslash)  # type: ignore[attr-defined]
    assert not canvas.showing_before and canvas.render_after(rect) == after


def test_zoom_and_split_survive_opening_the_next_image(window: object, qtbot: object, tmp_path: Path) -> None:
    w = window
    up, view = w.upscale, w.upscale_view  # type: ignore[attr-defined]
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "a.png", 40, 30))
    view.state.set_view(2.5, QPointF(50, 50))
    view.compare.set_split(0.3)
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "b.png", 48, 36, seed=1))
    assert view.state.zoom == 2.5 and not view.state.fit_mode
    assert view.compare.split == 0.3
    # Fit mode stays fit mode: the next image is fitted again.
    view.fit_btn.click()
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "c.png", 30, 20, seed=2))
    assert view.state.fit_mode


def test_recent_files_are_in_the_file_menu(window: object, qtbot: object, tmp_path: Path) -> None:
    w = window
    up = w.upscale  # type: ignore[attr-defined]
    first = write_png(tmp_path / "first.png", 30, 20)
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(first)
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(write_png(tmp_path / "second.png", 30, 20, seed=1))
    recent = next(a.menu() for a in w.menuBar().actions()[0].menu().actions() if a.menu())  # type: ignore[attr-defined]
    names = [a.text() for a in recent.actions()]
    assert names[:2] == ["second.png", "first.png"]
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        recent.actions()[1].trigger()
    assert up.loaded.image.path == first  # type: ignore[attr-defined]


def test_models_tab_shows_the_standard_figure_from_the_model_card(
    window: object, tmp_path: Path, builtin_weights_path: Path
) -> None:
    from app.services.models import card_path

    w = window
    mv = w.models_view  # type: ignore[attr-defined]
    builtin = next(e for e in w.ctx.library.entries() if e.builtin)  # type: ignore[attr-defined]
    card = json.loads(card_path(builtin.path).read_text())
    set5 = next(b for b in card["benchmarks"] if b["set"] == "Set5")
    row = next(r for r in range(mv.table.rowCount()) if mv.table.item(r, 1).text() == builtin.name)
    psnr_col = mv.COLUMNS.index("PSNR-Y")
    assert mv.table.item(row, psnr_col).text() == f"Set5 PSNR-Y {set5['psnr_y']:.2f} dB" == "Set5 PSNR-Y 31.15 dB"
    mv.select_id(builtin.id)
    details = mv.details.text()
    assert "Set5 PSNR-Y 31.15 dB" in details and "wallpaper validation set" in details
    assert "(val)" not in mv.table.item(row, psnr_col).text()

    # The figure comes from the card: another card, another figure.
    other = tmp_path / "other.safetensors"
    shutil.copy2(builtin_weights_path, other)
    card_path(other).write_text(json.dumps({"benchmarks": [{"set": "Set14", "psnr_y": 12.345}]}))
    entry = w.ctx.library.import_file(other, name="Other")  # type: ignore[attr-defined]
    row = next(r for r in range(mv.table.rowCount()) if mv.table.item(r, 1).text() == "Other")
    assert mv.table.item(row, psnr_col).text() == "Set14 PSNR-Y 12.35 dB"
    assert entry.validation_set == ""  # this card says nothing about the validation images


def test_use_as_default_is_disabled_on_the_default(window: object, builtin_weights_path: Path) -> None:
    w = window
    mv, lib = w.models_view, w.ctx.library  # type: ignore[attr-defined]
    default = w.ctx.current_model()  # type: ignore[attr-defined]
    other = lib.import_file(builtin_weights_path, name="Other copy")
    mv.select_id(default.id)
    assert not mv.default_btn.isEnabled()
    mv.select_id(other.id)
    assert mv.default_btn.isEnabled()
    mv.default_btn.click()
    assert w.ctx.current_model().id == other.id and not mv.default_btn.isEnabled()  # type: ignore[attr-defined]
