"""Where the files that ship with the project live: built-in models, theme, icons.

In a source checkout (or editable install) they are in ``resources/`` at the
repository root (the model card sits beside the models there); an installed
wheel carries the same tree as package data under ``dipnet_core/_resources/``
(copied by ``setup.py``). Plain files only: the core never loads Qt, the app
reads the theme and icons through :func:`resource_path`.
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_MODEL_NAME = "dipnet-studio-x4"
#: What every command says when it needs the built-in model and this build has none.
NO_BUILTIN_MODEL = "no built-in model in this build; pass --model FILE"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: Searched in order: the installed wheel's copy, then the source checkout.
RESOURCE_ROOTS = (_PACKAGE_DIR / "_resources", _PACKAGE_DIR.parent / "resources")


def resource_path(*parts: str) -> Path | None:
    """The shipped file or folder ``resources/<parts>``, or None when this build lacks it."""
    for root in RESOURCE_ROOTS:
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return None


def builtin_models_dir() -> Path | None:
    for root in RESOURCE_ROOTS:
        d = root / "models"
        if d.is_dir() and any(d.glob("*.safetensors")):
            return d
    return None


def builtin_model_path() -> Path | None:
    """The default model shipped with the app, or None when this build carries none."""
    d = builtin_models_dir()
    if d is None:
        return None
    preferred = d / f"{BUILTIN_MODEL_NAME}.safetensors"
    return preferred if preferred.exists() else sorted(d.glob("*.safetensors"))[0]
