"""A GUI responsiveness probe: how late does a 10 ms timer fire while work runs?

If the event loop is blocked (by work on the GUI thread, or by a worker that
hogs the GIL), timer callbacks arrive late; the largest gap between two
callbacks is the worst freeze a user would have felt.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer


@dataclass
class GapStats:
    samples: int
    worst_ms: float
    p99_ms: float
    mean_ms: float
    interval_ms: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "samples": self.samples,
            "worst_gap_ms": round(self.worst_ms, 2),
            "p99_gap_ms": round(self.p99_ms, 2),
            "mean_gap_ms": round(self.mean_ms, 2),
            "timer_interval_ms": self.interval_ms,
        }


class GapProbe(QObject):
    def __init__(self, interval_ms: int = 10, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)
        self._last: float | None = None
        self.gaps_ms: list[float] = []

    def start(self) -> None:
        self.gaps_ms.clear()
        self._last = None
        self._timer.start()

    def stop(self) -> GapStats:
        self._timer.stop()
        return self.stats()

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps_ms.append((now - self._last) * 1000.0)
        self._last = now

    def stats(self) -> GapStats:
        g = sorted(self.gaps_ms) or [0.0]
        return GapStats(
            len(self.gaps_ms),
            g[-1],
            g[min(len(g) - 1, int(0.99 * len(g)))],
            sum(g) / len(g),
            self._timer.interval(),
        )
