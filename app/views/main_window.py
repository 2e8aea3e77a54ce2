"""The main window: composes the four tabs and wires them together. No logic of its own."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray
from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget

from dipnet_core.resources import resource_path

from ..controllers.batch import BatchController
from ..controllers.context import AppContext
from ..controllers.models_tab import ModelsController
from ..controllers.train import TrainController
from ..controllers.upscale import UpscaleController
from ..errors import ErrorReporter
from ..theme import ThemeManager
from .batch_view import BatchView
from .models_view import ModelsView
from .train_view import TrainView
from .upscale_view import UpscaleView

# The checkout's resources/ or the installed wheel's copy; None in a build without icons.
ICON = resource_path("icons", "dipnet-studio.svg")


class MainWindow(QMainWindow):
    TAB_UPSCALE, TAB_BATCH, TAB_TRAIN, TAB_MODELS = range(4)

    def __init__(
        self, ctx: AppContext, reporter: ErrorReporter | None = None, theme: ThemeManager | None = None
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.setWindowTitle("DIPNet Studio")
        if ICON is not None:
            self.setWindowIcon(QIcon(str(ICON)))
        self.upscale_view = UpscaleView()
        self.batch_view = BatchView()
        self.train_view = TrainView()
        self.models_view = ModelsView()
        self.upscale = UpscaleController(self.upscale_view, ctx, reporter, self)
        self.batch = BatchController(self.batch_view, ctx, reporter, self)
        self.train = TrainController(self.train_view, ctx, reporter, self)
        self.models = ModelsController(self.models_view, ctx, theme, reporter, self)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.upscale_view, "Upscale")
        self.tabs.addTab(self.batch_view, "Batch")
        self.tabs.addTab(self.train_view, "Train")
        self.tabs.addTab(self.models_view, "Models && Settings")
        self.setCentralWidget(self.tabs)
        self.model_status = QLabel()
        self.statusBar().addPermanentWidget(self.model_status)

        # Cross-tab wiring: the only thing this class does beyond layout.
        self.upscale.folderDropped.connect(self._to_batch)
        self.upscale_view.importModelRequested.connect(self.models.import_dialog)
        self.train.installed.connect(lambda _e: self.statusBar().showMessage("Model installed", 5000))
        ctx.engineChanged.connect(self._update_model_status)
        self._update_model_status()

        s = ctx.settings
        if s.window_geometry:
            self.restoreGeometry(QByteArray.fromBase64(s.window_geometry.encode("ascii")))
        else:
            self.resize(1280, 820)
        self.tabs.setCurrentIndex(min(max(0, s.current_tab), self.tabs.count() - 1))

    def _to_batch(self, paths: list[Path]) -> None:
        self.batch.add_inputs(paths)
        self.tabs.setCurrentIndex(self.TAB_BATCH)

    def _update_model_status(self) -> None:
        entry = self.ctx.current_model()
        s = self.ctx.settings
        tile = "auto" if not s.tile_size else f"{s.tile_size}px"
        self.model_status.setText(
            f"Model: {entry.name} ×{entry.scale}  ·  backend {s.backend}, device {s.device}, tiles {tile}"
            if entry
            else "No model installed"
        )

    def save_state(self) -> None:
        s = self.ctx.settings
        s.window_geometry = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        s.current_tab = self.tabs.currentIndex()
        self.ctx.store.save()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.train.running and self.isVisible():
            answer = QMessageBox.question(
                self,
                "Training is running",
                "Stop training and quit? A checkpoint is saved; press Resume in the Train tab next time.",
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.save_state()
        self.train.shutdown()
        from ..workers import shutdown

        shutdown()
        super().closeEvent(event)
