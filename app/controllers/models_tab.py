"""Models & Settings tab logic: import, rename, delete, default, speed and quality, app settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from dipnet_core.cancel import CancelToken

from ..errors import ErrorReporter
from ..theme import ThemeManager
from ..views.models_view import ModelsView
from ..workers import Task, start_task
from .context import AppContext, TabController
from .engine import EngineCache, EngineKey

BENCH_SIZE = 128  # LR pixels per side: big enough to be stable, small enough to take ~1 s on a CPU


class ModelsController(TabController):
    """Models & Settings tab: drives the ModelsView; touches the model library, settings and theme."""

    themeApplied = Signal(str)  # the theme mode now in use
    speedMeasured = Signal(str, float)
    qualityMeasured = Signal(str, object)  # model id, the evaluate() result
    view: ModelsView

    def __init__(
        self,
        view: ModelsView,
        ctx: AppContext,
        theme: ThemeManager | None = None,
        reporter: ErrorReporter | None = None,
        parent: QObject | None = None,
        *,
        can_measure_quality: bool = True,
    ) -> None:
        super().__init__(view, ctx, reporter, parent)
        self.theme = theme
        view.set_quality_available(can_measure_quality)
        self._bench: Task | None = None
        self._quality: Task | None = None
        s = ctx.settings
        view.set_settings(s.backend, s.device, s.tile_size, s.theme)
        paths = ctx.store.paths
        view.paths_label.setText(
            f"models: {paths.models_dir}\nsettings: {paths.settings_file}\nlog: {paths.log_file}"
        )
        view.importRequested.connect(self.import_dialog)
        view.renameRequested.connect(self.rename)
        view.deleteRequested.connect(self.delete)
        view.defaultRequested.connect(self.set_default)
        view.benchmarkRequested.connect(self.measure_speed)
        view.qualityRequested.connect(self._quality_clicked)
        view.settingsChanged.connect(self._on_settings)
        view.themeChanged.connect(self._on_theme)
        ctx.library.changed.connect(self.refresh)
        view.banner.actionClicked.connect(self.import_dialog)  # the banner's only action here
        self.refresh()
        self._describe_backends()

    def refresh(self) -> None:
        default = self.ctx.current_model()
        self.view.set_models(self.ctx.library.entries(), default.id if default else None)
        if not self.ctx.library.entries():
            self.view.banner.show_message(
                "No model installed — import a model file to start upscaling.", "info", "Import model…"
            )
        elif self.view.banner.action.text() == "Import model…":
            self.view.banner.hide()

    def _describe_backends(self) -> None:
        try:
            from dipnet_core.engine import available_backends

            parts = [
                f"{b['backend']} {b['device']}" + (f" ({b['detail']})" if b.get("detail") else "")
                for b in available_backends()
                if b.get("available")
            ]
            self.view.backend_info.setText("Available here: " + "; ".join(parts))
        except Exception as exc:  # noqa: BLE001 - informative only; never block the tab
            self.view.backend_info.setText(f"Backend list unavailable ({exc})")

    # ------------------------------------------------------------------ actions
    def _error(self, exc: BaseException, context: str) -> None:
        self.view.banner.show_message(self.failure_message(exc, context), "error")

    def import_dialog(self) -> None:
        path = self.view.ask_model_file()
        if path is not None:
            self.import_file(path)

    def import_file(self, path: Path) -> Any:
        from dipnet_core.models import ModelLoadError

        try:
            entry = self.ctx.library.import_file(path)
        except ModelLoadError as exc:
            self.view.banner.show_message(f"Cannot import {path.name}: {exc.reason}", "error")
            return None
        if self.ctx.current_model() is None or len(self.ctx.library.entries()) == 1:
            self.ctx.library.set_default(entry.id)
        self.view.banner.show_message(f"Imported “{entry.name}”.", "ok")
        self.view.select_id(entry.id)
        return entry

    def rename(self, id_: str) -> None:
        entry = self.ctx.library.get(id_)
        if entry is None:
            return
        name = self.view.ask_name(entry.name)
        if name:
            try:
                self.ctx.library.rename(id_, name)
            except (ValueError, OSError) as exc:
                self._error(exc, "Cannot rename")

    def delete(self, id_: str) -> None:
        entry = self.ctx.library.get(id_)
        if entry is None or entry.builtin or not self.view.confirm_delete(entry.name):
            return
        try:
            self.ctx.library.delete(id_)
        except (ValueError, OSError) as exc:
            self._error(exc, f"Cannot delete {entry.name}")

    def set_default(self, id_: str) -> None:
        self.ctx.library.set_default(id_)

    def measure_speed(self, id_: str) -> Task | None:
        entry = self.ctx.library.get(id_)
        if entry is None or self._bench is not None:
            return None
        s = self.ctx.settings
        key = EngineKey(entry.path, s.backend, s.device, s.tile_size)
        # The current model's engine is reused; another model gets a throwaway one.
        cache = self.ctx.cache if self.ctx.current_model() is entry else EngineCache()

        def run(token: CancelToken, _report: Any) -> float:
            from dipnet_core.engine import TiledUpscaler

            engine = cache.get(key)
            x = np.random.default_rng(0).random((BENCH_SIZE, BENCH_SIZE, 3), dtype=np.float32)
            # Its own tiler: the engine's tilers may be busy with an upscale or a batch.
            with TiledUpscaler(engine.backend, tile_size=key.tile_size or None) as tiler:
                tiler.upscale(x[:48, :48], cancel=token)  # warm-up (allocations, thread start, ORT init)
                t0 = time.perf_counter()
                out = tiler.upscale(x, cancel=token)
                dt = time.perf_counter() - t0
            return out.shape[0] * out.shape[1] / 1e6 / dt

        def done(mps: float) -> None:
            self.ctx.library.record_speed(id_, mps)
            self.speedMeasured.emit(id_, mps)
            self.view.banner.show_message(f"{entry.name}: {mps:.2f} output megapixels per second.", "ok")

        def finish() -> None:
            self._bench = None
            self.view.bench_btn.setText("Measure speed")

        self.view.bench_btn.setText("Measuring…")
        self._bench = start_task(
            run,
            "benchmark",
            on_result=done,
            on_failed=lambda exc: self._error(exc, f"Speed test of {entry.name} failed"),
            on_done=finish,
        )
        return self._bench

    def _quality_clicked(self, id_: str) -> None:
        if self._quality is not None:  # the button reads "Cancel measuring" while one runs
            self._quality.cancel()
            return
        folder = self.view.ask_quality_folder()
        if folder is not None:
            self.measure_quality(id_, folder)

    def measure_quality(self, id_: str, folder: Path) -> Task | None:
        """Score the model on a folder of HR images (bicubic x4 LR, PSNR/SSIM on Y), off the GUI thread."""
        entry = self.ctx.library.get(id_)
        if entry is None or self._quality is not None:
            return None
        device = "cpu"
        if self.ctx.settings.device in ("auto", "cuda"):
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"

        def run(token: CancelToken, report: Any) -> dict[str, Any]:
            from dipnet_core.eval import evaluate

            return evaluate(entry.path, folder, scale=entry.scale or 4, device=device, cancel=token,
                            progress=lambda done, total, name: report((done, total, name)))

        def progress(p: tuple[int, int, str]) -> None:
            done, total, name = p
            self.view.banner.show_message(f"Measuring {entry.name} on {folder.name}: {done}/{total} ({name})", "info")

        def result(r: dict[str, Any]) -> None:
            self.ctx.library.record_quality(id_, r)
            mean = r["mean"]
            skipped = f"; skipped {len(r['skipped'])} unusable file(s)" if r.get("skipped") else ""
            self.view.banner.show_message(
                f"{entry.name} on {folder.name} ({r['n_images']} images): PSNR-Y {mean['psnr_y']:.2f} dB, "
                f"SSIM-Y {mean['ssim_y']:.4f}; bicubic {mean['bicubic_psnr_y']:.2f} dB{skipped}.", "ok")
            self.qualityMeasured.emit(id_, r)

        def finish() -> None:
            self._quality = None
            self.view.quality_btn.setText("Measure quality…")

        self.view.quality_btn.setText("Cancel measuring")
        self._quality = start_task(
            run,
            "quality",
            on_result=result,
            on_progress=progress,
            on_failed=lambda exc: self._error(exc, f"Measuring {entry.name} on {folder} failed"),
            on_cancelled=lambda: self.view.banner.show_message("Quality measurement cancelled.", "info"),
            on_done=finish,
        )
        return self._quality

    # ------------------------------------------------------------------ settings
    def _on_settings(self) -> None:
        s = self.ctx.settings
        s.backend, s.device, s.tile_size = self.view.backend(), self.view.device(), self.view.tile_size()
        self.ctx.inference_settings_changed()

    def _on_theme(self, mode: str) -> None:
        self.ctx.settings.theme = mode
        self.ctx.store.save()
        if self.theme is not None:
            self.theme.apply(mode)
        self.themeApplied.emit(mode)

    def set_theme(self, mode: str) -> None:
        """Switch the theme from elsewhere (the View menu), keeping this tab's selector in step."""
        s = self.ctx.settings
        self.view.set_settings(s.backend, s.device, s.tile_size, mode)
        self._on_theme(mode)
