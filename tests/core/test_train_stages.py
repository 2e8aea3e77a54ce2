"""Each training stage on tiny real data: losses go down, reparam is exact, pruned rounds load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from dipnet_core.models import DIPNet, DIPNetConfig, load_model, save_model
from dipnet_core.models.loader import dipnet_descriptor
from dipnet_core.models.train_blocks import DIPNetTrain
from dipnet_core.train import stages
from dipnet_core.train.config import ProgressiveStage, TrainConfig, preset
from dipnet_core.train.context import RunContext
from dipnet_core.train.losses import AnchorAdapters, DistillLoss, default_anchor_pairs
from dipnet_core.train.stages.teacher import Teacher, load_teacher_file


def _cfg(cfg: TrainConfig) -> TrainConfig:
    """The tiny config without validation passes."""
    cfg.run.val_every = 0
    return cfg


def _went_down(m: dict, factor: float = 0.9) -> bool:
    """Loss on the stage's fixed probe batch (a noise-free number) dropped by ``factor``."""
    return m["probe_loss_end"] < factor * m["probe_loss_start"]


@pytest.fixture(scope="module")
def trained(tiny_config: Callable[[Path], TrainConfig],
            tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """One tiny run through teacher, distill (2 progressive sub-stages), reparam, 2 prune rounds, finetune."""
    cfg = _cfg(tiny_config(tmp_path_factory.mktemp("run")))
    cfg.teacher.steps = 12
    cfg.student.feat = cfg.student.mid = 16  # 16 -> 12 -> 8 in two rounds of 31.25 %
    cfg.distill.stages = [ProgressiveStage(16, 10, 4), ProgressiveStage(20, 6, 2)]
    cfg.prune.rounds, cfg.prune.finetune_steps = 2, 10
    cfg.finetune.steps = 8
    ctx = RunContext.open(cfg, resume=False)
    stages.train_teacher(ctx)
    stages.distill(ctx)
    stages.reparameterize(ctx)
    for i in range(1, len(stages.plan_pruning(ctx)) + 1):
        stages.prune_round(ctx, i)
    stages.finetune(ctx)
    ctx.close()
    return ctx


def test_every_training_stage_lowers_its_loss(trained: RunContext) -> None:
    m = trained.state["metrics"]
    # From scratch: a clear drop; fine-tunes of an already trained model: any drop.
    for name, factor in (("teacher", 0.9), ("distill_1", 0.9), ("distill_2", 0.99), ("prune_1", 0.99),
                         ("prune_2", 0.99), ("finetune", 0.995)):
        assert _went_down(m[name], factor), (name, m[name]["probe_loss_start"], m[name]["probe_loss_end"])
    assert set(m["distill_1"]["losses"]) == {"l1_hr", "l1_teacher", "anchor"}
    assert m["distill_1"]["anchor_pairs"] == [[1, 2], [2, 4]]


def test_progressive_substage_continues_from_the_previous(trained: RunContext) -> None:
    m = trained.state["metrics"]
    # distill_2 starts where distill_1 ended (same weights), not from a fresh init
    assert m["distill_2"]["probe_loss_start"] < m["distill_1"]["probe_loss_start"] * 0.9
    assert m["distill_2"]["lr_patch"] == 20


def test_reparameterized_student_matches_the_multibranch_model(trained: RunContext) -> None:
    from dipnet_core.reparam import check_equivalence

    m = trained.state["metrics"]["reparam"]
    assert m["max_abs_diff"] < 1e-5 and m["params"] < m["params_multibranch"]
    multi, _ = trained.load_output("distill_2")
    deploy, _ = trained.load_output("reparam")
    assert isinstance(multi, DIPNetTrain) and isinstance(deploy, DIPNet)
    multi.set_fuse_in_forward(False)
    assert check_equivalence(multi, deploy, sizes=[(21, 19), (40, 33)], atol=1e-5) < 1e-5


def test_pruning_rounds_have_expected_widths_and_load(trained: RunContext, tmp_path: Path) -> None:
    plan = trained.state["prune_plan"]
    assert [p["widths"] for p in plan] == ["12/12", "8/8"]
    start = DIPNetConfig.from_dict(trained.state["metrics"]["reparam"]["config"])
    assert start.widths_label() == "16/16"
    for i, p in enumerate(plan, start=1):
        m = trained.state["metrics"][f"prune_{i}"]
        model, _ = trained.load_output(f"prune_{i}")
        assert model.config.to_dict() == p["config"] == m["config"]
        assert m["latency_s_per_mp"] > 0 and "psnr_y_before_finetune" in m
        path = save_model(tmp_path / f"round{i}.safetensors", model, dipnet_descriptor(model, name=f"r{i}"))
        loaded = load_model(path)
        assert isinstance(loaded.module, DIPNet) and loaded.module.config == model.config
        x = torch.rand(1, 3, 17, 19)
        with torch.no_grad():
            assert torch.allclose(loaded.module(x), model.eval()(x), atol=1e-6)


def test_plain_student_without_teacher(tiny_config: Callable[[Path], TrainConfig], tmp_path: Path) -> None:
    cfg = _cfg(tiny_config(tmp_path))
    cfg.teacher.kind = "none"
    cfg.distill.stages = [ProgressiveStage(16, 10, 4)]
    ctx = RunContext.open(cfg, resume=False)
    m = stages.distill(ctx)
    ctx.close()
    assert m["losses"] == ["l1_hr"] and _went_down(m)
    assert any("no teacher" in n for n in m["notes"])


def test_official_weights_as_teacher_provide_anchors(tmp_path: Path) -> None:
    # The authors' file layout: a plain state dict of the 44/38 network (seeded weights here).
    torch.manual_seed(0)
    official_weights_path = tmp_path / "dipnet_x4.pth"
    torch.save(DIPNet(DIPNetConfig()).state_dict(), official_weights_path)
    t = load_teacher_file(official_weights_path, scale=4)
    assert t.has_anchors and (t.n_blocks, t.width) == (4, 44)
    sr, anchors = t(torch.rand(1, 3, 16, 16))
    assert sr.shape == (1, 3, 64, 64) and len(anchors) == 4 and anchors[0].shape == (1, 44, 16, 16)
    with pytest.raises(ValueError, match="x4"):
        load_teacher_file(official_weights_path, scale=2)


def test_non_dipnet_teacher_disables_anchors_with_a_reason() -> None:
    other = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.PixelShuffle(4))
    t = Teacher(other, 4, name="other")
    assert not t.has_anchors and "not a DIPNet-family" in t.anchor_reason
    sr, anchors = t(torch.rand(1, 3, 16, 16))
    assert sr.shape == (1, 3, 64, 64) and anchors is None


