"""The stages of DIPNet training, each a separately callable unit.

``train_teacher -> distill (progressive sub-stages) -> reparameterize ->
prune_round(1..n) (each with a fine-tune) -> finetune -> export``

Every stage reads its input model from the previous stage's ``model.pt``,
trains through :func:`~.engine.train_loop` (checkpoints, resume, cancel, EMA,
DDP), writes its output ``model.pt`` and ``metrics.json`` and marks itself done
in ``state.json``. A stage that is already done returns its recorded metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..export import check_onnx_parity, export_onnx
from ..models.dipnet import DIPNet, DIPNetConfig, count_parameters
from ..models.train_blocks import DIPNetTrain
from . import events as ev
from .checkpoint import load_checkpoint
from .context import RunContext, arch_of
from .distributed import barrier, broadcast_object
from .engine import StageSpec, TrainNet, train_loop, validate
from .losses import AnchorAdapters, DistillLoss, default_anchor_pairs
from .teacher_input import teacher_input_for

__all__ = [
    "distill",
    "distill_stage_names",
    "export",
    "finetune",
    "measure_config_latency",
    "plan_pruning",
    "prune_round",
    "reparameterize",
    "student_config",
    "train_teacher",
]

# Data stream ids: each stage draws its own crops (see data.sample_generator).
STREAM_TEACHER, STREAM_DISTILL, STREAM_PRUNE, STREAM_FINETUNE = 1, 100, 200, 300


def student_config(ctx_or_cfg: Any) -> DIPNetConfig:
    cfg = getattr(ctx_or_cfg, "config", ctx_or_cfg)
    s = cfg.student
    return DIPNetConfig.uniform(s.feat, s.mid, n_blocks=s.n_blocks, esa=s.esa, scale=cfg.data.scale)


def distill_stage_names(cfg: Any) -> list[str]:
    return [f"distill_{k}" for k in range(1, len(cfg.distill.stages) + 1)]


def _done_metrics(ctx: RunContext, name: str) -> dict[str, Any]:
    return dict(ctx.state.get("metrics", {}).get(name, {}))


def measure_config_latency(ctx: RunContext, config: DIPNetConfig) -> float:
    """Seconds per input megapixel of ``config`` on this machine's CPU (prune.measure_latency)."""
    from ..prune import measure_latency

    pc = ctx.config.prune
    h, w = pc.latency_size
    return float(measure_latency(config, size=(h, w), repeats=pc.latency_repeats, warmup=1))


def _model_summary(model: DIPNet | DIPNetTrain) -> dict[str, Any]:
    cfg = model.config
    return {"widths": cfg.widths_label(), "config": cfg.to_dict(), "params": count_parameters(model),
            "macs_per_input_pixel": cfg.macs_per_input_pixel()}


def _l1_finetune_loss(ctx: RunContext, alpha: float) -> tuple[Any, str]:
    """HR L1 plus, when there is a teacher and ``alpha > 0``, the enhanced-HR term."""
    teacher = ctx.teacher() if alpha > 0 and ctx.config.teacher.kind != "none" else None
    loss = DistillLoss(ctx.config.distill.hr_weight, alpha if teacher else 0.0)
    teacher_lr = teacher_input_for(ctx.config)

    def loss_fn(sr, adapted, lr, hr):
        t_sr = teacher(teacher_lr(lr, hr))[0] if teacher is not None else None
        return loss(sr, hr, t_sr)

    return loss_fn, ("teacher" if teacher is not None else "hr")


# ------------------------------------------------------------------------------------------ teacher


