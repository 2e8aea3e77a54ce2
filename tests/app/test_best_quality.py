"""The "Best quality (x8 self-ensemble)" checkboxes reach the upscale and batch workers and are remembered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from studio_testutil import write_png


def test_upscale_tab_best_quality_reaches_the_worker(window: object, qtbot: object, tiny_image: Path) -> None:
    from app.controllers.upscale import ENSEMBLE_PASSES
    from dipnet_core.engine import ENSEMBLE_SIZE, upscale_image

    w = window
    view, up = w.upscale_view, w.upscale  # type: ignore[attr-defined]
    box = view.best_quality
    assert box.text() == "Best quality (x8 self-ensemble, 8x slower)" and not box.isChecked()
    assert box.isVisibleTo(view) and "preview" in box.toolTip()  # says the live preview ignores it
    assert ENSEMBLE_PASSES == ENSEMBLE_SIZE
    with qtbot.waitSignal(up.preview.ready, timeout=20_000):  # type: ignore[attr-defined]
        up.open_path(tiny_image)

    def run_upscale() -> list[object]:
        events: list[object] = []
        view.upscale_btn.click()
        up._upscale_task.progress.connect(lambda payload: events.append(payload[0]))
        with qtbot.waitSignal(up.resultReady, timeout=60_000):  # type: ignore[attr-defined]
            pass
        return events

    plain_events = run_upscale()
    plain = up.result.pixels.copy()
    box.click()
    assert w.ctx.settings.self_ensemble is True  # type: ignore[attr-defined]  # remembered
    events = run_upscale()
    # One tile per pass on this 40x32 image: the worker ran all 8 passes.
    assert {e.total for e in events} == {8}  # type: ignore[attr-defined]
    assert {e.total for e in plain_events} == {1}  # type: ignore[attr-defined]
    engine = w.ctx.engine(w.ctx.engine_key())  # type: ignore[attr-defined]
    expected = upscale_image(up.loaded.image, engine.upscaler, self_ensemble=True).pixels
    np.testing.assert_allclose(up.result.pixels, expected, atol=1e-6)
    assert np.abs(up.result.pixels - plain).max() > 0.01
    assert "best quality" in view.info_label.text()


def test_batch_tab_best_quality_reaches_the_worker(window: object, qtbot: object, tmp_path: Path) -> None:
    from dipnet_core.batch import BatchReport
    from dipnet_core.engine import upscale_image
    from dipnet_core.io import read_image

    src = tmp_path / "in"
    write_png(src / "a.png", 24, 20, seed=3)
    w = window
    b, v = w.batch, w.batch_view  # type: ignore[attr-defined]
    assert v.best_quality.isVisibleTo(v) and not v.best_quality.isChecked()
    b.add_inputs([src])
    v.output_edit.setText(str(tmp_path / "out"))
    v.best_quality.click()
    assert w.ctx.settings.batch_self_ensemble is True  # type: ignore[attr-defined]
    with qtbot.waitSignal(b.finished, timeout=60_000) as sig:  # type: ignore[attr-defined]
        v.start_btn.click()
    report = sig.args[0]
    assert len(report.done) == 1 and report.self_ensemble
    assert BatchReport.load(b.report_path).self_ensemble
    engine = w.ctx.engine(w.ctx.engine_key())  # type: ignore[attr-defined]
    expected = upscale_image(read_image(src / "a.png"), engine.batch_upscaler, self_ensemble=True).pixels
    written = read_image(tmp_path / "out" / "a_x4.png").pixels
    np.testing.assert_array_equal(np.round(written * 255), np.round(expected * 255))
