"""Services shared by every controller: settings, the model library and the engine cache."""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..errors import NoModelError
from ..settings import SettingsStore
from .engine import Engine, EngineCache, EngineKey
from .models import ModelEntry, ModelLibrary


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

    def inference_settings_changed(self) -> None:
        self.store.save()
        self.engineChanged.emit()
