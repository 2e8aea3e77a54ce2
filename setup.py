"""Build hook: ship the repository's ``resources/`` inside the wheel as ``dipnet_core/_resources``.

The built-in models, the theme and the icons live at the repository root
(``resources/``, where the model card sits beside the models) so a source
checkout finds them directly; an installed wheel has no repository root, so the
files travel as package data instead (``dipnet_core.resources`` looks in both
places). Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCES_DIR = Path(__file__).resolve().parent / "resources"
#: Sub-folder -> file suffixes that ship (nothing else in resources/ goes into the wheel).
SHIPPED = {
    "models": {".safetensors", ".onnx", ".md", ".txt", ".json"},  # .json: the model card's data
    "theme": {".qss", ".svg", ".png"},  # images the style sheet refers to (@theme_dir)
    "icons": {".svg", ".png"},
}


class BuildPyWithResources(build_py):
    def run(self) -> None:
        super().run()
        for folder, suffixes in SHIPPED.items():
            source = RESOURCES_DIR / folder
            if not source.is_dir():
                continue
            target = Path(self.build_lib) / "dipnet_core" / "_resources" / folder
            target.mkdir(parents=True, exist_ok=True)
            for f in sorted(source.iterdir()):
                if f.is_file() and f.suffix.lower() in suffixes:
                    shutil.copy2(f, target / f.name)


setup(cmdclass={"build_py": BuildPyWithResources})
