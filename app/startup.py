"""The Qt side of starting the app: the QApplication, the main window, the dialog bridge.

Kept apart from ``app.__main__`` so that a Qt that cannot load (a system library missing) is
reported with the install hint instead of a traceback.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QApplication, QMessageBox


class _DialogBridge(QObject):
    """Lets the error reporter show a message box from any thread (queued to the GUI thread)."""

    show = Signal(str, str)

    def __init__(self) -> None:
        super().__init__()
        self.show.connect(self._show, Qt.ConnectionType.QueuedConnection)

    def _show(self, title: str, text: str) -> None:
        QMessageBox.critical(QApplication.activeWindow(), title, text)


def build_app(argv: list[str] | None = None) -> tuple[QApplication, object]:
    """Create the QApplication and the main window (shared by main() and the screenshot script)."""
    from .controllers.context import AppContext
    from .errors import ErrorReporter, setup_logging
    from .gc_policy import GuiThreadGarbageCollector
    from .services.models import ModelLibrary
    from .settings import AppPaths, SettingsStore
    from .theme import ThemeManager
    from .views.main_window import ICON
    from .window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("DIPNet Studio")
    app.setOrganizationName("DIPNet")
    app.setDesktopFileName("dipnet-studio")
    if not any(isinstance(c, GuiThreadGarbageCollector) for c in app.children()):
        GuiThreadGarbageCollector(parent=app).install()  # lives as long as the app
    from dipnet_core.engine import set_thread_spinning

    # Threads that wait for the next operator sleep instead of spinning: the GUI keeps its core.
    set_thread_spinning(False)
    if ICON is not None:
        from PySide6.QtGui import QIcon

        app.setWindowIcon(QIcon(str(ICON)))
    paths = AppPaths.default().ensure()
    setup_logging(paths.log_file)
    bridge = _DialogBridge()
    reporter = ErrorReporter(paths.log_file, bridge.show.emit)
    reporter.install()
    store = SettingsStore(paths)
    theme = ThemeManager(app, store.settings.theme)
    ctx = AppContext(store, ModelLibrary(store))
    window = MainWindow(ctx, reporter, theme)
    window._bridge = bridge  # type: ignore[attr-defined]  # keep it alive with the window
    return app, window
