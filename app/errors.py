"""Readable error messages, and a log file for the unexpected ones.

Expected problems (an unreadable image, a model that does not load, a full
disk) become one sentence naming the file and the cause, shown inline. Anything
else is a bug: its traceback goes to the log file in the user's folder and the
user sees one dialog per kind of error (never a storm of dialogs from a loop).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from dipnet_core.cancel import Cancelled

log = logging.getLogger("dipnet_studio")


class NoModelError(Exception):
    """No usable model is installed (a normal state on a fresh install without the built-in model)."""

    def __init__(self) -> None:
        super().__init__("No model installed — import a model file in Models & Settings.")


def _expected_types() -> tuple[type[BaseException], ...]:
    # Imported lazily: colleagues' modules may be absent in a partial checkout, and the
    # error path must never itself fail on an import.
    types: list[type[BaseException]] = [OSError, MemoryError, ValueError, Cancelled, NoModelError]
    for mod, names in (
        ("dipnet_core.errors", ("DipnetError",)),  # the core's one hierarchy; the rest are kept for clarity
        ("dipnet_core.io", ("ImageReadError", "ImageWriteError")),
        ("dipnet_core.models", ("ModelLoadError",)),
        ("dipnet_core.train.config", ("ConfigError",)),
        ("dipnet_core.engine", ("BackendUnavailable",)),
    ):
        try:
            module = __import__(mod, fromlist=list(names))
        except Exception:  # noqa: BLE001 - any import failure just means "not expected"
            continue
        types.extend(getattr(module, n) for n in names if hasattr(module, n))
    return tuple(types)


def is_expected(exc: BaseException) -> bool:
    """True for problems caused by the user's files or machine, not by a bug in the app."""
    return isinstance(exc, _expected_types())


def user_message(exc: BaseException, context: str = "") -> str:
    """One readable sentence: what failed, on which file, and why."""
    prefix = f"{context}: " if context else ""
    if isinstance(exc, Cancelled):
        return f"{prefix}cancelled"
    if isinstance(exc, MemoryError):
        return f"{prefix}not enough memory. Try a smaller tile size in Settings, or a smaller image."
    if isinstance(exc, FileNotFoundError):
        return f"{prefix}file not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"{prefix}permission denied: {exc.filename or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{prefix}{exc.strerror}{where}"
    text = str(exc).strip() or type(exc).__name__
    return f"{prefix}{text}"


def setup_logging(log_file: Path) -> None:
    """Log to a rotating file in the user's log folder (and warnings to stderr)."""
    root = logging.getLogger()
    if any(getattr(h, "_dipnet", False) for h in root.handlers):
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        log_file, maxBytes=1_000_000, backupCount=2, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._dipnet = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)


class ErrorReporter:
    """Logs unexpected exceptions and tells the user once per exception type.

    ``show`` is injected (a message box in the app, a list in tests) so this
    class needs no widgets and can be called from the excepthooks.
    """

    def __init__(self, log_file: Path, show: Callable[[str, str], None]) -> None:
        self.log_file = log_file
        self._show = show
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def report(self, exc: BaseException, context: str = "") -> None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error("unexpected error%s\n%s", f" ({context})" if context else "", tb)
        key = f"{type(exc).__module__}.{type(exc).__qualname__}"
        with self._lock:
            if key in self._reported:
                return
            self._reported.add(key)
        what = f" while {context}" if context else ""
        self._show(
            "Unexpected error",
            f"Something went wrong{what}: {type(exc).__name__}: {exc}\n\n"
            f"This is a bug in DIPNet Studio. Details were written to\n{self.log_file}\n"
            "Further errors of this kind are only logged.",
        )

    def install(self) -> None:
        """Route uncaught exceptions (GUI thread and plain threads) to :meth:`report`."""

        def hook(t: type[BaseException], e: BaseException, tb: TracebackType | None) -> None:
            if issubclass(t, KeyboardInterrupt):
                sys.__excepthook__(t, e, tb)
                return
            self.report(e.with_traceback(tb))

        def thread_hook(args: threading.ExceptHookArgs) -> None:
            if args.exc_value is not None:
                self.report(args.exc_value, f"in thread {args.thread.name if args.thread else '?'}")

        sys.excepthook = hook
        threading.excepthook = thread_hook
