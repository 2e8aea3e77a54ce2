"""Reference cycles are collected on the GUI thread, never inside a worker (a Qt object destroyed
off its thread crashes the process: CI's segmentation fault)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from pathlib import Path

from app.gc_policy import GuiThreadGarbageCollector
from app.workers import start_task


class _Cycle:
    """A reference cycle whose finalizer records the thread that collected it."""

    def __init__(self, seen: list[int]) -> None:
        self.me = self
        self.seen = seen

    def __del__(self) -> None:
        self.seen.append(threading.get_ident())


def _churn(token: object, report: object) -> list[list[int]]:
    # Kept alive (returned) so that the net count passes generation 0's threshold many times over:
    # with automatic collection on, this worker would have collected the cycle itself.
    return [[i] for i in range(50_000)]


def test_a_worker_that_allocates_does_not_collect_and_the_gui_thread_does(qtbot: object, qapp: object) -> None:
    collector = GuiThreadGarbageCollector(interval_ms=20)
    collector.install()
    try:
        assert not gc.isenabled() and collector.installed
        seen: list[int] = []
        _Cycle(seen)  # unreachable at once, freed only by the cycle collector
        results: list[object] = []
        task = start_task(_churn, "churn", on_result=results.append)
        assert task.wait(30_000)  # blocks the GUI thread: its timer cannot fire meanwhile
        assert gc.get_count()[0] > gc.get_threshold()[0]
        assert seen == [], "the worker thread collected the cycle"
        qtbot.waitUntil(lambda: bool(results) and bool(seen), timeout=5000)  # type: ignore[attr-defined]
        assert seen == [threading.get_ident()]
        assert sum(collector.collections) >= 1
    finally:
        collector.uninstall()
        collector.deleteLater()


def test_uninstall_restores_automatic_collection_and_collects_once(qapp: object) -> None:
    # The app fixture already holds one collector; a second one nests and restores its state.
    outer_enabled = gc.isenabled()
    collector = GuiThreadGarbageCollector().install()
    seen: list[int] = []
    _Cycle(seen)
    assert seen == []
    collector.uninstall()
    assert seen == [threading.get_ident()]
    assert gc.isenabled() == outer_enabled


def test_collect_if_due_follows_the_thresholds(qapp: object) -> None:
    collector = GuiThreadGarbageCollector().install()
    try:
        gc.collect()
        assert collector.collect_if_due() is None  # nothing allocated since
        junk = [[i] for i in range(gc.get_threshold()[0] * 3)]
        assert collector.collect_if_due() == 0
        del junk
    finally:
        collector.uninstall()


def test_the_app_installs_it(studio_home: object, qapp: object) -> None:
    from app.startup import build_app

    from dipnet_core.engine.backends import onnxruntime_backend

    app, window = build_app([])
    try:
        assert onnxruntime_backend._spinning is False  # the GUI keeps its core while workers wait
        collectors = [c for c in app.children() if isinstance(c, GuiThreadGarbageCollector)]
        assert len(collectors) == 1 and collectors[0].installed
        assert not gc.isenabled()
        build_app([])  # a second window (the screenshot script) does not add a second timer
        assert len([c for c in app.children() if isinstance(c, GuiThreadGarbageCollector)]) == 1
    finally:
        onnxruntime_backend.set_thread_spinning(True)  # the process-wide default, for later tests
        for c in app.children():
            if isinstance(c, GuiThreadGarbageCollector):
                c.uninstall()
                c.setParent(None)
                c.deleteLater()
        window.close()  # type: ignore[attr-defined]
        window.deleteLater()  # type: ignore[attr-defined]


_WIDGETS_IN_CYCLES = r"""
import os, sys
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from app.gc_policy import GuiThreadGarbageCollector

qt_app = QApplication([])
GuiThreadGarbageCollector(parent=qt_app).install()


class Dialog(QWidget):  # a closed window still in a reference cycle: only the collector frees it
    def __init__(self):
        super().__init__()
        self.me = self
        self.labels = [QLabel(str(i), self) for i in range(50)]
        self.show()


for _ in range(200):
    Dialog()


class Worker(QThread):
    def run(self):
        self.kept = [[i] for i in range(200_000)]  # would trigger collection in this thread


w = Worker()
w.start()
w.wait()
qt_app.processEvents()
print("survived")
"""


def test_widgets_left_in_cycles_survive_a_busy_worker(tmp_path: Path) -> None:
    # Without the policy this process hangs or crashes (CI: segmentation fault) when the worker's
    # allocations trigger a collection that destroys the widgets off the GUI thread.
    script = tmp_path / "cycles.py"
    script.write_text(_WIDGETS_IN_CYCLES)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, str(script)], check=False, capture_output=True, text=True, timeout=120,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "survived"
