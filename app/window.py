"""The application's composition root: the main window's views plus their controllers, wired together.

The only module that knows both views and controllers; it holds no logic beyond the cross-tab
wiring, the menu actions that reach more than one tab, and the close sequence.
"""

from __future__ import annotations

import platform
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import shiboken6
from PySide6.QtCore import QByteArray, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices

from . import edition
from .controllers.batch import BatchController
from .controllers.context import AppContext
from .controllers.models_tab import ModelsController
from .controllers.upscale import UpscaleController
from .errors import ErrorReporter
from .theme import ThemeManager
from .views.main_window import MainWindowView

if TYPE_CHECKING:
    from .controllers.train import TrainController

#: How long the "measuring the engine" note stays (it takes up to ~20 s on a 2-core CPU; the
#: "measured" note replaces it when done), and the "measured" note.
MEASURING_SHOWN_MS = 60_000
MEASURED_SHOWN_MS = 8_000


class MainWindow(MainWindowView):
    """The main window with its four tab controllers."""

    #: A fresh engine measurement started or ended (message, done; from a worker thread): the
    #: status bar says why the wait.
    engineMeasuring = Signal(str, bool)

    def __init__(
        self, ctx: AppContext, reporter: ErrorReporter | None = None, theme: ThemeManager | None = None
    ) -> None:
        # The slim edition (no torch) gets an explanation in the Train tab and no training controller.
        missing = edition.missing_training_packages()
        super().__init__(missing)
        self.ctx = ctx
        self.theme = theme
        self.upscale = UpscaleController(self.upscale_view, ctx, reporter, self)
        self.batch = BatchController(self.batch_view, ctx, reporter, self)
        self.train: TrainController | None = None
        if not missing:
            from .controllers.train import TrainController

            self.train = TrainController(self.train_view, ctx, reporter, self)
            self.train.installed.connect(lambda _e: self.statusBar().showMessage("Model installed", 5000))
        self.models = ModelsController(self.models_view, ctx, theme, reporter, self,
                                       can_measure_quality=not missing)

        from dipnet_core.engine.backends.autoselect import add_measurement_listener

        # The first run of a model on a machine times its engine paths for seconds before the first
        # preview; the emit crosses to the GUI thread as a queued signal. The listener holds the
        # window weakly: a window dropped without close() (tests, scripts) is not kept or called.
        self.engineMeasuring.connect(self._show_measuring)
        window = weakref.ref(self)

        def relay(message: str, done: bool) -> None:
            w = window()
            if w is not None and shiboken6.isValid(w):
                w.engineMeasuring.emit(message, done)

        self._stop_listening = add_measurement_listener(relay)
        self.destroyed.connect(self._stop_listening)
        self.upscale.batchOffered.connect(self._to_batch)
        self.upscale_view.importModelRequested.connect(self.models.import_dialog)
        ctx.engineChanged.connect(self._update_model_status)
        self._update_model_status()
        self.darkThemeToggled.connect(self._set_dark)
        self.models.themeApplied.connect(lambda _mode: self.set_dark_checked(self._is_dark()))
        self.set_dark_checked(self._is_dark())
        self.aboutRequested.connect(lambda: self.show_about(self.about_text()))
        self.logFolderRequested.connect(self.open_log_folder)

        s = ctx.settings
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.window_geometry.encode("ascii")))
        else:
            self.resize(1280, 820)
        self.tabs.setCurrentIndex(min(max(0, s.current_tab), self.tabs.count() - 1))

    def _show_measuring(self, message: str, done: bool) -> None:
        self.statusBar().showMessage(message, MEASURED_SHOWN_MS if done else MEASURING_SHOWN_MS)

    def _to_batch(self, paths: list[Path]) -> None:
        self.batch.add_inputs(paths)
        self.tabs.setCurrentIndex(self.TAB_BATCH)

    def _is_dark(self) -> bool:
        return self.theme.dark if self.theme is not None else self.ctx.settings.theme == "dark"

    def _set_dark(self, dark: bool) -> None:
        self.models.set_theme("dark" if dark else "light")

    def _update_model_status(self) -> None:
        entry = self.ctx.current_model()
        s = self.ctx.settings
        tile = "auto" if not s.tile_size else f"{s.tile_size}px"
        self.model_status.setText(
            f"Model: {entry.name} ×{entry.scale}  ·  backend {s.backend}, device {s.device}, tiles {tile}"
            if entry
            else "No model installed"
        )

    def about_text(self) -> str:
        """Versions of the app and what it runs on, and the inference backend in use."""
        from importlib.metadata import PackageNotFoundError, version

        import PySide6

        try:
            app_version = version("dipnet-studio")
        except PackageNotFoundError:  # run from a source tree that was never installed
            app_version = "(source tree)"
        lines = [
            f"<b>DIPNet Studio</b> {app_version}",
            "Image super-resolution with DIPNet.",
            "",
            f"Python {platform.python_version()} · PySide6 {PySide6.__version__} · Qt {PySide6.QtCore.qVersion()}",
        ]
        try:
            import torch

            lines.append(f"PyTorch {torch.__version__}")
        except ImportError:
            pass
        try:
            import onnxruntime

            lines.append(f"ONNX Runtime {onnxruntime.__version__}")
        except ImportError:
            pass
        lines.append(f"Backend: {self.ctx.backend_description()}")
        lines.append(f"Log file: {self.ctx.store.paths.log_file}")
        return "<br>".join(lines)

    def open_log_folder(self) -> None:
        folder = self.ctx.store.paths.log_file.parent
        folder.mkdir(parents=True, exist_ok=True)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def save_state(self) -> None:
        s = self.ctx.settings
        s.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        s.current_tab = self.tabs.currentIndex()
        self.ctx.store.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        training = self.train is not None and self.train.running
        if training and self.isVisible() and not self.confirm_quit_while_training():
            event.ignore()
            return
        self.save_state()
        self._stop_listening()
        # Stop this window's work first, so no late result reaches a controller being deleted.
        self.upscale.shutdown()
        self.batch.cancel()
        if self.train is not None:
            self.train.shutdown()
        from .workers import shutdown

        shutdown()
        super().closeEvent(event)
