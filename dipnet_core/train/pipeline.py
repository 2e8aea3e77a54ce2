"""Run every stage of DIPNet training in order, resuming where a previous run stopped.

Read top to bottom: open the run (config, data, device, DDP) -> teacher ->
progressive distillation -> reparameterization -> pruning rounds with fine-tunes
-> final fine-tune -> export -> comparison with the starting model and bicubic. Finished stages (``state.json``) are skipped;
the stage in progress resumes from its last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..cancel import Cancelled, CancelToken
from . import events as ev
from . import stages
from .config import TrainConfig, load_config
from .context import RunContext
from .estimate import estimate_run
from .stages.common import check_model_files

__all__ = ["PipelineResult", "resume_config", "run_pipeline", "stage_plan"]


@dataclass
class PipelineResult:
    status: str  # "done" | "cancelled" | "partial" (only some stages were asked for)
    run_dir: Path
    model_path: Path | None = None
    onnx_path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    skipped_images: list[tuple[str, str]] = field(default_factory=list)


def stage_plan(config: TrainConfig, n_prune_rounds: int | None = None) -> list[str]:
    """Stage names in run order (pruning rounds are known once the plan is computed)."""
    names = ["teacher"] if config.teacher.kind == "train" else []
    names += stages.distill_stage_names(config) + ["reparam"]
    if config.prune.enabled:
        names += [f"prune_{i}" for i in range(1, (n_prune_rounds or 0) + 1)] if n_prune_rounds is not None \
            else ["prune_*"]
    return names + ["finetune", "export", stages.compare_stage]


def resume_config(run_dir: str | Path) -> TrainConfig:
    """The config a run folder was started with (its ``config.toml``), pointed at that folder."""
    cfg = load_config(Path(run_dir) / "config.toml")
    cfg.run.out_dir = str(run_dir)
    return cfg


def run_pipeline(config: TrainConfig, callback: ev.Callback | None = None, cancel_token: CancelToken | None = None,
                 resume: bool = True, only: list[str] | None = None) -> PipelineResult:
    """Run (or continue) a whole training run in ``config.run.out_dir``.

    ``only``: run just these stage names (others must be done already if needed
    as inputs), e.g. ``["distill_1"]``. Cancellation saves a checkpoint and returns
    status ``"cancelled"``; errors are sent as an :class:`~.events.Error` event and re-raised.
    """
    ctx = RunContext.open(config, callback, cancel_token, resume=resume)

    def wanted(name: str) -> bool:
        return only is None or name in only

    try:
        check_model_files(config)
        if config.run.estimate_time and ctx.is_main:
            ctx.emit(estimate_run(ctx, only))

        if config.teacher.kind == "train" and wanted("teacher"):
            stages.train_teacher(ctx)

        for k, name in enumerate(stages.distill_stage_names(config), start=1):
            if wanted(name):
                stages.distill(ctx, k)

        if wanted("reparam"):
            stages.reparameterize(ctx)

        if config.prune.enabled and (only is None or any(n.startswith("prune_") for n in only)):
            for i in range(1, len(stages.plan_pruning(ctx)) + 1):
                if wanted(f"prune_{i}"):
                    stages.prune_round(ctx, i)

        if wanted("finetune"):
            stages.finetune(ctx)

        if wanted("export"):
            stages.export(ctx)

        if wanted(stages.compare_stage):
            stages.compare(ctx)

        if ctx.is_done("export") and (wanted("export") or wanted(stages.compare_stage)):
            exported = ctx.state["exported"]
            ctx.emit(ev.RunFinished(exported["model_path"], exported.get("onnx_path"), ctx.state.get("metrics", {})))
    except Cancelled as exc:
        ctx.log(f"stopped: {exc}; run again with resume to continue")
        return PipelineResult("cancelled", ctx.run_dir, metrics=ctx.state.get("metrics", {}),
                              skipped_images=ctx.skipped)
    except Exception as exc:
        ctx.log_error(exc)
        raise
    finally:
        ctx.close()

    exported = ctx.state.get("exported", {})
    done = ctx.is_done("export")
    return PipelineResult(
        "done" if done else "partial", ctx.run_dir,
        model_path=Path(exported["model_path"]) if exported.get("model_path") else None,
        onnx_path=Path(exported["onnx_path"]) if exported.get("onnx_path") else None,
        metrics=ctx.state.get("metrics", {}), skipped_images=ctx.skipped)
