"""The upscale-only path works where torch cannot be imported (the slim edition has none).

The slim edition also leaves out the ``onnx`` package (onnxruntime reads the graphs itself), so it is
blocked here too.

Each test runs a fresh interpreter whose import system refuses torch (``sys.modules["torch"] = None``
makes every ``import torch`` / ``import torch.nn`` raise ImportError), so a stray top-level torch
import anywhere on the path fails the test. The built-in model's ``.onnx`` twin runs on onnxruntime.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
BUILTIN_ONNX = REPO / "resources" / "models" / "dipnet-studio-x4.onnx"

PRELUDE = """
import sys
for _name in ("torch", "torchvision", "spandrel", "onnx"):
    sys.modules[_name] = None  # importing them now raises ImportError
# These tests are about running without torch, not about the tile ladder (test_engine_choice.py):
# the measurement's 320 and 512 px timings would add ~10 s to each of them.
from dipnet_core.engine.backends import autoselect
autoselect.TILE_CANDIDATES = (160,)
"""
EPILOGUE = """
_loaded = sorted(k for k, v in sys.modules.items() if v is not None and k.split(".")[0] == "torch")
print("TORCH_MODULES=" + ",".join(_loaded))
"""


def _run_without_torch(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), DIPNET_CACHE_DIR=str(tmp_path / "cache"),
               DIPNET_MEASURE_BACKENDS="1")
    return subprocess.run([sys.executable, "-W", "error", "-c", PRELUDE + code + EPILOGUE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_dipnet_upscale_runs_the_builtin_onnx_model_without_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (30, 38, 4), dtype=np.uint8)
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rgba, "RGBA").save(src)
    code = f"""
from dipnet_core.cli import main
rc = main(["upscale", {str(src)!r}, "-o", {str(dst)!r}, "--model", {str(BUILTIN_ONNX)!r}])
print("RC=%d" % rc)
"""
    proc = _run_without_torch(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "RC=0" in proc.stdout and "TORCH_MODULES=\n" in proc.stdout, proc.stdout + proc.stderr
    with Image.open(dst) as out:
        assert out.size == (38 * 4, 30 * 4) and out.mode == "RGBA"
        pixels = np.asarray(out)
    # Real content: the upscaled colour follows the input (a broken run gives a flat or black image).
    assert pixels[..., :3].std() > 10
    small = np.asarray(Image.fromarray(pixels).resize((38, 30), Image.BOX), dtype=np.float32)
    assert float(np.abs(small[..., :3] - rgba[..., :3].astype(np.float32)).mean()) < 40


def test_engine_io_and_onnx_loading_import_without_torch(tmp_path: Path) -> None:
    code = f"""
import json
import dipnet_core.io, dipnet_core.batch
from dipnet_core.engine import BackendUnavailable, TiledUpscaler, available_backends, create_backend
from dipnet_core.models import load_model, read_descriptor
import numpy as np
model = load_model({str(BUILTIN_ONNX)!r})
descriptor = read_descriptor({str(BUILTIN_ONNX)!r})
backend = create_backend(model)
out = TiledUpscaler(backend).upscale(np.full((20, 24, 3), 0.5, np.float32))
try:
    create_backend(model, backend="torch")
    refused = ""
except BackendUnavailable as exc:
    refused = str(exc)
torch_rows = [r for r in available_backends() if r["backend"] == "torch"]
print("RESULT=" + json.dumps({{"shape": list(out.shape), "min_size": descriptor.min_size,
      "backend": backend.name, "reason": backend.choice.reason, "refused": refused,
      "torch_rows": [r["available"] for r in torch_rows], "detail": torch_rows[0]["detail"]}}))
"""
    proc = _run_without_torch(code, tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))
    result = json.loads(line[len("RESULT="):])
    assert result["shape"] == [80, 96, 3] and result["min_size"] == 15
    assert result["backend"] == "onnxruntime" and result["reason"].startswith("measured on ")
    assert "onnxruntime" in result["refused"]
    assert result["torch_rows"] == [False, False] and "not installed" in result["detail"]
    assert "TORCH_MODULES=\n" in proc.stdout


def test_the_prelude_really_blocks_torch(tmp_path: Path) -> None:
    proc = _run_without_torch("import torch\n", tmp_path)
    assert proc.returncode != 0 and ("ImportError" in proc.stderr or "ModuleNotFoundError" in proc.stderr)


@pytest.mark.parametrize("command", [
    ["info", str(BUILTIN_ONNX)],
    ["bench", "--size", "48", "--seconds", "0.2", "--model", str(BUILTIN_ONNX)],
])
def test_info_and_bench_work_without_torch(tmp_path: Path, command: list[str]) -> None:
    code = f"""
from dipnet_core.cli import main
print("RC=%d" % main({command!r}))
"""
    proc = _run_without_torch(code, tmp_path)
    assert proc.returncode == 0 and "RC=0" in proc.stdout, proc.stdout + proc.stderr
    assert "TORCH_MODULES=\n" in proc.stdout


def test_without_torch_the_builtin_model_tiles_exactly_through_its_grid_twin(tmp_path: Path) -> None:
    # The plain .onnx twin tiles naively (ESA then sees each tile's own grid: ~11 levels off at seams);
    # the upscale-only install must take the shipped grid-aware twin instead.
    from synthetic_images import synthetic_photo

    from dipnet_core.engine import TiledUpscaler, create_backend
    from dipnet_core.models import load_model

    rgb = synthetic_photo(size=200)[:150]
    src, dst = tmp_path / "in.png", tmp_path / "out.png"
    Image.fromarray(rgb).save(src)
    builtin = REPO / "resources" / "models" / "dipnet-studio-x4.safetensors"
    code = f"""
from dipnet_core.models import load_model
m = load_model({str(builtin)!r})
print("GRAPH=" + m.path.name, "ORIGIN=" + m.origin.name)
from dipnet_core.cli import main
rc = main(["upscale", {str(src)!r}, "-o", {str(dst)!r}, "--tile", "64", "--precision", "fp32"])
print("RC=%d" % rc)
"""
    proc = _run_without_torch(code, tmp_path)
    assert proc.returncode == 0 and "RC=0" in proc.stdout, proc.stdout + proc.stderr
    assert "GRAPH=dipnet-studio-x4.grid.onnx ORIGIN=dipnet-studio-x4.safetensors" in proc.stdout
    assert "TORCH_MODULES=\n" in proc.stdout
    whole = TiledUpscaler(create_backend(load_model(builtin), "torch", "cpu", "fp32"), tile_size=256).upscale(
        rgb.astype(np.float32) / 255)
    with Image.open(dst) as out:
        tiled = np.asarray(out, dtype=np.float32)
    assert float(np.abs(tiled - np.clip(whole * 255, 0, 255).round()).max()) <= 2
