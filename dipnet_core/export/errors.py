"""Export errors, importable without torch (the CLI catches them in the upscale-only install)."""

from __future__ import annotations

from ..errors import ModelError


class ExportError(ModelError):
    """The model cannot be exported (e.g. an ONNX file has no PyTorch weights to export)."""
