"""Which edition is running: the full one (training included) or the slim, upscale-only one.

The slim edition ships without PyTorch (and without the plotting library the Train tab uses): it
upscales on ONNX Runtime. Nothing here imports Qt or the packages it looks for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

#: Packages the Train tab needs beyond what upscaling needs.
TRAINING_PACKAGES = ("torch", "pyqtgraph")


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # e.g. sys.modules[name] set to None, or a broken spec
        return False


def missing_training_packages() -> list[str]:
    """The packages of :data:`TRAINING_PACKAGES` this install lacks (found without importing them)."""
    return [name for name in TRAINING_PACKAGES if not _importable(name)]


def training_available() -> bool:
    """True in the full edition: training, fine-tuning, export and quality measurement can run."""
    return not missing_training_packages()


def model_file_for_inference(path: Path) -> Path:
    """Without torch, a model's ``.onnx`` twin beside it (the built-ins ship one) runs instead of it."""
    if path.suffix.lower() != ".onnx" and not _importable("torch"):
        twin = path.with_suffix(".onnx")
        if twin.is_file():
            return twin
    return path
