"""Live preview: time until a 1600x1000 view at 100 % shows the model's output everywhere.

    python benchmarks/bench_preview.py            # ~1-2 min on 2 cores
    python benchmarks/bench_preview.py --rounds 3

Runs the real app (offscreen): the Upscale tab's canvas is sized to exactly 1600x1000, a
1600x1000 LR image is open, and each round moves the view at 100 % to a part of the image not
previewed yet, then waits until every visible pixel of the upscaled side comes from the model
(``UpscaleController.preview_complete``). Measured per round, from the view change:

* first piece painted (the centre band), and complete, with the app's 150 ms debounce;
* complete, compute only (debounce subtracted);
* reference: the same LR box upscaled by the engine in one call on this thread, no GUI, no
  pieces: the floor a preview cannot beat. Ratio = app compute / reference, per round, median.

Rounds interleave app and reference (the machine is shared and noisy); seconds are medians.
Target from issue 17: complete within 0.6 s on an AVX2-only CPU, 0.4 s where bf16 runs natively.
Prints a table and writes ``benchmarks/results/preview.json`` (CPU model and backend recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dipnet_core.engine.hardware import cpu_model  # noqa: E402

VIEW_W, VIEW_H = 1600, 1000
TARGET_S = {"avx2": 0.6, "bf16": 0.4}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "preview.json"))
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dipnet-bench-preview-"))
    os.environ["DIPNET_STUDIO_HOME"] = str(home)
    import numpy as np
    from PIL import Image
    from PySide6.QtCore import QEventLoop, QPointF, QTimer
    from PySide6.QtWidgets import QApplication

    from app.controllers.context import AppContext
    from app.services.models import ModelLibrary
    from app.settings import AppPaths, SettingsStore
    from app.window import MainWindow
    from dipnet_core.engine import hardware

    qapp = QApplication.instance() or QApplication(["bench"])
    store = SettingsStore(AppPaths.default().ensure())
    w = MainWindow(AppContext(store, ModelLibrary(store)))
    w.show()
    up, view = w.upscale, w.upscale_view

    def spin(ms: int) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def until(cond: object, timeout_s: float = 120.0) -> float:
        t_end = time.perf_counter() + timeout_s
        while not cond():  # type: ignore[operator]
            if time.perf_counter() > t_end:
                raise TimeoutError("the preview did not complete")
            qapp.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 5)
        return time.perf_counter()

    # A photo-like LR image four views wide and high: every round previews a fresh part of it.
    rng = np.random.default_rng(0)
    lr_w, lr_h = VIEW_W, VIEW_H  # LR pixels; at x4 one view is a quarter of it per side
    base = rng.random((lr_h // 8, lr_w // 8, 3)).astype(np.float32)
    img = np.asarray(Image.fromarray((base * 255).astype(np.uint8)).resize((lr_w, lr_h), Image.Resampling.BICUBIC))
    noise = rng.normal(0, 6, img.shape)
    path = home / "bench.png"
    Image.fromarray(np.clip(img + noise, 0, 255).astype(np.uint8)).save(path)
    # Open at 100 % (a chosen zoom survives opening an image): a fitted 1.6 MP view would be
    # previewed whole first, which is not what is measured here.
    view.state.set_view(1.0, QPointF(0, 0))
    up.open_path(path)
    until(lambda: up.loaded is not None)
    # The canvas (the visible view) must be exactly VIEW_W x VIEW_H.
    w.resize(VIEW_W + 200, VIEW_H + 200)
    spin(200)
    canvas = view.compare
    w.resize(w.width() + VIEW_W - canvas.width(), w.height() + VIEW_H - canvas.height())
    spin(300)
    assert (canvas.width(), canvas.height()) == (VIEW_W, VIEW_H), (canvas.width(), canvas.height())
    until(up.preview_complete)

    engine = up.ctx.engine(up.ctx.engine_key())
    backend = engine.describe()
    debounce_s = up.preview.debounce_ms / 1000

    cols, rows = 4, 4
    centres = [QPointF((c + 0.5) * VIEW_W, (r + 0.5) * VIEW_H) for r in range(rows) for c in range(cols)]
    rounds = min(args.rounds, len(centres) - 1)
    # Round 0 warms the engine up (first allocations, oneDNN kernels) and is not counted.
    first, complete, reference, ratios = [], [], [], []
    for i in range(rounds + 1):
        centre = centres[i * 5 % len(centres)]
        pieces: list[float] = []
        slot = up.preview.ready.connect(lambda *_a, pieces=pieces: pieces.append(time.perf_counter()))
        t0 = time.perf_counter()
        view.state.set_view(1.0, centre)
        t_done = until(up.preview_complete)
        up.preview.ready.disconnect(slot)
        box = up.visible_lr_box()
        assert box is not None and (box[2] - box[0], box[3] - box[1]) == (VIEW_W // 4, VIEW_H // 4), box
        t1 = time.perf_counter()
        engine.preview_upscaler.upscale_region(up.loaded.rgb, box=box)
        ref = time.perf_counter() - t1
        if i == 0:
            continue
        first.append(pieces[0] - t0)
        complete.append(t_done - t0)
        reference.append(ref)
        ratios.append((t_done - t0 - debounce_s) / ref)

    native_bf16 = hardware.has_native_bf16()
    target = TARGET_S["bf16" if native_bf16 else "avx2"]
    med = statistics.median
    result = {
        "view": [VIEW_W, VIEW_H],
        "zoom": 1.0,
        "lr_box": [VIEW_W // 4, VIEW_H // 4],
        "rounds": rounds,
        "cpu": cpu_model(),
        "physical_cores": hardware.physical_cores(),
        "native_bf16": native_bf16,
        # Other processes competing for the cores while it ran: seconds scale with it, ratios hardly.
        "load_average_1min": round(os.getloadavg()[0], 2),
        "backend": backend,
        "debounce_s": debounce_s,
        "first_piece_s": round(med(first), 3),
        "complete_s": round(med(complete), 3),
        "complete_compute_s": round(med(complete) - debounce_s, 3),
        "reference_one_call_s": round(med(reference), 3),
        "ratio_compute_to_reference": round(med(ratios), 3),
        "target_s": target,
        "target_met": med(complete) <= target,
        "per_round": {"first_piece_s": first, "complete_s": complete, "reference_s": reference},
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"CPU: {result['cpu']} ({result['physical_cores']} cores, native bf16: {native_bf16}, "
          f"load average {result['load_average_1min']})")
    print(f"backend: {backend}")
    print(f"view {VIEW_W}x{VIEW_H} at 100 % = LR box {VIEW_W // 4}x{VIEW_H // 4}, {rounds} rounds, medians:\n")
    print("| measure | seconds |")
    print("|---|---:|")
    print(f"| first piece painted (incl. {debounce_s * 1000:.0f} ms debounce) | {result['first_piece_s']:.3f} |")
    print(f"| view complete (incl. debounce) | {result['complete_s']:.3f} |")
    print(f"| view complete, compute only | {result['complete_compute_s']:.3f} |")
    print(f"| reference: same box, one engine call | {result['reference_one_call_s']:.3f} |")
    print(f"| ratio compute / reference | {result['ratio_compute_to_reference']:.2f}x |")
    print(f"\ntarget on this CPU: {target} s -> {'met' if result['target_met'] else 'NOT met'}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
