"""Batch tab: a folder tree with one bad file finishes with the right statuses and a saved report."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from studio_testutil import write_png


def _tree(root: Path) -> Path:
    src = root / "in"
    write_png(src / "a.png", 32, 24, seed=0)
    write_png(src / "sub" / "b.png", 24, 32, seed=1)
    (src / "sub" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (src / "notes.txt").write_text("not an image")
    return src


@pytest.mark.slow
def test_batch_with_a_bad_file_then_retry(window: object, qtbot: object, tmp_path: Path) -> None:
    from dipnet_core.batch import BatchReport

    src = _tree(tmp_path)
    out = tmp_path / "out"
    w = window
    b, v = w.batch, w.batch_view  # type: ignore[attr-defined]
    b.add_inputs([src])
    v.output_edit.setText(str(out))
    v.recursive.setChecked(True)
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig:  # type: ignore[attr-defined]
        v.start_btn.click()
    report = sig.args[0]
    rows = {r.input.name: r for r in v.model.rows}
    assert set(rows) == {"a.png", "b.png", "bad.png"}
    assert rows["a.png"].status == "done" and rows["b.png"].status == "done"
    assert rows["bad.png"].status == "failed" and "bad.png" in rows["bad.png"].detail
    assert len(report.done) == 2 and len(report.failed) == 1
    # The tree is mirrored and outputs are 4x.
    with Image.open(out / "sub" / "b_x4.png") as im:
        assert im.size == (96, 128)
    assert (out / "a_x4.png").exists()
    saved = BatchReport.load(b.report_path)
    assert [e.input.name for e in saved.failed] == ["bad.png"]
    assert "100%" in v.progress.text() or v.progress.value() == 1000
    qtbot.waitUntil(lambda: v.retry_btn.isEnabled(), timeout=5000)  # type: ignore[attr-defined]

    # Fix the broken file, then "Retry failed" runs just that one.
    write_png(src / "sub" / "bad.png", 20, 20, seed=2)
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig2:  # type: ignore[attr-defined]
        v.retry_btn.click()
    merged = sig2.args[0]
    assert len(merged.done) == 3 and not merged.failed
    assert rows["bad.png"].status == "done"
    assert not v.retry_btn.isEnabled()

    # Skip existing: a rerun skips everything.
    v.skip_existing.setChecked(True)
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig3:  # type: ignore[attr-defined]
        v.start_btn.click()
    assert len(sig3.args[0].skipped) == 3
    assert {r.status for r in v.model.rows} == {"skipped"}


def _queue_folder(window: object, tmp_path: Path, count: int, w: int, h: int) -> tuple[object, object]:
    """A folder of ``count`` small images queued on the Batch tab; returns (controller, view)."""
    src = tmp_path / "many"
    for i in range(count):
        write_png(src / f"img{i}.png", w, h, seed=i)
    b, v = window.batch, window.batch_view  # type: ignore[attr-defined]
    b.add_inputs([src])
    v.output_edit.setText(str(tmp_path / "o"))
    return b, v


def test_batch_pause_and_cancel(window: object, qtbot: object, tmp_path: Path) -> None:
    b, v = _queue_folder(window, tmp_path, 4, 24, 24)
    v.pause_btn.setEnabled(True)
    b.set_paused(True)  # paused before the first file: nothing runs until resumed or cancelled
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig:  # type: ignore[attr-defined]
        v.start_btn.click()
        qtbot.waitUntil(lambda: len(v.model.rows) == 4, timeout=10_000)  # type: ignore[attr-defined]
        assert v.cancel_btn.isEnabled()
        v.cancel_btn.click()
    report = sig.args[0]
    assert report.cancelled and not report.done
    assert {r.status for r in v.model.rows} == {"cancelled"}
    qtbot.waitUntil(lambda: v.start_btn.isEnabled(), timeout=5000)  # type: ignore[attr-defined]
    assert not list((tmp_path / "o").glob("*.png"))


def test_batch_needs_inputs_and_output(window: object) -> None:
    w = window
    w.batch.set_inputs([])  # type: ignore[attr-defined]
    w.batch_view.start_btn.click()  # type: ignore[attr-defined]
    assert "input" in w.batch_view.banner.text.text().lower()  # type: ignore[attr-defined]
    assert not w.batch.running  # type: ignore[attr-defined]


def test_the_missing_input_message_goes_once_an_input_is_added(window: object, tmp_path: Path) -> None:
    w = window
    w.batch.set_inputs([])  # type: ignore[attr-defined]
    w.batch_view.start_btn.click()  # type: ignore[attr-defined]
    banner = w.batch_view.banner  # type: ignore[attr-defined]
    assert not banner.isHidden() and "input" in banner.text.text().lower()
    w.batch.add_inputs([tmp_path])  # type: ignore[attr-defined]
    assert banner.isHidden()


def test_running_a_batch_again_keeps_earlier_outputs_by_default(
    window: object, qtbot: object, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    write_png(src / "a.png", 24, 20, seed=0)
    out = tmp_path / "out"
    w = window
    b, v = w.batch, w.batch_view  # type: ignore[attr-defined]
    assert v.skip_existing.isChecked() and v.skip_existing.isVisibleTo(v)  # the default, and visible
    b.add_inputs([src])
    v.output_edit.setText(str(out))
    v.output_edit.editingFinished.emit()
    with qtbot.waitSignal(b.finished, timeout=60_000):  # type: ignore[attr-defined]
        v.start_btn.click()
    first = (out / "a_x4.png").read_bytes()
    (out / "a_x4.png").write_bytes(first + b"user's edit")  # stands for a file the user worked on since
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig:  # type: ignore[attr-defined]
        v.start_btn.click()
    assert len(sig.args[0].skipped) == 1 and not sig.args[0].done
    assert (out / "a_x4.png").read_bytes() == first + b"user's edit"  # not overwritten
    assert "kept 1 existing output" in v.progress_label.text()

    v.skip_existing.setChecked(False)  # the visible choice: overwrite
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig2:  # type: ignore[attr-defined]
        v.start_btn.click()
    assert len(sig2.args[0].done) == 1 and (out / "a_x4.png").read_bytes() == first


def test_a_paused_batch_never_shows_a_file_as_running(window: object, qtbot: object, tmp_path: Path) -> None:
    b, v = _queue_folder(window, tmp_path, 6, 48, 40)

    def pause_on_first_start(*_: object) -> None:
        if any(r.status == "running" for r in v.model.rows) and not b.pause_event.is_set():
            b.set_paused(True)

    v.model.dataChanged.connect(pause_on_first_start)
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig:  # type: ignore[attr-defined]
        v.start_btn.click()
        qtbot.waitUntil(lambda: b.pause_event.is_set(), timeout=30_000)  # type: ignore[attr-defined]
        qtbot.wait(400)  # type: ignore[attr-defined]
        statuses = [r.status for r in v.model.rows]
        assert "running" not in statuses, statuses
        assert "waiting" in statuses  # it really stopped
        v.model.dataChanged.disconnect(pause_on_first_start)
        b.set_paused(False)
    assert len(sig.args[0].done) == 6
    assert {r.status for r in v.model.rows} == {"done"}


def test_status_colours_stay_readable_in_both_themes() -> None:
    from PySide6.QtGui import QColor

    from app.theme import make_palette
    from app.views.batch_view import STATUS_TEXT
    from app.views.common import status_color

    def luminance(c: QColor) -> float:
        def lin(v: float) -> float:
            return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

        return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())

    for dark in (False, True):
        base = make_palette(dark).color(make_palette(dark).ColorRole.Base)
        for status in STATUS_TEXT:
            a, b = sorted((luminance(status_color(status, dark)), luminance(base)))
            contrast = (b + 0.05) / (a + 0.05)
            assert contrast >= 4.5, (status, dark, round(contrast, 2))
