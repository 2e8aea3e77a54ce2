"""Checkpoints as plain dicts of tensors and primitives.

Loading uses ``torch.load(weights_only=True)``, which refuses arbitrary pickled
objects; so RNG states are stored as tensors / lists, never as the tuples of
Python objects ``random.getstate()`` returns. Saving is atomic (temp file in
the same folder, fsync, rename), so a ``kill -9`` mid-save leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import atomic_output, atomic_write_text

__all__ = [
    "atomic_write_text",
    "capture_rng",
    "load_checkpoint",
    "read_json",
    "restore_rng",
    "save_checkpoint",
    "write_json",
]

FORMAT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy and torch (CPU and CUDA) as tensors."""
    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": torch.tensor(list(internal), dtype=torch.int64),
        "python_version": int(version),
        "python_gauss": None if gauss is None else float(gauss),
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_has_gauss": int(np_state[3]),
        "numpy_gauss": float(np_state[4]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any]) -> None:
    internal = tuple(int(v) for v in state["python"].tolist())
    random.setstate((int(state["python_version"]), internal, state["python_gauss"]))
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy_pos"]), int(state["numpy_has_gauss"]),
                         float(state["numpy_gauss"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> Path:
    """Atomically write ``ckpt`` (a dict of tensors/primitives) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(ckpt)
    payload.setdefault("format", FORMAT_VERSION)
    with atomic_output(path) as tmp:  # fsync, rename, fsync of the folder
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (no pickled code is ever run)."""
    obj = torch.load(str(path), map_location=map_location, weights_only=True)
    if not isinstance(obj, dict) or "format" not in obj:
        raise ValueError(f"'{path}' is not a DIPNet training checkpoint")
    return obj


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, default: Any = None) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
