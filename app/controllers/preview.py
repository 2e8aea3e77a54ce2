"""Latest-wins scheduling of live-preview requests (controller helper: runs workers, touches no widget).

The viewer asks for a preview of whatever region is visible each time the
user pans or zooms. Only the newest view matters, so:

* a request after a quiet spell (none in the last ``debounce_ms``) starts at once, and so does
  one marked ``immediate`` (a newly opened image): a single change is not kept waiting;
* a request that follows another within ``debounce_ms`` (~150 ms) is debounced: the rest of a
  burst of wheel events or drag moves makes one request, sent when the burst ends;
* a new request immediately cancels the running one (its token is set; the core stops at
  the next tile, and a result that still arrives is dropped);
* at most one request waits: a newer one replaces it (the older is "superseded");
* a result is applied only if it belongs to the newest request.

A compute function may also be a generator: each value it yields (one finished piece of the
view) is emitted through :attr:`PreviewScheduler.ready` at once, so the view fills in piece by
piece; its return value, if not None, is emitted last.

Every request's fate is kept in :attr:`PreviewScheduler.outcomes` ("pending",
"running", "superseded", "cancelled", "applied", "failed") for tests and debugging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from dipnet_core.cancel import CancelToken

from ..workers import Task, start_task

ComputeFn = Callable[[Any, CancelToken], Any]


class PreviewScheduler(QObject):
    """Runs at most one preview computation at a time, newest request wins; see the module docstring."""

    ready = Signal(int, object, object)  # request id, request payload, result (or one piece of it)
    failed = Signal(int, object)  # request id, exception
    idle = Signal()  # nothing running and nothing pending

    def __init__(self, compute: ComputeFn, debounce_ms: int = 150, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._compute = compute
        self._last_request_at = -float("inf")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._start_pending)
        self._next_id = 0
        self._latest = 0
        self._pending: tuple[int, Any] | None = None
        self._running: tuple[int, Task] | None = None
        self.outcomes: dict[int, str] = {}
        self._requested_at: dict[int, float] = {}
        # Request -> painted, for applied requests (includes the debounce): the user-visible latency.
        self.latencies_ms: list[float] = []

    @property
    def debounce_ms(self) -> int:
        return self._timer.interval()

    @debounce_ms.setter
    def debounce_ms(self, ms: int) -> None:
        self._timer.setInterval(ms)

    @property
    def busy(self) -> bool:
        return self._running is not None or self._pending is not None

    def request(self, payload: Any, immediate: bool = False) -> int:
        """Ask for ``payload``'s preview; it replaces (and cancels) every earlier request.

        It starts at once (as soon as a cancelled computation has stopped) when ``immediate``
        or when no request came in the last ``debounce_ms``; otherwise when ``debounce_ms`` pass
        without another request.
        """
        now = time.perf_counter()
        quiet = (now - self._last_request_at) * 1000 >= self.debounce_ms
        self._last_request_at = now
        self._next_id += 1
        rid = self._latest = self._next_id
        if self._pending is not None:
            self.outcomes[self._pending[0]] = "superseded"
        self._pending = (rid, payload)
        self.outcomes[rid] = "pending"
        self._requested_at[rid] = now
        self._cancel_running()
        if immediate or quiet:
            self._timer.stop()
            self._start_pending()  # or, while a cancelled one still runs, from its `done`
        else:
            self._timer.start()  # (re)starts the debounce window
        return rid

    def cancel_all(self) -> None:
        """Drop everything (a new image was opened, or the full result made previews moot)."""
        self._timer.stop()
        if self._pending is not None:
            self.outcomes[self._pending[0]] = "superseded"
            self._pending = None
        self._latest = self._next_id + 1  # no running result can match any more
        self._cancel_running()

    def shutdown(self) -> None:
        """Stop for good (the window is closing): nothing pending, the running computation cancelled."""
        self.cancel_all()
        self._pending = None

    def _cancel_running(self) -> None:
        if self._running is not None:
            rid, task = self._running
            task.cancel()
            self.outcomes[rid] = "cancelled"

    def _start_pending(self) -> None:
        if self._pending is None or self._running is not None:
            return  # a running task's `done` starts the pending one
        rid, payload = self._pending
        self._pending = None
        self.outcomes[rid] = "running"
        task = start_task(
            lambda token, _report: self._compute(payload, token),
            f"preview-{rid}",
            owner=self,
            on_result=lambda result: self._on_result(rid, payload, result),
            on_progress=lambda piece: self._on_piece(rid, payload, piece),
            on_failed=lambda exc: self._on_failed(rid, exc),
            on_done=self._on_done,
        )
        self._running = (rid, task)

    def _is_stale(self, rid: int) -> bool:
        return rid != self._latest or self.outcomes.get(rid) == "cancelled"

    def _on_piece(self, rid: int, payload: Any, piece: Any) -> None:
        if not self._is_stale(rid):
            self.ready.emit(rid, payload, piece)

    def _on_result(self, rid: int, payload: Any, result: Any) -> None:
        if self._is_stale(rid):
            self.outcomes[rid] = "cancelled"
            return
        self.outcomes[rid] = "applied"
        self.latencies_ms.append(
            (time.perf_counter() - self._requested_at.pop(rid, time.perf_counter())) * 1000
        )
        if result is not None:
            self.ready.emit(rid, payload, result)

    def _on_failed(self, rid: int, exc: BaseException) -> None:
        self.outcomes[rid] = "failed"
        if rid == self._latest:
            self.failed.emit(rid, exc)

    def _on_done(self) -> None:
        self._running = None
        if self._pending is not None and not self._timer.isActive():
            self._start_pending()
        elif self._pending is None:
            self.idle.emit()
