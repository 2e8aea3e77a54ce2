"""``distill.teacher_self_ensemble``: enhanced-HR targets as the mean of the teacher on 8 flips/rotations."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dipnet_core.train.config import config_from_dict, config_to_dict, load_config, preset, save_config
from dipnet_core.train.self_ensemble import DIHEDRAL, dihedral_t, dihedral_t_inverse
from dipnet_core.train.stages.common import resolve_model_path
from dipnet_core.train.stages.teacher import Teacher, load_teacher_file


@pytest.fixture(scope="module")
def teacher_path() -> Path:
    return resolve_model_path("builtin", "teacher.path")  # the shipped teacher


@pytest.fixture(scope="module")
def lr_batch() -> torch.Tensor:
    # Two non-square crops (rotations swap H and W), a smooth pattern plus noise: something to upscale.
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(26.0), indexing="ij")
    base = 0.5 + 0.3 * torch.sin(x / 3 + y / 5)
    return (base.expand(2, 3, 20, 26) + 0.05 * torch.randn(2, 3, 20, 26, generator=g)).clamp(0, 1)


def test_the_transforms_invert_and_are_eight_different_ones(lr_batch: torch.Tensor) -> None:
    seen = set()
    for t in DIHEDRAL:
        moved = dihedral_t(lr_batch, t)
        assert torch.equal(dihedral_t_inverse(moved, t), lr_batch)
        seen.add(moved.numpy().tobytes())
    assert len(DIHEDRAL) == 8 and len(seen) == 8


def test_ensemble_target_is_the_mean_of_eight_teacher_runs(teacher_path: Path,
                                                            lr_batch: torch.Tensor) -> None:
    t = load_teacher_file(teacher_path, scale=4)
    plain_sr, plain_anchors = t(lr_batch)
    with torch.no_grad():
        manual = torch.stack([dihedral_t_inverse(t.module(dihedral_t(lr_batch, tr)), tr) for tr in DIHEDRAL])
    t.self_ensemble = True
    sr, anchors = t(lr_batch)
    assert sr.shape == (2, 3, 80, 104)
    torch.testing.assert_close(sr, manual.mean(0), atol=1e-6, rtol=0)
    assert (sr - plain_sr).abs().max() > 1e-3  # the ensemble really differs from one pass
    # Anchors are the identity pass's (aligned with the student's features), not a rotated pass's.
    assert anchors is not None and plain_anchors is not None and len(anchors) == len(plain_anchors)
    for a, b in zip(anchors, plain_anchors):
        assert torch.equal(a, b)


def test_off_by_default_leaves_targets_bit_identical(teacher_path: Path, lr_batch: torch.Tensor) -> None:
    assert preset("quick-cpu").distill.teacher_self_ensemble is False
    t = load_teacher_file(teacher_path, scale=4)
    assert t.self_ensemble is False
    with torch.no_grad():
        before = t.module(lr_batch)  # what the target was before the option existed: one plain forward
    assert torch.equal(t(lr_batch)[0], before)


def test_flipped_input_gives_the_flipped_ensemble_target(teacher_path: Path, lr_batch: torch.Tensor) -> None:
    t = Teacher(load_teacher_file(teacher_path, scale=4).module, 4, self_ensemble=True)
    sr = t(lr_batch)[0]
    flipped = t(torch.flip(lr_batch, dims=(-1,)))[0]
    torch.testing.assert_close(flipped, torch.flip(sr, dims=(-1,)), atol=2e-6, rtol=0)


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_config_round_trip(tmp_path: Path, suffix: str) -> None:
    cfg = preset("tiny-test")
    cfg.distill.teacher_self_ensemble = True
    back = load_config(save_config(cfg, tmp_path / f"c{suffix}"))
    assert back.distill.teacher_self_ensemble is True
    assert config_to_dict(back) == config_to_dict(cfg)
    assert config_from_dict({"distill": {"teacher_self_ensemble": True}}).distill.teacher_self_ensemble
    with pytest.raises(Exception, match="true/false"):
        config_from_dict({"distill": {"teacher_self_ensemble": "yes"}})


def test_the_run_teacher_follows_the_config(tmp_path: Path, teacher_path: Path) -> None:
    from dipnet_core.train.context import RunContext
    from dipnet_core.train.stages.teacher import frozen_teacher

    for on in (False, True):
        cfg = preset("tiny-test")
        cfg.teacher.kind, cfg.teacher.path = "file", str(teacher_path)
        cfg.distill.teacher_self_ensemble = on
        cfg.run.out_dir = str(tmp_path / f"run-{on}")
        ctx = RunContext.open(cfg, resume=False, load_data=False)
        try:
            teacher = frozen_teacher(ctx)
            assert teacher is not None and teacher.self_ensemble is on
        finally:
            ctx.close()
