"""Persistent user settings and the app's folders.

Folders come from platformdirs (per-user config and data dirs). Setting the
environment variable ``DIPNET_STUDIO_HOME`` puts every folder under one root
instead; tests use it to keep a run away from the real user profile, and it
also gives a "portable" install.

Settings are a plain dataclass saved as JSON. Loading is forgiving on purpose:
an unknown key (from a newer version) is dropped and a wrong-typed value falls
back to its default, so a damaged file never stops the app from starting.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from dipnet_core.io.atomic import atomic_write_text

APP_NAME = "dipnet-studio"
ENV_HOME = "DIPNET_STUDIO_HOME"
MAX_RECENT = 10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppPaths:
    """Where the app keeps its settings, models, logs and training runs."""

    config_dir: Path
    data_dir: Path
    log_dir: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def models_index(self) -> Path:
        return self.data_dir / "models.json"

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "dipnet-studio.log"

    def ensure(self) -> AppPaths:
        for d in (self.config_dir, self.data_dir, self.log_dir, self.models_dir, self.runs_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    @classmethod
    def default(cls) -> AppPaths:
        home = os.environ.get(ENV_HOME)
        if home:
            root = Path(home).expanduser()
            return cls(config_dir=root / "config", data_dir=root / "data", log_dir=root / "logs")
        return cls(
            config_dir=platformdirs.user_config_path(APP_NAME, appauthor=False),
            data_dir=platformdirs.user_data_path(APP_NAME, appauthor=False),
            log_dir=platformdirs.user_log_path(APP_NAME, appauthor=False),
        )


@dataclass
class Settings:
    """Everything the app remembers between sessions (saved as JSON)."""

    # Inference
    default_model: str = ""  # model id from the library ("builtin" or a file name in models_dir)
    backend: str = "auto"  # auto | torch | onnx
    device: str = "auto"  # auto | cpu | cuda
    tile_size: int = 0  # 0 = let the engine choose
    self_ensemble: bool = False  # Upscale tab "Best quality": x8 self-ensemble, 8x slower
    theme: str = "system"  # system | light | dark
    # Saving
    output_format: str = "png"
    quality: int = 95
    name_template: str = "{stem}_x{scale}"
    last_open_dir: str = ""
    last_save_dir: str = ""
    recent_files: list[str] = field(default_factory=list)
    # Viewer
    view_mode: str = "split"  # split | side
    # Batch
    batch_inputs: list[str] = field(default_factory=list)
    batch_output_dir: str = ""
    batch_recursive: bool = True
    batch_skip_existing: bool = True  # re-running a batch never overwrites earlier outputs unasked
    batch_self_ensemble: bool = False  # Batch tab "Best quality" (separate: a batch is often much larger)
    # Training
    train_dirs: list[str] = field(default_factory=list)
    train_val_dir: str = ""
    train_preset: str = "adapt"
    train_name: str = "my-dipnet"
    # Window
    window_geometry: str = ""
    current_tab: int = 0

    def add_recent(self, path: str | Path) -> None:
        p = str(path)
        self.recent_files = [p] + [r for r in self.recent_files if r != p]
        del self.recent_files[MAX_RECENT:]


def _coerce(defaults: Settings, raw: dict[str, Any]) -> Settings:
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name not in raw:
            continue
        v = raw[f.name]
        default = getattr(defaults, f.name)
        # bool is an int subclass: check it first so "true" never becomes 1 and back.
        if isinstance(default, bool):
            ok = isinstance(v, bool)
        elif isinstance(default, int):
            ok = isinstance(v, int) and not isinstance(v, bool)
        elif isinstance(default, list):
            ok = isinstance(v, list) and all(isinstance(x, str) for x in v)
        else:
            ok = isinstance(v, type(default))
        if ok:
            values[f.name] = v
        else:
            log.warning("settings: ignoring %s=%r (expected %s)", f.name, v, type(default).__name__)
    return dataclasses.replace(defaults, **values)


class SettingsStore:
    """Loads and saves :class:`Settings` as JSON (written atomically)."""

    def __init__(self, paths: AppPaths) -> None:
        self.paths = paths
        self.settings = self.load()

    def load(self) -> Settings:
        f = self.paths.settings_file
        try:
            raw = json.loads(f.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Settings()
        except (OSError, ValueError) as exc:
            log.warning("settings file %s is unreadable (%s); using defaults", f, exc)
            return Settings()
        if not isinstance(raw, dict):
            return Settings()
        return _coerce(Settings(), raw)

    def save(self) -> None:
        f = self.paths.settings_file
        f.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write_text(f, json.dumps(dataclasses.asdict(self.settings), indent=2))
        except OSError as exc:  # a read-only profile must not crash the app
            log.error("cannot save settings to %s: %s", f, exc)
