"""Start DIPNet Studio: ``dipnet-studio`` or ``python -m app``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from .services.models import ModelLibrary
    from .settings import AppPaths, SettingsStore
    from .theme import ThemeManager
    from .views.main_window import ICON
    from .window import MainWindow

    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("DIPNet Studio")
    app.setOrganizationName("DIPNet")
    app.setDesktopFileName("dipnet-studio")
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


def main(argv: list[str] | None = None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    if argv[:1] == ["--train-runner"]:
        # A frozen bundle starts its Train tab's child process through its own executable.
        from .train_runner import main as train_runner_main

        return train_runner_main(argv[1:])
    parser = argparse.ArgumentParser(prog="dipnet-studio")
    parser.add_argument("image", nargs="?", help="an image to open")
    desktop = parser.add_mutually_exclusive_group()
    desktop.add_argument("--install-desktop", action="store_true",
                         help="add DIPNet Studio to the desktop menu and 'Open with' for images, then exit")
    desktop.add_argument("--uninstall-desktop", action="store_true",
                         help="remove what --install-desktop added, then exit")
    args = parser.parse_args(argv)
    if args.install_desktop or args.uninstall_desktop:
        from .desktop_integration import install_desktop, uninstall_desktop

        done = install_desktop() if args.install_desktop else uninstall_desktop()
        verb = "installed" if args.install_desktop else "removed"
        for path in done:
            print(f"{verb} {path}")
        return 0
    # Qt aborts the process (uncatchable) when its xcb plugin lacks system libraries: check first.
    from .xcb_check import check_xcb, xcb_will_be_used

    hint = check_xcb() if xcb_will_be_used() else None
    if hint:
        print(hint, file=sys.stderr)
        return 1
    app, window = build_app(sys.argv[:1])
    window.show()  # type: ignore[attr-defined]
    if args.image:
        window.upscale.open_path(Path(args.image))  # type: ignore[attr-defined]
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
