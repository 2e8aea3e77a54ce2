"""A non-editable install works: build the wheel, install it into a fresh venv, start the app offscreen.

Nothing is downloaded: the wheel is built without build isolation (this interpreter's
setuptools) and installed with ``--no-deps --no-index``; the fresh venv reaches the
dependencies (torch, PySide6, ...) of the interpreter running the tests through a ``.pth``
line, which adds their folder without running that folder's own ``.pth`` files (so an
editable install of the project there stays invisible). The checks run from a folder
outside the repository, so only the installed copy can be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "dipnet_core", "app", "resources")

CHECK_APP = r"""
import json, os, sys
from pathlib import Path
import app, dipnet_core
from dipnet_core.models import load_model
from dipnet_core.resources import builtin_model_path
from app.__main__ import build_app

qapp, window = build_app(["dipnet-studio"])
window.show()
qapp.processEvents()
model = builtin_model_path()
print(json.dumps({
    "core": dipnet_core.__file__, "app": app.__file__,
    "stylesheet": qapp.styleSheet(),
    "app_icon_sizes": [s.width() for s in qapp.windowIcon().availableSizes()],
    "app_icon_null": qapp.windowIcon().isNull(),
    "window_icon_null": window.windowIcon().isNull(),
    "icon_pixmap_null": qapp.windowIcon().pixmap(64, 64).isNull(),
    "model": str(model) if model else None,
    "model_scale": load_model(model).descriptor.scale if model else None,
    "current_model": window.ctx.current_model().name if window.ctx.current_model() else None,
}))
window.close()
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(wheel, venv python, clean environment) for a wheel built from a copy of the sources."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in SOURCES:  # a copy: building in the checkout would leave build/ and egg-info there
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env |= {"QT_QPA_PLATFORM": "offscreen", "DIPNET_STUDIO_HOME": str(root / "home"), "PIP_NO_INDEX": "1"}
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(root / "dist"), str(src)], root, env)
    (wheel,) = (root / "dist").glob("dipnet_studio-*.whl")

    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], root, env)
    python = venv / "bin" / "python"
    venv_site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          root, env).strip())
    (venv_site / "shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)], root, env)
    return wheel, python, env


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the venv layout checked here is the POSIX one")
def test_wheel_carries_resources_and_keeps_qt_optional(installed: tuple[Path, Path, dict[str, str]]) -> None:
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for shipped in ("dipnet_core/_resources/theme/studio.qss", "dipnet_core/_resources/icons/dipnet-studio.svg",
                    "dipnet_core/_resources/models/dipnet-studio-x4.safetensors",
                    "dipnet_core/_resources/models/dipnet-studio-x4.onnx", "dipnet_core/py.typed"):
        assert shipped in names, f"{shipped} is not in {wheel.name}"
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    qt = [line for line in requires if "pyside6" in line.lower() or "pyqtgraph" in line.lower()]
    assert qt and all('extra == "gui"' in line for line in qt), qt
    assert "Requires-Python: >=3.11" in metadata


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the venv layout checked here is the POSIX one")
def test_installed_app_finds_theme_icon_and_builtin_model(installed: tuple[Path, Path, dict[str, str]],
                                                          tmp_path: Path) -> None:
    _, python, env = installed
    result = json.loads(_run([str(python), "-c", CHECK_APP], tmp_path, env).strip().splitlines()[-1])
    venv = python.parent.parent
    assert Path(result["core"]).is_relative_to(venv) and Path(result["app"]).is_relative_to(venv)
    qss = (REPO / "resources" / "theme" / "studio.qss").read_text(encoding="utf-8")
    first_rule = next(line for line in qss.splitlines() if "{" in line)
    assert first_rule in result["stylesheet"] and "@accent" not in result["stylesheet"]
    assert not result["app_icon_null"] and not result["window_icon_null"] and not result["icon_pixmap_null"]
    assert Path(result["model"]).is_relative_to(venv) and result["model"].endswith("dipnet-studio-x4.safetensors")
    assert result["model_scale"] == 4 and result["current_model"] == "dipnet-studio-x4"


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the venv layout checked here is the POSIX one")
def test_installed_cli_upscales_without_qt(installed: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    """The headless core needs no PySide6: the CLI runs with every Qt import made to fail."""
    from PIL import Image

    _, python, env = installed
    Image.new("RGB", (20, 16), (90, 140, 200)).save(tmp_path / "in.png")
    code = ("import sys; sys.modules.update(PySide6=None, shiboken6=None, pyqtgraph=None); "
            "from dipnet_core.cli import main; sys.exit(main(sys.argv[1:]))")
    out = _run([str(python), "-c", code, "upscale", "in.png", "-o", "out.png"], tmp_path, env)
    assert "wrote" in out
    with Image.open(tmp_path / "out.png") as im:
        assert im.size == (80, 64)
