"""What every controller shares: settings, the model library, the engine cache, and a base class.

A service for controllers (no widgets); views never import it.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from ..errors import ErrorReporter, NoModelError, is_expected, user_message
from ..services.models import ModelEntry, ModelLibrary
from ..settings import SettingsStore
from .engine import Engine, EngineCache, EngineKey


class AppContext(QObject):
    """Passed to controllers instead of the main window: exactly what they need, nothing more."""

    engineChanged = Signal()  # default model or inference settings changed

    def __init__(self, store: SettingsStore, library: ModelLibrary, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.library = library
        self.cache = EngineCache()
        library.changed.connect(self.engineChanged)

    @property
    def settings(self):
        return self.store.settings

    def current_model(self) -> ModelEntry | None:
        return self.library.default_entry()

    def engine_key(self) -> EngineKey:
        """Read on the GUI thread when a job starts; raises NoModelError if nothing is installed."""
        entry = self.current_model()
        if entry is None:
            raise NoModelError()
        s = self.settings
        return EngineKey(entry.path, s.backend, s.device, s.tile_size)

    def engine(self, key: EngineKey) -> Engine:
        """Build or reuse the engine; call from a worker thread (the first build may take a moment)."""
        return self.cache.get(key)

    def backend_description(self) -> str:
        """The backend in use, e.g. "torch CPU bf16 (…)" once an engine ran, else the settings."""
        engine = self.cache.current()
        if engine is not None:
            from .engine import int8_note

            try:
                return engine.backend.describe() + int8_note(engine.backend, full=True)
            except NotImplementedError:
                return f"{engine.backend.name} on {engine.backend.device}"
        s = self.settings
        return f"{s.backend} on {s.device} (nothing has run yet)"

    def inference_settings_changed(self) -> None:
        self.store.save()
        self.engineChanged.emit()


class TabController(QObject):
    """Base of the tab controllers: the tab's view, the shared :class:`AppContext` and the error reporter."""

    def __init__(self, view: Any, ctx: AppContext, reporter: ErrorReporter | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.ctx = ctx
        self.reporter = reporter

    def failure_message(self, exc: BaseException, context: str) -> str:
        """The sentence to show the user; ``exc`` also goes to the reporter if it is a bug."""
        if not is_expected(exc) and self.reporter is not None:
            self.reporter.report(exc, context)
        return user_message(exc, context)
