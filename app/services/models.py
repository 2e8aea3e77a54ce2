"""The model library (a service): the built-in model plus the files in the user's models folder.

Touches the models folder, its index and the settings' default model; no widgets. Views get
:class:`ModelEntry` values from controllers and never import this module at run time.

Model files live in ``<user data>/models``; display names, measured PSNR and
speed live in a small JSON index beside it (``models.json``), so renaming never
touches the weights and a hand-copied file still shows up.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from dipnet_core.io.atomic import atomic_write_text
from dipnet_core.models import ModelLoadError, load_model, read_descriptor
from dipnet_core.models.loader import MODEL_SUFFIXES
from dipnet_core.resources import BUILTIN_MODELS, builtin_model_by_name, builtin_model_path

from ..settings import SettingsStore

log = logging.getLogger(__name__)

BUILTIN_ID = "builtin"  # the default (clean) built-in; kept as is, settings name it as default


def builtin_id(short_name: str) -> str:
    """Library id of the built-in model ``short_name`` (a key of ``BUILTIN_MODELS``)."""
    return BUILTIN_ID if short_name == "clean" else f"{BUILTIN_ID}-{short_name}"


@dataclass
class ModelEntry:
    """One model of the library as the views show it (plain data)."""

    id: str
    path: Path
    name: str
    builtin: bool = False
    arch: str = ""
    scale: int = 0
    params: int = 0
    widths: str = ""
    psnr: float | None = None  # validation PSNR-Y recorded by the training run
    validation_set: str = ""  # what that validation was on, when the model card says
    # Standard benchmark scores from the model card (``<name>.card.json`` beside the file), e.g.
    # [{"set": "Set5", "psnr_y": 30.941, ...}]: the figure to compare models by.
    benchmarks: list[dict[str, Any]] = field(default_factory=list)
    speed_mps: float | None = None
    # Last "Measure quality" result: {"folder", "n_images", "psnr_y", "ssim_y", "bicubic_psnr_y"}.
    quality: dict[str, Any] | None = None
    origin: str = ""  # "built-in", "trained", "imported"
    builtin_name: str = ""  # "clean" or "photo" for the built-ins with a short name
    use_for: str = ""  # one line: what images a built-in model is for
    license: str = ""
    error: str = ""  # why the file cannot be used, if it cannot

    @property
    def usable(self) -> bool:
        return not self.error


def _widths_label(config: dict[str, Any] | None) -> str:
    if not config:
        return ""
    try:
        from dipnet_core.models import DIPNetConfig

        return DIPNetConfig.from_dict(config).widths_label()
    except (KeyError, TypeError, ValueError):
        return ""


def card_path(model: Path) -> Path:
    """Where a model's machine-readable card lives: ``<stem>.card.json`` beside the file."""
    return model.with_name(model.stem + ".card.json")