def train_teacher(ctx: RunContext) -> dict[str, Any]:
    """Train our own wide/deep DIPNet-family teacher with L1 on HR (teacher.kind = 'train')."""
    name, tc, cfg = "teacher", ctx.config.teacher, ctx.config
    if ctx.is_done(name):
        return _done_metrics(ctx, name)
    if tc.kind != "train":
        raise ValueError(f"train_teacher needs teacher.kind = 'train' (is {tc.kind!r})")
    torch.manual_seed(cfg.run.seed)
    model = ctx.new_teacher_model()
    if tc.init:
        model.load_state_dict(_warm_start_payload(tc.init, model, "teacher.init")["model"])
        ctx.log(f"teacher continues from {tc.init}")
    spec = StageSpec(name, tc.steps, tc.lr_patch, tc.batch, tc.lr, STREAM_TEACHER,
                     min_lr_ratio=cfg.distill.min_lr_ratio, warmup=0, ema_decay=cfg.distill.ema_decay,
                     grad_clip=cfg.distill.grad_clip)
    loss = DistillLoss(hr_weight=1.0)
    res = train_loop(ctx, spec, TrainNet(model), lambda sr, adapted, lr, hr: loss(sr, hr))
    teacher = res.ema.model_copy(res.net.student)
    ctx.save_output(name, teacher)
    metrics = {**res.metrics, **_model_summary(teacher)}
    if tc.init:  # the model's training record should show its whole lineage, not only this run
        metrics["continued_from"] = str(tc.init)
    ctx.finish_stage(name, metrics)  # the teacher is not part of the student's model chain
    return metrics


# ------------------------------------------------------------------------------------------ distill


def distill(ctx: RunContext, sub: int | None = None) -> dict[str, Any]:
    """Progressive distillation: sub-stage k trains on ``distill.stages[k-1]``'s patch size,
    continuing from sub-stage k-1's weights, EMA and adapters. Returns the last sub-stage's metrics."""
    names = distill_stage_names(ctx.config)
    ks = range(1, len(names) + 1) if sub is None else [sub]
    metrics: dict[str, Any] = {}
    for k in ks:
        metrics = _done_metrics(ctx, names[k - 1]) if ctx.is_done(names[k - 1]) else _distill_one(ctx, k)
    return metrics


def _distill_one(ctx: RunContext, k: int) -> dict[str, Any]:
    cfg, dc = ctx.config, ctx.config.distill
    name, stage = f"distill_{k}", dc.stages[k - 1]
    torch.manual_seed(cfg.run.seed)  # same initial student on every rank and every attempt
    student = DIPNetTrain(student_config(cfg), expansion=cfg.student.expansion, fuse_in_forward=True)

    teacher = ctx.teacher() if (dc.alpha > 0 or dc.beta > 0) else None
    pairs: list[tuple[int, int]] = []
    adapters = None
    notes: list[str] = []
    if teacher is not None and dc.beta > 0:
        if teacher.has_anchors:
            pairs = [(int(s), int(t)) for s, t in dc.anchors] or default_anchor_pairs(
                len(student.config.blocks), teacher.n_blocks)
            for s, t in pairs:
                if not (1 <= s <= len(student.config.blocks) and 1 <= t <= teacher.n_blocks):
                    raise ValueError(f"anchor pair ({s}, {t}) is outside student 1..{len(student.config.blocks)} "
                                     f"/ teacher 1..{teacher.n_blocks}")
            adapters = AnchorAdapters(student.config.feat, teacher.width, len(pairs))
        else:
            notes.append(f"multi-anchor distillation disabled: {teacher.anchor_reason}")
    elif dc.beta > 0:
        notes.append("multi-anchor distillation disabled: no teacher")
    if dc.alpha > 0 and teacher is None:
        notes.append("enhanced-HR target disabled: no teacher")
    if k == 1:
        for n in notes:
            ctx.log(n)

    ema_init = None
    prev = None
    if k > 1:
        prev = load_checkpoint(ctx.stage_dir(f"distill_{k - 1}") / "model.pt")
    elif cfg.student.init:
        prev = _warm_start_payload(cfg.student.init, student, "student.init")
        if "raw" not in prev:
            raise ValueError(f"student.init '{cfg.student.init}' is not a distill stage output "
                             "(stages/distill_K/model.pt)")
        ctx.log(f"student continues from {cfg.student.init}")
    if prev is not None:
        student.load_state_dict(prev["raw"])
        if adapters is not None and prev.get("adapters"):
            adapters.load_state_dict(prev["adapters"])
        ema_init = prev["ema"]
    net = TrainNet(student, adapters, [s for s, _ in pairs])
    loss = DistillLoss(dc.hr_weight, dc.alpha if teacher is not None else 0.0,
                       dc.beta if adapters is not None else 0.0, pairs)

    teacher_lr = teacher_input_for(cfg)

    def loss_fn(sr, adapted, lr, hr):
        if teacher is None:
            return loss(sr, hr)
        t_sr, t_anchors = teacher(teacher_lr(lr, hr))
        t_sel = [t_anchors[t - 1] for _, t in pairs] if (t_anchors is not None and adapters is not None) else None
        return loss(sr, hr, t_sr, adapted, t_sel)

    spec = StageSpec(name, stage.steps, stage.lr_patch, stage.batch, stage.lr or dc.lr, STREAM_DISTILL + k,
                     min_lr_ratio=dc.min_lr_ratio, warmup=dc.warmup_steps if k == 1 else 0,
                     ema_decay=dc.ema_decay, grad_clip=dc.grad_clip)
    res = train_loop(ctx, spec, net, loss_fn, ema_init=ema_init)
    ema_model = res.ema.model_copy(res.net.student)
    out = ctx.save_output(name, ema_model, extra={
        "raw": {k2: v.detach().cpu() for k2, v in res.net.student.state_dict().items()},
        "ema": res.ema.state_dict(),
        "adapters": {k2: v.detach().cpu() for k2, v in adapters.state_dict().items()} if adapters else {},
        "pairs": [list(p) for p in pairs],
    })
    metrics = {**res.metrics, **_model_summary(ema_model), "anchor_pairs": [list(p) for p in pairs],
               "losses": sorted(loss_terms(loss)), "notes": notes}
    if k == 1 and cfg.student.init:
        metrics["continued_from"] = str(cfg.student.init)
    ctx.finish_stage(name, metrics, output=out)
    return metrics


