"""The window keeps painting while a batch and a training run work (lenient bound: shared 2-core CI).

The measured numbers come from ``packaging/measure_responsiveness.py``; this test
only guards against regressions such as work moved onto the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from studio_testutil import write_png

from app.diagnostics import GapProbe

LENIENT_WORST_GAP_MS = 500.0


@pytest.mark.slow
def test_gui_stays_responsive_during_batch_and_training(
    window: object, qtbot: object, tmp_path: Path
) -> None:
    w = window
    for i in range(5):
        write_png(tmp_path / "batch" / f"b{i}.png", 64, 64, seed=i)
        write_png(tmp_path / "hr" / f"h{i}.png", 96, 96, seed=i)
    w.batch.add_inputs([tmp_path / "batch"])  # type: ignore[attr-defined]
    w.batch_view.output_edit.setText(str(tmp_path / "out"))  # type: ignore[attr-defined]
    tv = w.train_view.form  # type: ignore[attr-defined]
    tv.add_data_dirs([tmp_path / "hr"])
    tv.set_preset_name("tiny-test")
    tv.name_edit.setText("probe")

    probe = GapProbe(10)
    probe.start()
    with qtbot.waitSignals([w.batch.finished, w.train.runFinished], timeout=170_000):  # type: ignore[attr-defined]
        w.train.start(fresh=True)  # type: ignore[attr-defined]
        w.batch.start()  # type: ignore[attr-defined]
    stats = probe.stop()
    print(f"GUI gap during batch + training: {stats.as_dict()}")
    assert stats.samples > 50
    assert stats.worst_ms < LENIENT_WORST_GAP_MS
