"""Regenerate docs/screenshots: every tab, light and dark theme, 1024x640 and 1600x1000, before,
during and after its work.

    xvfb-run -a -s "-screen 0 1700x1100x24" python packaging/screenshots.py [--out docs/screenshots]

(Also works with QT_QPA_PLATFORM=offscreen, with plainer fonts.) Uses a temporary user folder
and the built-in model; the pictures shown are Set14/Set5 images from ../shared/benchmarks when
present, generated ones otherwise. A tiny real training run fills the Train tab. Each state is
captured in both themes and both sizes while it holds (a batch is paused for it; an upscale and a
training run are slowed down with small tiles and more steps), and every PNG is quantized to 256
colours to stay small (the upscale is held after a few tiles for its "during" pictures). Files: ``<out>/<theme>-<width>x<height>/<tab>-<state>.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SIZES = ((1024, 640), (1600, 1000))
THEMES = ("light", "dark")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--image", default=str(SHARED / "benchmarks" / "Set14" / "comic.png"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    home = Path(tempfile.mkdtemp(prefix="dipnet-shots-"))
    os.environ["DIPNET_STUDIO_HOME"] = str(home / "studio")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests" / "app"))
    from PIL import Image
    from PySide6.QtCore import QEventLoop, QTimer
    from studio_testutil import write_png

    import app  # noqa: F401
    from app.__main__ import build_app
    from app.qt_image import qimage_to_array

    _qapp, w = build_app(["screenshots"])

    def wait(signal: object, timeout_ms: int = 600_000) -> None:
        loop = QEventLoop()
        signal.connect(loop.quit)  # type: ignore[attr-defined]
        QTimer.singleShot(timeout_ms, loop.quit)
        loop.exec()

    def settle(ms: int = 300) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_until(cond: object, timeout_ms: int = 600_000) -> None:
        waited = 0
        while not cond() and waited < timeout_ms:  # type: ignore[operator]
            settle(50)
            waited += 50

    def save_png(image: object, path: Path) -> None:
        px, _a, _b = qimage_to_array(image)  # type: ignore[arg-type]
        rgb = Image.fromarray((px[..., :3] * 255 + 0.5).astype("uint8"))
        rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG).save(
            path, optimize=True
        )

    def shots(tab: int, name: str, state: str) -> None:
        """Capture the current state of ``tab`` in every theme and size."""
        w.tabs.setCurrentIndex(tab)  # type: ignore[attr-defined]
        for theme in THEMES:
            w.models.set_theme(theme)  # type: ignore[attr-defined]
            for width, height in SIZES:
                w.resize(width, height)  # type: ignore[attr-defined]
                settle(350)
                folder = out / f"{theme}-{width}x{height}"
                folder.mkdir(exist_ok=True)
                path = folder / f"{name}-{state}.png"
                save_png(w.grab().toImage(), path)  # type: ignore[attr-defined]
                print(path, flush=True)

    w.resize(*SIZES[0])  # type: ignore[attr-defined]
    w.show()  # type: ignore[attr-defined]
    settle(500)
    lib = w.ctx.library  # type: ignore[attr-defined]
    builtin = next(e for e in lib.entries() if e.builtin)

    # ---- data: a real LR image, a batch folder with one broken file, training and scoring images
    image = Path(args.image)
    if image.exists():
        with Image.open(image) as im:
            hr = im.convert("RGB")
        lr = hr.resize((hr.width // 2, hr.height // 2), Image.Resampling.BICUBIC)
    else:
        lr = Image.open(write_png(home / "generated.png", 250, 180))
    lr_path = home / "comic_small.png"
    lr.save(lr_path)
    batch = home / "holiday-photos"
    for i, name in enumerate(("beach.png", "harbour.png", "market.png", "sunset.png", "pier.png", "dunes.png")):
        write_png(batch / name, 120, 90, seed=i)
    write_png(batch / "scans" / "postcard.png", 96, 72, seed=7)
    (batch / "scans" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated download")
    for i in range(6):
        write_png(home / "train-hr" / f"hr{i}.png", 96, 96, seed=i)
    score_dir = SHARED / "benchmarks" / "Set5"
    if not score_dir.is_dir():
        score_dir = home / "score"
        for i in range(3):
            write_png(score_dir / f"s{i}.png", 96, 96, seed=10 + i)

    # ---- before: a fresh start in every tab
    shots(w.TAB_UPSCALE, "upscale", "before")  # type: ignore[attr-defined]
    w.batch.add_inputs([batch])  # type: ignore[attr-defined]
    w.batch_view.output_edit.setText(str(home / "holiday-photos-upscaled"))  # type: ignore[attr-defined]
    shots(w.TAB_BATCH, "batch", "before")  # type: ignore[attr-defined]
    form = w.train_view.form  # type: ignore[attr-defined]
    form.add_data_dirs([home / "train-hr"])
    form.set_preset_name("tiny-test")
    form.teacher_steps.setValue(400)  # long enough to capture it running
    form.distill_steps.setValue(60)
    form.finetune_steps.setValue(10)
    form.name_edit.setText("my-comics-x4")
    form.name_edit.editingFinished.emit()
    shots(w.TAB_TRAIN, "train", "before")  # type: ignore[attr-defined]
    w.models_view.select_id(builtin.id)  # type: ignore[attr-defined]
    shots(w.TAB_MODELS, "models", "before")  # type: ignore[attr-defined]

    # ---- Train: running (a few validations in), then finished
    events: list[dict] = []
    w.train.event.connect(events.append)  # type: ignore[attr-defined]
    w.train.start(fresh=True)  # type: ignore[attr-defined]
    wait_until(lambda: sum(e["type"] == "Validation" for e in events) >= 3)
    shots(w.TAB_TRAIN, "train", "during")  # type: ignore[attr-defined]
    if w.train.running:  # type: ignore[attr-defined]
        wait(w.train.runFinished)  # type: ignore[attr-defined]
    shots(w.TAB_TRAIN, "train", "after")  # type: ignore[attr-defined]
    w.train.install()  # type: ignore[attr-defined]
    lib.set_default(builtin.id)  # the screenshots upscale with the built-in model

    # ---- Upscale: the live preview, a full upscale painting its tiles, the result
    up, view = w.upscale, w.upscale_view  # type: ignore[attr-defined]
    w.tabs.setCurrentIndex(w.TAB_UPSCALE)  # type: ignore[attr-defined]
    up.open_path(lr_path)
    wait(up.preview.idle, 120_000)
    w.ctx.settings.tile_size = 64  # type: ignore[attr-defined]  # many small tiles: the run lasts a while
    w.ctx.inference_settings_changed()  # type: ignore[attr-defined]
    wait(up.preview.idle, 120_000)
    # Hold the upscale after a few tiles while the "during" pictures are taken (it would finish
    # before all four are), by wrapping the core function the controller calls.
    import threading

    import dipnet_core.engine as engine_mod

    release = threading.Event()
    real_upscale = engine_mod.upscale_image

    def held_upscale(img: object, upscaler: object, cancel: object = None, progress: object = None) -> object:
        tiles = [0]

        def on_tile(tp: object) -> None:
            progress(tp)  # type: ignore[operator]
            tiles[0] += 1
            if tiles[0] == 8:
                release.wait(120)

        return real_upscale(img, upscaler, cancel=cancel, progress=on_tile)  # type: ignore[arg-type]

    engine_mod.upscale_image = held_upscale
    up.upscale()
    wait_until(lambda: len(view.compare.tiles()) >= 8)
    shots(w.TAB_UPSCALE, "upscale", "during")  # type: ignore[attr-defined]
    release.set()
    if up.busy:
        wait(up.resultReady)
    engine_mod.upscale_image = real_upscale
    view.state.set_view(1.5, view.state.image_size_center())
    shots(w.TAB_UPSCALE, "upscale", "after")  # type: ignore[attr-defined]
    w.ctx.settings.tile_size = 0  # type: ignore[attr-defined]  # back to automatic tiles for the rest
    w.ctx.inference_settings_changed()  # type: ignore[attr-defined]

    # ---- Batch: paused after the first images, then finished with one failure
    b = w.batch  # type: ignore[attr-defined]
    b.start()
    wait_until(lambda: sum(r.status == "done" for r in w.batch_view.model.rows) >= 2)  # type: ignore[attr-defined]
    b.set_paused(True)
    shots(w.TAB_BATCH, "batch", "during")  # type: ignore[attr-defined]
    b.set_paused(False)
    if b.running:
        wait(b.finished)
    shots(w.TAB_BATCH, "batch", "after")  # type: ignore[attr-defined]

    # ---- Models: measuring speed, then quality measured on Set5
    task = w.models.measure_quality(builtin.id, score_dir)  # type: ignore[attr-defined]
    settle(800)
    shots(w.TAB_MODELS, "models", "during")  # type: ignore[attr-defined]
    if task is not None and task.isRunning():
        wait(w.models.qualityMeasured)  # type: ignore[attr-defined]
    task = w.models.measure_speed(builtin.id)  # type: ignore[attr-defined]
    if task is not None:
        wait(w.models.speedMeasured)  # type: ignore[attr-defined]
    w.models_view.select_id(builtin.id)  # type: ignore[attr-defined]
    shots(w.TAB_MODELS, "models", "after")  # type: ignore[attr-defined]

    w.close()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
