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
#: Where built-in models are looked for, in the same order.
_CANDIDATE_DIRS = tuple(root / "models" for root in RESOURCE_ROOTS)


def resource_path(*parts: str) -> Path | None:
    """The shipped file or folder ``resources/<parts>``, or None when this build lacks it."""
    for root in RESOURCE_ROOTS:
        candidate = root.joinpath(*parts)
        if candidate.exists():
            return candidate
    return None


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


#: Short names of the built-in models (``--model clean|photo``): file stem and a one-line "use for".
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "clean": (BUILTIN_MODEL_NAME, "clean images: renders, screenshots, PNGs, good-quality photos"),
    "photo": (f"{BUILTIN_MODEL_NAME}-photo", "real photos: small web JPEGs, phone pictures, noisy images"),
}


def builtin_model_by_name(name: str) -> Path | None:
    """The file of built-in model ``name`` (a key of :data:`BUILTIN_MODELS`); None if this build lacks it."""
    d = builtin_models_dir()
    if d is None or name not in BUILTIN_MODELS:
        return None
    path = d / f"{BUILTIN_MODELS[name][0]}.safetensors"
    return path if path.is_file() else None


def resolve_model_arg(value: str | None) -> Path | None:
    """What a ``--model`` value names: None -> the default built-in (None if there is none),
    ``clean``/``photo`` -> that built-in, anything else -> a file path.

    An existing file called ``clean`` or ``photo`` wins over the short name. Raises ``ValueError``
    when a short name's model is not in this build, listing the ones that are.
    """
    if value is None:
        return builtin_model_path()
    if value in BUILTIN_MODELS and not Path(value).exists():
        path = builtin_model_by_name(value)
        if path is None:
            have = [n for n in BUILTIN_MODELS if builtin_model_by_name(n) is not None]
            raise ValueError(f"built-in model '{value}' ({BUILTIN_MODELS[value][0]}) is not in this build; "
                             f"available: {', '.join(have) or 'none'}")
        return path
    return Path(value)
