"""The core never imports Qt: checked statically (every module's imports) and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import dipnet_core

FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "superqt", "pyqtgraph", "app")
CORE = Path(dipnet_core.__file__).resolve().parent


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_core_module_imports_qt_or_the_app() -> None:
    modules = sorted(CORE.rglob("*.py"))
    assert len(modules) > 20
    offenders = {str(p.relative_to(CORE)): sorted(_imported_roots(p) & set(FORBIDDEN)) for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_importing_the_whole_core_loads_no_qt() -> None:
    code = (
        "import sys, dipnet_core.cli, dipnet_core.engine, dipnet_core.train.pipeline, dipnet_core.batch;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in %r))" % (FORBIDDEN,)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
