"""Python's cycle collector runs on the GUI thread only.

Why: automatic collection runs in whichever thread happens to allocate past the threshold. When
that is a worker thread and the garbage holds a Qt wrapper (a widget or QObject from a closed
dialog, a dropped preview), its C++ destructor runs off the thread that owns it and the process
dies with a segmentation fault (seen in CI: a preview worker building a model collected a
window's leftovers). Reference counting still frees almost everything at once; only reference
cycles wait, and this collector clears them from a GUI-thread timer using Python's own
generation thresholds, so memory behaves as before.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer


class GuiThreadGarbageCollector(QObject):
    """Disables automatic collection and collects from a timer on the thread it lives on."""

    def __init__(self, interval_ms: int = 500, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self.collections = [0, 0, 0]  # per generation, for diagnostics and tests

    @property
    def installed(self) -> bool:
        return self._timer.isActive()

    def install(self) -> GuiThreadGarbageCollector:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer.start()
        return self

    def uninstall(self) -> None:
        """Restores automatic collection, after one full collection here (not in some worker)."""
        self._timer.stop()
        gc.collect()
        if self._was_enabled:
            gc.enable()

    def collect_if_due(self) -> int | None:
        """Collects the oldest generation whose count passed its threshold, as gc itself would."""
        counts = gc.get_count()
        thresholds = gc.get_threshold()
        for generation in (2, 1, 0):
            threshold = thresholds[generation]
            if threshold and counts[generation] > threshold:
                gc.collect(generation)
                self.collections[generation] += 1
                return generation
        return None
