"""Cooperative cancellation shared by the tiling engine and the trainer.

Long work checks a :class:`CancelToken` between tiles or steps; the GUI or the
CLI's Ctrl-C handler sets it from another thread.
"""

from __future__ import annotations

import threading

# One class for the whole core (dipnet_core.errors); importable from here as it always was.
from .errors import Cancelled

__all__ = ["CancelToken", "Cancelled", "check"]


class CancelToken:
    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def check(token: CancelToken | None) -> None:
    """Raise :class:`Cancelled` if ``token`` is set; a ``None`` token never cancels."""
    if token is not None:
        token.raise_if_cancelled()
