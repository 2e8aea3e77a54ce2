"""Start DIPNet Studio: ``dipnet-studio`` or ``python -m app``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_app(argv: list[str] | None = None) -> tuple[object, object]:
    """Create the QApplication and the main window (shared by main() and the screenshot script)."""
    from .startup import build_app as build

    return build(argv)


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
    try:
        from .startup import build_app as build
    except ImportError as exc:  # Qt itself needs a system library this machine lacks
        from .xcb_check import hint_for_import_error

        qt_hint = hint_for_import_error(exc)
        if qt_hint is None:
            raise
        print(qt_hint, file=sys.stderr)
        return 1
    app, window = build(sys.argv[:1])
    window.show()  # type: ignore[attr-defined]
    if args.image:
        window.upscale.open_path(Path(args.image))  # type: ignore[attr-defined]
    return app.exec()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
