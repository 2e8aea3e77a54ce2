"""The training loop shared by every stage, plus EMA, LR schedule, AMP and validation.

One loop trains the teacher, the distilled student and each pruned model; a
stage differs only in its model, its loss and its step budget. Per step:
check cancellation -> forward (autocast on CUDA only) -> loss -> backward ->
optimizer step -> EMA update -> log / validate / checkpoint.

Loss values stay on the device between log steps (as in nanoGPT): reading a
loss as a Python float waits for the device, so the loop sums the detached
loss tensors and syncs once per ``run.log_every`` steps, at a checkpoint and
at the end of the stage.

Exact resume: the checkpoint written after ``n`` steps holds the weights,
optimizer, EMA and RNG states after step ``n``; batches are a pure function of
``(seed, stream, rank, step)`` (see :mod:`.data`) and the learning rate a pure
function of the step, so a resumed run computes the same next loss.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..cancel import Cancelled
from ..metrics import psnr, ssim
from . import events as ev
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .config import config_to_dict
from .context import RunContext, arch_of
from .data import SRCropDataset, ValItem, make_loader
from .degrade import degrader_for_stage
from .distributed import any_true

__all__ = ["EMA", "LoopResult", "LossFn", "StageSpec", "TrainNet", "autocast_for", "lr_at", "train_loop",
           "validate"]


class EMA:
    """Exponential moving average of a model's floating-point state (used for validation and export).

    The effective decay ramps up as ``min(decay, (1 + n) / (10 + n))`` so early,
    still-random weights are forgotten quickly.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.dtype.is_floating_point:
                s.mul_(d).add_(v.detach(), alpha=1.0 - d)
            else:
                s.copy_(v)

    def copy_to(self, model: nn.Module) -> nn.Module:
        model.load_state_dict(self.shadow)
        return model

    def model_copy(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` carrying the averaged weights (the original is untouched)."""
        return self.copy_to(copy.deepcopy(model))

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


def lr_at(step: int, total: int, base: float, warmup: int = 0, min_ratio: float = 0.01) -> float:
    """Linear warm-up, then cosine decay to ``base * min_ratio`` at the last step."""
    if warmup > 0 and step < warmup:
        return base * (step + 1) / warmup
    span = max(1, total - warmup)
    t = min(1.0, (step - warmup) / span)
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def autocast_for(device: torch.device, enabled: bool) -> tuple[contextlib.AbstractContextManager, Any]:
    """(autocast context, GradScaler or None). AMP only on CUDA: bf16 where supported, else fp16 + scaler."""
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext(), None
    if torch.cuda.is_bf16_supported():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16), None
    return torch.autocast(device_type="cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return (t.clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(model: nn.Module, items: list[ValItem], device: torch.device, scale: int,
             sample_size: int = 128) -> tuple[float, float, dict[str, np.ndarray] | None]:
    """Mean PSNR-Y / SSIM-Y (border = scale) of ``model`` on ``items``, plus a preview crop."""
    if not items:
        return float("nan"), float("nan"), None
    was_training = model.training
    model.eval()
    psnrs, ssims, sample = [], [], None
    try:
        for k, it in enumerate(items):
            x = torch.from_numpy(it.lr.transpose(2, 0, 1).astype(np.float32) / 255.0)[None].to(device)
            sr = _to_uint8(model(x).float()[0])
            psnrs.append(psnr(sr, it.hr, border=scale))
            ssims.append(ssim(sr, it.hr, border=scale))
            if k == 0:
                h, w = it.hr.shape[:2]
                c = min(sample_size, h, w) // scale * scale
                y, x0 = (h - c) // 2 // scale * scale, (w - c) // 2 // scale * scale
                sample = {"lr": it.lr[y // scale:(y + c) // scale, x0 // scale:(x0 + c) // scale].copy(),
                          "sr": sr[y:y + c, x0:x0 + c].copy(), "hr": it.hr[y:y + c, x0:x0 + c].copy()}
    finally:
        model.train(was_training)
    return float(np.mean(psnrs)), float(np.mean(ssims)), sample


class TrainNet(nn.Module):
    """Student plus optional anchor adapters in one module, so DDP syncs both.

    ``forward(lr) -> (sr, adapted anchor features or None)``.
    """

    def __init__(self, student: nn.Module, adapters: nn.Module | None = None,
                 student_blocks: list[int] | None = None) -> None:
        super().__init__()
        self.student = student
        self.adapters = adapters
        self.student_blocks = student_blocks or []

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        if self.adapters is None:
            return self.student(x), None
        sr, feats = self.student.forward_features(x)
        return sr, self.adapters([feats[i - 1] for i in self.student_blocks])


# (net output sr, adapted features, lr batch, hr batch) -> (loss, detached parts for logging, incl. "total")
LossFn = Callable[[torch.Tensor, list[torch.Tensor] | None, torch.Tensor, torch.Tensor],
                  tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class StageSpec:
    name: str
    steps: int
    lr_patch: int
    batch: int
    lr: float
    stream: int  # data stream id: different stages see different crops
    min_lr_ratio: float = 0.01
    warmup: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 0.0


@dataclass
class LoopResult:
    net: TrainNet  # raw weights
    ema: EMA
    metrics: dict[str, Any]


class _LossWindow:
    """Sums of the logged loss parts since the last log step, kept on the device (no host sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.recent: list[torch.Tensor] = []  # the last few totals, for the stage's final_loss

    def add(self, parts: dict[str, torch.Tensor]) -> None:
        for k, v in parts.items():
            v = v.detach()
            self.sums[k] = self.sums[k] + v if k in self.sums else v.clone()
        self.count += 1
        self.recent = (self.recent + [parts["total"].detach()])[-10:]

    def means(self) -> dict[str, float]:
        """The window's mean of every part (one host sync); the window starts over."""
        if not self.count:
            return {}
        keys = list(self.sums)
        values = (torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        self.sums, self.count = {}, 0
        return dict(zip(keys, values, strict=True))


def train_loop(ctx: RunContext, spec: StageSpec, net: TrainNet, loss_fn: LossFn,
               ema_init: dict[str, Any] | None = None) -> LoopResult:
    """Run (or resume) one stage's optimisation; returns raw + EMA weights and metrics.

    Raises :class:`~dipnet_core.cancel.Cancelled` after saving a checkpoint when
    the run's cancel token is set (checked before every step).
    """
    cfg = ctx.config
    device = ctx.device
    net.to(device)
    ema = EMA(net.student, spec.ema_decay)
    if ema_init is not None:
        ema.load_state_dict(ema_init)
    optimizer = torch.optim.Adam(net.parameters(), lr=spec.lr, betas=(0.9, 0.99))
    autocast, scaler = autocast_for(device, cfg.run.amp)
    ckpt_path = ctx.stage_dir(spec.name) / "checkpoint.pt"
    start, metrics = 0, {"steps": spec.steps, "lr_patch": spec.lr_patch, "batch": spec.batch}
    history: list[dict[str, Any]] = []
    probe_start: float | None = None
    # Optimisation time of earlier processes, carried in the checkpoint so a stage resumed across
    # sessions reports its whole training time, not only the last stretch.
    seconds_before = 0.0

    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        ema.load_state_dict(ckpt["ema"])
        if scaler is not None and ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        restore_rng(ckpt["rng"])
        start, history = int(ckpt["step"]), list(ckpt.get("val_history", []))
        probe_start = ckpt.get("probe_start")
        if "train_seconds" in ckpt:
            seconds_before = float(ckpt["train_seconds"])
        elif start > 0:  # a checkpoint written before the time was recorded
            metrics["train_seconds_since_step"] = start
        ctx.log(f"{spec.name}: resuming from {ckpt_path} at step {start}")

    def train_seconds() -> float:  # only called once the loop below has set t0
        return seconds_before + time.monotonic() - t0

    def save(step: int) -> None:
        if not ctx.is_main:
            return
        save_checkpoint(ckpt_path, {
            "stage": spec.name, "step": step, "arch": arch_of(net.student),
            "net": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "optimizer": optimizer.state_dict(), "ema": ema.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else {},
            "rng": capture_rng(), "val_history": history, "probe_start": probe_start,
            "run_config": config_to_dict(cfg), "train_seconds": train_seconds(),
        })
        ctx.emit(ev.CheckpointSaved(str(ckpt_path), spec.name, step))

    train_net: nn.Module = net
    if ctx.dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_net = DDP(net, device_ids=[device.index] if device.type == "cuda" else None)

    assert ctx.images is not None, "RunContext was opened without data"
    degrader = degrader_for_stage(cfg.data.degradation, spec.name, cfg.data.scale)
    dataset = SRCropDataset(ctx.images, spec.lr_patch, spec.batch, cfg.run.seed, spec.stream, ctx.dist.rank,
                            texture_tries=cfg.data.texture_tries, degrader=degrader)
    if dataset.too_small and start == 0:
        ctx.log(f"{spec.name}: {len(dataset.too_small)} image(s) smaller than the patch are not used in this stage")
    loader = make_loader(dataset, start, spec.steps, cfg.data.num_workers, pin_memory=device.type == "cuda")
    # A fixed probe batch (its own data stream) measured before and after the stage: a
    # noise-free "did the loss go down" number, unlike the per-step losses on random crops.
    probe_set = SRCropDataset(ctx.images, spec.lr_patch, spec.batch, cfg.run.seed, spec.stream + 10_000, ctx.dist.rank,
                              texture_tries=cfg.data.texture_tries, degrader=degrader)
    probe = [torch.stack(t).to(device) for t in zip(*(probe_set[i] for i in range(spec.batch)), strict=True)]

    def probe_loss() -> float:
        with torch.no_grad(), autocast:
            sr, adapted = net(probe[0])
            return float(loss_fn(sr, adapted, probe[0], probe[1])[1]["total"])  # twice a stage: sync is fine

    if probe_start is None:
        probe_start = probe_loss()

    ctx.emit(ev.StageStarted(spec.name, spec.steps, start))
    ctx.state["current"] = spec.name
    ctx.save_state()
    window = _LossWindow()
    last_val = None
    if ctx.is_main and ctx.val and cfg.run.validate_early and start == 0 and spec.steps > 0:
        # One validation before the first step: the monitor shows where the stage starts at once
        # instead of after val_every steps (minutes to hours on a CPU).
        last_val = _validate_event(ctx, spec.name, 0, ema.model_copy(net.student))
        history.append({"step": 0, "psnr_y": last_val[0], "ssim_y": last_val[1]})
    net.train()
    t0 = time.monotonic()

    def check_finite(step_now: int, means: dict[str, float]) -> None:
        if not math.isfinite(means.get("total", 0.0)):
            raise FloatingPointError(f"{spec.name}: loss became {means['total']} by step {step_now}; "
                                     "lower the learning rate or disable AMP")

    for step, (lr_img, hr_img) in zip(range(start, spec.steps), loader, strict=False):
        if any_true(ctx.cancel is not None and ctx.cancel.cancelled, ctx.dist, device):
            save(step)
            raise Cancelled(f"cancelled in {spec.name} at step {step}")
        lr_img = lr_img.to(device, non_blocking=True)
        hr_img = hr_img.to(device, non_blocking=True)
        lr_now = lr_at(step, spec.steps, spec.lr, spec.warmup, spec.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        with autocast:
            sr, adapted = train_net(lr_img)
            loss, parts = loss_fn(sr, adapted, lr_img, hr_img)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if spec.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), spec.grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if spec.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), spec.grad_clip)
            optimizer.step()
        ema.update(net.student)
        window.add(parts)
        done = step + 1

        if done % max(1, cfg.run.log_every) == 0 or done == spec.steps:
            means = window.means()
            check_finite(done, means)
            elapsed = time.monotonic() - t0
            eta = elapsed / (done - start) * (spec.steps - done)
            ctx.emit(ev.Step(spec.name, done, spec.steps, means, lr_now, eta))
        if ctx.is_main and ctx.val and cfg.run.val_every > 0 and done % cfg.run.val_every == 0 and done < spec.steps:
            last_val = _validate_event(ctx, spec.name, done, ema.model_copy(net.student))
            history.append({"step": done, "psnr_y": last_val[0], "ssim_y": last_val[1]})
        if cfg.run.ckpt_every > 0 and done % cfg.run.ckpt_every == 0 and done < spec.steps:
            if window.count:  # never checkpoint weights a non-finite loss has already spoiled
                check_finite(done, {"total": float(window.sums["total"])})
            save(done)

    # Final state (also the resume point if the process dies before the stage is recorded as done).
    if spec.steps > start:
        save(spec.steps)
    if ctx.is_main and ctx.val:
        last_val = _validate_event(ctx, spec.name, spec.steps, ema.model_copy(net.student))
        history.append({"step": spec.steps, "psnr_y": last_val[0], "ssim_y": last_val[1]})
    if last_val is not None:
        metrics.update(psnr_y=round(last_val[0], 4), ssim_y=round(last_val[1], 5))
    if window.recent:
        metrics["final_loss"] = float(torch.stack(window.recent).mean())
    metrics["val_history"] = history
    metrics["probe_loss_start"] = probe_start
    metrics["probe_loss_end"] = probe_loss()
    metrics["train_seconds"] = round(train_seconds(), 2)
    return LoopResult(net, ema, metrics)


def _validate_event(ctx: RunContext, stage: str, step: int, model: nn.Module) -> tuple[float, float]:
    p, s, sample = validate(model, ctx.val, ctx.device, ctx.config.data.scale)
    ctx.emit(ev.Validation(stage, step, p, s, sample))
    return p, s
