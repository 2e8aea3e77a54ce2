"""Stage 3, structural reparameterization: fuse the multi-branch student into plain convs.

The distilled student (``DIPNetTrain``: RepConv branches) becomes a ``DIPNet``
that computes the same function at a fraction of the cost; the stage checks
that on random inputs (``reparam.atol``) and records the validation PSNR of both
forms, so a fusion error cannot pass unnoticed.
"""

from __future__ import annotations

from typing import Any

from ...models.dipnet import count_parameters
from ...models.train_blocks import DIPNetTrain
from ...reparam import check_equivalence
from .. import events as ev
from ..context import RunContext
from ..distributed import broadcast_object
from ..loop import validate
from .common import done_metrics, measure_config_latency, model_summary
from .distill import distill_stage_names

__all__ = ["reparameterize"]


def reparameterize(ctx: RunContext) -> dict[str, Any]:
    """Fuse the multi-branch student into a plain DIPNet and verify they compute the same function."""
    name, rc = "reparam", ctx.config.reparam
    if ctx.is_done(name):
        return done_metrics(ctx, name)
    src = distill_stage_names(ctx.config)[-1]
    model, _ = ctx.load_output(src)
    if not isinstance(model, DIPNetTrain):
        raise TypeError(f"reparameterize expects a multi-branch DIPNetTrain from {src}, got {type(model).__name__}")
    ctx.emit(ev.StageStarted(name, 0))
    model.set_fuse_in_forward(False)  # compare against the true branch-wise forward
    deploy = model.reparameterize().eval()
    diff = check_equivalence(model, deploy, sizes=[tuple(s) for s in rc.check_sizes], atol=rc.atol)
    metrics: dict[str, Any] = {"max_abs_diff": diff, **model_summary(deploy), "source_stage": src}
    if ctx.is_main:
        if ctx.val:
            p_before, _, _ = validate(model, ctx.val, ctx.device, ctx.config.data.scale)
            p_after, s_after, _ = validate(deploy, ctx.val, ctx.device, ctx.config.data.scale)
            metrics.update(psnr_y_multibranch=round(p_before, 4), psnr_y=round(p_after, 4), ssim_y=round(s_after, 5))
        metrics["latency_s_per_mp"] = measure_config_latency(ctx, deploy.config)
        metrics["params_multibranch"] = count_parameters(model)
    metrics = broadcast_object(metrics, ctx.dist)
    out = ctx.save_output(name, deploy)
    ctx.finish_stage(name, metrics, output=out)
    return metrics
