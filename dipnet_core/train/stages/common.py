"""What several stages share: the student's widths, data stream ids, stage summaries, warm starts.

Kept out of the stage modules so that each of them reads as its step of the method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...models.dipnet import DIPNet, DIPNetConfig, count_parameters
from ...models.train_blocks import DIPNetTrain
from ...prune import measure_latency
from ..checkpoint import load_checkpoint
from ..context import RunContext, arch_of

__all__ = [
    "STREAM_DISTILL",
    "STREAM_FINETUNE",
    "STREAM_PRUNE",
    "STREAM_TEACHER",
    "done_metrics",
    "measure_config_latency",
    "model_summary",
    "student_config",
    "warm_start_payload",
]

# Data stream ids: each stage draws its own crops (see data.sample_generator).
STREAM_TEACHER, STREAM_DISTILL, STREAM_PRUNE, STREAM_FINETUNE = 1, 100, 200, 300


def student_config(ctx_or_cfg: Any) -> DIPNetConfig:
    """The student's architecture at the start of training (a RunContext or a TrainConfig)."""
    cfg = getattr(ctx_or_cfg, "config", ctx_or_cfg)
    s = cfg.student
    return DIPNetConfig.uniform(s.feat, s.mid, n_blocks=s.n_blocks, esa=s.esa, scale=cfg.data.scale)


def done_metrics(ctx: RunContext, name: str) -> dict[str, Any]:
    """The recorded metrics of a finished stage (a finished stage is never run again)."""
    return dict(ctx.state.get("metrics", {}).get(name, {}))


def measure_config_latency(ctx: RunContext, config: DIPNetConfig) -> float:
    """Seconds per input megapixel of ``config`` on this machine's CPU (prune.measure_latency)."""
    pc = ctx.config.prune
    h, w = pc.latency_size
    return float(measure_latency(config, size=(h, w), repeats=pc.latency_repeats, warmup=1))


def model_summary(model: DIPNet | DIPNetTrain) -> dict[str, Any]:
    """Widths, parameters and cost of a stage's model, for its metrics."""
    cfg = model.config
    return {"widths": cfg.widths_label(), "config": cfg.to_dict(), "params": count_parameters(model),
            "macs_per_input_pixel": cfg.macs_per_input_pixel()}


def warm_start_payload(path: str, model: torch.nn.Module, key: str) -> dict[str, Any]:
    """A stage file to start ``model`` from, refused unless it has exactly the same architecture."""
    payload = load_checkpoint(Path(path))
    have, want = payload.get("arch"), arch_of(model)
    if have != want:
        raise ValueError(f"{key} '{path}' holds a different architecture than this run builds: "
                         f"{have} vs {want}")
    return payload
