"""How long the stages still to run will take on this machine, measured before they start.

For every stage a few training steps of its model at its patch and batch size
are timed on random data (one warm-up step, then two timed ones) and multiplied
by the steps left; stages without training steps (reparameterization, export,
comparison) count as free. The global RNG state is restored afterwards, so the
estimate changes nothing about the run itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dipnet import DIPNet
from . import events as ev
from .checkpoint import load_checkpoint
from .context import RunContext
from .stages.common import new_student, student_config
from .stages.distill import ProgressiveSchedule
from .stages.teacher import build_teacher_model, frozen_teacher

__all__ = ["estimate_run", "seconds_per_step"]

_TIMED_STEPS = 2


def seconds_per_step(model: nn.Module, lr_patch: int, batch: int, scale: int, device: torch.device,
                     teacher: Callable[[torch.Tensor], object] | None = None) -> float:
    """Mean wall time of one optimiser step of ``model`` (plus a teacher forward) on random crops."""
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    lr = torch.rand(batch, 3, lr_patch, lr_patch, device=device)
    hr = torch.rand(batch, 3, lr_patch * scale, lr_patch * scale, device=device)
    times = []
    for _ in range(1 + _TIMED_STEPS):
        t0 = time.perf_counter()
        if teacher is not None:
            teacher(lr)
        loss = F.l1_loss(model(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / _TIMED_STEPS


def _steps_left(ctx: RunContext, stage: str, total: int) -> int:
    ckpt = ctx.stage_dir(stage) / "checkpoint.pt"
    done = int(load_checkpoint(ckpt).get("step", 0)) if ckpt.exists() else 0
    return max(0, total - done)


def estimate_run(ctx: RunContext, only: list[str] | None = None, prune_rounds: int | None = None) -> ev.Estimate:
    """Measured expected time of every training stage not finished yet (or of those in ``only``).

    ``prune_rounds``: default from the plan if there is one, else ``prune.rounds`` or 1.
    """
    cfg, scale, device = ctx.config, ctx.config.data.scale, ctx.device
    per_step: dict[str, float] = {}
    stages: dict[str, float] = {}
    measured: dict[tuple, float] = {}

    def add(stage: str, key: tuple, steps: int, make: Callable[[], nn.Module], patch: int, batch: int,
            teacher: Callable[[torch.Tensor], object] | None) -> None:
        if ctx.is_done(stage) or (only is not None and stage not in only):
            return
        left = _steps_left(ctx, stage, steps)
        if left <= 0:
            return
        if key not in measured:
            measured[key] = seconds_per_step(make(), patch, batch, scale, device, teacher)
        per_step[stage] = round(measured[key], 4)
        stages[stage] = round(measured[key] * left, 3)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        tc = cfg.teacher
        if tc.kind == "train":
            add("teacher", ("teacher", tc.lr_patch, tc.batch), tc.steps, lambda: build_teacher_model(tc, scale),
                tc.lr_patch, tc.batch, None)
        teacher = None
        if tc.kind == "file" or (tc.kind == "train" and ctx.is_done("teacher")):
            teacher = frozen_teacher(ctx)
        elif tc.kind == "train":  # not trained yet: a random teacher of the same size costs the same
            t_model = build_teacher_model(tc, scale).to(device).eval().requires_grad_(False)
            teacher = t_model
        distilling = teacher if (cfg.distill.alpha > 0 or cfg.distill.beta > 0) else None
        schedule = ProgressiveSchedule.of(cfg)
        for k in range(1, len(schedule) + 1):
            spec = schedule.spec(k)
            add(spec.name, ("student", spec.lr_patch, spec.batch), spec.steps, lambda: new_student(cfg),
                spec.lr_patch, spec.batch, distilling)
        student_arch = new_student(cfg).config if cfg.student.from_model else student_config(cfg)

        def fused() -> nn.Module:  # pruned rounds are narrower: an upper bound
            return DIPNet(student_arch)

        pc = cfg.prune
        if pc.enabled:
            rounds = prune_rounds or len(ctx.state.get("prune_plan", [])) or pc.rounds or 1
            for i in range(1, rounds + 1):
                add(f"prune_{i}", ("fused", pc.finetune_lr_patch, pc.finetune_batch), pc.finetune_steps, fused,
                    pc.finetune_lr_patch, pc.finetune_batch, teacher if pc.alpha > 0 else None)
        fc = cfg.finetune
        if fc.steps > 0:
            add("finetune", ("fused", fc.lr_patch, fc.batch), fc.steps, fused, fc.lr_patch, fc.batch,
                teacher if fc.alpha > 0 else None)
    return ev.Estimate(round(sum(stages.values()), 1), stages, per_step)
