"""Build hook: ship ``resources/models`` inside the wheel as ``dipnet_core/_builtin``.

The built-in model lives at the repository root (``resources/models/``, where the
model card sits beside it) so a source checkout finds it directly; an installed
wheel has no repository root, so the files travel as package data instead
(``dipnet_core.resources`` looks in both places). Everything else is in
``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS_DIR = Path(__file__).resolve().parent / "resources" / "models"
SHIPPED_SUFFIXES = {".safetensors", ".onnx", ".md", ".txt", ".json"}  # .json: the model card's data


class BuildPyWithBuiltinModel(build_py):
    def run(self) -> None:
        super().run()
        if not MODELS_DIR.is_dir():
            return
        target = Path(self.build_lib) / "dipnet_core" / "_builtin"
        target.mkdir(parents=True, exist_ok=True)
        for f in sorted(MODELS_DIR.iterdir()):
            if f.is_file() and f.suffix.lower() in SHIPPED_SUFFIXES:
                shutil.copy2(f, target / f.name)


setup(cmdclass={"build_py": BuildPyWithBuiltinModel})
