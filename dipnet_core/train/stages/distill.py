"""Stage 2, distillation: the student learns from the HR images and from the teacher.

The three ideas of DIPNet's training, each a named piece here:

* **enhanced-HR target** (``distill.alpha``): besides the ground-truth HR, the
  student matches the teacher's SR of the same LR input, a sharper and more
  consistent target than bicubic-made pairs alone;
* **multi-anchor distillation** (``distill.beta``): student block outputs,
  lifted by 1x1 adapters to the teacher's width, match the teacher's block
  outputs at the same relative depth (:func:`anchor_setup`);
* **progressive learning** (:class:`ProgressiveSchedule`): training runs in
  phases on growing patches; phase ``k`` is its own stage ``distill_k`` (own
  checkpoints, own resume point) and continues from phase ``k-1``'s weights,
  EMA and adapters.

The student is the multi-branch ``DIPNetTrain`` (RepConv), fused afterwards by
:mod:`.reparam`: random at first, or (adaptation, ``student.from_model``) a
finished model re-expanded exactly by :func:`~..expand.expand_fused`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...models.train_blocks import DIPNetTrain
from ..checkpoint import load_checkpoint
from ..config import DistillConfig, ProgressiveStage, TrainConfig
from ..context import RunContext
from ..loop import LossFn, StageSpec, TrainNet, train_loop
from ..losses import AnchorAdapters, DistillLoss, default_anchor_pairs
from ..teacher_input import teacher_input_for
from .common import (
    STREAM_DISTILL,
    done_metrics,
    model_summary,
    new_student,
    start_model_record,
    warm_start_payload,
)
from .teacher import Teacher, frozen_teacher

__all__ = ["ProgressiveSchedule", "anchor_setup", "distill", "distill_stage_names", "loss_terms"]


@dataclass(frozen=True)
class ProgressiveSchedule:
    """Progressive learning: distillation phases on growing patches, each continuing from the last.

    Built from ``distill.stages`` (one :class:`~..config.ProgressiveStage` per
    phase: LR patch, steps, batch, optional learning rate). Phase ``k`` (1-based)
    runs as stage ``distill_k`` on its own data stream; phase 1 warms up for
    ``warmup_steps``, later phases for ``phase_warmup_steps`` (0 unless adapting).
    """

    phases: tuple[ProgressiveStage, ...]
    distill: DistillConfig

    @classmethod
    def of(cls, config: TrainConfig) -> ProgressiveSchedule:
        return cls(tuple(config.distill.stages), config.distill)

    def __len__(self) -> int:
        return len(self.phases)

    @staticmethod
    def stage_name(k: int) -> str:
        return f"distill_{k}"

    def stage_names(self) -> list[str]:
        return [self.stage_name(k) for k in range(1, len(self.phases) + 1)]

    def previous(self, k: int) -> str | None:
        """The stage whose output phase ``k`` continues from (None for the first phase)."""
        return self.stage_name(k - 1) if k > 1 else None

    def spec(self, k: int) -> StageSpec:
        """Phase ``k``'s training budget: patch, steps, batch, learning rate, data stream."""
        phase, dc = self.phases[k - 1], self.distill
        return StageSpec(self.stage_name(k), phase.steps, phase.lr_patch, phase.batch, phase.lr or dc.lr,
                         STREAM_DISTILL + k, min_lr_ratio=dc.min_lr_ratio,
                         warmup=dc.warmup_steps if k == 1 else dc.phase_warmup_steps,
                         ema_decay=dc.ema_decay, grad_clip=dc.grad_clip)


def distill_stage_names(cfg: TrainConfig) -> list[str]:
    """Names of the distillation stages in run order (``distill_1 .. distill_N``)."""
    return ProgressiveSchedule.of(cfg).stage_names()


def distill(ctx: RunContext, sub: int | None = None) -> dict[str, Any]:
    """Run the progressive schedule (or only phase ``sub``); returns the last phase's metrics."""
    schedule = ProgressiveSchedule.of(ctx.config)
    ks = range(1, len(schedule) + 1) if sub is None else [sub]
    metrics: dict[str, Any] = {}
    for k in ks:
        name = schedule.stage_name(k)
        metrics = done_metrics(ctx, name) if ctx.is_done(name) else _distill_phase(ctx, schedule, k)
    return metrics


def anchor_setup(dc: DistillConfig, student: DIPNetTrain, teacher: Teacher | None
                 ) -> tuple[list[tuple[int, int]], AnchorAdapters | None, list[str]]:
    """Multi-anchor distillation for this student and teacher: (block pairs, adapters, notes).

    Pairs are ``distill.anchors`` or student block i -> the teacher block at the
    same relative depth; no adapters (and a note saying why) when the teacher has
    no usable anchors or there is no teacher.
    """
    pairs: list[tuple[int, int]] = []
    adapters = None
    notes: list[str] = []
    n_student = len(student.config.blocks)
    if teacher is not None and dc.beta > 0:
        if teacher.has_anchors:
            pairs = [(int(s), int(t)) for s, t in dc.anchors] or default_anchor_pairs(n_student, teacher.n_blocks)
            for s, t in pairs:
                if not (1 <= s <= n_student and 1 <= t <= teacher.n_blocks):
                    raise ValueError(f"anchor pair ({s}, {t}) is outside student 1..{n_student} "
                                     f"/ teacher 1..{teacher.n_blocks}")
            adapters = AnchorAdapters(student.config.feat, teacher.width, len(pairs))
        else:
            notes.append(f"multi-anchor distillation disabled: {teacher.anchor_reason}")
    elif dc.beta > 0:
        notes.append("multi-anchor distillation disabled: no teacher")
    if dc.alpha > 0 and teacher is None:
        notes.append("enhanced-HR target disabled: no teacher")
    return pairs, adapters, notes