def _warm_start_payload(path: str, model: torch.nn.Module, key: str) -> dict[str, Any]:
    """A stage file to start ``model`` from, refused unless it has exactly the same architecture."""
    payload = load_checkpoint(Path(path))
    have, want = payload.get("arch"), arch_of(model)
    if have != want:
        raise ValueError(f"{key} '{path}' holds a different architecture than this run builds: "
                         f"{have} vs {want}")
    return payload


def loss_terms(loss: DistillLoss) -> set[str]:
    terms = set()
    if loss.hr_weight > 0:
        terms.add("l1_hr")
    if loss.alpha > 0:
        terms.add("l1_teacher")
    if loss.beta > 0:
        terms.add("anchor")
    return terms


# ------------------------------------------------------------------------------------------ reparam


def reparameterize(ctx: RunContext) -> dict[str, Any]:
    """Fuse the multi-branch student into a plain DIPNet and verify they compute the same function."""
    from ..reparam import check_equivalence

    name, rc = "reparam", ctx.config.reparam
    if ctx.is_done(name):
        return _done_metrics(ctx, name)
    src = distill_stage_names(ctx.config)[-1]
    model, _ = ctx.load_output(src)
    if not isinstance(model, DIPNetTrain):
        raise TypeError(f"reparameterize expects a multi-branch DIPNetTrain from {src}, got {type(model).__name__}")
    ctx.emit(ev.StageStarted(name, 0))
    model.set_fuse_in_forward(False)  # compare against the true branch-wise forward
    deploy = model.reparameterize().eval()
    diff = check_equivalence(model, deploy, sizes=[tuple(s) for s in rc.check_sizes], atol=rc.atol)
    metrics: dict[str, Any] = {"max_abs_diff": diff, **_model_summary(deploy), "source_stage": src}
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


# ------------------------------------------------------------------------------------------ pruning


