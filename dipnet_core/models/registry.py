"""Architecture registry: each supported architecture says whether it recognises a file and loads it.

A format reader (see :mod:`.loader`) turns a file into a :class:`ModelFile`: its
tensors, the descriptor from its metadata, or its ONNX graph. The registry then
asks each :class:`Architecture`, in registration order, whether it ``detect``\\ s
the file, and the first that does ``load``\\ s it. Adding an architecture is one
:func:`register` call; nothing else matches on key names or strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError
from .descriptor import ModelDescriptor

if TYPE_CHECKING:  # torch is optional: ONNX files load without it
    import torch
    from torch import nn


class ModelLoadError(ModelError):
    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"cannot load model '{path}': {reason}")
        self.path = Path(path)
        self.reason = reason


class ModelWarning(UserWarning):
    """A model loaded, but its file was wrong about something and the loader corrected it."""


@dataclass
class LoadedModel:
    """A model ready for inference. ``module`` is None for ONNX files (the onnx backend runs them).

    ``warnings`` lists what the loader corrected in the file's descriptor (also
    issued as :class:`ModelWarning`), so front ends can show it next to the model.
    ``origin`` is the file the user chose when ``path`` is a stand-in graph for it
    (a cached ONNX export that runs without torch): measured engine choices and
    int8 twins belong to the origin.
    """

    descriptor: ModelDescriptor
    module: nn.Module | None = None
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    origin: Path | None = None

    @property
    def source_file(self) -> Path | None:
        """The file this model stands for: ``origin`` when set, else ``path``."""
        return self.origin if self.origin is not None else self.path


@dataclass
class ModelFile:
    """What a format reader found in a file; at most one of ``state_dict`` and ``onnx`` is set."""

    path: Path
    state_dict: dict[str, torch.Tensor] | None = None
    descriptor: ModelDescriptor | None = None  # from the file's metadata, if it has one
    onnx: Any = None  # an onnxruntime.InferenceSession


@dataclass(frozen=True)
class Architecture:
    name: str
    detect: Callable[[ModelFile], bool]
    load: Callable[[ModelFile], LoadedModel]


_REGISTRY: list[Architecture] = []


def register(architecture: Architecture) -> None:
    """Add ``architecture`` after those already registered (earlier ones are asked first)."""
    if any(a.name == architecture.name for a in _REGISTRY):
        raise ValueError(f"architecture '{architecture.name}' is already registered")
    _REGISTRY.append(architecture)


def registered_architectures() -> tuple[Architecture, ...]:
    return tuple(_REGISTRY)


def detect(model_file: ModelFile) -> Architecture | None:
    """The first registered architecture that recognises ``model_file``, or None."""
    return next((a for a in _REGISTRY if a.detect(model_file)), None)
