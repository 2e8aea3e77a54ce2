"""What several stages share: the student's widths, data stream ids, stage summaries, warm starts.

Kept out of the stage modules so that each of them reads as its step of the method.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ...models.dipnet import DIPNet, DIPNetConfig, count_parameters
from ...models.train_blocks import DIPNetTrain
from ...prune import grow_dipnet, measure_latency
from ...resources import BUILTIN_MODEL_NAME, builtin_models_dir
from ..checkpoint import load_checkpoint
from ..config import BUILTIN, ConfigError, TrainConfig
from ..context import RunContext, arch_of
from ..expand import expand_fused

__all__ = [
    "BUILTIN_TEACHER_FILE",
    "STREAM_DISTILL",
    "STREAM_FINETUNE",
    "STREAM_PRUNE",
    "STREAM_TEACHER",
    "check_model_files",
    "done_metrics",
    "load_start_model",
    "measure_config_latency",
    "model_summary",
    "new_student",
    "resolve_model_path",
    "student_config",
    "warm_start_payload",
]

#: The built-in model's teacher, shipped beside it (teacher.path = "builtin").
BUILTIN_TEACHER_FILE = f"{BUILTIN_MODEL_NAME}-teacher.safetensors"

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


def resolve_model_path(value: str, key: str) -> Path:
    """The file a model setting names; ``"builtin"`` is the built-in model (student.from_model)
    or its teacher (teacher.path). Raises :class:`ConfigError` naming the setting when it is absent."""
    if value != BUILTIN:
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"{key}: no such file '{value}'")
        return path
    folder = builtin_models_dir()
    if key.startswith("teacher"):
        path = folder / BUILTIN_TEACHER_FILE if folder is not None else None
        if path is None or not path.is_file():
            raise ConfigError(f"{key} = 'builtin': the built-in model's teacher ({BUILTIN_TEACHER_FILE}) is not "
                              "in this build; give a teacher model file (--teacher FILE) or train without one "
                              "(--no-teacher)")
        return path
    path = folder / f"{BUILTIN_MODEL_NAME}.safetensors" if folder is not None else None
    if path is None or not path.is_file():
        raise ConfigError(f"{key} = 'builtin': this build has no built-in model; give a model file instead")
    return path


def load_start_model(config: TrainConfig) -> tuple[DIPNet, Path]:
    """(the fused model ``student.from_model`` names, its path), checked to fit this run."""
    from ...models.loader import load_model

    path = resolve_model_path(str(config.student.from_model), "student.from_model")
    loaded = load_model(path)
    if not isinstance(loaded.module, DIPNet):
        kind = "an ONNX file" if loaded.module is None else f"a {type(loaded.module).__name__}"
        raise ConfigError(f"student.from_model '{path}' is {kind}; adaptation starts from a DIPNet model "
                          "(.safetensors/.pth)")
    if loaded.module.config.scale != config.data.scale:
        raise ConfigError(f"student.from_model '{path}' is x{loaded.module.config.scale} but the run trains "
                          f"x{config.data.scale}")
    return loaded.module.float().eval(), path


def start_model_record(config: TrainConfig) -> dict[str, Any]:
    """Where ``student.from_model`` came from, for the new model's training record: the file as
    configured, its content hash and its own training record, so a chain of continued runs keeps
    its whole lineage (each record nests the one it started from)."""
    import hashlib

    from ...models.loader import read_descriptor

    path = resolve_model_path(str(config.student.from_model), "student.from_model")
    descriptor = read_descriptor(path)
    return {"file": str(config.student.from_model), "name": descriptor.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "training": descriptor.training}


#: Std of the filters that produce a grown model's added channels: small beside trained filters
#: (std 0.04-0.18 in the built-in models), so the new channels start quiet, yet not zero, so the
#: zero weights that read them get gradient.
GROW_INIT_STD = 0.01


def grown_start_model(model: DIPNet, config: TrainConfig) -> DIPNet:
    """``model`` widened to ``student.grow_to`` (same function), seeded by ``run.seed``."""
    feat, mid = config.student.grow_to
    c = model.config
    target = replace(c, feat=feat, blocks=tuple(replace(b, mid1=mid, mid2=mid) for b in c.blocks))
    generator = torch.Generator().manual_seed(config.run.seed)
    try:
        return grow_dipnet(model, target, init_std=GROW_INIT_STD, generator=generator)
    except ValueError as e:  # a width below the start model's
        raise ConfigError(f"student.grow_to {config.student.grow_to} is narrower than the start model: {e}") from None


def new_student(config: TrainConfig) -> DIPNetTrain:
    """The student distillation starts from: the re-expanded ``student.from_model``, else random weights."""
    if config.student.from_model:
        model, _ = load_start_model(config)
        if config.student.grow_to:
            model = grown_start_model(model, config)
        return expand_fused(model, config.student.expansion, fuse_in_forward=True).train()
    return DIPNetTrain(student_config(config), expansion=config.student.expansion, fuse_in_forward=True)


def check_model_files(config: TrainConfig) -> None:
    """Fail at the start of a run, not after an hour, when a model file the run needs is missing or unfit."""
    if config.teacher.kind == "file":
        resolve_model_path(str(config.teacher.path), "teacher.path")
    if config.student.from_model:
        load_start_model(config)
