"""Stage 1, the teacher: train our own wide/deep DIPNet-family model, or use a model file, or none.

:func:`train_teacher` is the stage (L1 on HR, teacher.kind = 'train');
:func:`frozen_teacher` gives the later stages the teacher they distill from.
During distillation the teacher is frozen in eval mode. Its SR of the student's
LR input is the enhanced-HR target; its anchors are the outputs of its
``block_i`` modules, captured with forward hooks so any model with that layout
(DIPNet, DIPNetTrain, RLFN-like checkpoints) provides them. For other
architectures (e.g. spandrel models) only the enhanced-HR target is used and
``anchor_reason`` says why anchors are off.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...models.dipnet import DIPNet, DIPNetConfig
from ..config import TeacherConfig
from ..context import RunContext
from ..loop import StageSpec, TrainNet, train_loop
from ..losses import DistillLoss
from .common import STREAM_TEACHER, done_metrics, model_summary, resolve_model_path, warm_start_payload

__all__ = ["Teacher", "block_modules", "build_teacher_model", "frozen_teacher", "load_teacher_file",
           "teacher_config", "train_teacher"]

_BLOCK_RE = re.compile(r"^block_(\d+)$")


def teacher_config(cfg: TeacherConfig, scale: int) -> DIPNetConfig:
    """Architecture of the teacher we train ourselves."""
    return DIPNetConfig.uniform(cfg.feat, cfg.mid, n_blocks=cfg.n_blocks, esa=cfg.esa, scale=scale)


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The model's ``block_1..block_N`` children in order (empty if it has none)."""
    found = {}
    for name, child in model.named_children():
        m = _BLOCK_RE.match(name)
        if m:
            found[int(m.group(1))] = child
    if not found or sorted(found) != list(range(1, len(found) + 1)):
        return []
    return [found[i] for i in range(1, len(found) + 1)]


def _feature_width(block: nn.Module) -> int | None:
    # The block's output width is the feature width: c3_r's out channels (DIPNet/RLFN layout).
    c3 = getattr(block, "c3_r", None)
    if c3 is None:
        return None
    w = getattr(c3, "out_channels", None)
    return int(w) if w is not None else None


