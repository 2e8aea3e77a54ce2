"""Measure how responsive the GUI stays while a batch, a training run and live previews all work.

A 10 ms timer on the GUI thread records the gap between its callbacks (see
``app.diagnostics.GapProbe``); the worst gap is the longest freeze a user
would notice. Prints the numbers and writes them as JSON.

    python packaging/measure_responsiveness.py [--out packaging/responsiveness.json] [--images 8]

Runs offscreen in a temporary user folder; needs the official weights at
``../shared/reference/dipnet_official_x4.pth`` (or ``--model FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {"count": len(v), "median": round(v[len(v) // 2], 1), "max": round(v[-1], 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "packaging" / "responsiveness.json"))
    parser.add_argument(
        "--model", default=str(ROOT.parent / "shared" / "reference" / "dipnet_official_x4.pth")
    )
    parser.add_argument("--images", type=int, default=8, help="batch size (128x128 images)")
    parser.add_argument("--teacher-steps", type=int, default=200, help="length of the training run")
    args = parser.parse_args()

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = Path(tempfile.mkdtemp(prefix="dipnet-probe-"))
    os.environ["DIPNET_STUDIO_HOME"] = str(home / "studio")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "app"))
    from PySide6.QtCore import QPointF, QTimer
    from studio_testutil import write_png

    import app  # noqa: F401  # the PySide6 workaround first
    from app.__main__ import build_app
    from app.diagnostics import GapProbe

    qapp, w = build_app(["probe"])
    lib = w.ctx.library  # type: ignore[attr-defined]
    entry = lib.import_file(args.model, name="DIPNet official")
    lib.set_default(entry.id)
    w.resize(1280, 820)  # type: ignore[attr-defined]
    w.show()  # type: ignore[attr-defined]

    for i in range(args.images):
        write_png(home / "batch" / f"b{i}.png", 128, 128, seed=i)
    for i in range(6):
        write_png(home / "hr" / f"h{i}.png", 96, 96, seed=i)
    big = write_png(home / "view.png", 200, 160, seed=7)
    w.batch.add_inputs([home / "batch"])  # type: ignore[attr-defined]
    w.batch_view.output_edit.setText(str(home / "out"))  # type: ignore[attr-defined]
    tv = w.train_view.form  # type: ignore[attr-defined]
    tv.add_data_dirs([home / "hr"])
    tv.set_preset_name("tiny-test")
    tv.teacher_steps.setValue(args.teacher_steps)
    tv.name_edit.setText("probe")
    w.upscale.open_path(big)  # type: ignore[attr-defined]

    state = {"batch": False, "train": False}

    def finished(which: str) -> None:
        state[which] = True
        if all(state.values()):
            qapp.quit()  # type: ignore[attr-defined]

    w.batch.finished.connect(lambda _r: finished("batch"))  # type: ignore[attr-defined]
    w.train.runFinished.connect(lambda _s: finished("train"))  # type: ignore[attr-defined]
    QTimer.singleShot(600_000, qapp.quit)  # type: ignore[attr-defined]  # safety net

    # Pan like a user does: a burst of three quick moves (100 ms apart, so the debounce
    # coalesces them and a running preview is cancelled), then about a second of looking.
    view_state = w.upscale_view.state  # type: ignore[attr-defined]
    k = {"n": 0}

    def pan() -> None:
        k["n"] += 1
        if k["n"] % 12 < 3:
            view_state.set_view(3.0, QPointF(80 + (k["n"] * 37) % 640, 80 + (k["n"] * 23) % 480))

    panner = QTimer()
    panner.timeout.connect(pan)

    probe = GapProbe(10)
    t0 = time.perf_counter()
    probe.start()
    panner.start(100)
    idle: dict[str, object] = {}

    def start_jobs() -> None:
        # First ~4 s: previews alone (idle machine); then a batch and a training run join in.
        idle["latency"] = _latency_summary(w.upscale.preview.latencies_ms)  # type: ignore[attr-defined]
        idle["gap"] = probe.stats().as_dict()
        w.upscale.preview.latencies_ms.clear()  # type: ignore[attr-defined]
        w.train.start(fresh=True)  # type: ignore[attr-defined]
        w.batch.start()  # type: ignore[attr-defined]

    QTimer.singleShot(4000, start_jobs)
    qapp.exec()  # type: ignore[attr-defined]
    panner.stop()
    stats = probe.stop()
    seconds = time.perf_counter() - t0
    report = w.batch.report  # type: ignore[attr-defined]
    result = {
        **stats.as_dict(),
        "seconds": round(seconds, 1),
        "batch_images": args.images,
        "batch_done": len(report.done) if report else 0,
        "training_status": w.train._status,  # type: ignore[attr-defined]
        "previews": dict(
            sorted(
                {
                    o: list(w.upscale.preview.outcomes.values()).count(o)  # type: ignore[attr-defined]
                    for o in set(w.upscale.preview.outcomes.values())
                }.items()
            )
        ),  # type: ignore[attr-defined]
        "preview_latency_ms_under_load": _latency_summary(w.upscale.preview.latencies_ms),  # type: ignore[attr-defined]
        "preview_latency_ms_idle": idle.get("latency"),
        "gap_idle_phase": idle.get("gap"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    w.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
