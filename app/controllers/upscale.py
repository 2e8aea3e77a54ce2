"""Upscale tab logic: open, live preview, full upscale, save, clipboard.

Drives the UpscaleView; touches the engine (through AppContext), settings, and the files it saves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRect, QRectF, Signal
from PySide6.QtGui import QGuiApplication, QImage

from dipnet_core.cancel import CancelToken

from ..errors import ErrorReporter, NoModelError
from ..qt_image import array_to_qimage, qimage_to_array
from ..views.common import format_duration
from ..views.upscale_view import UpscaleView
from ..workers import Task, start_task
from .context import AppContext, TabController
from .engine import EngineKey
from .preview import PreviewScheduler
from .preview_plan import plan_regions

log = logging.getLogger(__name__)

# Preview pieces kept on screen, in LR pixels (each holds scale^2 * 4 bytes per LR pixel: 256 MB
# at x4); beyond it the oldest pieces are dropped and recomputed if the user comes back to them.
PREVIEW_KEEP_LR_PIXELS = 4_000_000
# Model passes per image of the best-quality option (dipnet_core.engine.ENSEMBLE_SIZE; not imported
# here so that building the controller does not load the engine).
ENSEMBLE_PASSES = 8
BEST_QUALITY_NOTE = " · best quality (x8 self-ensemble)"  # appended to the engine line of such a result
# A full upscale paints its tiles as they finish when its output is at most this many pixels (an
# 8-bit copy of the output is held meanwhile: 192 MB at the limit); larger ones show progress only.
TILE_PAINT_MAX_OUTPUT_PIXELS = 48_000_000


@dataclass
class Loaded:
    """The image open in the Upscale tab, as read, plus its RGB copy for previews."""

    image: Any  # dipnet_core.io.ImageData
    rgb: np.ndarray  # HxWx3 float32 colour for previews (gray repeated)
    title: str
    generation: int


def lr_box_for_view(visible: QRectF, scale: int, lr_w: int, lr_h: int) -> tuple[int, int, int, int] | None:
    """Visible output-space rect -> the LR box (x0, y0, x1, y1) under it, clipped to the image."""
    if visible.isEmpty():
        return None
    x0 = max(0, math.floor(visible.left() / scale))
    y0 = max(0, math.floor(visible.top() / scale))
    x1 = min(lr_w, math.ceil(visible.right() / scale))
    y1 = min(lr_h, math.ceil(visible.bottom() / scale))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


class UpscaleController(TabController):
    """Upscale tab: drives the UpscaleView; touches the engine (via AppContext), settings and files it saves."""

    batchOffered = Signal(list)  # list[Path]: dropped files/folders the user chose to batch
    resultReady = Signal()  # a full upscale finished and is shown (the controller is idle again)
    saved = Signal(object)  # Path
    view: UpscaleView

    def __init__(
        self,
        view: UpscaleView,
        ctx: AppContext,
        reporter: ErrorReporter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(view, ctx, reporter, parent)
        self.loaded: Loaded | None = None
        self.result: Any = None  # ImageData of the finished upscale
        self.result_qimage: QImage | None = None
        self._generation = 0
        self._scale = 4
        self._upscale_task: Task | None = None
        self._passes = 1  # of the running full upscale: 8 with the best-quality self-ensemble
        self._load_task: Task | None = None
        self._save_task: Task | None = None
        # Live preview coverage of the current image: the LR pixels painted so far, and the pieces
        # painted, oldest first (to drop the oldest when too many are kept).
        self._covered: np.ndarray | None = None
        self._pieces: list[tuple[int, int, int, int]] = []
        # What the running or waiting preview request covers (generation, engine key, view box): a
        # repeated view change (a resize that moves nothing, a second signal) must not restart it.
        self._preview_asked: tuple[Any, ...] | None = None
        self._engine_key_seen: EngineKey | None | bool = False  # False: never looked
        self._offered: list[Path] = []  # dropped paths waiting for the user's yes to batch them
        self._saved_to: Path | None = None  # where this result was saved last (File > Save reuses it)
        # How damaged the open image looks (dipnet_core.io.jpeg_quality.DamageEstimate), for the
        # photo-model hint; None until estimated. A dismissed hint stays away for that image.
        self._damage: Any = None
        self._hint_dismissed = False
        self.preview = PreviewScheduler(self._compute_preview, 150, self)
        self.preview.ready.connect(self._on_preview_ready)
        self.preview.failed.connect(lambda _rid, exc: self._fail(exc, "live preview"))

        s = ctx.settings
        view.set_save_options(s.output_format, s.quality, s.name_template)
        view.set_recent(s.recent_files)
        view.set_mode(s.view_mode)
        view.best_quality.setChecked(s.self_ensemble)
        view.openRequested.connect(self.open_dialog)
        view.pasteRequested.connect(self.paste)
        view.pathsDropped.connect(self.open_paths)
        view.recentChosen.connect(lambda p: self.open_path(Path(p)))
        view.upscaleRequested.connect(self.upscale)
        view.cancelRequested.connect(self.cancel)
        view.saveRequested.connect(self.save_again)
        view.saveAsRequested.connect(self.save_dialog)
        view.batchAccepted.connect(lambda: self.batchOffered.emit(self._offered))
        view.copyRequested.connect(self.copy_result)
        view.viewChanged.connect(self._on_view_changed)
        view.modeChanged.connect(self._on_mode_changed)
        view.saveOptionsChanged.connect(self._on_save_options)
        view.photoModelRequested.connect(self.use_photo_model)
        view.photo_hint_dismiss.clicked.connect(self._dismiss_photo_hint)
        view.bestQualityToggled.connect(self._on_best_quality)
        ctx.engineChanged.connect(self._on_engine_changed)
        self._on_engine_changed()

    # ------------------------------------------------------------------ helpers
    def _fail(self, exc: BaseException, context: str) -> None:
        self.view.show_error(self.failure_message(exc, context))

    def _engine_key(self) -> EngineKey | None:
        try:
            return self.ctx.engine_key()
        except NoModelError as exc:
            self.view.show_error(str(exc))
            return None

    def _on_engine_changed(self) -> None:
        entry = self.ctx.current_model()
        self.view.set_model_missing(entry is None)
        self._update_photo_hint()
        try:
            key: EngineKey | None = self.ctx.engine_key()
        except NoModelError:
            key = None
        if key == self._engine_key_seen:
            return  # e.g. a rename or a speed measurement: nothing the pixels depend on
        self._engine_key_seen = key
        if entry is not None:
            self._scale = entry.scale or 4
            # The status bar names the model; this line is for what ran, once a result exists.
            self.view.set_info("")
        self.preview.cancel_all()
        if self.loaded is not None:
            # Results and previews belong to the previous model/backend: start over with the new one.
            self.cancel()
            self._generation += 1  # a result still coming from the old engine is dropped
            self.loaded.generation = self._generation
            self.result = self.result_qimage = None
            self._show_loaded()
            if entry is not None:
                self.view.set_status(f"Now using {entry.name} — press Upscale")
        self._on_view_changed(immediate=True)

    @property
    def busy(self) -> bool:
        return self._upscale_task is not None

    # ------------------------------------------------------------------ opening
    def open_dialog(self) -> None:
        path = self.view.ask_open_path(self.ctx.settings.last_open_dir)
        if path is not None:
            self.open_path(path)

    def open_paths(self, paths: list[Path]) -> None:
        folders = [p for p in paths if p.is_dir()]
        files = [p for p in paths if p.is_file()]
        if folders or len(files) > 1:
            # Several files or a folder is a batch job, not something to compare side by side: offer it.
            self._offered = folders + files
            self.view.offer_batch(len(files), len(folders))
            return
        if files:
            self.open_path(files[0])

    def open_path(self, path: Path) -> None:
        if path.is_dir():
            self.open_paths([path])
            return

        def load(token: CancelToken, _report: Any) -> Any:
            from dipnet_core.io import read_image

            img = read_image(path)
            return img, array_to_qimage(img.pixels, img.alpha)

        self.view.set_status(f"Opening {path.name}…")
        self._load_task = start_task(
            load,
            "open-image",
            on_result=lambda r: self._on_loaded(r[0], r[1], path.name, path),
            owner=self,
            on_failed=lambda exc: self._open_failed(exc, path),
        )

    def _open_failed(self, exc: BaseException, path: Path) -> None:
        self._fail(exc, f"Cannot open {path.name}")
        # The status line must not keep saying "Opening…": say what is shown instead.
        shown = f"still showing {self.loaded.title}" if self.loaded is not None else "open an image to start"
        self.view.set_status(f"Could not open {path.name}; {shown}.")

    def paste(self) -> None:
        image = QGuiApplication.clipboard().image()
        if image.isNull():
            self.view.show_error("The clipboard holds no image.")
            return
        self.open_qimage(image, "Pasted image")

    def open_qimage(self, image: QImage, title: str) -> None:
        from dipnet_core.io import ImageData

        pixels, alpha, bits = qimage_to_array(image)
        img = ImageData(pixels=pixels, alpha=alpha, bit_depth=bits)
        self._on_loaded(img, array_to_qimage(img.pixels, img.alpha), title, None)

    def _on_loaded(self, img: Any, qimage: QImage, title: str, path: Path | None) -> None:
        self.cancel()
        self.preview.cancel_all()
        self._generation += 1
        rgb = img.pixels if img.pixels.shape[2] == 3 else np.repeat(img.pixels, 3, axis=2)
        self.loaded = Loaded(img, np.ascontiguousarray(rgb), title, self._generation)
        self.result = None
        self.result_qimage = None
        self._saved_to = None
        self.view.banner.hide()
        self.view.set_model_missing(self.ctx.current_model() is None)
        self._estimate_damage(img.pixels, path, self._generation)
        self._show_loaded(qimage)
        if path is not None:
            s = self.ctx.settings
            s.add_recent(path)
            s.last_open_dir = str(path.parent)
            self.ctx.store.save()
            self.view.set_recent(s.recent_files)
        self._on_view_changed(immediate=True)  # a new image: no burst of changes to wait for

    # ------------------------------------------------------------------ photo-model hint
    def _estimate_damage(self, pixels: np.ndarray, path: Path | None, generation: int) -> None:
        """Look for JPEG damage and noise off the GUI thread (about 0.2 s on a 12 MP image)."""
        self._damage = None
        self._hint_dismissed = False
        self.view.hide_photo_hint()

        def estimate(_token: CancelToken, _report: Any) -> Any:
            from dipnet_core.io.jpeg_quality import estimate_damage

            return estimate_damage(pixels, path)

        def on_result(damage: Any) -> None:
            if self.loaded is not None and self.loaded.generation == generation:
                self._damage = damage
                self._update_photo_hint()

        # The hint is advice: a file that cannot be re-read for its JPEG tables just gets none.
        start_task(estimate, "estimate-damage", owner=self, on_result=on_result,
                   on_failed=lambda exc: log.info("damage estimate failed: %s", exc))

    def _update_photo_hint(self) -> None:
        """Show the hint if the image looks damaged, the clean built-in is active and the photo one exists."""
        entry = self.ctx.current_model()
        show = (
            self._damage is not None
            and self._damage.suggest_photo_model
            and not self._hint_dismissed
            and entry is not None
            and entry.builtin_name == "clean"
            and self.ctx.library.builtin("photo") is not None
        )
        if show:
            self.view.show_photo_hint(self._damage.reason)
        else:
            self.view.hide_photo_hint()

    def _dismiss_photo_hint(self) -> None:
        self._hint_dismissed = True

    def use_photo_model(self) -> None:
        """Make the photo built-in the active (default) model; the view then restarts its previews."""
        photo = self.ctx.library.builtin("photo")
        self.view.hide_photo_hint()
        if photo is not None:
            self.ctx.library.set_default(photo.id)

    def _show_loaded(self, qimage: QImage | None = None) -> None:
        """(Re)show the current input with no result and no previews, at the current model's scale."""
        assert self.loaded is not None
        img, s = self.loaded.image, self._scale
        detail = f"{self.loaded.title} · {img.width}×{img.height}"
        if img.bit_depth == 16:
            detail += " · 16-bit"
        if img.has_alpha:
            detail += " · alpha"
        before = qimage if qimage is not None else self.view.compare.before_image()
        self.view.show_image(before, s, f"{detail} → {img.width * s}×{img.height * s}")
        self._reset_preview()

    # ------------------------------------------------------------------ live preview
    def _reset_preview(self) -> None:
        """Forget what the live preview covered (a new image, a new model, or a finished result)."""
        self.preview.cancel_all()
        self._preview_asked = None
        self._pieces.clear()
        self._covered = None
        if self.loaded is not None:
            img = self.loaded.image
            self._covered = np.zeros((img.height, img.width), bool)

    def visible_lr_box(self) -> tuple[int, int, int, int] | None:
        """The LR box under the part of the upscaled side that is on screen."""
        if self.loaded is None:
            return None
        img = self.loaded.image
        return lr_box_for_view(self.view.active_canvas().visible_image_rect(), self._scale, img.width, img.height)

    def preview_complete(self) -> bool:
        """Whether every visible pixel of the upscaled side shows the model's output."""
        if self.result is not None:
            return True
        box = self.visible_lr_box()
        if box is None or self._covered is None:
            return box is None
        x0, y0, x1, y1 = box
        return bool(self._covered[y0:y1, x0:x1].all())

    def _on_view_changed(self, immediate: bool = False) -> None:
        """Ask for a preview of what is visible and not yet covered.

        ``immediate``: a new image or model, so start now; a pan or zoom starts at once only
        after a quiet spell, and is debounced while the user keeps moving (PreviewScheduler).
        """
        if self.loaded is None or self.result is not None or self.ctx.current_model() is None:
            return
        box = self.visible_lr_box()
        if box is None or self._covered is None:
            return
        x0, y0, x1, y1 = box
        if self._covered[y0:y1, x0:x1].all():
            self.preview.cancel_all()  # already sharp there (e.g. zooming in on a previewed area)
            self._preview_asked = None
            return
        try:
            key = self.ctx.engine_key()
        except NoModelError:
            return
        asked = (self.loaded.generation, key, box)
        if asked == self._preview_asked and self.preview.busy:
            return  # this very view is already being computed
        self._preview_asked = asked
        self.preview.request((self.loaded.generation, key, box, self.loaded.rgb, self._covered), immediate)

    def _compute_preview(
        self,
        payload: tuple[int, EngineKey, tuple[int, int, int, int], np.ndarray, np.ndarray],
        token: CancelToken,
    ) -> Iterator[tuple[tuple[int, int, int, int], QImage]]:
        """Runs on a worker: yields (LR box, upscaled QImage) per finished tile, the view's centre first.

        What is not covered yet runs as one engine job (see preview_plan). The plan reads the
        coverage mask when the request starts; the GUI thread may mark tiles of a cancelled
        request meanwhile, which at worst recomputes a tile.
        """
        _generation, key, box, rgb, covered = payload
        engine = self.ctx.engine(key)
        regions = plan_regions(box, covered)
        if not regions:
            return
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        for tp in engine.preview_upscaler.iter_regions(rgb, regions, token, centre=centre):
            yield tp.core, array_to_qimage(tp.output)

    def _on_preview_ready(self, _rid: int, payload: Any, piece: Any) -> None:
        generation = payload[0]
        if self.loaded is None or generation != self.loaded.generation or self.result is not None:
            return
        (x0, y0, x1, y1), image = piece
        s = self._scale
        self.view.show_preview_patch(QRect(x0 * s, y0 * s, image.width(), image.height()), image)
        self._pieces.append((x0, y0, x1, y1))
        if self._covered is not None:
            self._covered[y0:y1, x0:x1] = True
        self._forget_old_pieces()

    def _forget_old_pieces(self) -> None:
        kept = sum((b[2] - b[0]) * (b[3] - b[1]) for b in self._pieces)
        drop = 0
        while kept > PREVIEW_KEEP_LR_PIXELS and drop < len(self._pieces) - 1:
            b = self._pieces[drop]
            kept -= (b[2] - b[0]) * (b[3] - b[1])
            drop += 1
        if not drop or self._covered is None:
            return
        del self._pieces[:drop]
        self.view.drop_oldest_preview_patches(drop)
        self._covered[:] = False
        for x0, y0, x1, y1 in self._pieces:
            self._covered[y0:y1, x0:x1] = True

    def _on_best_quality(self, on: bool) -> None:
        self.ctx.settings.self_ensemble = on
        self.ctx.store.save()
        if self.result is not None and not self.busy:
            # The result on screen was made with the other setting; the option applies to the next upscale.
            self.view.set_status(f"Best quality {'on' if on else 'off'}: press Upscale to apply it")

    def _on_mode_changed(self, mode: str) -> None:
        self.ctx.settings.view_mode = mode
        self.ctx.store.save()

    # ------------------------------------------------------------------ full upscale
    def upscale(self) -> None:
        if self.loaded is None or self._upscale_task is not None:
            return
        key = self._engine_key()
        if key is None:
            return
        img = self.loaded.image
        generation = self.loaded.generation
        entry = self.ctx.current_model()
        display_name = entry.name if entry else ""

        paint_tiles = img.width * img.height * self._scale**2 <= TILE_PAINT_MAX_OUTPUT_PIXELS
        # Read on the GUI thread when the job starts: toggling the box later changes the next job only.
        self_ensemble = self.view.best_quality.isChecked()
        self._passes = ENSEMBLE_PASSES if self_ensemble else 1

        def run(token: CancelToken, report: Any) -> Any:
            from dipnet_core.engine import upscale_image

            def report_tile(tp: Any) -> None:
                # Quantise the finished tile here, on the worker, so the GUI thread only paints it.
                patch = None
                if paint_tiles and tp.phase == "rgb" and tp.core is not None and tp.output is not None:
                    patch = (tp.core, array_to_qimage(tp.output))
                report((tp, patch))

            engine = self.ctx.engine(key)
            t0 = time.perf_counter()
            # Best quality: 8 whole-image passes, averaged; its progress events carry no tiles to paint.
            out = upscale_image(img, engine.upscaler, cancel=token, progress=report_tile,
                                self_ensemble=self_ensemble)
            seconds = time.perf_counter() - t0
            bits = 16 if out.bit_depth == 16 else 8
            return (
                generation,
                out,
                array_to_qimage(out.pixels, out.alpha, bits),
                seconds,
                engine.describe(display_name) + (BEST_QUALITY_NOTE if self_ensemble else ""),
            )

        self.view.banner.hide()
        self.view.set_busy(True)
        self.view.set_status("Preparing…")
        self._upscale_task = start_task(
            run,
            "upscale",
            owner=self,
            on_result=self._on_upscaled,
            on_progress=self._on_progress,
            on_failed=self._on_upscale_failed,
            on_cancelled=self._on_upscale_cancelled,
            on_done=self._on_upscale_done,
        )

    def shutdown(self) -> None:
        """The window is closing: stop the preview and any running upscale (their results are dropped)."""
        self.preview.shutdown()
        if self._upscale_task is not None:
            self._upscale_task.cancel()
        if self._load_task is not None:
            self._load_task.cancel()

    def cancel(self) -> None:
        if self._upscale_task is not None:
            self._upscale_task.cancel()
            self.view.set_status("Cancelling…")

    def _on_progress(self, payload: tuple[Any, tuple[tuple[int, int, int, int], QImage] | None]) -> None:
        tp, patch = payload
        # The core counts input megapixels; the app speaks of output megapixels everywhere (as the
        # Models tab's speed test does), the size of what the user gets.
        # The core counts the pixels of every pass; the user's rate is that of finished output.
        mps = tp.megapixels_per_s * self._scale**2 / self._passes
        self.view.set_progress(tp.done, tp.total, tp.eta_s, mps, self._passes)
        if patch is not None and self.result is None:
            (x0, y0, _x1, _y1), image = patch
            s = self._scale
            self.view.show_tile(QRect(x0 * s, y0 * s, image.width(), image.height()), image)

    def _on_upscale_failed(self, exc: BaseException) -> None:
        self.view.clear_tiles()
        self._fail(exc, "Upscale failed")

    def _on_upscale_cancelled(self) -> None:
        self.view.clear_tiles()  # a half-painted result would look like a finished one
        self.view.set_status("Upscale cancelled.")

    def _on_upscaled(self, r: tuple[int, Any, QImage, float, str]) -> None:
        generation, out, qimage, seconds, engine_text = r
        if self.loaded is None or generation != self.loaded.generation:
            return
        self.result, self.result_qimage = out, qimage
        self._saved_to = None
        self._reset_preview()
        self.view.show_result(qimage)
        self.view.set_status(f"Done: {out.width}×{out.height} in {format_duration(seconds)}")
        self.view.set_info(engine_text)

    def _on_upscale_done(self) -> None:
        self._upscale_task = None
        self.view.set_busy(False)
        if self.result is not None:
            self.resultReady.emit()

    # ------------------------------------------------------------------ saving
    def _on_save_options(self) -> None:
        s = self.ctx.settings
        s.output_format = self.view.save_format()
        s.quality = self.view.quality_spin.value()
        s.name_template = self.view.template_edit.text().strip() or "{stem}_x{scale}"
        self.ctx.store.save()

    def suggested_save_path(self) -> Path:
        from dipnet_core.batch import output_suffix, render_name

        s = self.ctx.settings
        src = self.loaded.image.path if self.loaded is not None else None
        stem = src.stem if src is not None else "pasted"
        entry = self.ctx.current_model()
        fmt = self.view.save_format()
        try:
            name = render_name(
                s.name_template, stem=stem, scale=self._scale, ext=fmt, model=entry.name if entry else ""
            )
        except (KeyError, ValueError, IndexError):
            name = f"{stem}_x{self._scale}"
        folder = (
            Path(s.last_save_dir) if s.last_save_dir else (src.parent if src is not None else Path.home())
        )
        return folder / f"{name}{output_suffix(Path(stem + '.png'), fmt)}"

    def save_dialog(self) -> None:
        if self.result is None:
            return
        path = self.view.ask_save_path(self.suggested_save_path())
        if path is not None:
            self.save(path)

    def save_again(self) -> None:
        """File > Save: the place this result was saved to, or ask where the first time."""
        if self._saved_to is not None and self.result is not None:
            self.save(self._saved_to)
        else:
            self.save_dialog()

    def save(self, path: Path) -> Task | None:
        if self.result is None:
            return None
        result, quality = self.result, self.view.quality_spin.value()
        protect = (self.loaded.image.path,) if self.loaded and self.loaded.image.path else ()

        def write(_token: CancelToken, _report: Any) -> Path:
            from dipnet_core.io import write_image

            return write_image(path, result, quality=quality, overwrite=True, protect=protect)

        def ok(p: Path) -> None:
            self._saved_to = Path(p)
            self.ctx.settings.last_save_dir = str(Path(p).parent)
            self.ctx.store.save()
            self.view.set_status(f"Saved {Path(p).name}")
            self.saved.emit(Path(p))

        self._save_task = start_task(
            write, "save", owner=self, on_result=ok, on_failed=lambda exc: self._fail(exc, f"Cannot save {path.name}")
        )
        return self._save_task

    def copy_result(self) -> None:
        if self.result_qimage is not None:
            QGuiApplication.clipboard().setImage(self.result_qimage)
            self.view.set_status("Copied the upscaled image to the clipboard.")
