"""The training loop's contracts: progressive phases, early validation, losses kept on the device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dipnet_core.models import DIPNet, DIPNetConfig
from dipnet_core.train import events as ev
from dipnet_core.train.config import ProgressiveStage, TrainConfig
from dipnet_core.train.context import RunContext
from dipnet_core.train.loop import StageSpec, TrainNet, train_loop
from dipnet_core.train.losses import DistillLoss
from dipnet_core.train.stages import ProgressiveSchedule


def test_progressive_schedule_grows_patches_phase_by_phase(tiny_config: Callable[[Path], TrainConfig],
                                                           tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.distill.warmup_steps = 3
    cfg.distill.stages = [ProgressiveStage(16, 5, 4), ProgressiveStage(24, 3, 2, 1e-4)]
    schedule = ProgressiveSchedule.of(cfg)
    assert len(schedule) == 2 and schedule.stage_names() == ["distill_1", "distill_2"]
    assert schedule.previous(1) is None and schedule.previous(2) == "distill_1"
    first, second = schedule.spec(1), schedule.spec(2)
    assert (first.lr_patch, first.steps, first.batch, first.lr, first.warmup) == (16, 5, 4, cfg.distill.lr, 3)
    assert (second.lr_patch, second.steps, second.batch, second.lr, second.warmup) == (24, 3, 2, 1e-4, 0)
    assert first.stream != second.stream  # each phase draws its own crops
    cfg.distill.phase_warmup_steps = 2  # adaptation: later phases warm up their fresh optimizer too
    assert ProgressiveSchedule.of(cfg).spec(2).warmup == 2


def _teacher_only(cfg: TrainConfig, early: bool) -> list[ev.Event]:
    from dipnet_core.train import run_pipeline

    cfg.run.validate_early, cfg.run.val_every, cfg.teacher.steps = early, 0, 4
    seen: list[ev.Event] = []
    run_pipeline(cfg, seen.append, resume=False, only=["teacher"])
    return [e for e in seen if isinstance(e, (ev.Validation, ev.Step)) and e.stage == "teacher"]


def test_validate_early_reports_the_starting_quality_before_the_first_step(
        tiny_config: Callable[[Path], TrainConfig], tmp_path: Path) -> None:
    events = _teacher_only(tiny_config(tmp_path / "on"), early=True)
    assert isinstance(events[0], ev.Validation) and events[0].step == 0
    assert [e.step for e in events if isinstance(e, ev.Validation)] == [0, 4]  # and the usual one at the end
    events = _teacher_only(tiny_config(tmp_path / "off"), early=False)
    assert [e.step for e in events if isinstance(e, ev.Validation)] == [4]


def test_loss_parts_stay_tensors_until_a_log_step() -> None:
    sr, hr = torch.rand(1, 3, 8, 8, requires_grad=True), torch.rand(1, 3, 8, 8)
    total, parts = DistillLoss(1.0, 0.5)(sr, hr, torch.rand(1, 3, 8, 8))
    assert set(parts) == {"l1_hr", "l1_teacher", "total"}
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad for v in parts.values())
    assert float(parts["total"]) == pytest.approx(float(total.detach()))


def test_a_non_finite_loss_stops_the_stage_before_any_checkpoint(tiny_config: Callable[[Path], TrainConfig],
                                                                 tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path)
    cfg.run.log_every, cfg.run.ckpt_every, cfg.run.validate_early = 4, 2, False
    ctx = RunContext.open(cfg, resume=False)
    model = DIPNet(DIPNetConfig.uniform(8, 8, n_blocks=1, esa=8))
    steps_run = []

    def nan_loss(sr, adapted, lr, hr):
        steps_run.append(1)
        loss = (sr - hr).abs().mean() * float("nan")
        return loss, {"total": loss.detach()}

    with pytest.raises(FloatingPointError, match="nan_stage"):
        train_loop(ctx, StageSpec("nan_stage", 6, 16, 2, 1e-3, 7), TrainNet(model), nan_loss)
    ctx.close()
    assert not (ctx.stage_dir("nan_stage") / "checkpoint.pt").exists()
    assert len(steps_run) == 1 + 2  # the probe batch, then steps 1 and 2: stopped at the first checkpoint


def _train_import_graph() -> dict[str, set[str]]:
    """Module -> the dipnet_core.train modules it imports anywhere in its source (function bodies too)."""
    import ast

    from dipnet_core import train

    root = Path(train.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(("dipnet_core", "train") + tuple(p for p in parts if p != "__init__"))
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t.startswith("dipnet_core.train.")}
        graph[name] = deps
    return {k: {d for d in v if d in graph and d != k} for k, v in graph.items()}


def test_training_modules_import_each_other_without_a_circle() -> None:
    """distributed -> pipeline -> context -> distributed was closed by a local import; no circle is left."""
    graph = {k: v for k, v in _train_import_graph().items() if not k.endswith("train")}  # the package facade
    graph = {k: {d for d in v if d in graph} for k, v in graph.items()}
    assert "dipnet_core.train.pipeline" not in graph["dipnet_core.train.distributed"]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                raise AssertionError("import circle: " + " -> ".join(path + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
