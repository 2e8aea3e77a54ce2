"""Everything a stage needs about the run: config, folder, device, data, events, stage files.

The run folder::

    RUN_DIR/config.toml        the config this run uses
    RUN_DIR/log.txt            every event as a line (rank 0)
    RUN_DIR/state.json         finished stages, pruning plan, last model, per-stage metrics
    RUN_DIR/metrics.json       all per-stage metrics in one file
    RUN_DIR/skipped_images.json
    RUN_DIR/stages/NAME/checkpoint.pt   latest training state of the stage (resume point)
    RUN_DIR/stages/NAME/model.pt        the stage's output model (EMA weights + arch)
    RUN_DIR/stages/NAME/metrics.json
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..cancel import CancelToken
from ..models.blocks import min_input_size
from ..models.dipnet import DIPNet, DIPNetConfig
from ..models.train_blocks import DIPNetTrain
from . import events as ev
from .checkpoint import load_checkpoint, read_json, save_checkpoint, write_json
from .config import ConfigError, TrainConfig, config_to_dict, load_config, save_config
from .data import ImageSet, ValItem, load_val_set, scan_images, split_train_val
from .distributed import DistInfo, barrier, init_distributed

__all__ = ["RunContext", "arch_of", "build_model", "load_stage_model", "prepare_data", "resolve_device"]


def resolve_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("run.device asks for CUDA but this PyTorch has no usable GPU")
        if dist_info is not None and dist_info.enabled:
            return torch.device("cuda", dist_info.local_rank)
    return torch.device(name)


def arch_of(model: nn.Module) -> dict[str, Any]:
    """Architecture record stored next to weights: enough to rebuild the module."""
    if isinstance(model, DIPNetTrain):
        return {"kind": "dipnet_train", "config": model.config.to_dict(), "expansion": float(model.expansion)}
    if isinstance(model, DIPNet):
        return {"kind": "dipnet", "config": model.config.to_dict()}
    raise TypeError(f"cannot describe {type(model).__name__}")


def build_model(arch: dict[str, Any]) -> nn.Module:
    config = DIPNetConfig.from_dict(arch["config"])
    if arch["kind"] == "dipnet_train":
        return DIPNetTrain(config, expansion=float(arch.get("expansion", 2.0)), fuse_in_forward=True)
    if arch["kind"] == "dipnet":
        return DIPNet(config)
    raise ValueError(f"unknown architecture kind {arch['kind']!r}")


def load_stage_model(path: str | Path, weights: str = "model") -> tuple[nn.Module, dict[str, Any]]:
    """(model rebuilt from a stage file's arch record, the raw payload), on the CPU.

    ``weights`` picks the payload entry to load: "model" (a stage output's EMA weights),
    "raw" (a distill output's un-averaged weights) or "ema" (a ``checkpoint.pt``'s EMA shadow).
    """
    payload = load_checkpoint(Path(path))
    model = build_model(payload["arch"])
    model.load_state_dict(payload["ema"]["shadow"] if weights == "ema" else payload[weights])
    return model, payload


def _paired_lr_paths(hr_dir: Path, lr_dir: Path, hr_paths: list[Path], scale: int
                     ) -> tuple[list[Path], list[Path], list[tuple[str, str]]]:
    """Match LR files to HR files by relative folder + stem (DIV2K's ``0001x4.png`` also matches ``0001``)."""
    index: dict[str, Path] = {}
    for p in lr_dir.rglob("*"):
        if p.is_file():
            rel = p.relative_to(lr_dir).with_suffix("")
            key = str(rel)
            if key.lower().endswith(f"x{scale}"):
                key = key[: -len(f"x{scale}")]
            index[key] = p
    keep_hr, keep_lr, skipped = [], [], []
    for p in hr_paths:
        key = str(p.relative_to(hr_dir).with_suffix(""))
        if key in index:
            keep_hr.append(p)
            keep_lr.append(index[key])
        else:
            skipped.append((str(p), f"no paired LR file in '{lr_dir}'"))
    return keep_hr, keep_lr, skipped


def prepare_data(cfg: TrainConfig) -> tuple[ImageSet, list[ValItem], list[tuple[str, str]]]:
    """Scan, split and load: (training images, validation items, skipped (path, reason))."""
    d = cfg.data
    if not d.train_dirs:
        raise ValueError("no training folder given (data.train_dirs / --data)")
    min_side = min_input_size() * d.scale  # below this not even one LR patch fits the ESA branch
    skipped: list[tuple[str, str]] = []
    paths: list[Path] = []
    folder_of: dict[Path, int] = {}
    lr_paths: list[Path] | None = [] if d.paired_lr_dirs else None
    if d.paired_lr_dirs and len(d.paired_lr_dirs) != len(d.train_dirs):
        raise ValueError("data.paired_lr_dirs must list one LR folder per training folder")
    for k, folder in enumerate(d.train_dirs):
        found, bad = scan_images([folder], min_side)
        skipped += bad
        if lr_paths is not None:
            found, lrs, bad = _paired_lr_paths(Path(folder), Path(d.paired_lr_dirs[k]), found, d.scale)
            skipped += bad
            lr_paths += lrs
        paths += found
        folder_of.update(dict.fromkeys(found, k))
    if d.val_dir:
        train, val_paths = paths, scan_images([d.val_dir], min_side)[0]
        train_lr = lr_paths
    else:
        train, val_paths = split_train_val(paths, d.val_fraction, d.val_max_images)
        train_lr = [lr for p, lr in zip(paths, lr_paths) if p in set(train)] if lr_paths is not None else None
    val_paths = val_paths[: d.val_max_images]
    if not train:
        detail = "; ".join(f"{p}: {r}" for p, r in skipped[:5])
        raise ValueError(f"no usable training images in {', '.join(d.train_dirs)}" + (f" ({detail})" if detail else ""))
    val = load_val_set(val_paths, d.scale, d.val_crop, skipped)
    images = ImageSet(list(train), d.scale, lr_paths=train_lr, cache=d.cache, cache_mb=d.cache_mb, skipped=skipped,
                      hr_scales=tuple(d.hr_scales), folders=[folder_of[p] for p in train] if d.train_weights else None,
                      folder_weights=tuple(d.train_weights))
    return images, val, skipped


# Sections whose change makes existing checkpoints meaningless for this config.
_RECIPE_KEYS = ("student", "teacher", "distill", "reparam", "prune")


def _check_same_recipe(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume a run folder that was started with a different recipe."""
    if not (run_dir / "state.json").exists() or not (run_dir / "config.toml").exists():
        return
    try:
        old = config_to_dict(load_config(run_dir / "config.toml"))
    except ConfigError:
        return
    new = config_to_dict(config)
    changed = [k for k in _RECIPE_KEYS if old.get(k) != new.get(k)]
    if old["data"]["scale"] != new["data"]["scale"]:
        changed.append("data.scale")
    if changed:
        raise ConfigError(f"'{run_dir}' holds a run started with different [{', '.join(changed)}] settings; "
                          "resume it with its own config (--resume), or start over (--fresh / another --out)")


@dataclass
class RunContext:
    config: TrainConfig
    run_dir: Path
    device: torch.device
    dist: DistInfo
    callback: ev.Callback | None = None
    cancel: CancelToken | None = None
    images: ImageSet | None = None
    val: list[ValItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    # Objects loaded once per run and shared by stages (e.g. the frozen teacher, see stages.teacher).
    cache: dict[str, Any] = field(default_factory=dict)
    _log: Any = None
    _printer: ev.ProgressPrinter | None = None

    # -- creation -------------------------------------------------------------------------------

    @classmethod
    def open(cls, config: TrainConfig, callback: ev.Callback | None = None, cancel: CancelToken | None = None,
             resume: bool = True, load_data: bool = True) -> RunContext:
        config.validate()
        if config.run.threads > 0:
            torch.set_num_threads(config.run.threads)
        device_type = "cuda" if config.run.device.startswith("cuda") or (
            config.run.device == "auto" and torch.cuda.is_available()) else "cpu"
        dist_info = init_distributed(device_type)
        device = resolve_device(config.run.device, dist_info)
        # Absolute from here on: stage outputs are recorded relative to it and joined back onto it, and a
        # relative folder joined twice ("runs/x/runs/x/...") once broke the final fine-tune of a real run.
        run_dir = Path(config.run.out_dir).resolve()
        ctx = cls(config=config, run_dir=run_dir, device=device, dist=dist_info, callback=callback, cancel=cancel)
        if dist_info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if not resume:
                ctx._clear_previous()
            else:
                _check_same_recipe(run_dir, config)
            save_config(config, run_dir / "config.toml")
            # The log stays open for the whole run; RunContext.close() closes it.
            ctx._log = open(run_dir / "log.txt", "a", encoding="utf-8")  # noqa: SIM115
            ctx._printer = ev.ProgressPrinter(ctx._log)
        barrier(dist_info)
        ctx.state = read_json(run_dir / "state.json", default=None) or {"done": [], "metrics": {}}
        if load_data:
            ctx.images, ctx.val, ctx.skipped = prepare_data(config)
            if ctx.skipped:
                ctx.log(f"skipped {len(ctx.skipped)} image(s): " +
                        "; ".join(f"{p} ({r})" for p, r in ctx.skipped[:10]) + (" ..." if len(ctx.skipped) > 10 else ""))
            if dist_info.is_main:
                write_json(run_dir / "skipped_images.json", [list(s) for s in ctx.skipped])
            ctx.log(f"data: {len(ctx.images)} training image(s), {len(ctx.val)} validation image(s); "
                    f"device {device}, world size {dist_info.world_size}")
        return ctx

    def _clear_previous(self) -> None:
        import shutil

        # Only what a previous run of ours wrote; user files in the folder are left alone.
        shutil.rmtree(self.run_dir / "stages", ignore_errors=True)
        for name in ("state.json", "metrics.json", "skipped_images.json", "log.txt"):
            (self.run_dir / name).unlink(missing_ok=True)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- events ---------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def emit(self, event: ev.Event) -> None:
        if not self.is_main:
            return
        if self._printer is not None:
            self._printer(event)
        if self.callback is not None:
            self.callback(event)

    def log(self, message: str) -> None:
        self.emit(ev.Log(message))

    def log_error(self, exc: BaseException) -> None:
        """Send an :class:`~.events.Error` and keep the full traceback in ``log.txt`` for a bug report."""
        self.emit(ev.Error(f"{type(exc).__name__}: {exc}"))
        if self._log is not None:
            self._log.write("".join(traceback.format_exception(exc)))

    # -- state ----------------------------------------------------------------------------------

    def stage_dir(self, stage: str) -> Path:
        return self.run_dir / "stages" / stage

    def is_done(self, stage: str) -> bool:
        return stage in self.state.get("done", [])

    def save_state(self) -> None:
        if self.is_main:
            write_json(self.run_dir / "state.json", self.state)

    def finish_stage(self, stage: str, metrics: dict[str, Any], output: Path | None = None) -> None:
        """Record a finished stage (metrics files, state.json) and tell the callback."""
        metrics = dict(metrics)
        metrics["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        if self.is_main:
            write_json(self.stage_dir(stage) / "metrics.json", metrics)
        self.state.setdefault("metrics", {})[stage] = metrics
        if stage not in self.state.setdefault("done", []):
            self.state["done"].append(stage)
        if output is not None:
            self.state["last_model"] = str(output.relative_to(self.run_dir))
        self.state.pop("current", None)
        self.save_state()
        if self.is_main:
            write_json(self.run_dir / "metrics.json", self.state["metrics"])
        barrier(self.dist)
        self.emit(ev.StageFinished(stage, metrics))

    # -- models ---------------------------------------------------------------------------------

    def save_output(self, stage: str, model: nn.Module, extra: dict[str, Any] | None = None) -> Path:
        """The stage's output model (weights + arch) as ``stages/NAME/model.pt``."""
        path = self.stage_dir(stage) / "model.pt"
        if self.is_main:
            payload = {"arch": arch_of(model), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                       "stage": stage, "run_config": config_to_dict(self.config)}
            payload.update(extra or {})
            save_checkpoint(path, payload)
        barrier(self.dist)
        return path

    def load_output(self, stage_or_path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
        """(model on the run's device with the saved EMA weights, the raw payload)."""
        path = Path(stage_or_path)
        if not path.suffix:
            path = self.stage_dir(str(stage_or_path)) / "model.pt"
        elif not path.is_absolute():
            path = self.run_dir / path
        model, payload = load_stage_model(path)
        return model.to(self.device), payload

    def last_model_path(self) -> Path:
        if "last_model" not in self.state:
            raise RuntimeError("no stage has produced a model yet")
        return self.run_dir / self.state["last_model"]
