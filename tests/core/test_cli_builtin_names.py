"""``--model clean|photo`` on the command line: the built-ins by short name, and a clear usage error."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_testutil import run_cli
from PIL import Image

from dipnet_core import resources
from dipnet_core.batch import REPORT_NAME, BatchReport
from dipnet_core.cli import main
from dipnet_core.cli.common import EXIT_USAGE

MODELS = Path(resources.__file__).resolve().parents[1] / "resources" / "models"
SHIPPED = MODELS / f"{resources.BUILTIN_MODEL_NAME}.safetensors"
PHOTO_FILE = "dipnet-studio-x4-photo.safetensors"


_run = run_cli


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A built-in models folder holding the real clean model only."""
    d = tmp_path / "builtin"
    d.mkdir()
    shutil.copy(SHIPPED, d / SHIPPED.name)
    monkeypatch.setattr(resources, "_CANDIDATE_DIRS", (d,))
    return d


def test_help_names_the_short_names(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("upscale", "batch", "bench"):
        assert main([command, "--help"]) == 0
        assert "FILE, or a built-in: clean | photo" in " ".join(capsys.readouterr().out.split())


def test_photo_not_in_this_build_is_a_usage_error(capsys, models_dir: Path,
                                                  small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("pic.png", size=(24, 20))
    for command in (["upscale", src], ["batch", src.parent, "-o", src.parent / "out"]):
        rc, _, err = _run(capsys, *command, "--model", "photo")
        assert rc == EXIT_USAGE
        assert "built-in model 'photo' (dipnet-studio-x4-photo) is not in this build; available: clean" in err
    assert not (src.parent / "pic_x4.png").exists()


def test_no_builtin_at_all_is_a_usage_error(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            small_rgb_image: Callable[..., Path]) -> None:
    monkeypatch.setattr(resources, "_CANDIDATE_DIRS", (tmp_path / "nothing",))
    rc, _, err = _run(capsys, "upscale", small_rgb_image("pic.png", size=(24, 20)))
    assert rc == EXIT_USAGE and resources.NO_BUILTIN_MODEL in err


def test_clean_and_photo_pick_their_files(capsys, models_dir: Path, tmp_path: Path,
                                          small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("pic.png", size=(24, 20))
    rc, out, err = _run(capsys, "upscale", src, "-o", tmp_path / "clean.png", "--model", "clean")
    assert rc == 0, err
    assert f"[{models_dir / SHIPPED.name}]" in out
    with Image.open(tmp_path / "clean.png") as im:
        assert im.size == (96, 80)

    # The real clean model's weights, placed where the photo model ships, stand in for it.
    shutil.copy(SHIPPED, models_dir / PHOTO_FILE)
    rc, out, err = _run(capsys, "upscale", src, "-o", tmp_path / "photo.png", "--model", "photo")
    assert rc == 0, err
    assert f"[{models_dir / PHOTO_FILE}]" in out
    with Image.open(tmp_path / "photo.png") as im:
        assert im.size == (96, 80)


def test_batch_chooses_the_model_per_run(capsys, models_dir: Path, tmp_path: Path,
                                         small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("pic.png", size=(24, 20))
    shutil.copy(SHIPPED, models_dir / PHOTO_FILE)
    out_dir = tmp_path / "out"
    rc, _, err = _run(capsys, "batch", src.parent, "-o", out_dir, "--model", "photo")
    assert rc == 0, err
    report = BatchReport.load(out_dir / REPORT_NAME)
    assert Path(report.model) == models_dir / PHOTO_FILE
    with Image.open(out_dir / "pic_x4.png") as im:
        assert im.size == (96, 80)