def plan_pruning(ctx: RunContext) -> list[DIPNetConfig]:
    """Target widths of every pruning round (computed once, then read from state.json).

    From ``prune``: explicit target widths, else a latency budget (rounds stop at
    the first config measured within budget), else ``rounds`` rounds of ``ratio``.
    """
    from ..prune import PruneSchedule

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
            from dataclasses import replace

            from ..models.dipnet import BlockWidths

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
    from ..prune import prune_dipnet

    name, pc, cfg = f"prune_{i}", ctx.config.prune, ctx.config
    if ctx.is_done(name):
        return _done_metrics(ctx, name)
    plan = plan_pruning(ctx)
    if not 1 <= i <= len(plan):
        raise ValueError(f"pruning round {i} does not exist (plan has {len(plan)} round(s))")
    target = plan[i - 1]
    src = "reparam" if i == 1 else f"prune_{i - 1}"
    model, _ = ctx.load_output(src)
    pruned = prune_dipnet(model, target)
    metrics: dict[str, Any] = {"source_stage": src, **_model_summary(pruned)}
    if ctx.is_main:
        if ctx.val:
            p, s, _ = validate(pruned, ctx.val, ctx.device, cfg.data.scale)
            metrics.update(psnr_y_before_finetune=round(p, 4), ssim_y_before_finetune=round(s, 5))
        metrics["latency_s_per_mp"] = measure_config_latency(ctx, target)
    metrics = broadcast_object(metrics, ctx.dist)
    loss_fn, target_kind = _l1_finetune_loss(ctx, pc.alpha)
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


# ------------------------------------------------------------------------------------------ finetune


def finetune(ctx: RunContext) -> dict[str, Any]:
    """Final fine-tune of the last model (plain conv form). ``finetune.steps = 0`` skips it."""
    name, fc, cfg = "finetune", ctx.config.finetune, ctx.config
    if ctx.is_done(name):
        return _done_metrics(ctx, name)
    if fc.steps <= 0:
        metrics = {"skipped": True}
        ctx.finish_stage(name, metrics)
        return metrics
    model, _ = ctx.load_output(ctx.last_model_path())
    loss_fn, target_kind = _l1_finetune_loss(ctx, fc.alpha)
    spec = StageSpec(name, fc.steps, fc.lr_patch, fc.batch, fc.lr, STREAM_FINETUNE,
                     min_lr_ratio=cfg.distill.min_lr_ratio, ema_decay=cfg.distill.ema_decay,
                     grad_clip=cfg.distill.grad_clip)
    res = train_loop(ctx, spec, TrainNet(model), loss_fn)
    final = res.ema.model_copy(res.net.student)
    out = ctx.save_output(name, final)
    metrics = {**res.metrics, **_model_summary(final), "finetune_target": target_kind}
    ctx.finish_stage(name, metrics, output=out)
    return metrics


# ------------------------------------------------------------------------------------------ export


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
    from ..models.loader import dipnet_descriptor, load_model, save_model

    name, ec = "export", ctx.config.export
    if ctx.is_done(name):
        return _done_metrics(ctx, name)
    model, payload = ctx.load_output(ctx.last_model_path())
    if not isinstance(model, DIPNet):  # e.g. export before reparameterization
        model = model.reparameterize()
    model = model.cpu().eval()
    metrics: dict[str, Any] = {"source_stage": payload.get("stage"), **_model_summary(model)}
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
        reloaded = load_model(st_path)  # fail here, not in the user's hands, if it does not load
        metrics["safetensors_reload_ok"] = reloaded.module is not None
        if onnx_path is not None:
            export_onnx(model, onnx_path, opset=ec.opset, dynamic=True, descriptor=descriptor)
            metrics["onnx_max_abs_diff"] = float(check_onnx_parity(model, onnx_path))
    metrics = broadcast_object(metrics, ctx.dist)
    metrics.update(model_path=str(st_path), onnx_path=str(onnx_path) if onnx_path else None)
    ctx.state["exported"] = {"model_path": str(st_path), "onnx_path": str(onnx_path) if onnx_path else None}
    ctx.finish_stage(name, metrics)
    ctx.emit(ev.RunFinished(str(st_path), str(onnx_path) if onnx_path else None, ctx.state.get("metrics", {})))
    return metrics
