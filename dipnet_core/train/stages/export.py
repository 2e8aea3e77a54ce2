"""Stage 6, export: the final model as ``NAME.safetensors`` (with its descriptor) and ``NAME.onnx``.

The descriptor carries the training record (per-stage metrics, pruning rounds,
final quality), and both files are reloaded and checked before the run reports
success.
"""

from __future__ import annotations

from typing import Any

import torch

from ...export import check_onnx_parity, export_onnx
from ...models.dipnet import DIPNet
from ...models.loader import dipnet_descriptor, load_model, save_model
from .. import events as ev
from ..context import RunContext
from ..distributed import broadcast_object
from ..loop import validate
from .common import done_metrics, measure_config_latency, model_summary

__all__ = ["export"]


def _training_summary(ctx: RunContext) -> dict[str, Any]:
    """Per-stage metrics for the model's metadata (without bulky histories)."""
    stages = {}
    for stage, m in ctx.state.get("metrics", {}).items():
        stages[stage] = {k: v for k, v in m.items() if k not in ("val_history", "config", "notes")}
    rounds = [{"round": int(s.split("_")[1]), "widths": m.get("widths"), "params": m.get("params"),
               "latency_s_per_mp": m.get("latency_s_per_mp"), "psnr_y": m.get("psnr_y")}
              for s, m in ctx.state.get("metrics", {}).items() if s.startswith("prune_")]
    cfg = ctx.config
    return {"trainer": "dipnet_core.train", "preset": cfg.preset, "seed": cfg.run.seed,
            "teacher": cfg.teacher.kind if cfg.teacher.kind != "file" else f"file:{cfg.teacher.path}",
            "train_images": len(ctx.images) if ctx.images is not None else None,
            "val_images": len(ctx.val), "stages": stages, "prune_rounds": rounds}


def export(ctx: RunContext) -> dict[str, Any]:
    """Write ``NAME.safetensors`` (weights + descriptor with training metadata) and ``NAME.onnx``."""
    name, ec = "export", ctx.config.export
    if ctx.is_done(name):
        return done_metrics(ctx, name)
    model, payload = ctx.load_output(ctx.last_model_path())
    if not isinstance(model, DIPNet):  # e.g. export before reparameterization
        model = model.reparameterize()
    model = model.cpu().eval()
    metrics: dict[str, Any] = {"source_stage": payload.get("stage"), **model_summary(model)}
    st_path = ctx.run_dir / f"{ec.name}.safetensors"
    onnx_path = ctx.run_dir / f"{ec.name}.onnx" if ec.onnx else None
    if ctx.is_main:
        ctx.emit(ev.StageStarted(name, 0))
        if ctx.val:
            p, s, _ = validate(model, ctx.val, torch.device("cpu"), ctx.config.data.scale)
            metrics.update(psnr_y=round(p, 4), ssim_y=round(s, 5))
        metrics["latency_s_per_mp"] = measure_config_latency(ctx, model.config)
        training = _training_summary(ctx)
        training["final"] = {k: metrics.get(k) for k in ("psnr_y", "ssim_y", "latency_s_per_mp")}
        descriptor = dipnet_descriptor(model, name=ec.name, source="DIPNet Studio trainer",
                                       license=ec.license, training=training)
        save_model(st_path, model, descriptor)
        load_model(st_path)  # fail here, not in the user's hands, if it does not load
        if onnx_path is not None:
            export_onnx(model, onnx_path, opset=ec.opset, dynamic=True, descriptor=descriptor)
            metrics["onnx_max_abs_diff"] = float(check_onnx_parity(model, onnx_path))
    metrics = broadcast_object(metrics, ctx.dist)
    metrics.update(model_path=str(st_path), onnx_path=str(onnx_path) if onnx_path else None)
    ctx.state["exported"] = {"model_path": str(st_path), "onnx_path": str(onnx_path) if onnx_path else None}
    ctx.finish_stage(name, metrics)
    return metrics
