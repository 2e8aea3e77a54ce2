"""Stage 6, export: the final model as ``NAME.safetensors`` (with its descriptor) and ``NAME.onnx``.

The descriptor carries the training record (per-stage metrics, pruning rounds,
final quality), and both files are reloaded and checked before the run reports
success.
"""

from __future__ import annotations

from pathlib import Path
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
    stages, started_from = {}, None
    for stage, m in ctx.state.get("metrics", {}).items():
        stages[stage] = {k: v for k, v in m.items() if k not in ("val_history", "config", "notes", "started_from")}
        started_from = started_from or m.get("started_from")
    rounds = [{"round": int(s.split("_")[1]), "widths": m.get("widths"), "params": m.get("params"),
               "latency_s_per_mp": m.get("latency_s_per_mp"), "psnr_y": m.get("psnr_y")}
              for s, m in ctx.state.get("metrics", {}).items() if s.startswith("prune_")]
    cfg = ctx.config
    return {"trainer": "dipnet_core.train", "preset": cfg.preset, "seed": cfg.run.seed,
            "teacher": cfg.teacher.kind if cfg.teacher.kind != "file" else f"file:{cfg.teacher.path}",
            "train_images": len(ctx.images) if ctx.images is not None else None,
            "val_images": len(ctx.val), "stages": stages, "prune_rounds": rounds,
            **({"started_from": started_from} if started_from else {})}


def _int8_twin(ctx: RunContext, model: DIPNet, descriptor: Any) -> dict[str, Any]:
    """``NAME.int8.onnx`` beside the model, after quantization-aware fine-tuning when asked; its measured loss.

    A cancelled fine-tune keeps its checkpoint in the stage folder and continues when the run resumes.
    """
    from ...export.int8 import DEFAULT_RECIPE, QAT_RECIPE, export_int8
    from ...export.onnx_export import onnx_to_bytes
    from ..qat import QATConfig, export_qat_int8
    from .compare import _benchmark

    cfg, ec = ctx.config, ctx.config.export
    path = ctx.run_dir / f"{ec.name}.int8.onnx"
    photos = list(cfg.data.train_dirs)
    eval_sets = [Path(p) for p in ec.int8_eval]
    if not eval_sets:
        folder, _ = _benchmark(ctx)
        eval_sets = [folder] if folder is not None else []
    if ec.int8_qat_steps > 0:
        # One more fine-tune after the last one, on its patch size and batch (on the CPU: see qat.py).
        qat = QATConfig(steps=ec.int8_qat_steps, train_dirs=photos, seed=cfg.run.seed,
                        lr_patch=cfg.finetune.lr_patch, batch=cfg.finetune.batch,
                        log_every=cfg.run.log_every, ckpt_every=cfg.run.ckpt_every)
        record = export_qat_int8(model, path, qat, photos, eval_sets, QAT_RECIPE, descriptor=descriptor,
                                 checkpoint=ctx.stage_dir("export") / "qat-checkpoint.pt", callback=ctx.emit,
                                 cancel_token=ctx.cancel, opset=ec.opset)
    else:
        fp32 = onnx_to_bytes(model, opset=ec.opset, descriptor=descriptor, grid_aware=True)
        record = export_int8(fp32, path, photos, eval_sets, DEFAULT_RECIPE, scale=cfg.data.scale)
    return {"path": str(path), "recipe": record["recipe"], "loss_db": record["loss_db"], "psnr_y": record["psnr_y"]}


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
        if ec.int8:
            metrics["int8"] = _int8_twin(ctx, model, descriptor)
    metrics = broadcast_object(metrics, ctx.dist)
    metrics.update(model_path=str(st_path), onnx_path=str(onnx_path) if onnx_path else None)
    ctx.state["exported"] = {"model_path": str(st_path), "onnx_path": str(onnx_path) if onnx_path else None}
    ctx.finish_stage(name, metrics)
    return metrics
