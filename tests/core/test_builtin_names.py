"""`--model clean|photo`: short names of the built-in models resolve to their files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dipnet_core import resources
from dipnet_core.models import load_model
from dipnet_core.resources import BUILTIN_MODELS, builtin_model_by_name, builtin_model_path, resolve_model_arg

SHIPPED = Path(resources.__file__).resolve().parents[1] / "resources" / "models" / "dipnet-studio-x4.safetensors"


def test_clean_is_the_default_built_in_and_paths_pass_through(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if builtin_model_path() is None:
        pytest.skip("this build carries no built-in model")
    assert resolve_model_arg("clean") == builtin_model_path() == resolve_model_arg(None)
    assert resolve_model_arg("clean").name == "dipnet-studio-x4.safetensors"
    assert resolve_model_arg("some/model.onnx") == Path("some/model.onnx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo").write_bytes(b"")  # a file named like a short name is that file
    assert resolve_model_arg("photo") == Path("photo")


def test_photo_resolves_when_shipped_and_is_a_clear_error_when_not(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(SHIPPED, models / "dipnet-studio-x4.safetensors")
    monkeypatch.setattr(resources, "_CANDIDATE_DIRS", (models,))
    with pytest.raises(ValueError, match=r"'photo' \(dipnet-studio-x4-photo\) is not in this build; available: clean"):
        resolve_model_arg("photo")
    shutil.copy(SHIPPED, models / "dipnet-studio-x4-photo.safetensors")  # stands in for the trained photo model
    photo = resolve_model_arg("photo")
    assert photo == models / "dipnet-studio-x4-photo.safetensors" == builtin_model_by_name("photo")
    assert load_model(photo).descriptor.scale == 4
    assert builtin_model_path() == models / "dipnet-studio-x4.safetensors"  # the default stays the clean model
    assert builtin_model_by_name("nonsense") is None
    assert all(use_for for _, use_for in BUILTIN_MODELS.values())
