"""Stage 4, pruning: narrow the fused model in rounds, fine-tuning after each.

The plan (target widths of every round) comes from explicit widths, a latency
budget measured on this machine, or a number of rounds of a fixed ratio; it is
computed once and kept in ``state.json`` so a resumed run prunes the same way.
Filters are ranked by L1 importance (:func:`dipnet_core.prune.prune_dipnet`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...models.dipnet import BlockWidths, DIPNetConfig
from ...prune import PruneSchedule, prune_dipnet
from ..checkpoint import load_checkpoint
from ..context import RunContext
from ..distributed import barrier, broadcast_object
from ..loop import StageSpec, TrainNet, train_loop, validate
from .common import STREAM_PRUNE, done_metrics, measure_config_latency, model_summary
from .finetune import finetune_loss

__all__ = ["plan_pruning", "prune_round"]


def plan_pruning(ctx: RunContext) -> list[DIPNetConfig]:
    """Target widths of every pruning round (computed once, then read from state.json).

    From ``prune``: explicit target widths, else a latency budget (rounds stop at
    the first config measured within budget), else ``rounds`` rounds of ``ratio``.
    """
    if "prune_plan" in ctx.state:
        return [DIPNetConfig.from_dict(d["config"]) for d in ctx.state["prune_plan"]]
    pc = ctx.config.prune
    start = DIPNetConfig.from_dict(load_checkpoint(ctx.stage_dir("reparam") / "model.pt")["arch"]["config"])
    plan: list[dict[str, Any]] = []
    if ctx.is_main:
        measured: dict[str, float] = {}

        def latency_fn(c: DIPNetConfig) -> float:
            key = repr(c)
            if key not in measured:
                measured[key] = measure_config_latency(ctx, c)
            return measured[key]

        final = None
        if pc.target_feat or pc.target_mid:
            mid = pc.target_mid or None
            final = replace(start, feat=pc.target_feat or start.feat, blocks=tuple(
                BlockWidths(mid or b.mid1, mid or b.mid2, b.esa) for b in start.blocks))
        budget = pc.latency_budget if pc.latency_budget > 0 and final is None else None
        n_rounds = pc.rounds if pc.rounds > 0 else (None if (final or budget) else 1)
        schedule = PruneSchedule(start=start, ratio=pc.ratio, n_rounds=n_rounds, final=final,
                                 latency_budget_s_per_mp=budget, round_multiple=pc.round_multiple,
                                 min_width=min(8, start.feat), latency_fn=latency_fn)
        rounds = schedule.rounds()
        plan = [{"config": c.to_dict(), "widths": c.widths_label(),
                 "planned_latency_s_per_mp": measured.get(repr(c))} for c in rounds]
        if budget is not None and rounds and latency_fn(rounds[-1]) > budget:
            ctx.log(f"pruning: the narrowest schedule width {rounds[-1].widths_label()} still exceeds the "
                    f"latency budget of {budget:.3g} s/MP ({latency_fn(rounds[-1]):.3g} s/MP)")
        ctx.log("pruning plan: " + " -> ".join([start.widths_label()] + [p["widths"] for p in plan]))
    plan = broadcast_object(plan, ctx.dist)
    ctx.state["prune_plan"] = plan
    ctx.save_state()
    barrier(ctx.dist)
    return [DIPNetConfig.from_dict(d["config"]) for d in plan]


def prune_round(ctx: RunContext, i: int) -> dict[str, Any]:
    """Prune the previous model to round ``i``'s widths (L1 filter importance), then fine-tune it."""
    name, pc, cfg = f"prune_{i}", ctx.config.prune, ctx.config
    if ctx.is_done(name):
        return done_metrics(ctx, name)
    plan = plan_pruning(ctx)
    if not 1 <= i <= len(plan):
        raise ValueError(f"pruning round {i} does not exist (plan has {len(plan)} round(s))")
    target = plan[i - 1]
    src = "reparam" if i == 1 else f"prune_{i - 1}"
    model, _ = ctx.load_output(src)
    pruned = prune_dipnet(model, target)
    metrics: dict[str, Any] = {"source_stage": src, **model_summary(pruned)}
    if ctx.is_main:
        if ctx.val:
            p, s, _ = validate(pruned, ctx.val, ctx.device, cfg.data.scale)
            metrics.update(psnr_y_before_finetune=round(p, 4), ssim_y_before_finetune=round(s, 5))
        metrics["latency_s_per_mp"] = measure_config_latency(ctx, target)
    metrics = broadcast_object(metrics, ctx.dist)
    loss_fn, target_kind = finetune_loss(ctx, pc.alpha)
    spec = StageSpec(name, pc.finetune_steps, pc.finetune_lr_patch, pc.finetune_batch, pc.lr, STREAM_PRUNE + i,
                     min_lr_ratio=cfg.distill.min_lr_ratio, ema_decay=cfg.distill.ema_decay,
                     grad_clip=cfg.distill.grad_clip)
    res = train_loop(ctx, spec, TrainNet(pruned), loss_fn)
    final = res.ema.model_copy(res.net.student) if pc.finetune_steps > 0 else res.net.student
    out = ctx.save_output(name, final)
    metrics.update(res.metrics)
    metrics["finetune_target"] = target_kind
    ctx.finish_stage(name, metrics, output=out)
    return metrics