def read_card(model: Path) -> dict[str, Any]:
    """The model card's data, or {} when there is none or it is unreadable (it is informative only)."""
    try:
        data = json.loads(card_path(model).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("model card %s unreadable (%s); ignored", card_path(model), exc)
        return {}
    return data if isinstance(data, dict) else {}


def stored_comparison(model_path: str | Path) -> dict[str, Any] | None:
    """The comparison a training run recorded in the model file; None for any other file (or when
    the file cannot be read: importing or loading it reports that problem itself)."""
    try:
        return read_descriptor(model_path).comparison  # header only: no torch (the slim edition has none)
    except Exception as exc:  # noqa: BLE001 - no comparison is shown; the load path reports bad files
        log.info("no stored comparison in %s (%s)", model_path, exc)
        return None


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "model"


class ModelLibrary(QObject):
    """Lists, imports, installs, renames, deletes models and remembers the default."""

    changed = Signal()

    def __init__(self, store: SettingsStore, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._paths = store.paths
        self._paths.models_dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, dict[str, Any]] = self._load_index()
        self._entries: list[ModelEntry] = []
        self.refresh()

    # ------------------------------------------------------------------ index
    def _load_index(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self._paths.models_index.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("model index %s unreadable (%s); starting fresh", self._paths.models_index, exc)
            return {}

    def _save_index(self) -> None:
        atomic_write_text(self._paths.models_index, json.dumps(self._index, indent=2))

    # ------------------------------------------------------------------ listing
    def _entry_for(self, id_: str, path: Path, builtin: bool) -> ModelEntry:
        meta = self._index.get(id_, {})
        entry = ModelEntry(
            id=id_,
            path=path,
            name=meta.get("name") or path.stem,
            builtin=builtin,
            origin="built-in" if builtin else meta.get("origin", "imported"),
        )
        try:
            d = read_descriptor(path)
        except ModelLoadError as exc:
            entry.error = exc.reason
            return entry
        entry.arch, entry.scale, entry.params = d.arch, d.scale, d.params
        entry.widths = _widths_label(d.config)
        entry.license = d.license
        if not meta.get("name") and d.name:
            entry.name = d.name
        psnr = meta.get("psnr", d.val_psnr_y)
        entry.psnr = float(psnr) if isinstance(psnr, (int, float)) else None
        card = read_card(path)
        entry.benchmarks = [
            b for b in card.get("benchmarks", [])
            if isinstance(b, dict) and isinstance(b.get("set"), str) and isinstance(b.get("psnr_y"), (int, float))
        ]
        if isinstance(card.get("validation_set"), str):
            entry.validation_set = card["validation_set"]
        speed = meta.get("speed_mps")
        entry.speed_mps = float(speed) if isinstance(speed, (int, float)) else None
        quality = meta.get("quality")
        entry.quality = quality if isinstance(quality, dict) and "psnr_y" in quality else None
        return entry

    def refresh(self) -> None:
        entries: list[ModelEntry] = []
        builtin = builtin_model_path()
        if builtin is not None:
            entries.append(self._entry_for(BUILTIN_ID, builtin, True))
            if builtin == builtin_model_by_name("clean"):
                entries[-1].builtin_name, entries[-1].use_for = "clean", BUILTIN_MODELS["clean"][1]
            for short, (_stem, use_for) in BUILTIN_MODELS.items():
                path = builtin_model_by_name(short) if short != "clean" else None
                if path is not None and path != builtin:
                    entries.append(self._entry_for(builtin_id(short), path, True))
                    entries[-1].builtin_name, entries[-1].use_for = short, use_for
        for f in sorted(self._paths.models_dir.iterdir(), key=lambda p: p.name.lower()):
            if f.is_file() and f.suffix.lower() in MODEL_SUFFIXES:
                entries.append(self._entry_for(f.name, f, False))
        self._entries = entries
        self.changed.emit()

    def entries(self) -> list[ModelEntry]:
        return list(self._entries)

    def get(self, id_: str) -> ModelEntry | None:
        return next((e for e in self._entries if e.id == id_), None)

    def builtin(self, short_name: str) -> ModelEntry | None:
        """The built-in model ``short_name`` ("clean", "photo") if this build has it and it loads."""
        entry = self.get(builtin_id(short_name))
        return entry if entry is not None and entry.builtin_name == short_name and entry.usable else None

    def default_entry(self) -> ModelEntry | None:
        """The user's default if usable, else the built-in, else the first usable model."""
        chosen = self.get(self._store.settings.default_model)
        if chosen is not None and chosen.usable:
            return chosen
        return next((e for e in self._entries if e.usable), None)

    # ------------------------------------------------------------------ changes
    def _unique_target(self, stem: str, suffix: str) -> Path:
        base = _safe_name(stem)
        target = self._paths.models_dir / f"{base}{suffix}"
        n = 2
        while target.exists():
            target = self._paths.models_dir / f"{base}-{n}{suffix}"
            n += 1
        return target

    def import_file(
        self,
        path: str | Path,
        *,
        name: str = "",
        origin: str = "imported",
        metrics: dict[str, Any] | None = None,
    ) -> ModelEntry:
        """Check that the file loads, then copy it into the models folder. Raises ModelLoadError."""
        src = Path(path)
        loaded = load_model(src)  # refuse broken files before they enter the library
        target = self._unique_target(name or loaded.descriptor.name or src.stem, src.suffix.lower())
        try:
            shutil.copy2(src, target)
            if card_path(src).is_file():  # the model card travels with the weights
                shutil.copy2(card_path(src), card_path(target))
        except OSError as exc:
            raise ModelLoadError(src, f"cannot copy it into {self._paths.models_dir}: {exc}") from exc
        meta: dict[str, Any] = {"name": name or loaded.descriptor.name or src.stem, "origin": origin}
        psnr = (metrics or {}).get("psnr_y")
        if isinstance(psnr, (int, float)):
            meta["psnr"] = float(psnr)
        self._index[target.name] = meta
        self._save_index()
        self.refresh()
        entry = self.get(target.name)
        assert entry is not None
        return entry

    def rename(self, id_: str, name: str) -> None:
        name = name.strip()
        if not name:
            raise ValueError("a model name cannot be empty")
        self._index.setdefault(id_, {})["name"] = name
        self._save_index()
        self.refresh()

    def delete(self, id_: str) -> None:
        entry = self.get(id_)
        if entry is None:
            return
        if entry.builtin:
            raise ValueError("a built-in model cannot be deleted")
        entry.path.unlink(missing_ok=True)
        card_path(entry.path).unlink(missing_ok=True)
        self._index.pop(id_, None)
        self._save_index()
        if self._store.settings.default_model == id_:
            self._store.settings.default_model = ""
            self._store.save()
        self.refresh()

    def set_default(self, id_: str) -> None:
        if self._store.settings.default_model == id_ and self.default_entry() is self.get(id_):
            return  # already the default: nothing changes, so nothing to announce
        self._store.settings.default_model = id_
        self._store.save()
        self.changed.emit()

    def record_speed(self, id_: str, mps: float) -> None:
        self._record(id_, "speed_mps", round(float(mps), 3))

    def record_quality(self, id_: str, result: dict[str, Any]) -> None:
        """Keep the mean scores of a :func:`dipnet_core.eval.evaluate` result for this model."""
        mean = result["mean"]
        self._record(id_, "quality", {
            "folder": str(result["data_dir"]),
            "n_images": int(result["n_images"]),
            "psnr_y": round(float(mean["psnr_y"]), 3),
            "ssim_y": round(float(mean["ssim_y"]), 4),
            "bicubic_psnr_y": round(float(mean["bicubic_psnr_y"]), 3) if "bicubic_psnr_y" in mean else None,
        })

    def _record(self, id_: str, key: str, value: Any) -> None:
        self._index.setdefault(id_, {})[key] = value
        self._save_index()
        self.refresh()