def _distill_loss(cfg: TrainConfig, teacher: Teacher | None, pairs: list[tuple[int, int]],
                  adapters: AnchorAdapters | None) -> tuple[DistillLoss, LossFn]:
    """HR pixel loss + alpha * enhanced-HR pixel loss + beta * multi-anchor L1 (terms without their
    inputs are off; the pixel loss is L1 or ``distill.pixel_loss``'s MSE)."""
    dc = cfg.distill
    loss = DistillLoss(dc.hr_weight, dc.alpha if teacher is not None else 0.0,
                       dc.beta if adapters is not None else 0.0, pairs, freq_weight=dc.freq_weight,
                       pixel=dc.pixel_loss)
    teacher_lr = teacher_input_for(cfg)  # with degraded training LR the teacher still sees a clean one

    def loss_fn(sr, adapted, lr, hr):
        if teacher is None:
            return loss(sr, hr)
        t_sr, t_anchors = teacher(teacher_lr(lr, hr))  # t_sr: the enhanced-HR target
        t_sel = [t_anchors[t - 1] for _, t in pairs] if (t_anchors is not None and adapters is not None) else None
        return loss(sr, hr, t_sr, adapted, t_sel)

    return loss, loss_fn


def _starting_point(ctx: RunContext, schedule: ProgressiveSchedule, k: int,
                    student: DIPNetTrain) -> dict[str, Any] | None:
    """The payload phase ``k`` continues from: the previous phase, a warm start (student.init), or None."""
    prev = schedule.previous(k)
    if prev is not None:
        return load_checkpoint(ctx.stage_dir(prev) / "model.pt")
    init = ctx.config.student.init
    if not init:
        return None
    payload = warm_start_payload(init, student, "student.init")
    if "raw" not in payload:
        raise ValueError(f"student.init '{init}' is not a distill stage output (stages/distill_K/model.pt)")
    ctx.log(f"student continues from {init}")
    return payload


def _distill_phase(ctx: RunContext, schedule: ProgressiveSchedule, k: int) -> dict[str, Any]:
    cfg, dc = ctx.config, ctx.config.distill
    name = schedule.stage_name(k)
    torch.manual_seed(cfg.run.seed)  # same initial student on every rank and every attempt
    student = new_student(cfg)  # phase 1 of an adaptation: the re-expanded starting model

    teacher = frozen_teacher(ctx) if (dc.alpha > 0 or dc.beta > 0) else None
    pairs, adapters, notes = anchor_setup(dc, student, teacher)
    if k == 1:
        for n in notes:
            ctx.log(n)

    ema_init = None
    start = _starting_point(ctx, schedule, k, student)
    if start is not None:
        student.load_state_dict(start["raw"])
        if adapters is not None and start.get("adapters"):
            adapters.load_state_dict(start["adapters"])
        ema_init = start["ema"]
    net = TrainNet(student, adapters, [s for s, _ in pairs])
    loss, loss_fn = _distill_loss(cfg, teacher, pairs, adapters)

    res = train_loop(ctx, schedule.spec(k), net, loss_fn, ema_init=ema_init)
    ema_model = res.ema.model_copy(res.net.student)
    out = ctx.save_output(name, ema_model, extra={
        "raw": {k2: v.detach().cpu() for k2, v in res.net.student.state_dict().items()},
        "ema": res.ema.state_dict(),
        "adapters": {k2: v.detach().cpu() for k2, v in adapters.state_dict().items()} if adapters else {},
        "pairs": [list(p) for p in pairs],
    })
    metrics = {**res.metrics, **model_summary(ema_model), "anchor_pairs": [list(p) for p in pairs],
               "losses": sorted(loss_terms(loss)), "notes": notes}
    if teacher is not None and teacher.self_ensemble:
        metrics["teacher_self_ensemble"] = True
    if k == 1 and (cfg.student.init or cfg.student.from_model):
        metrics["continued_from"] = str(cfg.student.init or cfg.student.from_model)
    if k == 1 and cfg.student.from_model:
        metrics["started_from"] = start_model_record(cfg)
    ctx.finish_stage(name, metrics, output=out)
    return metrics


def loss_terms(loss: DistillLoss) -> set[str]:
    """Names of the loss terms ``loss`` computes (recorded in the stage's metrics)."""
    terms = set()
    if loss.hr_weight > 0:
        terms.add(f"{loss.pixel_name}_hr")
    if loss.freq_weight > 0:
        terms.add("fft_hr")
    if loss.alpha > 0:
        terms.add(f"{loss.pixel_name}_teacher")
    if loss.beta > 0:
        terms.add("anchor")
    return terms
