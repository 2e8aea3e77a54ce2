"""Take the README screenshots of every tab in a realistic state.

    xvfb-run -s "-screen 0 1400x900x24" python packaging/screenshots.py [--out docs/screenshots]

(Also works with QT_QPA_PLATFORM=offscreen, with plainer fonts.) Uses a
temporary user folder, the built-in model (the official weights from
../shared/reference are imported beside it) and Set14 images from
../shared/benchmarks, trains a tiny model so the Train tab and the model list
have real content, and saves one PNG per tab.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--image", default=str(SHARED / "benchmarks" / "Set14" / "comic.png"))
    parser.add_argument("--model", default=str(SHARED / "reference" / "dipnet_official_x4.pth"))
    parser.add_argument("--theme", default="light", choices=("light", "dark", "system"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    home = Path(tempfile.mkdtemp(prefix="dipnet-shots-"))
    os.environ["DIPNET_STUDIO_HOME"] = str(home / "studio")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "app"))
    from PIL import Image
    from PySide6.QtCore import QEventLoop, QPointF, QTimer
    from studio_testutil import write_png

    import app  # noqa: F401  # the PySide6 workaround first
    from app.__main__ import build_app

    qapp, w = build_app(["screenshots"])

    def wait(signal: object, timeout_ms: int = 600_000) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)  # type: ignore[attr-defined]
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    def settle(ms: int = 300) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def shot(name: str) -> None:
        settle()
        path = out / f"{name}.png"
        w.grab().save(str(path))  # type: ignore[attr-defined]
        print(path)

    w.models.theme.apply(args.theme)  # type: ignore[attr-defined]
    lib = w.ctx.library  # type: ignore[attr-defined]
    official = lib.import_file(args.model, name="DIPNet official")
    shown = next((e for e in lib.entries() if e.builtin), official)  # what a fresh install upscales with
    lib.set_default(shown.id)
    w.resize(1320, 860)  # type: ignore[attr-defined]
    w.show()  # type: ignore[attr-defined]
    settle(500)

    # ---- data: a real LR image (Set14 comic, downscaled 3x), a batch folder with one broken file
    with Image.open(args.image) as im:
        hr = im.convert("RGB")
    lr = hr.resize((hr.width // 3, hr.height // 3), Image.Resampling.BICUBIC)
    lr_path = home / "comic_small.png"
    lr.save(lr_path)
    batch = home / "holiday-photos"
    for i, name in enumerate(("beach.png", "harbour.png", "market.png", "sunset.png")):
        write_png(batch / name, 64, 48, seed=i)
    write_png(batch / "scans" / "postcard.png", 56, 40, seed=5)
    (batch / "scans" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated download")
    for i in range(6):
        write_png(home / "train-hr" / f"hr{i}.png", 96, 96, seed=i)

    # ---- Train tab: a short real run (tiny preset, a few more steps so the curves have a shape)
    tv = w.train_view  # type: ignore[attr-defined]
    tv.add_data_dirs([home / "train-hr"])
    tv.set_preset_name("tiny-test")
    tv.teacher_steps.setValue(40)
    tv.distill_steps.setValue(60)
    tv.finetune_steps.setValue(10)
    tv.name_edit.setText("my-comics-x4")
    w.tabs.setCurrentIndex(w.TAB_TRAIN)  # type: ignore[attr-defined]
    w.train.start(fresh=True)  # type: ignore[attr-defined]
    wait(w.train.runFinished)  # type: ignore[attr-defined]
    shot("train")
    w.train.install()  # type: ignore[attr-defined]
    lib.set_default(shown.id)  # the screenshots upscale with the built-in model

    # ---- Upscale tab: split view mid-way, zoomed on a detail
    w.tabs.setCurrentIndex(w.TAB_UPSCALE)  # type: ignore[attr-defined]
    up = w.upscale  # type: ignore[attr-defined]
    up.open_path(lr_path)
    wait(up.preview.ready, 60_000)
    up.upscale()
    wait(up.resultReady)
    view = w.upscale_view  # type: ignore[attr-defined]
    canvas = view.active_canvas()
    view.state.set_view(1.6, QPointF(lr.width * 2, lr.height * 1.35))
    canvas.set_split(0.5)
    shot("upscale-split")
    view.set_mode("side")
    view.state.set_view(2.5, QPointF(lr.width * 2.1, lr.height * 1.3))
    shot("upscale-side-by-side")
    view.set_mode("split")
    view.state.fit(view.active_canvas().size())

    # ---- Batch tab: finished queue with one failure
    w.tabs.setCurrentIndex(w.TAB_BATCH)  # type: ignore[attr-defined]
    w.batch.add_inputs([batch])  # type: ignore[attr-defined]
    w.batch_view.output_edit.setText(str(home / "holiday-photos-upscaled"))  # type: ignore[attr-defined]
    w.batch.start()  # type: ignore[attr-defined]
    wait(w.batch.finished)  # type: ignore[attr-defined]
    shot("batch")

    # ---- Models & Settings: measured speed and Set5 quality of the built-in and the official model
    w.tabs.setCurrentIndex(w.TAB_MODELS)  # type: ignore[attr-defined]
    for entry in (official, shown):
        task = w.models.measure_speed(entry.id)  # type: ignore[attr-defined]
        if task is not None:
            wait(w.models.speedMeasured)  # type: ignore[attr-defined]
        task = w.models.measure_quality(entry.id, SHARED / "benchmarks" / "Set5")  # type: ignore[attr-defined]
        if task is not None:
            wait(w.models.qualityMeasured)  # type: ignore[attr-defined]
    w.models_view.banner.hide()  # type: ignore[attr-defined]
    w.models_view.select_id(shown.id)  # type: ignore[attr-defined]
    shot("models")

    w.tabs.setCurrentIndex(w.TAB_UPSCALE)  # type: ignore[attr-defined]
    w.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
