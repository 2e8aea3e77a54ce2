"""Torch-free warm starts: a model file's ONNX export is cached and stands in for the file later.

Real shipped model and real backends; the cache lives in a per-test folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dipnet_core.engine import TiledUpscaler, create_backend, onnx_cache
from dipnet_core.engine.backends import autoselect
from dipnet_core.engine.backends.autoselect import EngineChoice
from dipnet_core.models import load_model
from dipnet_core.resources import builtin_model_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(cache))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")
    monkeypatch.setattr(onnx_cache, "_torch_may_use_a_gpu", lambda: False)
    return cache


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """The built-in weights alone in a folder (no .onnx / .int8.onnx twins beside them)."""
    dst = tmp_path / "mine.safetensors"
    shutil.copyfile(builtin_model_path(), dst)
    return dst


def _image(h: int = 40, w: int = 56) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.5 + 0.4 * np.sin(xx / (3 + c) + yy / 5) for c in range(3)], axis=-1)


def _store_choice(path: Path, backend: str, precision: str = "fp32") -> None:
    choice = EngineChoice(backend, precision, None, True, 1.0, f"test: {backend} {precision}")
    choice.key = autoselect.cache_key_for_file(path, None)
    autoselect.store(choice)


def test_no_stand_in_before_an_export_was_cached(model_file: Path) -> None:
    assert onnx_cache.stand_in(model_file, "onnx", "cpu", "fp32") is None


def test_the_onnx_backend_caches_its_export_and_the_stand_in_gives_the_same_output(model_file: Path) -> None:
    loaded = load_model(model_file)
    out = TiledUpscaler(create_backend(loaded, "onnx", "cpu", "fp32"), tile_size=32).upscale(_image())
    assert onnx_cache.export_path(model_file).is_file()

    stand = onnx_cache.stand_in(model_file, "onnx", "cpu", "fp32")
    assert stand is not None
    assert stand.module is None and stand.origin == model_file and stand.source_file == model_file
    assert stand.path == onnx_cache.export_path(model_file)
    assert stand.descriptor.scale == 4 and stand.descriptor.source == str(model_file)
    backend = create_backend(stand, "onnx", "cpu", "fp32")
    assert backend.grid_aware  # tiles stay exact: the cached graph is the grid-aware export
    again = TiledUpscaler(backend, tile_size=32).upscale(_image())
    np.testing.assert_array_equal(again, out)


def test_auto_uses_the_stand_in_only_when_onnxruntime_was_the_measured_choice(model_file: Path) -> None:
    create_backend(load_model(model_file), "onnx", "cpu", "fp32")  # caches the export
    assert onnx_cache.stand_in(model_file) is None  # nothing measured yet
    _store_choice(model_file, "torch")
    assert onnx_cache.stand_in(model_file) is None
    _store_choice(model_file, "onnx")
    stand = onnx_cache.stand_in(model_file)
    assert stand is not None
    backend = create_backend(stand)  # auto: the cached choice of the *origin* file, no new measurement
    assert backend.name == "onnxruntime" and backend.choice is not None and backend.choice.cached
    assert backend.choice.reason.endswith("test: onnx fp32")


def test_other_requests_keep_the_normal_load(model_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    create_backend(load_model(model_file), "onnx", "cpu", "fp32")
    _store_choice(model_file, "onnx")
    assert onnx_cache.stand_in(model_file, backend="torch") is None
    assert onnx_cache.stand_in(model_file, device="cuda") is None
    assert onnx_cache.stand_in(model_file, precision="bf16") is None
    monkeypatch.setattr(onnx_cache, "_torch_may_use_a_gpu", lambda: True)
    assert onnx_cache.stand_in(model_file) is None  # a CUDA torch may beat the CPU choice
    monkeypatch.setattr(onnx_cache, "_torch_may_use_a_gpu", lambda: False)
    monkeypatch.setenv(autoselect.ENV_SWITCH, "0")
    assert onnx_cache.stand_in(model_file) is None  # rules, not a measured choice


def test_a_changed_model_file_does_not_reuse_the_old_export(model_file: Path) -> None:
    create_backend(load_model(model_file), "onnx", "cpu", "fp32")
    with open(model_file, "ab") as f:
        f.write(b"\0")  # other content, other hash
    assert onnx_cache.stand_in(model_file, "onnx", "cpu", "fp32") is None


def test_a_corrupt_cached_export_falls_back_to_the_file(model_file: Path) -> None:
    create_backend(load_model(model_file), "onnx", "cpu", "fp32")
    onnx_cache.export_path(model_file).write_bytes(b"not onnx")
    assert onnx_cache.stand_in(model_file, "onnx", "cpu", "fp32") is None


def test_measurement_also_times_onnxruntime_at_the_winning_tile(model_file: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dipnet_core.engine import hardware
    from dipnet_core.engine.backends.autoselect import Candidate, measure

    monkeypatch.setattr(hardware, "physical_cores", lambda: 1)
    cands = [Candidate("torch", "fp32"), Candidate("onnx", "fp32")]
    table = {("torch", 160): 3.0, ("onnx", 160): 3.3, ("torch", 320): 2.0, ("onnx", 320): 2.25}
    choice = measure(load_model(model_file), lambda c, t: table[(c.backend, t)], cands, {}, tiles=(160, 320))
    assert (choice.backend, choice.s_per_mp, choice.tile) == ("torch", 2.0, None)
    assert autoselect.light_extra_s_per_mp(choice) == pytest.approx(0.25)


def _store_torch_choice_with_light_cost(path: Path, extra: float) -> None:
    light = "onnxruntime fp32 (1 thread per tile)"
    choice = EngineChoice("torch", "fp32", None, True, 2.0, "test: torch fp32",
                          timings={"torch fp32 (1 thread per tile) @320": 2.0, f"{light} @320": 2.0 + extra})
    choice.key = autoselect.cache_key_for_file(path, None)
    autoselect.store(choice)


def test_a_short_job_takes_the_stand_in_when_torch_would_barely_be_faster(model_file: Path) -> None:
    create_backend(load_model(model_file), "onnx", "cpu", "fp32")
    _store_torch_choice_with_light_cost(model_file, extra=0.5)  # s per MP lost without torch
    budget_mp = autoselect.TORCH_IMPORT_S / 0.5
    assert onnx_cache.stand_in(model_file) is None  # job size unknown: a batch may be long
    assert onnx_cache.stand_in(model_file, input_megapixels=budget_mp * 1.2) is None
    stand = onnx_cache.stand_in(model_file, input_megapixels=budget_mp * 0.5)
    assert stand is not None
    backend = create_backend(stand)
    assert backend.name == "onnxruntime" and backend.precision == "fp32"
    assert "without importing torch" in backend.choice.reason


def test_a_second_cli_run_does_not_import_torch(model_file: Path, tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "in.png"
    Image.fromarray((_image() * 255).round().astype(np.uint8)).save(src)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = ("import sys; from dipnet_core.cli import main; "
            "rc = main(sys.argv[1:]); print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    outs = []
    for i in (1, 2):
        out = tmp_path / f"out{i}.png"
        r = subprocess.run([sys.executable, "-c", code, "upscale", str(src), "-o", str(out), "--model",
                            str(model_file), "--backend", "onnx", "--precision", "fp32"],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append((r.stdout.strip().splitlines()[-1], np.asarray(Image.open(out))))
    assert outs[0][0] == "TORCH"  # the first run reads the weights with torch and caches the export
    assert outs[1][0] == "NO-TORCH"
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    assert model_file.read_bytes() == builtin_model_path().read_bytes()  # the user's file is untouched


def test_job_size_comes_from_image_headers_and_is_unknown_for_anything_else(tmp_path: Path) -> None:
    from PIL import Image

    from dipnet_core.cli.common import input_megapixels

    a, b = tmp_path / "a.png", tmp_path / "b.jpg"
    Image.new("RGB", (200, 100)).save(a)
    Image.new("RGB", (300, 50)).save(b)
    assert input_megapixels([a, b]) == pytest.approx(0.035)
    (tmp_path / "notes.txt").write_text("not an image")
    assert input_megapixels([a, tmp_path / "notes.txt"]) is None
    assert input_megapixels([a, tmp_path]) is None  # a folder: a batch of unknown size
    assert input_megapixels([tmp_path / "missing.png"]) is None


def test_a_shipped_grid_twin_stands_in_without_any_first_run(model_file: Path) -> None:
    from dipnet_core.engine.backends.onnxruntime_backend import GRID_SUFFIX

    twin = model_file.with_name(model_file.stem + GRID_SUFFIX)
    shutil.copyfile(builtin_model_path().with_name(builtin_model_path().stem + GRID_SUFFIX), twin)
    assert not onnx_cache.export_path(model_file).exists()
    stand = onnx_cache.stand_in(model_file, "onnx", "cpu", "fp32")
    assert stand is not None and stand.path == twin and stand.origin == model_file
    assert create_backend(stand, "onnx", "cpu", "fp32").grid_aware


def test_export_grid_aware_writes_the_tiling_graph_and_checks_it(model_file: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from cli_testutil import run_cli

    out = tmp_path / "mine.grid.onnx"
    rc, stdout, _ = run_cli(capsys, "export", model_file, "-o", out, "--grid-aware", "--check")
    assert rc == 0 and "(ok," in stdout
    assert create_backend(load_model(out), "onnx", "cpu", "fp32").grid_aware
    rc, _, err = run_cli(capsys, "export", model_file, "-o", tmp_path / "x.safetensors", "--grid-aware")
    assert rc == 2 and "must end in .onnx" in err
