"""Progress events a training run sends through its callback (GUI, CLI, tests).

Events are plain dataclasses so a GUI can forward them across threads/processes
without touching any torch object.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

__all__ = [
    "Callback",
    "CheckpointSaved",
    "Comparison",
    "Error",
    "Estimate",
    "Event",
    "Log",
    "ProgressPrinter",
    "RunFinished",
    "StageFinished",
    "StageStarted",
    "Step",
    "Validation",
    "format_eta",
]


@dataclass
class Event:
    pass


@dataclass
class StageStarted(Event):
    stage: str
    total_steps: int
    start_step: int = 0  # > 0 when resuming


@dataclass
class Step(Event):
    stage: str
    step: int  # 1-based count of finished steps
    total: int
    losses: dict[str, float]
    lr: float
    eta_s: float


@dataclass
class Validation(Event):
    stage: str
    step: int
    psnr_y: float
    ssim_y: float
    # Small uint8 HxWx3 crops {"lr", "sr", "hr"} for a preview; None when there is no val image.
    sample: dict[str, np.ndarray] | None = None


@dataclass
class CheckpointSaved(Event):
    path: str
    stage: str = ""
    step: int = 0


@dataclass
class StageFinished(Event):
    stage: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunFinished(Event):
    model_path: str
    onnx_path: str | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Comparison(Event):
    """The run's closing comparison (the ``comparison`` stage's metrics, see train.stages.compare):
    ``datasets[name]["psnr_y"|"ssim_y"][model key or "bicubic"]``, ``models[key]["label"|"path"]``,
    ``reference`` (the key the new model is judged against), ``worse_than_reference``, ``summary``."""

    comparison: dict[str, Any] = field(default_factory=dict)


@dataclass
class Estimate(Event):
    """Expected time of the stages still to run, measured on this machine before they start."""

    total_s: float
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    seconds_per_step: dict[str, float] = field(default_factory=dict)


@dataclass
class Error(Event):
    message: str


@dataclass
class Log(Event):
    """Free-form information (skipped images, disabled features, resume points)."""

    message: str


Callback = Callable[[Event], None]


def format_eta(seconds: float) -> str:
    if math.isnan(seconds) or seconds < 0:
        return "?"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class ProgressPrinter:
    """CLI callback: one line per logged step / validation / stage, to ``stream``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self._t0 = time.monotonic()

    def _print(self, text: str) -> None:
        print(f"[{time.monotonic() - self._t0:7.1f}s] {text}", file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StageStarted):
            resumed = f" (resuming at step {event.start_step})" if event.start_step else ""
            self._print(f"== {event.stage}: {event.total_steps} steps{resumed}")
        elif isinstance(event, Step):
            losses = " ".join(f"{k}={v:.4f}" for k, v in event.losses.items())
            self._print(f"{event.stage} {event.step}/{event.total} {losses} lr={event.lr:.2e} "
                        f"eta={format_eta(event.eta_s)}")
        elif isinstance(event, Validation):
            self._print(f"{event.stage} step {event.step}: val PSNR-Y {event.psnr_y:.2f} dB, "
                        f"SSIM-Y {event.ssim_y:.4f}")
        elif isinstance(event, CheckpointSaved):
            pass  # too chatty for a terminal; the log file has them
        elif isinstance(event, StageFinished):
            keys = ("psnr_y", "ssim_y", "latency_s_per_mp", "params", "widths", "max_abs_diff")
            summary = ", ".join(f"{k}={event.metrics[k]}" for k in keys if k in event.metrics)
            self._print(f"== {event.stage} done {summary}")
        elif isinstance(event, RunFinished):
            self._print(f"finished: {event.model_path}" + (f" + {event.onnx_path}" if event.onnx_path else ""))
        elif isinstance(event, Estimate):
            per = ", ".join(f"{k} {format_eta(v)}" for k, v in event.stages.items())
            self._print(f"expected time: {format_eta(event.total_s)} on this machine ({per})")
        elif isinstance(event, Comparison):
            for line in str(event.comparison.get("summary", "")).splitlines():
                self._print(f"comparison: {line}")
        elif isinstance(event, Error):
            self._print(f"ERROR: {event.message}")
        elif isinstance(event, Log):
            self._print(event.message)
