"""Background work for the GUI: one QThread per task, results back through signals (touches no widget).

Why a small QThread subclass instead of superqt's ``thread_worker``: superqt's
worker wraps every run in ``warnings.catch_warnings()``, which mutates the
process-wide warning filters from a worker thread (not thread safe, and it
fights pytest's ``filterwarnings = error``). Ours does not touch global state;
it only adds what the app needs: a :class:`~dipnet_core.cancel.CancelToken` per
task and a ``progress`` signal fed either by the task's ``report`` callback or by
the values a generator task yields (the core's ``upscale_iter`` style).

Rules the app follows: a task computes and returns plain data (numpy arrays,
``QImage``, dataclasses); slots on the GUI thread paint. Signals emitted from
:meth:`Task.run` are queued to receivers living on the GUI thread.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Generator
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal

from dipnet_core.cancel import Cancelled, CancelToken

log = logging.getLogger(__name__)

# fn(token, report) -> result, or a generator yielding progress and returning the result.
TaskFn = Callable[[CancelToken, Callable[[Any], None]], Any]

# Python references keep running tasks alive: a QThread collected while running aborts the process.
_live: set[Task] = set()


class Task(QThread):
    """Runs ``fn`` off the GUI thread. Exactly one of result/failed/cancelled, then ``done``.

    ``cancelled`` means ``fn`` raised :class:`Cancelled`.
    """

    progress = Signal(object)
    result = Signal(object)
    failed = Signal(object)  # the exception instance
    cancelled = Signal()
    done = Signal()

    def __init__(self, fn: TaskFn, name: str = "task", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fn = fn
        self.token = CancelToken()
        self.setObjectName(name)
        self.outcome: str = "pending"  # pending | running | result | failed | cancelled
        self.finished.connect(self._release)

    def start(self, priority: QThread.Priority = QThread.Priority.InheritPriority) -> None:  # type: ignore[override]
        _live.add(self)
        self.outcome = "running"
        super().start(priority)

    def cancel(self) -> None:
        self.token.cancel()

    def run(self) -> None:  # runs on the worker thread
        try:
            out = self._fn(self.token, self.progress.emit)
            if inspect.isgenerator(out):
                out = self._drain(out)
            # A task that returns normally delivers its result even if cancel was requested
            # meanwhile (e.g. a batch returns a report marked cancelled); work that stopped
            # early raises Cancelled instead.
            self.outcome = "result"
            self.result.emit(out)
        except Cancelled:
            self.outcome = "cancelled"
            self.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the GUI, never vanish
            self.outcome = "failed"
            self.failed.emit(exc)
        finally:
            self.done.emit()

    def _drain(self, gen: Generator[Any, None, Any]) -> Any:
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                return stop.value
            self.progress.emit(item)

    def _release(self) -> None:
        # No deleteLater(): controllers may still hold the object (to read ``outcome``);
        # Python frees it with its last reference, by then the thread has ended.
        _live.discard(self)


def _guarded(slot: Callable[..., None], owner: QObject) -> Callable[..., None]:
    """``slot``, skipped once ``owner``'s C++ object is gone.

    Plain callables (lambdas, bound methods of Python objects) are not QObject slots, so Qt does
    not disconnect them when their owner is deleted: a queued result could otherwise reach a
    controller whose window was closed and deleted ("Signal source has been deleted").
    """

    def call(*args: Any) -> None:
        if shiboken6.isValid(owner):
            slot(*args)

    return call


def start_task(
    fn: TaskFn,
    name: str = "task",
    *,
    owner: QObject | None = None,
    on_result: Callable[[Any], None] | None = None,
    on_failed: Callable[[BaseException], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
    on_cancelled: Callable[[], None] | None = None,
    on_done: Callable[[], None] | None = None,
) -> Task:
    """Create, connect and start a :class:`Task` in one call.

    With an ``owner`` (the controller whose slots these are), deleting the owner cancels the task
    and its late signals are dropped instead of reaching a deleted object.
    """
    task = Task(fn, name)
    for sig, slot in (
        (task.result, on_result),
        (task.failed, on_failed),
        (task.progress, on_progress),
        (task.cancelled, on_cancelled),
        (task.done, on_done),
    ):
        if slot is not None:
            sig.connect(_guarded(slot, owner) if owner is not None else slot)
    if owner is not None:
        token = task.token  # not the task itself: the connection must not keep a finished task alive
        owner.destroyed.connect(lambda *_: token.cancel())
    task.start()
    return task


def shutdown(timeout_ms: int = 5000) -> bool:
    """Cancel every task and wait for them (used when the app quits); True if all stopped."""
    tasks = list(_live)
    for t in tasks:
        t.cancel()
    ok = True
    for t in tasks:
        if not t.wait(timeout_ms):
            log.warning("task %s did not stop within %d ms", t.objectName(), timeout_ms)
            ok = False
    return ok
