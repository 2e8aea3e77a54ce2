"""Typed configuration of a training run, presets, and TOML/YAML round-trips.

One :class:`TrainConfig` describes a whole run (data, teacher, distillation,
reparameterization, pruning, fine-tuning, export, runtime). The presets live
here as Python values rather than only as files so that an installed package
(without the repo's ``configs/`` folder) can still run them by name.

Patch sizes are given in **LR pixels** (``lr_patch``): the HR crop is
``lr_patch * scale``. This avoids the usual HR/LR ambiguity; the ESA branch
needs LR inputs of at least ``models.blocks.min_input_size()`` px.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError as _CoreConfigError
from ..models.blocks import min_input_size
from .degrade import DegradationConfig, validate_degradation

__all__ = [
    "BUILTIN",
    "PRESETS",
    "CompareConfig",
    "ConfigError",
    "DataConfig",
    "DistillConfig",
    "ExportConfig",
    "FinetuneConfig",
    "ProgressiveStage",
    "PruneConfig",
    "ReparamConfig",
    "RunConfig",
    "StudentConfig",
    "TeacherConfig",
    "TrainConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "preset",
    "preset_names",
    "save_config",
]

MIN_LR_PATCH = min_input_size()  # ESA: stride-2 3x3 conv then a 7x7 max-pool

#: A model path meaning "the model shipped with the app" (student.from_model) or its teacher (teacher.path).
BUILTIN = "builtin"


class ConfigError(_CoreConfigError):
    """A config file or value is invalid; the message names the offending key."""


@dataclass
class DataConfig:
    train_dirs: list[str] = field(default_factory=list)
    # Share of the training crops drawn from each train_dirs folder (same order, relative weights).
    # Empty: every image is equally likely, so a folder of many small photos outweighs a few large
    # wallpapers; weights set the mix per folder instead, whatever the image counts.
    train_weights: list[float] = field(default_factory=list)
    # Validation: a folder of HR images, or else a deterministic fraction of the training images.
    val_dir: str | None = None
    val_fraction: float = 0.05
    val_max_images: int = 10
    # Centre-crop validation HR images to at most this many pixels per side (0 = whole image);
    # keeps validation cheap on CPU without changing the protocol otherwise.
    val_crop: int = 256
    # Optional LR folders parallel to train_dirs (same relative paths/stems): real pairs
    # instead of bicubic-made LR.
    paired_lr_dirs: list[str] = field(default_factory=list)
    scale: int = 4
    num_workers: int = 0
    # Keep decoded HR images in memory after first use, up to cache_mb (per process).
    cache: bool = True
    cache_mb: int = 2048
    # Crop sources and selection (dipnet_core.train.data): HR copies shrunk by these factors
    # (must include 1.0), and the best-textured of this many crop positions. [1.0] and 1 = off.
    hr_scales: list[float] = field(default_factory=lambda: [1.0])
    texture_tries: int = 1
    # Real-photo degradations of the training LR (a [data.degradation] table); absent = clean bicubic.
    degradation: DegradationConfig | None = None


@dataclass
class StudentConfig:
    """Widths of the student at the start of training (pruning starts from these)."""

    feat: int = 64
    mid: int = 64
    n_blocks: int = 4
    esa: int = 16
    # RepConv expansion of the training-time branches (DIPNetTrain).
    expansion: float = 2.0
    # Warm start: a previous run's distill stage output (stages/distill_K/model.pt, same widths
    # and expansion). distill_1 then continues from its weights, EMA and anchor adapters instead
    # of a random student, so a follow-up run (new data, more steps) builds on finished work.
    init: str | None = None
    # Adaptation: start from a finished, fused DIPNet model file ("builtin" = the app's built-in
    # model), re-expanded into training blocks that compute exactly the same function. The
    # student then has that model's widths (feat/mid/n_blocks/esa above are not used).
    from_model: str | None = None
    # With from_model: widen the start model to [feat, mid] before re-expanding it (prune.grow_dipnet:
    # the added channels start with small random filters read by zero weights, so the function is
    # unchanged at step 0 and training grows into the room). Empty = keep the model's widths.
    grow_to: list[int] = field(default_factory=list)


@dataclass
class TeacherConfig:
    kind: str = "train"  # "train" (our own wide/deep DIPNet-family), "file", or "none"
    path: str | None = None  # model file for kind = "file"; "builtin" = the built-in model's teacher
    # kind = "train" only: continue from this teacher output (stages/teacher/model.pt, same
    # widths) instead of random weights; the stage then runs `steps` more steps.
    init: str | None = None
    feat: int = 64
    mid: int = 64
    n_blocks: int = 8
    esa: int = 32
    steps: int = 1000
    lr_patch: int = 32
    batch: int = 16
    lr: float = 5e-4


@dataclass
class ProgressiveStage:
    lr_patch: int
    steps: int
    batch: int
    lr: float | None = None  # None: DistillConfig.lr


#: ``distill.pixel_loss`` values (losses.pixel_loss).
PIXEL_LOSSES = ("l1", "mse")


@dataclass
class DistillConfig:
    hr_weight: float = 1.0  # plain L1 to the ground-truth HR
    # L1 between the 2-D FFTs of the student's SR and the HR (losses.FrequencyL1Loss); 0 = off.
    # Applies to distillation and the fine-tunes after pruning.
    freq_weight: float = 0.0
    # "l1" or "mse": the pixel loss of the HR and enhanced-HR terms (here and in the fine-tunes after
    # pruning). MSE is what PSNR measures; the usual use is a last fine-tune of a model trained on L1.
    pixel_loss: str = "l1"
    alpha: float = 1.0  # L1 to the teacher-enhanced HR (teacher SR of the same LR input)
    beta: float = 0.1  # multi-anchor feature L1 through 1x1 adapters
    # [[student_block, teacher_block], ...] 1-based; empty = spread evenly over the teacher's depth.
    anchors: list[list[int]] = field(default_factory=list)
    stages: list[ProgressiveStage] = field(default_factory=lambda: [ProgressiveStage(48, 1000, 16)])
    lr: float = 5e-4
    min_lr_ratio: float = 0.01
    warmup_steps: int = 0
    # Warm-up at the start of every later progressive phase too: each phase starts a fresh optimizer,
    # whose first Adam steps move every weight by about the full learning rate, which is harmless
    # from scratch but knocks a finished model (adaptation) off its optimum.
    phase_warmup_steps: int = 0
    ema_decay: float = 0.999
    grad_clip: float = 0.0  # 0 = off
    # The enhanced-HR target as the mean of the teacher's SR of the 8 flips/rotations of the LR crop
    # (also in the prune and final fine-tunes): a target nearer the true HR for 8 teacher forwards
    # per step instead of 1 (benchmarks/teacher_ensemble_targets.py). Anchors stay single-pass.
    teacher_self_ensemble: bool = False


@dataclass
class ReparamConfig:
    atol: float = 1e-5
    check_sizes: list[list[int]] = field(default_factory=lambda: [[17, 23], [32, 32]])


@dataclass
class PruneConfig:
    enabled: bool = True
    ratio: float = 0.3125  # fraction of channels removed per round
    rounds: int = 0  # 0 = as many as needed to reach the target
    # Explicit target widths (0 = unset); otherwise a latency budget; otherwise `rounds` rounds of `ratio`.
    target_feat: int = 0
    target_mid: int = 0
    latency_budget: float = 0.0  # seconds per input megapixel on this device; 0 = off
    latency_size: list[int] = field(default_factory=lambda: [64, 64])
    latency_repeats: int = 5
    round_multiple: int = 2
    finetune_steps: int = 200
    finetune_lr_patch: int = 32
    finetune_batch: int = 16
    lr: float = 2e-4
    alpha: float = 1.0  # enhanced-HR weight during the per-round fine-tune (when a teacher exists)


@dataclass
class FinetuneConfig:
    steps: int = 0  # 0 = skip
    lr_patch: int = 48
    batch: int = 16
    lr: float = 1e-4
    alpha: float = 1.0


@dataclass
class ExportConfig:
    name: str = "dipnet-custom"
    onnx: bool = True
    opset: int = 17
    license: str = ""
    # Also write the int8 twin NAME.int8.onnx (onnxruntime static int8, calibrated on data.train_dirs),
    # after `int8_qat_steps` steps of quantization-aware fine-tuning (dipnet_core.train.qat; 0 = none;
    # patch size and batch of [finetune]; runs on the CPU).
    int8: bool = False
    int8_qat_steps: int = 0
    # HR test folders the twin's loss against fp32 is measured on and stored (the engine's automatic
    # choice only uses a twin within 0.05 dB); empty = the comparison's benchmark folder, if any.
    int8_eval: list[str] = field(default_factory=list)


@dataclass
class CompareConfig:
    """The comparison every run ends with: new model vs its starting model vs bicubic."""

    # Also compare on this benchmark folder; "auto" = Set5 in the reference data folder beside the
    # repository (../shared/benchmarks/Set5) when present, "" = only the validation images.
    benchmark_dir: str = "auto"


@dataclass
class RunConfig:
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: bool = True  # only ever used on CUDA
    threads: int = 0  # torch CPU threads; 0 = leave torch's default
    out_dir: str = "runs/dipnet"
    log_every: int = 20
    val_every: int = 500
    ckpt_every: int = 200
    # Validate once before a stage's first step, so a monitor shows the starting quality at once.
    validate_early: bool = True
    # Measure a few steps of each stage first and state the expected time of the whole run.
    estimate_time: bool = True


@dataclass
class TrainConfig:
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    reparam: ReparamConfig = field(default_factory=ReparamConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    preset: str = ""

    def validate(self) -> None:
        """Catch mistakes before hours of training; raises :class:`ConfigError`."""
        if self.teacher.kind not in ("train", "file", "none"):
            raise ConfigError(f"teacher.kind must be 'train', 'file' or 'none', got {self.teacher.kind!r}")
        if self.teacher.kind == "file" and not self.teacher.path:
            raise ConfigError("teacher.kind = 'file' needs teacher.path")
        if self.student.init and self.student.from_model:
            raise ConfigError("student.init and student.from_model exclude each other (one starting point)")
        if self.student.from_model and self.student.expansion < 1.0:
            raise ConfigError("student.from_model needs student.expansion >= 1 to re-expand the fused model exactly")
        if self.student.grow_to and not self.student.from_model:
            raise ConfigError("student.grow_to widens a start model: it needs student.from_model")
        if self.student.grow_to and (len(self.student.grow_to) != 2 or min(self.student.grow_to) < 1):
            raise ConfigError(f"student.grow_to must be [feat, mid] (two widths >= 1), got {self.student.grow_to}")
        if self.teacher.init and self.teacher.kind != "train":
            raise ConfigError(f"teacher.init only applies to teacher.kind = 'train' (is {self.teacher.kind!r})")
        for key, init in (("teacher.init", self.teacher.init), ("student.init", self.student.init),
                          ("student.from_model", self.student.from_model)):
            if init and not (key == "student.from_model" and init == BUILTIN) and not Path(init).is_file():
                raise ConfigError(f"{key}: no such file '{init}'")
        if self.data.scale < 1:
            raise ConfigError(f"data.scale must be >= 1, got {self.data.scale}")
        if 1.0 not in self.data.hr_scales or not all(0.0 < f <= 1.0 for f in self.data.hr_scales):
            raise ConfigError(f"data.hr_scales must be in (0, 1] and include 1.0, got {self.data.hr_scales}")
        if self.data.paired_lr_dirs and self.data.hr_scales != [1.0]:
            raise ConfigError("data.hr_scales cannot be combined with data.paired_lr_dirs (the pairs fix the HR size)")
        if self.data.train_weights:
            w = self.data.train_weights
            if len(w) != len(self.data.train_dirs):
                raise ConfigError(f"data.train_weights has {len(w)} value(s) for {len(self.data.train_dirs)} "
                                  "folder(s) in data.train_dirs: give one weight per folder")
            if any(not math.isfinite(v) or v < 0 for v in w) or sum(w) <= 0:
                raise ConfigError(f"data.train_weights must be >= 0 with a positive sum, got {w}")
        if self.data.texture_tries < 1:
            raise ConfigError(f"data.texture_tries must be >= 1, got {self.data.texture_tries}")
        if self.data.degradation is not None:
            problems = validate_degradation(self.data.degradation)
            if problems:
                raise ConfigError("data.degradation: " + "; ".join(problems))
            if self.data.paired_lr_dirs:
                raise ConfigError("data.degradation cannot be combined with data.paired_lr_dirs "
                                  "(the pairs fix the LR)")
        if self.distill.pixel_loss not in PIXEL_LOSSES:
            raise ConfigError(f"distill.pixel_loss must be one of {PIXEL_LOSSES}, got {self.distill.pixel_loss!r}")
        if not self.distill.stages:
            raise ConfigError("distill.stages is empty")
        patches = [("distill.stages", s.lr_patch) for s in self.distill.stages]
        patches += [("teacher.lr_patch", self.teacher.lr_patch), ("prune.finetune_lr_patch", self.prune.finetune_lr_patch),
                    ("finetune.lr_patch", self.finetune.lr_patch)]
        for name, p in patches:
            if p < MIN_LR_PATCH:
                raise ConfigError(f"{name}: LR patch {p} is below the minimum of {MIN_LR_PATCH} px")
        for s in self.distill.stages:
            if s.steps < 0 or s.batch < 1:
                raise ConfigError(f"distill.stages: bad stage {s}")
        if self.export.int8_qat_steps < 0:
            raise ConfigError(f"export.int8_qat_steps must be 0 or more, got {self.export.int8_qat_steps}")
        if self.export.int8_qat_steps and not self.export.int8:
            raise ConfigError("export.int8_qat_steps needs export.int8 = true")
        if not 0.0 < self.prune.ratio < 1.0:
            raise ConfigError(f"prune.ratio must be in (0, 1), got {self.prune.ratio}")
        if self.run.device not in ("auto", "cpu") and not self.run.device.startswith("cuda"):
            raise ConfigError(f"run.device must be auto, cpu or cuda[:N], got {self.run.device!r}")


# ---------------------------------------------------------------- dict <-> dataclass


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain dict (TOML-safe except for None values, which :func:`save_config` drops)."""
    return dataclasses.asdict(cfg)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, (list, tuple)):  # compact form, e.g. [lr_patch, steps, batch]
            names = [f.name for f in dataclasses.fields(tp)]
            if len(value) > len(names):
                raise ConfigError(f"{where}: expected at most {len(names)} values ({', '.join(names)})")
            value = dict(zip(names, value))
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return _from_dict(tp, value, where)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls: Any, d: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        # Typos in a config must not silently fall back to defaults.
        raise ConfigError(f"unknown key(s) in [{where or 'top level'}]: {', '.join(unknown)}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in d.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"[{where or 'top level'}]: {exc}") from exc


def config_from_dict(d: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """Build a config from a (possibly partial) dict; missing keys come from ``base`` or its preset."""
    d = dict(d)
    if base is None:
        base = preset(d["preset"]) if d.get("preset") else TrainConfig()
    merged = _deep_merge(config_to_dict(base), d)
    cfg = _from_dict(TrainConfig, merged, "")
    cfg.validate()
    return cfg


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _drop_none(obj: Any) -> Any:
    # TOML has no null; an absent key means "default" (None) on load.
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def load_config(path: str | Path) -> TrainConfig:
    """Read a ``.toml`` or ``.yaml``/``.yml`` config; a ``preset = "..."`` key fills the rest."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config '{path}': {exc}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:
            raise ConfigError("YAML configs need the 'pyyaml' package; use TOML instead") from exc
        try:
            d = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config '{path}' is not valid YAML: {exc}") from exc
    else:
        try:
            d = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config '{path}' is not valid TOML: {exc}") from exc
    if not isinstance(d, dict):
        raise ConfigError(f"config '{path}' must be a table at the top level")
    try:
        return config_from_dict(d)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def dumps_toml(cfg: TrainConfig) -> str:
    import tomli_w

    return tomli_w.dumps(_drop_none(config_to_dict(cfg)))


def save_config(cfg: TrainConfig, path: str | Path) -> Path:
    """Write ``.toml`` (or ``.yaml`` when the suffix says so) atomically."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    else:
        text = dumps_toml(cfg)
    from ..io.atomic import atomic_write_text

    return atomic_write_text(path, text)


# ---------------------------------------------------------------- presets


def _tiny_test() -> TrainConfig:
    """Seconds on one CPU core: for tests only, learns almost nothing."""
    return TrainConfig(
        preset="tiny-test",
        run=RunConfig(seed=0, device="cpu", amp=False, threads=1, out_dir="runs/tiny-test",
                      log_every=2, val_every=4, ckpt_every=2, estimate_time=False),
        data=DataConfig(val_fraction=0.25, val_max_images=2, val_crop=64, cache=True),
        student=StudentConfig(feat=12, mid=12, n_blocks=2, esa=8, expansion=1.0),
        teacher=TeacherConfig(kind="train", feat=16, mid=16, n_blocks=4, esa=8, steps=6, lr_patch=16, batch=4,
                              lr=2e-3),
        distill=DistillConfig(alpha=1.0, beta=0.5, stages=[ProgressiveStage(16, 4, 4), ProgressiveStage(20, 4, 2)],
                              lr=2e-3, ema_decay=0.9),
        prune=PruneConfig(ratio=0.3125, rounds=1, round_multiple=2, finetune_steps=3, finetune_lr_patch=16,
                          finetune_batch=2, lr=1e-3, latency_size=[24, 24], latency_repeats=1),
        finetune=FinetuneConfig(steps=2, lr_patch=16, batch=2, lr=5e-4),
        export=ExportConfig(name="tiny-test", onnx=True),
        compare=CompareConfig(benchmark_dir=""),  # the validation images only: tests stay fast
    )


def _quick_cpu() -> TrainConfig:
    """A few minutes on 2 CPU cores: shows every stage working, not a useful model."""
    return TrainConfig(
        preset="quick-cpu",
        run=RunConfig(seed=0, device="auto", amp=True, threads=0, out_dir="runs/quick-cpu",
                      log_every=10, val_every=100, ckpt_every=50),
        data=DataConfig(val_fraction=0.05, val_max_images=4, val_crop=192, cache=True),
        student=StudentConfig(feat=32, mid=32, n_blocks=4, esa=16, expansion=2.0),
        teacher=TeacherConfig(kind="train", feat=48, mid=48, n_blocks=8, esa=16, steps=150, lr_patch=32, batch=8,
                              lr=1e-3),
        distill=DistillConfig(alpha=1.0, beta=0.1,
                              stages=[ProgressiveStage(32, 120, 8), ProgressiveStage(48, 80, 6),
                                      ProgressiveStage(64, 50, 4)],
                              lr=1e-3, ema_decay=0.99),
        prune=PruneConfig(ratio=0.3125, rounds=1, round_multiple=2, finetune_steps=60, finetune_lr_patch=32,
                          finetune_batch=8, lr=5e-4, latency_size=[128, 128], latency_repeats=5),
        finetune=FinetuneConfig(steps=40, lr_patch=48, batch=6, lr=2e-4),
        export=ExportConfig(name="dipnet-quick-cpu", onnx=True),
    )


def _paper() -> TrainConfig:
    """The full DIPNet recipe for a GPU (HR patches 64->128->256->384, i.e. LR 16->32->64->96).

    Starts from a 64/64 student and prunes in rounds of 31.25 % down to the
    released 44/38 widths, fine-tuning after every round.
    """
    return TrainConfig(
        preset="paper",
        run=RunConfig(seed=0, device="auto", amp=True, threads=0, out_dir="runs/paper",
                      log_every=100, val_every=5000, ckpt_every=2000),
        data=DataConfig(val_fraction=0.01, val_max_images=10, val_crop=0, num_workers=8, cache=True),
        student=StudentConfig(feat=64, mid=64, n_blocks=4, esa=16, expansion=2.0),
        teacher=TeacherConfig(kind="train", feat=64, mid=64, n_blocks=8, esa=32, steps=500_000, lr_patch=64,
                              batch=64, lr=5e-4),
        distill=DistillConfig(alpha=1.0, beta=0.1,
                              stages=[ProgressiveStage(16, 200_000, 64), ProgressiveStage(32, 200_000, 64),
                                      ProgressiveStage(64, 150_000, 32), ProgressiveStage(96, 100_000, 16, 2e-4)],
                              lr=5e-4, min_lr_ratio=0.01, warmup_steps=2000, ema_decay=0.999),
        prune=PruneConfig(ratio=0.3125, rounds=0, target_feat=44, target_mid=38, round_multiple=2,
                          finetune_steps=50_000, finetune_lr_patch=64, finetune_batch=32, lr=2e-4,
                          latency_size=[256, 256], latency_repeats=20),
        finetune=FinetuneConfig(steps=100_000, lr_patch=96, batch=16, lr=1e-4),
        export=ExportConfig(name="dipnet-paper", onnx=True),
    )


def _adapt() -> TrainConfig:
    """Minutes on a CPU: adapt the built-in model to the user's kind of images.

    About 8 minutes of training on a quiet 2-core Zen 4 (the default model's own logs:
    ~0.5 s per step of a larger student at 48 px LR patches), plus a minute or two for
    validation, export and the closing comparison.

    The student starts as the built-in model (re-expanded into training blocks, so
    it starts exactly as good as that model); the teacher is the built-in model's
    teacher. Full method: enhanced-HR target, multi-anchor distillation, two
    progressive phases; no pruning (the widths stay the built-in model's), and a
    low learning rate so the model keeps what it knew.
    """
    return TrainConfig(
        preset="adapt",
        run=RunConfig(seed=0, device="auto", amp=True, threads=0, out_dir="runs/adapt",
                      log_every=20, val_every=400, ckpt_every=100),
        data=DataConfig(val_fraction=0.1, val_max_images=8, val_crop=256, cache=True, texture_tries=4),
        student=StudentConfig(feat=48, mid=32, n_blocks=4, esa=16, expansion=2.0, from_model=BUILTIN),
        teacher=TeacherConfig(kind="file", path=BUILTIN),
        distill=DistillConfig(alpha=1.0, beta=0.1,
                              stages=[ProgressiveStage(32, 1000, 8), ProgressiveStage(48, 600, 8)],
                              lr=1e-4, min_lr_ratio=0.05, warmup_steps=50, phase_warmup_steps=50,
                              ema_decay=0.995),
        prune=PruneConfig(enabled=False),
        finetune=FinetuneConfig(steps=0),
        export=ExportConfig(name="dipnet-adapted", onnx=True),
    )


PRESETS: dict[str, typing.Callable[[], TrainConfig]] = {
    "adapt": _adapt,
    "tiny-test": _tiny_test,
    "quick-cpu": _quick_cpu,
    "paper": _paper,
}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset(name: str) -> TrainConfig:
    """A fresh copy of a named preset (mutating it does not affect later calls)."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
    return copy.deepcopy(factory())
