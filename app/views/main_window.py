"""The main window's frame (a view): the four tabs, the menu bar and the status bar.

It shows things and emits signals; it imports no controller. ``app.window`` composes it with the
controllers and wires them together.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from dipnet_core.resources import resource_path

from .batch_view import BatchView
from .models_view import ModelsView
from .upscale_view import UpscaleView

# The checkout's resources/ or the installed wheel's copy; None in a build without icons.
ICON = resource_path("icons", "dipnet-studio.svg")


class MainWindowView(QMainWindow):
    """Tabs, menus (File, View, Help with the platform's standard shortcuts) and the status bar."""

    TAB_UPSCALE, TAB_BATCH, TAB_TRAIN, TAB_MODELS = range(4)
    darkThemeToggled = Signal(bool)
    aboutRequested = Signal()
    logFolderRequested = Signal()

    def __init__(self, missing_for_training: list[str] | None = None) -> None:
        """``missing_for_training``: packages this install lacks for training (the slim edition);
        when any, the Train tab explains the full edition instead of showing the form."""
        super().__init__()
        self.setWindowTitle("DIPNet Studio")
        if ICON is not None:
            self.setWindowIcon(QIcon(str(ICON)))
        self.upscale_view = UpscaleView()
        self.batch_view = BatchView()
        self.train_view: QWidget
        if missing_for_training:
            from .train_unavailable_view import TrainUnavailableView

            self.train_view = TrainUnavailableView(missing_for_training)
        else:
            from .train_view import TrainView  # imports pyqtgraph: only where training can run

            self.train_view = TrainView()
        self.models_view = ModelsView()

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.upscale_view, "Upscale")
        self.tabs.addTab(self.batch_view, "Batch")
        self.tabs.addTab(self.train_view, "Train")
        self.tabs.addTab(self.models_view, "Models && Settings")
        self.setCentralWidget(self.tabs)
        self.model_status = QLabel()
        self.statusBar().addPermanentWidget(self.model_status)
        self._build_menus()

    def _action(self, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
                slot: object = None, *, checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            a.setShortcut(QKeySequence(shortcut))
        a.setCheckable(checkable)
        if slot is not None:
            a.triggered.connect(slot)
        return a

    def _build_menus(self) -> None:
        up = self.upscale_view
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_action = self._action("&Open Image…", QKeySequence.StandardKey.Open, up.openRequested.emit)
        file_menu.addAction(self.open_action)
        up.recent_menu.setTitle("Open &Recent")
        file_menu.addMenu(up.recent_menu)
        file_menu.addSeparator()
        self.save_action = self._action("&Save", QKeySequence.StandardKey.Save, up.saveRequested.emit)
        self.save_as_action = self._action("Save &As…", QKeySequence.StandardKey.SaveAs, up.saveAsRequested.emit)
        file_menu.addActions([self.save_action, self.save_as_action])
        file_menu.addSeparator()
        # Ctrl+Q everywhere: Qt's StandardKey.Quit is empty on Windows, where users still expect it.
        self.quit_action = self._action("&Quit", "Ctrl+Q", self.close)
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        file_menu.addAction(self.quit_action)

        view_menu = bar.addMenu("&View")
        self.fit_action = self._action("&Fit to Window", "Ctrl+0", up.fit_btn.click)
        self.actual_action = self._action("&Actual Size (100%)", "Ctrl+1", up.actual_btn.click)
        view_menu.addActions([self.fit_action, self.actual_action])
        view_menu.addSeparator()
        modes = QActionGroup(self)
        self.split_action = self._action("S&plit", None, lambda: up.set_mode("split"), checkable=True)
        self.side_action = self._action("Side by &Side", None, lambda: up.set_mode("side"), checkable=True)
        for a in (self.split_action, self.side_action):
            modes.addAction(a)
        self.split_action.setChecked(up.mode() == "split")
        self.side_action.setChecked(up.mode() == "side")
        up.modeChanged.connect(lambda m: (self.split_action if m == "split" else self.side_action).setChecked(True))
        self.lens_action = self._action("&Lens", "Ctrl+L", up.lens_btn.toggle, checkable=True)
        up.lens_btn.toggled.connect(self.lens_action.setChecked)
        self.before_action = self._action("Show &Before (hold Space or \\)", None, up.toggle_before)
        view_menu.addActions([self.split_action, self.side_action, self.lens_action, self.before_action])
        view_menu.addSeparator()
        self.dark_action = self._action("&Dark Theme", "Ctrl+Shift+D", checkable=True)
        self.dark_action.toggled.connect(self.darkThemeToggled)
        view_menu.addAction(self.dark_action)

        help_menu = bar.addMenu("&Help")
        self.about_action = self._action("&About DIPNet Studio", None, self.aboutRequested.emit)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.log_action = self._action("Open &Log Folder", None, self.logFolderRequested.emit)
        help_menu.addActions([self.about_action, self.log_action])

    def set_dark_checked(self, dark: bool) -> None:
        self.dark_action.blockSignals(True)
        self.dark_action.setChecked(dark)
        self.dark_action.blockSignals(False)

    def show_about(self, text: str) -> None:
        QMessageBox.about(self, "About DIPNet Studio", text)

    def confirm_quit_while_training(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Training is running",
            "Stop training and quit? A checkpoint is saved; press Resume in the Train tab next time.",
        )
        return answer == QMessageBox.StandardButton.Yes
