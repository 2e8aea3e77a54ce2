"""Stage 5, fine-tuning of the plain (fused, possibly pruned) model.

Also the recovery step after each pruning round (:mod:`.prune`): L1 to the HR
plus, with a teacher, L1 to the teacher-enhanced HR target.
"""

from __future__ import annotations

from typing import Any

from ..context import RunContext
from ..loop import LossFn, StageSpec, TrainNet, train_loop
from ..losses import DistillLoss
from ..teacher_input import teacher_input_for
from .common import STREAM_FINETUNE, done_metrics, model_summary
from .teacher import frozen_teacher

__all__ = ["finetune", "finetune_loss"]


def finetune_loss(ctx: RunContext, alpha: float) -> tuple[LossFn, str]:
    """(loss, target kind): HR L1 plus, when there is a teacher and ``alpha > 0``, the enhanced-HR term."""
    teacher = frozen_teacher(ctx) if alpha > 0 and ctx.config.teacher.kind != "none" else None
    dc = ctx.config.distill
    loss = DistillLoss(dc.hr_weight, alpha if teacher else 0.0, freq_weight=dc.freq_weight, pixel=dc.pixel_loss)
    teacher_lr = teacher_input_for(ctx.config)

    def loss_fn(sr, adapted, lr, hr):
        t_sr = teacher(teacher_lr(lr, hr))[0] if teacher is not None else None
        return loss(sr, hr, t_sr)

    return loss_fn, ("teacher" if teacher is not None else "hr")


def finetune(ctx: RunContext) -> dict[str, Any]:
    """Final fine-tune of the last model (plain conv form). ``finetune.steps = 0`` skips it."""
    name, fc, cfg = "finetune", ctx.config.finetune, ctx.config
    if ctx.is_done(name):
        return done_metrics(ctx, name)
    if fc.steps <= 0:
        metrics = {"skipped": True}
        ctx.finish_stage(name, metrics)
        return metrics
    model, _ = ctx.load_output(ctx.last_model_path())
    loss_fn, target_kind = finetune_loss(ctx, fc.alpha)
    spec = StageSpec(name, fc.steps, fc.lr_patch, fc.batch, fc.lr, STREAM_FINETUNE,
                     min_lr_ratio=cfg.distill.min_lr_ratio, ema_decay=cfg.distill.ema_decay,
                     grad_clip=cfg.distill.grad_clip)
    res = train_loop(ctx, spec, TrainNet(model), loss_fn)
    final = res.ema.model_copy(res.net.student)
    out = ctx.save_output(name, final)
    metrics = {**res.metrics, **model_summary(final), "finetune_target": target_kind}
    ctx.finish_stage(name, metrics, output=out)
    return metrics
