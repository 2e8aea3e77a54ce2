"""`dipnet upscale` in a real virtual environment that has no torch installed (issue 18).

The venv gets only what the upscale-only (slim) edition ships: numpy, Pillow, onnxruntime,
platformdirs and safetensors, linked from this interpreter's installation (nothing is downloaded),
plus this checkout's source. torch is not there at all, so any eager ``import torch`` on the
upscale path fails the test, unlike a ``sys.modules`` block that only the test process sees.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SLIM_PACKAGES = ("numpy", "PIL", "onnxruntime", "platformdirs", "safetensors")


def _package_dirs(name: str) -> list[Path]:
    """The package folder plus the wheel's bundled-library folder next to it (``numpy.libs``...)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed here"
    pkg = Path(next(iter(spec.submodule_search_locations)))
    libs = set(pkg.parent.glob(f"{name.lower()}*.libs"))
    if name == "PIL":
        libs |= set(pkg.parent.glob("pillow*.libs"))
    return [pkg, *sorted(libs)]


@pytest.fixture(scope="module")
def torchless_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notorch")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    deps = root / "deps"
    deps.mkdir()
    for name in SLIM_PACKAGES:
        for path in _package_dirs(name):
            (deps / path.name).symlink_to(path, target_is_directory=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "slim.pth").write_text(f"{deps}\n{REPO}\n")
    return python


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return env | {"DIPNET_STUDIO_HOME": str(tmp_path / "home"), "DIPNET_MEASURE_BACKENDS": "0"}


def test_the_venv_really_has_no_torch(torchless_python: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(torchless_python), "-c", "import torch"], capture_output=True, text=True,
                          env=_env(tmp_path))
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


def test_upscale_runs_without_torch(torchless_python: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (20, 28, 4), dtype=np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 28, dtype=np.uint8)[None, :]
    src = tmp_path / "in.png"
    Image.fromarray(rgba, "RGBA").save(src)
    out = tmp_path / "out.png"
    done = subprocess.run([str(torchless_python), "-m", "dipnet_core", "upscale", str(src), "-o", str(out)],
                          capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    with Image.open(out) as im:
        assert im.size == (28 * 4, 20 * 4) and im.mode == "RGBA"
        pixels = np.asarray(im)
    assert pixels[..., :3].std() > 10  # real content, not a flat fill
    assert abs(float(pixels[:, :16, 3].mean()) - float(rgba[:, :4, 3].mean())) < 12  # alpha ramp kept
    assert "onnxruntime" in (done.stdout + done.stderr).lower()  # it said which backend ran


def test_training_says_it_needs_torch(torchless_python: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(torchless_python), "-m", "dipnet_core", "train", "--preset", "adapt",
                           "--data", str(tmp_path), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=120)
    assert done.returncode != 0
    assert "torch" in done.stderr.lower() and "Traceback" not in done.stderr
