"""The app's layers, checked on the source: views never import controllers (issue 20).

Views show things and emit signals; controllers drive them; services (the model library, the
engine cache) hold shared state; ``app.window`` is the one place that knows views and controllers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def imported_modules(path: Path, package: str = "") -> list[tuple[str, bool]]:
    """(absolute module name, imported only for type checking) for every import in ``path``.

    ``package``: the package ``path`` belongs to (default: from its place under ``app/``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = package or ".".join(path.relative_to(APP.parent).with_suffix("").parts[:-1])
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, id(node) in typing_only) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names = [f"{base}.{a.name}" for a in node.names] if not node.module else [base]
            found += [(n, id(node) in typing_only) for n in names]
    return found


VIEWS = sorted((APP / "views").glob("*.py"))


@pytest.mark.parametrize("view", VIEWS, ids=lambda p: p.name)
def test_views_never_import_controllers_or_services(view: Path) -> None:
    for module, typing_only in imported_modules(view):
        assert not module.startswith(("app.controllers", "app.window")), f"{view.name} imports {module}"
        # A view may name a service's data type in annotations, never use the service itself.
        assert typing_only or not module.startswith("app.services"), f"{view.name} imports {module} at run time"


def test_the_checker_sees_relative_imports(tmp_path: Path) -> None:
    """The check above can fail: a view importing a controller the way the old main window did is caught."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..controllers.upscale import UpscaleController\n"
        "if TYPE_CHECKING:\n    from ..services.models import ModelEntry\n"
    )
    assert imported_modules(probe, "app.views") == [
        ("typing", False), ("app.controllers.upscale", False), ("app.services.models", True)
    ]


def test_controllers_and_services_never_import_the_composition_root() -> None:
    for path in [*(APP / "controllers").glob("*.py"), *(APP / "services").glob("*.py")]:
        for module, _typing_only in imported_modules(path):
            assert not module.startswith("app.window"), f"{path.name} imports {module}"
