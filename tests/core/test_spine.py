"""The spine (issue 20): one error hierarchy, one atomic write, the CLI and batch packages."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dipnet_core import errors
from dipnet_core.io import atomic

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------------------------- errors


def test_existing_error_classes_join_the_hierarchy_and_keep_their_bases() -> None:
    from dipnet_core.batch import ReportError
    from dipnet_core.cancel import Cancelled
    from dipnet_core.engine import BackendUnavailable
    from dipnet_core.export import ExportError
    from dipnet_core.io import ImageReadError, ImageWriteError
    from dipnet_core.models import ModelLoadError
    from dipnet_core.train.config import ConfigError
    from dipnet_core.train.data import DataError

    expected = {
        ImageReadError: (errors.InputError,), ImageWriteError: (errors.OutputError,),
        ModelLoadError: (errors.ModelError,), ExportError: (errors.ModelError,),
        BackendUnavailable: (errors.ModelError, RuntimeError),
        ConfigError: (errors.ConfigError, ValueError), DataError: (errors.InputError, RuntimeError),
        ReportError: (errors.InputError, ValueError),
    }
    for cls, bases in expected.items():
        assert issubclass(cls, errors.DipnetError), cls
        for base in bases:
            assert issubclass(cls, base), (cls, base)
    assert Cancelled is errors.Cancelled and issubclass(Cancelled, errors.DipnetError)
    assert not issubclass(errors.DipnetError, (RuntimeError, ValueError, OSError))


def _fail_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    import dipnet_core.cli.info as info_command

    def run(args: object) -> int:
        raise exc

    monkeypatch.setattr(info_command, "run", run)


def test_cli_prints_expected_errors_as_one_line(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from dipnet_core.cli import main
    from dipnet_core.models import ModelLoadError

    _fail_with(monkeypatch, ModelLoadError("m.pth", "not a model"))
    assert main(["info"]) == 1
    assert capsys.readouterr().err == "error: cannot load model 'm.pth': not a model\n"

    _fail_with(monkeypatch, PermissionError(13, "Permission denied", "/data/x.png"))
    assert main(["info"]) == 1
    assert capsys.readouterr().err == "error: '/data/x.png': permission denied\n"


@pytest.mark.parametrize("bug", [RuntimeError("CUDA kernel exploded"), ValueError("bad shape"),
                                 KeyError("missing")])
def test_cli_keeps_the_traceback_of_unexpected_errors(monkeypatch: pytest.MonkeyPatch,
                                                      bug: Exception) -> None:
    from dipnet_core.cli import main

    _fail_with(monkeypatch, bug)
    with pytest.raises(type(bug)):
        main(["info"])


def test_cli_modules_for_upscale_batch_info_do_not_import_torch() -> None:
    code = ("import sys, dipnet_core.cli, dipnet_core.cli.upscale, dipnet_core.cli.batch, dipnet_core.cli.info;"
            "dipnet_core.cli.build_parser();"
            "print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.stdout.strip() == "[]"


def test_python_dash_m_and_entry_point_name_the_same_main() -> None:
    import tomllib

    from dipnet_core import cli

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts["dipnet"] == "dipnet_core.cli:main" and callable(cli.main)
    out = subprocess.run([sys.executable, "-m", "dipnet_core", "--help"], capture_output=True, text=True,
                         cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": ""})
    assert out.returncode == 0
    for command in ("upscale", "batch", "train", "eval", "export", "info", "bench"):
        assert command in out.stdout


# ---------------------------------------------------------------------------------------------- atomic write


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths whose data the one atomic write fsynced (the temporary file, before its rename)."""
    seen: list[Path] = []
    real = atomic._fsync_file

    def record(path: Path) -> None:
        seen.append(Path(path))
        real(path)

    monkeypatch.setattr(atomic, "_fsync_file", record)
    return seen


def _written_through_atomic(target: Path, fsynced: list[Path]) -> bool:
    return any(p.parent == target.parent and p.name.startswith(f".{target.name}.dipnet-") for p in fsynced)


def test_training_checkpoint_and_config_use_the_atomic_write(tmp_path: Path, fsynced: list[Path]) -> None:
    import torch

    from dipnet_core.train.checkpoint import load_checkpoint, save_checkpoint, write_json
    from dipnet_core.train.config import PRESETS, load_config, save_config

    ckpt = tmp_path / "run" / "ckpt.pt"
    save_checkpoint(ckpt, {"step": 3, "w": torch.ones(2)})
    assert load_checkpoint(ckpt)["step"] == 3 and _written_through_atomic(ckpt, fsynced)

    state = tmp_path / "run" / "state.json"
    write_json(state, {"a": 1})
    assert json.loads(state.read_text()) == {"a": 1} and _written_through_atomic(state, fsynced)

    cfg_path = tmp_path / "run" / "config.toml"
    cfg = PRESETS["tiny-test"]()
    save_config(cfg, cfg_path)
    assert load_config(cfg_path).preset == cfg.preset and _written_through_atomic(cfg_path, fsynced)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["ckpt.pt", "config.toml", "state.json"]


def test_app_settings_use_the_atomic_write(tmp_path: Path, fsynced: list[Path]) -> None:
    pytest.importorskip("platformdirs")
    from app.settings import AppPaths, SettingsStore

    paths = AppPaths(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data", log_dir=tmp_path / "log")
    store = SettingsStore(paths)
    store.save()
    assert paths.settings_file.is_file() and _written_through_atomic(paths.settings_file, fsynced)


def _build_dataset_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dataset_under_test", REPO / "scripts" / "build_dataset.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_dataset_builder_uses_the_atomic_write(tmp_path: Path, fsynced: list[Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    bd = _build_dataset_module(monkeypatch)
    manifest, png = tmp_path / "manifest.json", tmp_path / "train" / "a.png"
    bd.atomic_write_bytes(manifest, b"{}\n")
    bd.atomic_save_png(Image.new("RGB", (4, 4)), png)
    for target in (manifest, png):
        assert _written_through_atomic(target, fsynced)
        assert target.stat().st_mode & 0o777 == bd.FILE_MODE


def test_the_app_treats_the_core_hierarchy_as_expected() -> None:
    from app.errors import is_expected, user_message

    for exc in (errors.InputError("x.png: bad"), errors.OutputError("y"), errors.ModelError("m"),
                errors.ConfigError("c"), errors.Cancelled("stop")):
        assert is_expected(exc), exc
    assert not is_expected(KeyError("bug"))
    assert user_message(errors.InputError("cannot read 'x.png': file is empty")) == \
        "cannot read 'x.png': file is empty"
