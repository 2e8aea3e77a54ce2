"""Warm starts: teacher.init and student.init continue a previous run's teacher and student."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dipnet_core.train import TrainConfig, run_pipeline
from dipnet_core.train.checkpoint import load_checkpoint
from dipnet_core.train.config import ConfigError, ProgressiveStage


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Equal up to float rounding (the EMA blends a tensor with itself)."""
    return a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def first_run(tiny_config: Callable[[Path], TrainConfig], tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("warm") / "a"
    assert run_pipeline(tiny_config(run), resume=False, only=["teacher", "distill_1"]).status == "partial"
    return run


def _follow_up(tiny_config: Callable[[Path], TrainConfig], out: Path, first: Path | None) -> TrainConfig:
    """A second run whose optimiser cannot move anything (lr 0), so its weights show where it started."""
    cfg = tiny_config(out)
    cfg.teacher.lr = 0.0
    cfg.distill.lr = 0.0
    cfg.distill.stages = [ProgressiveStage(16, 2, 2)]
    if first is not None:
        cfg.teacher.init = str(first / "stages" / "teacher" / "model.pt")
        cfg.student.init = str(first / "stages" / "distill_1" / "model.pt")
    return cfg


def test_follow_up_run_starts_from_the_previous_teacher_and_student(
        first_run: Path, tiny_config: Callable[[Path], TrainConfig], tmp_path: Path) -> None:
    before_t = load_checkpoint(first_run / "stages" / "teacher" / "model.pt")
    before_s = load_checkpoint(first_run / "stages" / "distill_1" / "model.pt")

    warm = _follow_up(tiny_config, tmp_path / "warm", first_run)
    assert run_pipeline(warm, resume=False, only=["teacher", "distill_1"]).status == "partial"
    after_t = load_checkpoint(tmp_path / "warm" / "stages" / "teacher" / "model.pt")
    after_s = load_checkpoint(tmp_path / "warm" / "stages" / "distill_1" / "model.pt")
    assert _same(after_t["model"], before_t["model"])
    assert _same(after_s["raw"], before_s["raw"])
    assert _same(after_s["adapters"], before_s["adapters"])
    log = (tmp_path / "warm" / "log.txt").read_text()
    assert "teacher continues from" in log and "student continues from" in log
    recorded = json.loads((tmp_path / "warm" / "state.json").read_text())["metrics"]
    assert recorded["teacher"]["continued_from"] == warm.teacher.init
    assert recorded["distill_1"]["continued_from"] == warm.student.init

    # the same run without init starts from fresh weights, so the comparison above can fail
    cold = _follow_up(tiny_config, tmp_path / "cold", None)
    run_pipeline(cold, resume=False, only=["teacher", "distill_1"])
    cold_s = load_checkpoint(tmp_path / "cold" / "stages" / "distill_1" / "model.pt")
    assert not _same(cold_s["raw"], before_s["raw"])
    assert "continued_from" not in json.loads((tmp_path / "cold" / "state.json").read_text())["metrics"]["teacher"]


def test_init_with_other_widths_is_refused_by_name(first_run: Path, tiny_config: Callable[[Path], TrainConfig],
                                                   tmp_path: Path) -> None:
    cfg = _follow_up(tiny_config, tmp_path / "wide", first_run)
    cfg.teacher.init = None
    cfg.teacher.kind = "none"
    cfg.student.feat = 16
    with pytest.raises(ValueError, match="student.init .*different architecture"):
        run_pipeline(cfg, resume=False, only=["distill_1"])


def test_init_settings_are_validated(first_run: Path, tiny_config: Callable[[Path], TrainConfig],
                                     tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "x")
    cfg.student.init = str(tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="student.init: no such file"):
        cfg.validate()
    cfg = tiny_config(tmp_path / "x")
    cfg.teacher.kind = "none"
    cfg.teacher.init = str(first_run / "stages" / "teacher" / "model.pt")
    with pytest.raises(ConfigError, match="teacher.init only applies"):
        cfg.validate()
