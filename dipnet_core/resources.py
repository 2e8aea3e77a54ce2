"""Where the built-in model ships.

In a source checkout (or editable install) it is ``resources/models/`` at the
repository root; an installed wheel carries the same files as package data under
``dipnet_core/_builtin/``.
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_MODEL_NAME = "dipnet-studio-x4"
#: What every command says when it needs the built-in model and this build has none.
NO_BUILTIN_MODEL = "no built-in model in this build; pass --model FILE"

_CANDIDATE_DIRS = (
    Path(__file__).resolve().parent / "_builtin",
    Path(__file__).resolve().parent.parent / "resources" / "models",
)


def builtin_models_dir() -> Path | None:
    for d in _CANDIDATE_DIRS:
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
