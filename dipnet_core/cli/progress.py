"""Plain-text batch progress for the terminal."""

from __future__ import annotations

import time
from typing import IO, Any

from .common import fmt_duration


class ProgressPrinter:
    """Plain-text batch progress on ``stream``: one redrawn line on a TTY, periodic lines otherwise."""

    def __init__(self, stream: IO[str], tty: bool | None = None, interval_s: float = 5.0,
                 redraw_s: float = 0.1) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else redraw_s
        self._last = 0.0
        self._width = 0
        self._name = ""

    def _line(self, progress: Any) -> str:
        pct = int(progress.fraction * 100)
        bar_w = 24
        filled = int(progress.fraction * bar_w)
        bar = "#" * filled + "-" * (bar_w - filled)
        return (f"{pct:3d}% [{bar}] {progress.finished}/{progress.total} files  "
                f"elapsed {fmt_duration(progress.elapsed_s)}  ETA {fmt_duration(progress.eta_s)}"
                + (f"  {self._name}" if self._name else ""))

    def show(self, progress: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        line = self._line(progress)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A permanent line (failures, summaries) that does not garble the redrawn bar."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def __call__(self, event: Any) -> None:
        from ..batch import ItemDone, ItemFailed, ItemProgress, ItemSkipped, ItemStarted

        if isinstance(event, ItemStarted):
            self._name = event.path.name
            self.show(event.progress)
        elif isinstance(event, ItemProgress):
            self.show(event.progress)
        elif isinstance(event, ItemFailed):
            self.message(f"failed: {event.error}")
            self.show(event.progress, force=self.tty)
        elif isinstance(event, (ItemDone, ItemSkipped)):
            if isinstance(event, ItemDone) and event.warning:
                self.message(f"warning: {event.warning}")
            last = event.progress.finished == event.progress.total
            self.show(event.progress, force=last or self.tty)