def test_multi_anchor_loss_trains_adapters() -> None:
    torch.manual_seed(0)
    student = DIPNetTrain(DIPNetConfig.uniform(8, 8, n_blocks=2, esa=8), expansion=1.0)
    teacher = Teacher(DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=4, esa=8)), 4)
    pairs = default_anchor_pairs(2, teacher.n_blocks)
    adapters = AnchorAdapters(8, teacher.width, len(pairs))
    loss = DistillLoss(hr_weight=0.0, alpha=0.0, beta=1.0, pairs=pairs)
    opt = torch.optim.Adam(list(student.parameters()) + list(adapters.parameters()), lr=3e-3)
    x = torch.rand(2, 3, 16, 16)
    t_sr, t_feats = teacher(x)
    values = []
    for _ in range(15):
        sr, feats = student.forward_features(x)
        total, parts = loss(sr, x, t_sr, adapters([feats[s - 1] for s, _ in pairs]), [t_feats[t - 1] for _, t in pairs])
        opt.zero_grad()
        total.backward()
        opt.step()
        values.append(float(parts["anchor"]))
    assert values[-1] < 0.8 * values[0]
    assert adapters.convs[0].weight.grad is not None


@pytest.mark.parametrize("budget, expect", [(1e9, ["12/12"]), (1e-9, ["12/12", "8/8"])])
def test_latency_budget_decides_the_pruning_rounds(tmp_path: Path, budget: float, expect: list[str]) -> None:
    cfg = preset("tiny-test")
    cfg.run.out_dir = str(tmp_path)
    cfg.prune.rounds, cfg.prune.latency_budget = 0, budget
    logged: list[str] = []
    ctx = RunContext.open(cfg, callback=lambda e: logged.append(getattr(e, "message", "")), load_data=False)
    ctx.save_output("reparam", DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=2, esa=8)))
    plan = stages.plan_pruning(ctx)
    ctx.close()
    assert [c.widths_label() for c in plan] == expect
    assert all(p["planned_latency_s_per_mp"] > 0 for p in ctx.state["prune_plan"])  # measured on this CPU
    # an unreachable budget prunes to the narrowest widths and says so
    assert any("exceeds the latency budget" in m for m in logged) == (budget < 1)
