"""Regenerate docs/screenshots: every tab, in the light and dark theme, at 1024x640 and 1600x1000,
before, during and after its work.

    QT_QPA_PLATFORM=offscreen python scripts/take_screenshots.py [--out docs/screenshots]

(QT_QPA_PLATFORM defaults to offscreen; under ``xvfb-run -a`` set it to xcb.) The real main window
is built as ``dipnet-studio`` builds it, with a throwaway user folder (DIPNET_STUDIO_HOME) and the
built-in model. The upscaled picture is a Set14 image from /work/shared (or ../shared) when
present, a generated one otherwise; a tiny real training run fills the Train tab.

Each "during" state is held while it is captured in both themes and both sizes: the upscale and
the quality measurement wait inside their progress callback, the batch is paused, the training
process is stopped with SIGSTOP. Every PNG is quantized to 256 colours to keep the folder small.
Files: ``<out>/<theme>-<width>x<height>/<tab>-<state>.png``. CPU use is small: a 384x256 image,
a 40-step teacher on six 128-px images.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (Path("/work/shared"), ROOT.parent / "shared") if p.is_dir()), ROOT.parent / "shared")
SIZES = ((1024, 640), (1600, 1000))
THEMES = ("light", "dark")


class Hold:
    """Replace ``module.name`` (a core function taking ``progress=``) by one whose worker thread
    waits at its ``after``-th progress report until :meth:`release`, so a "during" state lasts."""

    def __init__(self, module: Any, name: str, after: int) -> None:
        self.module, self.name, self.after = module, name, after
        self.real = getattr(module, name)
        self.reached = threading.Event()
        self._go = threading.Event()

    def __enter__(self) -> Hold:
        def held(*args: Any, progress: Callable[..., None] | None = None, **kwargs: Any) -> Any:
            calls = 0

            def report(*a: Any) -> None:
                nonlocal calls
                if progress is not None:
                    progress(*a)
                calls += 1
                if calls == self.after:
                    self.reached.set()
                    self._go.wait(600)

            return self.real(*args, progress=report, **kwargs)

        setattr(self.module, self.name, held)
        return self

    def release(self) -> None:
        self._go.set()

    def __exit__(self, *_exc: object) -> None:
        self.release()
        setattr(self.module, self.name, self.real)


def quantize(rgb: Any, dark: bool) -> Any:
    """256 colours by median cut, with the app's own colours kept exact: median cut picks colours by
    pixel count, and next to a photo it turns the few accent-blue pixels of a button, or a thin
    plot line, into some other colour."""
    from PIL import Image, ImageColor
    from PySide6.QtGui import QPalette

    from app.theme import ACCENT, make_palette
    from app.views.train_view import LOSS_COLORS

    palette = make_palette(dark)
    colours = sorted({ACCENT.getRgb()[:3]} | {ImageColor.getrgb(c)[:3] for c in LOSS_COLORS} | {
        palette.color(group, role).getRgb()[:3]
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Disabled)
        for role in QPalette.ColorRole
        if role != QPalette.ColorRole.NColorRoles
    })
    band = 8  # rows of each theme colour under the picture, enough weight for median cut to keep it
    both = Image.new("RGB", (rgb.width, rgb.height + band * len(colours)))
    both.paste(rgb)
    for i, colour in enumerate(colours):
        both.paste(colour, (0, rgb.height + band * i, rgb.width, rgb.height + band * (i + 1)))
    return rgb.quantize(palette=both.quantize(256), dither=Image.Dither.NONE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--image", type=Path, default=SHARED / "benchmarks" / "Set14" / "monarch.png",
                        help="shown at half size in the Upscale tab (a generated image if missing)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="dipnet-shots-"))
    os.environ["DIPNET_STUDIO_HOME"] = str(home / "studio")
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "app")]
    from PIL import Image
    from PySide6.QtCore import QCoreApplication, QDeadlineTimer, QThread
    from studio_testutil import write_png

    import dipnet_core.engine
    import dipnet_core.eval
    from app.__main__ import build_app
    from app.qt_image import qimage_to_array

    _qapp, w = build_app(["take_screenshots"])

    def wait_until(cond: Callable[[], bool], timeout_s: float = 600, what: str = "") -> None:
        deadline = QDeadlineTimer(int(timeout_s * 1000))
        while not cond():
            if deadline.hasExpired():
                raise TimeoutError(f"gave up waiting for {what or cond}")
            QCoreApplication.processEvents()
            QThread.msleep(20)

    def settle(ms: int = 300) -> None:
        deadline = QDeadlineTimer(ms)
        while not deadline.hasExpired():
            QCoreApplication.processEvents()
            QThread.msleep(10)

    def shots(tab: int, name: str, state: str) -> None:
        """Capture ``tab`` as it is now in every theme and size."""
        w.tabs.setCurrentIndex(tab)
        for theme in THEMES:
            w.models.set_theme(theme)
            for width, height in SIZES:
                w.resize(width, height)
                settle(400)
                image = w.grab().toImage()
                assert (image.width(), image.height()) == (width, height), "the window did not take the size"
                px, _alpha, _bits = qimage_to_array(image)
                rgb = Image.fromarray((px[..., :3] * 255 + 0.5).astype("uint8"))
                folder = args.out / f"{theme}-{width}x{height}"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{name}-{state}.png"
                tmp = path.with_suffix(".tmp.png")
                quantize(rgb, theme == "dark").save(tmp, optimize=True)
                tmp.replace(path)
                print(path, flush=True)

    # ---- inputs: a real LR image, a batch folder with one broken file, training images
    if args.image.is_file():
        with Image.open(args.image) as im:
            lr = im.convert("RGB").resize((im.width // 2, im.height // 2), Image.Resampling.BICUBIC)
    else:
        lr = Image.open(write_png(home / "generated.png", 250, 180))
    lr_path = home / f"{args.image.stem}_small.png"
    lr.save(lr_path)
    photos = home / "holiday-photos"
    (home / "train-hr").mkdir()
    for i, name in enumerate(("beach", "harbour", "market", "sunset", "pier", "dunes")):
        write_png(photos / f"{name}.png", 120, 90, seed=i)
    write_png(photos / "scans" / "postcard.png", 96, 72, seed=7)
    (photos / "scans" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated download")
    # Training images: centre crops of real photos when the shared training set is here.
    photos_hr = sorted((SHARED / "training-data" / "bsd200").glob("*.png"))[:6]
    for i in range(6):
        if i < len(photos_hr):
            with Image.open(photos_hr[i]) as im:
                x, y = (im.width - 128) // 2, (im.height - 128) // 2
                im.convert("RGB").crop((x, y, x + 128, y + 128)).save(home / "train-hr" / f"hr{i}.png")
        else:
            write_png(home / "train-hr" / f"hr{i}.png", 96, 96, seed=i)
    score_dir = SHARED / "benchmarks" / "Set5"
    if not score_dir.is_dir():
        score_dir = home / "Set5-like"
        for i in range(3):
            write_png(score_dir / f"s{i}.png", 96, 96, seed=10 + i)

    w.resize(*SIZES[0])
    w.show()
    settle(500)
    builtin = next(e for e in w.ctx.library.entries() if e.builtin)

    # ---- before: a fresh start in every tab (Batch and Train filled in, not started)
    shots(w.TAB_UPSCALE, "upscale", "before")
    w.batch.add_inputs([photos])
    w.batch_view.output_edit.setText(str(home / "holiday-photos-upscaled"))
    shots(w.TAB_BATCH, "batch", "before")
    form = w.train_view.form
    form.add_data_dirs([home / "train-hr"])
    form.set_preset_name("tiny-test")
    form.teacher_steps.setValue(40)
    form.distill_steps.setValue(12)
    form.finetune_steps.setValue(4)
    form.name_edit.setText("my-photos-x4")
    form.name_edit.editingFinished.emit()
    shots(w.TAB_TRAIN, "train", "before")
    w.models_view.select_id(builtin.id)
    shots(w.TAB_MODELS, "models", "before")

    # ---- Train: stopped in the teacher stage after a few validations, then finished
    train = w.train
    events: list[dict[str, Any]] = []
    train.event.connect(events.append)
    train.start(fresh=True)
    wait_until(lambda: sum(e.get("type") == "Validation" for e in events) >= 3 or not train.running,
               what="three validations")
    pid = train.process.processId() if train.running else 0
    if pid:
        os.kill(pid, signal.SIGSTOP)  # our own child: holds the run still while it is captured
    shots(w.TAB_TRAIN, "train", "during")
    if pid:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not train.running, what="the training run to finish")
    shots(w.TAB_TRAIN, "train", "after")
    if train.result and train.result.get("model_path"):
        # Into the library as Import would put it (Install asks first); the built-in stays the default.
        w.ctx.library.import_file(train.result["model_path"], name="my-photos-x4", origin="trained")

    # ---- Upscale: the live preview fills the view; a full upscale paints its tiles; the result
    up, view = w.upscale, w.upscale_view
    w.tabs.setCurrentIndex(w.TAB_UPSCALE)
    up.open_path(lr_path)
    wait_until(lambda: up.loaded is not None and up.preview_complete(), 300, "the live preview")
    w.ctx.settings.tile_size = 64  # many small tiles, so the run is caught part way
    w.ctx.inference_settings_changed()
    wait_until(lambda: up.preview_complete() and not up.preview.busy, 300, "the preview with 64-px tiles")
    with Hold(dipnet_core.engine, "upscale_image", after=10) as hold:
        up.upscale()
        wait_until(hold.reached.is_set, what="the upscale's 10th tile")
        settle(200)
        shots(w.TAB_UPSCALE, "upscale", "during")
        up.cancel()
    wait_until(lambda: not up.busy, what="the held upscale to cancel")
    # The finished picture comes from a run of its own, so the time it shows is not the hold's.
    w.ctx.settings.tile_size = 0
    w.ctx.inference_settings_changed()
    wait_until(lambda: up.preview_complete() and not up.preview.busy, 300, "the preview")
    up.upscale()
    wait_until(lambda: not up.busy and up.result is not None, what="the upscale")
    view.state.set_view(1.5, view.state.image_size_center())
    shots(w.TAB_UPSCALE, "upscale", "after")

    # ---- Batch: paused after two images, then finished with one failure
    batch = w.batch
    batch.start()
    wait_until(lambda: sum(r.status == "done" for r in w.batch_view.model.rows) >= 2, what="two batch images")
    batch.set_paused(True)
    settle(300)
    shots(w.TAB_BATCH, "batch", "during")
    batch.set_paused(False)
    wait_until(lambda: not batch.running, what="the batch")
    shots(w.TAB_BATCH, "batch", "after")

    # ---- Models: measuring quality on Set5 (held after its first image), then the measured figures
    with Hold(dipnet_core.eval, "evaluate", after=1) as hold:
        task = w.models.measure_quality(builtin.id, score_dir)
        wait_until(hold.reached.is_set, what="the first scored image")
        settle(200)
        shots(w.TAB_MODELS, "models", "during")
    wait_until(lambda: task is None or task.isFinished(), what="the quality measurement")
    task = w.models.measure_speed(builtin.id)
    wait_until(lambda: task is None or task.isFinished(), what="the speed measurement")
    settle(300)
    w.models_view.select_id(builtin.id)
    shots(w.TAB_MODELS, "models", "after")

    w.close()
    shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
