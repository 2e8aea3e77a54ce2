"""Exceptions of :mod:`dipnet_core.io`.

Messages are meant to be shown to users as they are, so they always say which
file and, in plain words, what went wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from ..errors import InputError, OutputError

_E = TypeVar("_E", bound="_PathError")


class _PathError(Exception):
    """Base for errors tied to one file; keeps the path for callers that want it."""

    verb = "access"

    def __init__(self, message: str, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(message)
        self.path: Path | None = Path(path) if path is not None else None

    @classmethod
    def about(cls: type[_E], path: str | os.PathLike[str], cause: str) -> _E:
        """Build the standard "cannot <verb> '<path>': <cause>" message."""
        return cls(f"cannot {cls.verb} '{os.fspath(path)}': {cause}", path)


class ImageReadError(_PathError, InputError):
    """An image file could not be read or decoded."""

    verb = "read"


class ImageWriteError(_PathError, OutputError):
    """An image (or other output) file could not be written."""

    verb = "write"
