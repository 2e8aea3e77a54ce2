"""Cached ONNX exports of torch model files, so that later runs start without importing torch.

Why: reading a ``.pth``/``.safetensors`` model needs torch, and importing torch
takes about 2 s, a third of a one-image ``dipnet upscale`` of a 1024x640 photo on
a 2-core CPU. When the engine choice measured for this machine and model is
onnxruntime (see :mod:`.backends.autoselect`), that run never needed torch except
to read the file. So the first time the onnxruntime backend exports a model file's
graph, the export is kept in the user cache, keyed by the file's content hash and
the exporter's version; the next load of that file (:func:`stand_in`) returns the
cached graph as a :class:`LoadedModel` whose ``origin`` is the user's file, and the
run stays torch-free. Anything unusual (a GPU that may be used, another backend
or precision asked for, no cached choice, a missing or unreadable export) falls
back to the normal load: the cache can make a run faster, never different.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import LoadedModel
    from .backends.autoselect import EngineChoice

log = logging.getLogger(__name__)

#: Bump when the exported graph changes shape or semantics: old exports are then ignored.
EXPORT_FORMAT = 1
#: Model files whose graph we cache (ONNX files need no stand-in).
TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")


def cache_dir() -> Path:
    override = os.environ.get("DIPNET_CACHE_DIR")
    if override:
        return Path(override) / "onnx"
    import platformdirs

    return Path(platformdirs.user_cache_dir("dipnet-studio")) / "onnx"


def _package_version() -> str:
    import importlib.metadata as md

    try:
        return md.version("dipnet-studio")
    except md.PackageNotFoundError:
        return "0"


def export_path(model_path: Path) -> Path:
    from .backends.autoselect import file_digest

    name = f"{file_digest(model_path)}-{_package_version()}-f{EXPORT_FORMAT}.onnx"
    return cache_dir() / name


def cacheable(model: LoadedModel) -> bool:
    """A torch module loaded straight from its file (not a stand-in, not an in-memory model)."""
    path = model.path
    return (model.module is not None and model.origin is None and path is not None
            and path.suffix.lower() in TORCH_SUFFIXES and path.is_file())


def load_export(model: LoadedModel) -> bytes | None:
    if not cacheable(model):
        return None
    try:
        return export_path(model.path).read_bytes()  # type: ignore[arg-type]  # cacheable: path is set
    except OSError:
        return None


def store_export(model: LoadedModel, data: bytes) -> None:
    """Keep ``data`` (the model's fp32 graph) for later torch-free runs; a failed write costs nothing."""
    if not cacheable(model):
        return
    from ..io.atomic import atomic_write_bytes

    try:
        target = export_path(model.path)  # type: ignore[arg-type]
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    except OSError as exc:
        log.info("could not cache the ONNX export of %s (%s)", model.path, exc)


def _torch_may_use_a_gpu() -> bool:
    """Whether an installed torch is a CUDA/ROCm build, read from its version file (no import)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    except OSError:
        return True  # unknown: let the normal path decide
    for line in text.splitlines():
        if line.startswith(("cuda", "hip")) and "None" not in line:
            return True
    return False


def _short_enough(choice: EngineChoice, input_megapixels: float | None) -> bool:
    from .backends.autoselect import TORCH_IMPORT_S, light_extra_s_per_mp

    extra = light_extra_s_per_mp(choice)
    return input_megapixels is not None and extra is not None and extra * input_megapixels < TORCH_IMPORT_S


def stand_in(model_path: Path, backend: str = "auto", device: str = "auto", precision: str = "auto",
             input_megapixels: float | None = None) -> LoadedModel | None:
    """The cached graph of ``model_path`` if this run can use it without torch, else None.

    With ``auto``, the measured choice must be onnxruntime; or, for a short job
    (``input_megapixels`` given), torch fp32 with onnxruntime fp32 so close that the
    compute it loses on this job is less than the torch import it saves.
    """
    if model_path.suffix.lower() not in TORCH_SUFFIXES or not model_path.is_file():
        return None
    if backend not in ("auto", "onnx") or device not in ("auto", "cpu") or precision not in ("auto", "fp32", "int8"):
        return None
    if device == "auto" and _torch_may_use_a_gpu():
        return None
    try:
        from .backends.onnxruntime_backend import GPU_PROVIDERS, grid_twin_of, int8_twin_of, ort_providers
    except ImportError:
        return None
    if device == "auto" and any(p in ort_providers() for p in GPU_PROVIDERS):
        return None
    if backend == "auto" or precision == "auto":
        from .backends import autoselect

        if not autoselect.measuring_enabled():
            return None
        choice = autoselect.load_cached(autoselect.cache_key_for_file(model_path, int8_twin_of(model_path)))
        if choice is None or (precision != "auto" and choice.precision != precision):
            return None
        if choice.backend != "onnx" and not _short_enough(choice, input_megapixels):
            return None
    graph = grid_twin_of(model_path) or export_path(model_path)  # a shipped twin needs no first run
    if not graph.is_file():
        return None
    from dataclasses import replace

    from ..models import load_model
    from ..models.registry import ModelError

    try:
        loaded = load_model(graph)
    except (ModelError, OSError) as exc:
        log.info("cached export %s unusable (%s); loading %s itself", graph, exc, model_path)
        return None
    loaded.origin = model_path
    loaded.descriptor = replace(loaded.descriptor, source=str(model_path))
    return loaded