class Teacher:
    """A frozen SR model: ``teacher(lr) -> (sr, anchors or None)`` without gradients."""

    def __init__(self, module: nn.Module, scale: int, name: str = "teacher", *,
                 self_ensemble: bool = False) -> None:
        self.module = module.eval().requires_grad_(False)
        self.scale, self.name = scale, name
        #: Targets from the x8 self-ensemble (``distill.teacher_self_ensemble``), see :mod:`..self_ensemble`.
        self.self_ensemble = self_ensemble
        self._captured: list[torch.Tensor | None] = []
        blocks = block_modules(module)
        widths = [_feature_width(b) for b in blocks]
        if not blocks:
            self.anchor_reason = f"{name} has no block_1..block_N modules (not a DIPNet-family model)"
        elif None in widths or len(set(widths)) != 1:
            self.anchor_reason = f"{name}'s blocks have no uniform c3_r output width to align anchors to"
        else:
            self.anchor_reason = ""
        self.n_blocks = len(blocks) if not self.anchor_reason else 0
        self.width = int(widths[0]) if not self.anchor_reason else 0  # type: ignore[arg-type]
        if not self.anchor_reason:
            self._captured = [None] * len(blocks)
            for k, block in enumerate(blocks):
                block.register_forward_hook(self._make_hook(k))

    @property
    def has_anchors(self) -> bool:
        return not self.anchor_reason

    def _make_hook(self, k: int):
        def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> None:
            self._captured[k] = out
        return hook

    def to(self, device: torch.device | str) -> Teacher:
        self.module.to(device)
        return self

    @torch.no_grad()
    def __call__(self, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if self.self_ensemble:
            from ..self_ensemble import ensemble_forward

            return ensemble_forward(self._forward, lr)
        return self._forward(lr)

    def _forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        self._captured = [None] * len(self._captured)
        sr = self.module(lr)
        if not self.has_anchors:
            return sr, None
        anchors = [t for t in self._captured if t is not None]
        self._captured = [None] * len(self._captured)  # don't keep activations alive between steps
        return sr, anchors


def load_teacher_file(path: str | Path, scale: int) -> Teacher:
    """Teacher from any file the app can load (DIPNet-family incl. the official weights, spandrel)."""
    from ...models.loader import load_model

    loaded = load_model(path)
    if loaded.module is None:
        raise ValueError(f"teacher '{path}' is an ONNX file; a teacher must be a PyTorch model "
                         "(safetensors/pth or a spandrel-supported file)")
    if loaded.descriptor.scale != scale:
        raise ValueError(f"teacher '{path}' is x{loaded.descriptor.scale} but the run trains x{scale}")
    return Teacher(loaded.module, scale, name=Path(path).name)


def build_teacher_model(cfg: TeacherConfig, scale: int) -> DIPNet:
    """A fresh (random) teacher of the configured widths, for :func:`train_teacher`."""
    return DIPNet(teacher_config(cfg, scale))


def frozen_teacher(ctx: RunContext) -> Teacher | None:
    """The run's frozen teacher for distillation (loaded once per run), or None for teacher.kind = 'none'."""
    if "teacher" in ctx.cache:
        return ctx.cache["teacher"]
    tc, scale = ctx.config.teacher, ctx.config.data.scale
    teacher: Teacher | None
    if tc.kind == "train":
        if not ctx.is_done("teacher"):
            raise RuntimeError("the teacher stage has not finished; run train_teacher first")
        module, _ = ctx.load_output("teacher")
        teacher = Teacher(module, scale, name="own teacher")
    elif tc.kind == "file":
        teacher = load_teacher_file(resolve_model_path(str(tc.path), "teacher.path"), scale)
    else:
        teacher = None
    if teacher is not None:
        teacher.to(ctx.device)
        # Every enhanced-HR target of the run (distill, prune and final fine-tunes) comes from here.
        teacher.self_ensemble = ctx.config.distill.teacher_self_ensemble
        if teacher.self_ensemble:
            ctx.log("teacher targets: x8 self-ensemble (8 teacher forwards per step)")
    ctx.cache["teacher"] = teacher
    return teacher


def train_teacher(ctx: RunContext) -> dict[str, Any]:
    """Train our own wide/deep DIPNet-family teacher with L1 on HR (teacher.kind = 'train')."""
    name, tc, cfg = "teacher", ctx.config.teacher, ctx.config
    if ctx.is_done(name):
        return done_metrics(ctx, name)
    if tc.kind != "train":
        raise ValueError(f"train_teacher needs teacher.kind = 'train' (is {tc.kind!r})")
    torch.manual_seed(cfg.run.seed)
    model = build_teacher_model(tc, cfg.data.scale).to(ctx.device)
    if tc.init:
        model.load_state_dict(warm_start_payload(tc.init, model, "teacher.init")["model"])
        ctx.log(f"teacher continues from {tc.init}")
    spec = StageSpec(name, tc.steps, tc.lr_patch, tc.batch, tc.lr, STREAM_TEACHER,
                     min_lr_ratio=cfg.distill.min_lr_ratio, warmup=0, ema_decay=cfg.distill.ema_decay,
                     grad_clip=cfg.distill.grad_clip)
    loss = DistillLoss(hr_weight=1.0)
    res = train_loop(ctx, spec, TrainNet(model), lambda sr, adapted, lr, hr: loss(sr, hr))
    teacher = res.ema.model_copy(res.net.student)
    ctx.save_output(name, teacher)
    metrics = {**res.metrics, **model_summary(teacher)}
    if tc.init:  # the model's training record should show its whole lineage, not only this run
        metrics["continued_from"] = str(tc.init)
    ctx.finish_stage(name, metrics)  # the teacher is not part of the student's model chain
    return metrics
