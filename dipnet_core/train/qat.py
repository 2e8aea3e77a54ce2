"""Quantization-aware fine-tuning (QAT): fp32 weights whose int8 twin stays close to fp32.

Post-training int8 (:mod:`dipnet_core.export.int8`) costs the authors' DIPNet weights
0.2-0.4 dB: every conv input and output is rounded to 256 levels and the errors add up
through four blocks. Here the network is fine-tuned for a few hundred steps *while*
its forward pass rounds exactly where onnxruntime's QDQ twin will round, so the
weights move to values that survive the rounding. Read top to bottom:

1. :func:`build_qat_net` exports the model's grid-aware fp32 graph (the graph the twin
   is made from), asks the int8 recipe which convs stay float (the same rule as
   :func:`~dipnet_core.export.int8.quantize_int8`), and traces the same network
   (:class:`~dipnet_core.engine.gridnet.GridDIPNet`) with ``torch.fx``. Like
   onnxruntime's QDQ quantizer, it quantizes a *tensor* when it is the input or the
   output of a quantized conv, and every consumer of that tensor (residual adds, ESA's
   multiply) then sees the rounded value. Quantized convs round their weights
   per output channel, symmetric int8 (:class:`FakeQuantConv`).
2. :func:`calibrate` sets each activation's range from the fp32 model on calibration
   crops, the way the recipe calibrates (percentile of ``|x|`` or min-max).
3. :func:`qat_finetune` trains with a straight-through estimator: the loss is L1 to the
   fp32 model's own output (self-distillation: the int8 model should compute what the
   fp32 model computes) plus optional L1 to the HR crop. Cosine learning rate,
   checkpoint/resume, cancellation and progress events as in the other stages.
4. :func:`export_qat_int8` exports the fine-tuned fp32 weights through the existing int8
   path, handing over the trained ranges (``tensor_ranges``), and measures the twin
   against the *original* fp32 model; the loss is stored in the twin as before.

Activation ranges are learned, not frozen (``QATConfig.range_lr``): they start at the
calibrated percentile range and then move with the loss (LSQ-style gradients through
the scale). A frozen percentile range fixes the trade between clipping the rare large
values and the rounding step of all the others before the weights have adapted; a
learned one lets the fine-tune settle that trade per tensor for the new weights. The
ranges are exported as they were trained, so nothing is recalibrated afterwards and
the twin rounds as the fine-tune did. ``range_lr = 0`` freezes them.

Not simulated (small, and not in the loss's way): int32 bias rounding (its step,
``input scale x weight scale``, is far below the output's rounding step) and the
u8 x s8 pair saturation of non-VNNI x86 kernels (``reduce_range`` in the recipe avoids
it; the benchmark measures the real twin, not the simulation).
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from ..cancel import Cancelled, CancelToken
from ..errors import InputError
from ..export.int8 import DEFAULT_RECIPE, Int8Recipe, calibration_crops, conv_nodes, float_conv_names
from ..models.dipnet import DIPNet
from . import events as ev
from .checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from .data import ImageSet, SRCropDataset, make_loader, scan_images
from .loop import lr_at

__all__ = [
    "ActQuant",
    "FakeQuantConv",
    "QATConfig",
    "QATNet",
    "QATResult",
    "build_qat_net",
    "calibrate",
    "export_qat_int8",
    "qat_finetune",
]

STAGE = "qat"
STREAM_QAT = 400  # data stream id (see train.data.sample_generator): QAT crops differ from other stages'


@dataclass
class QATConfig:
    """Quantization-aware fine-tuning; patch sizes in LR pixels."""

    steps: int = 1000
    lr_patch: int = 48
    batch: int = 8
    lr: float = 3e-5  # conv weights and biases: a small nudge, the fp32 model is already good
    min_lr_ratio: float = 0.1
    # Activation ranges' learning rate (Adam, so roughly the step in activation units); 0 = frozen.
    range_lr: float = 5e-4
    # L1 to the HR crop, added to the L1 to the fp32 model's output (0 = pure self-distillation).
    hr_weight: float = 0.0
    train_dirs: list[str] = field(default_factory=list)
    calibration_crops: int = 24
    calibration_size: int = 96
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 20
    threads: int = 0  # torch CPU threads; 0 = leave torch's default


# ------------------------------------------------------------------------------------ fake quantization


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class ActQuant(nn.Module):
    """Per-tensor affine fake quantization of an activation, as onnxruntime's QuantizeLinear/DequantizeLinear.

    onnxruntime (``compute_scale_zp``): the range is widened to include 0, ``scale =
    (rmax - rmin) / (qmax - qmin)``, ``zero_point = round(qmin - rmin / scale)``;
    symmetric (int8 activations): ``rmin = -rmax = -max|r|``, zero point 0, levels -127..127.
    ``observe`` mode passes values through and records what :func:`calibrate` needs.
    """

    def __init__(self, tensor: str, symmetric: bool = False) -> None:
        super().__init__()
        self.tensor = tensor  # the ONNX graph's tensor name: the key of the exported range
        self.symmetric = symmetric
        self.qmin, self.qmax = (-127, 127) if symmetric else (0, 255)
        self.lo = nn.Parameter(torch.tensor(-1.0))
        self.hi = nn.Parameter(torch.tensor(1.0))
        self.observe = False
        self.enabled = True
        self.stats: dict[str, Any] = {}

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = self.lo.clamp(max=0.0), self.hi.clamp(min=0.0)
        if self.symmetric:
            a = torch.maximum(-lo, hi)
            return -a, a
        return lo, hi

    def range(self) -> tuple[float, float]:
        lo, hi = self.bounds()
        return float(lo.detach()), float(hi.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observe:
            self._record(x.detach())
            return x
        if not self.enabled:
            return x
        lo, hi = self.bounds()
        scale = ((hi - lo) / (self.qmax - self.qmin)).clamp(min=1e-8)
        zp = 0.0 if self.symmetric else torch.clamp(_round_ste(self.qmin - lo / scale), self.qmin, self.qmax)
        q = torch.clamp(_round_ste(x / scale) + zp, self.qmin, self.qmax)
        return (q - zp) * scale

    def _record(self, x: torch.Tensor) -> None:
        # Exact min/max, and the largest |x| per batch: enough for any percentile above 99.9 % of
        # the pooled values without keeping them (see calibrate()).
        s = self.stats
        flat = x.abs().flatten()
        k = min(flat.numel(), max(1, math.ceil(flat.numel() * s.get("tail", 1e-5))) + 1)
        s["min"] = min(s.get("min", math.inf), float(x.min()))
        s["max"] = max(s.get("max", -math.inf), float(x.max()))
        s["count"] = s.get("count", 0) + flat.numel()
        s.setdefault("top", []).append(torch.topk(flat, k).values.numpy())


class FakeQuantConv(nn.Module):
    """A conv whose weights are rounded as onnxruntime rounds them: symmetric int8, per output channel.

    Levels -127..127 (``reduce_range``: -64..64, onnxruntime's 7-bit weights), scale
    ``max|w| / qmax`` per channel (or per tensor). The scale follows the weights but
    gets no gradient; the weights get the straight-through gradient. Wraps the original
    conv, so training it trains the model the QAT net was built from.
    """

    def __init__(self, conv: nn.Conv2d, per_channel: bool = True, reduce_range: bool = False) -> None:
        super().__init__()
        self.conv = conv
        self.per_channel = per_channel
        self.qmax = 64 if reduce_range else 127
        self.enabled = True

    def quantized_weight(self) -> torch.Tensor:
        w = self.conv.weight
        absmax = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) if self.per_channel else w.detach().abs().max()
        scale = (absmax / self.qmax).clamp(min=1e-12)
        return torch.clamp(_round_ste(w / scale), -self.qmax, self.qmax) * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        w = self.quantized_weight() if self.enabled else c.weight
        return F.conv2d(x, w, c.bias, c.stride, c.padding, c.dilation, c.groups)


# ---------------------------------------------------------------------------------------- the QAT network


class QATNet(nn.Module):
    """The traced grid network with fake quantization where the int8 twin rounds.

    ``forward(x, ry, rx_t)`` as :class:`~dipnet_core.engine.gridnet.GridDIPNet`;
    ``model`` is the :class:`DIPNet` whose parameters it trains.
    """

    def __init__(self, model: DIPNet, graph_module: fx.GraphModule, acts: dict[str, ActQuant],
                 convs: dict[str, FakeQuantConv], recipe: Int8Recipe) -> None:
        super().__init__()
        self.model = model
        self.net = graph_module
        self.acts = acts  # by ONNX tensor name (the modules live inside net)
        self.convs = convs  # by conv module path
        self.recipe = recipe

    def forward(self, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        return self.net(x, ry, rx_t)

    def set_quantize(self, on: bool) -> None:
        """Fake quantization on (the int8 simulation) or off (the plain fp32 network)."""
        for m in (*self.acts.values(), *self.convs.values()):
            m.enabled = on

    def ranges(self) -> dict[str, tuple[float, float]]:
        """``{ONNX tensor name: (rmin, rmax)}``: the ``tensor_ranges`` of the int8 export."""
        return {name: q.range() for name, q in self.acts.items()}

    def range_parameters(self) -> list[nn.Parameter]:
        return [p for q in self.acts.values() for p in (q.lo, q.hi)]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())


def _module_name(weight: str) -> str:
    if not weight.endswith(".weight"):
        raise ValueError(f"conv weight '{weight}' is not a module's '.weight' (was the graph constant-folded?)")
    return weight[: -len(".weight")]


def build_qat_net(model: DIPNet, recipe: Int8Recipe = DEFAULT_RECIPE, fp32_onnx: bytes | None = None) -> QATNet:
    """A fake-quantized copy of ``model`` that rounds where ``recipe``'s int8 twin rounds.

    ``fp32_onnx``: the grid-aware graph of ``model`` when the caller already has it.
    The returned net trains a *copy* of ``model`` (``QATNet.model``).
    """
    import onnx

    from ..engine.gridnet import GridDIPNet
    from ..export.onnx_export import onnx_to_bytes

    if tuple(recipe.op_types) != ("Conv",):
        raise ValueError(f"QAT simulates conv-only recipes (op_types = ('Conv',)), not {recipe.op_types}")
    model = copy.deepcopy(model).float().cpu().eval()
    proto = onnx.load_from_string(fp32_onnx or onnx_to_bytes(model, grid_aware=True))
    floats = set(float_conv_names(proto, recipe))
    quantized = {_module_name(c.weight): c for c in conv_nodes(proto) if c.name not in floats}

    graph_module = fx.symbolic_trace(GridDIPNet(model))
    graph = graph_module.graph
    # In-place activations would overwrite a tensor the fake-quant backward still needs.
    for node in graph.nodes:
        if node.op == "call_function" and node.kwargs.get("inplace"):
            node.kwargs = {**node.kwargs, "inplace": False}

    # The quantized tensors: each quantized conv's input and output (onnxruntime's QDQ rule).
    points: dict[fx.Node, str] = {}
    seen: set[str] = set()
    for node in list(graph.nodes):
        if node.op != "call_module" or node.target not in quantized:
            continue
        conv = quantized[node.target]
        seen.add(str(node.target))
        for fx_node, tensor in ((node.args[0], conv.input), (node, conv.output)):
            if points.setdefault(fx_node, tensor) != tensor:
                raise ValueError(f"traced network and ONNX graph disagree at {fx_node} ({points[fx_node]} vs {tensor})")
    missing = sorted(set(quantized) - seen)
    if missing:
        raise ValueError(f"convs of the ONNX graph not found in the traced network: {', '.join(missing)}")

    symmetric = recipe.activations == "qint8"
    acts: dict[str, ActQuant] = {}
    for k, (fx_node, tensor) in enumerate(points.items()):
        q = ActQuant(tensor, symmetric)
        name = f"act_quant_{k}"
        graph_module.add_submodule(name, q)
        with graph.inserting_after(fx_node):
            q_node = graph.call_module(name, (fx_node,))
        fx_node.replace_all_uses_with(q_node, delete_user_cb=lambda user, q_node=q_node: user is not q_node)
        acts[tensor] = q
    convs: dict[str, FakeQuantConv] = {}
    for path in quantized:
        parent_path, _, attr = path.rpartition(".")
        parent = graph_module.get_submodule(parent_path) if parent_path else graph_module
        wrapped = FakeQuantConv(getattr(parent, attr), recipe.per_channel, recipe.reduce_range)
        setattr(parent, attr, wrapped)
        convs[path] = wrapped
    graph.lint()
    graph_module.recompile()
    return QATNet(model, graph_module, acts, convs, recipe)


def _grid_inputs(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    from ..engine.grid import TileGrid, grid_matrices

    ry, rx_t = grid_matrices(TileGrid(0, 0, h, w), h, w)
    return torch.from_numpy(ry), torch.from_numpy(rx_t)


def _percentile_threshold(tops: list[np.ndarray], count: int, percentile: float) -> float:
    """The ``percentile`` of all |x| from the per-batch largest values (the tail above it is in them)."""
    merged = np.sort(np.concatenate(tops))[::-1]
    above = int(count * (1.0 - percentile / 100.0))
    return float(merged[min(above, len(merged) - 1)])


@torch.no_grad()
def calibrate(qnet: QATNet, crops: Sequence[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Set every activation range from the fp32 network on ``crops`` (HWC float32 in [0, 1]).

    As the recipe calibrates: ``percentile`` keeps ``(max(-t, min), min(t, max))`` with
    ``t`` that percentile of ``|x|`` (onnxruntime's percentile calibrator, without its
    histogram binning); ``minmax`` (and ``entropy``, not simulated) the plain min/max.
    """
    if not crops:
        raise ValueError("QAT calibration needs at least one crop")
    recipe = qnet.recipe
    tail = (100.0 - recipe.percentile) / 100.0 if recipe.method == "percentile" else 0.0
    for q in qnet.acts.values():
        q.stats = {"tail": tail}
        q.observe = True
    try:
        for crop in crops:
            x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))[None].float()
            qnet(x, *_grid_inputs(*x.shape[2:]))
    finally:
        for q in qnet.acts.values():
            q.observe = False
    for q in qnet.acts.values():
        s = q.stats
        lo, hi = s["min"], s["max"]
        if recipe.method == "percentile":
            t = _percentile_threshold(s["top"], s["count"], recipe.percentile)
            lo, hi = max(-t, lo), min(t, hi)
        q.lo.data.fill_(min(lo, 0.0))
        q.hi.data.fill_(max(hi, 0.0))
        q.stats = {}
    return qnet.ranges()


# -------------------------------------------------------------------------------------------- fine-tuning


@dataclass
class QATResult:
    model: DIPNet  # the fine-tuned fp32 weights (export these, with `ranges`)
    ranges: dict[str, tuple[float, float]]
    metrics: dict[str, Any]
    status: str = "done"


def _fingerprint(model: DIPNet, recipe: Int8Recipe, cfg: QATConfig) -> str:
    """What a checkpoint must match to be resumed: the starting weights, the recipe and the schedule."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    key = {k: v for k, v in asdict(cfg).items() if k not in ("ckpt_every", "log_every", "threads")}
    h.update(repr((asdict(recipe), sorted(key.items()))).encode())
    return h.hexdigest()[:16]


def _probe_error(qnet: QATNet, teacher: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
                 grid: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean |int8 simulation - fp32| on a fixed batch, in 255ths (a noise-free before/after number)."""
    with torch.no_grad():
        return float((qnet(batch[0], *grid) - teacher(batch[0], *grid)).abs().mean()) * 255.0


def qat_finetune(model: DIPNet, cfg: QATConfig, recipe: Int8Recipe = DEFAULT_RECIPE,
                 calibration: Sequence[str | Path] = (), checkpoint: str | Path | None = None,
                 callback: ev.Callback | None = None, cancel_token: CancelToken | None = None,
                 fp32_onnx: bytes | None = None) -> QATResult:
    """Fine-tune a copy of ``model`` so that its ``recipe`` int8 twin matches the fp32 ``model``.

    ``cfg.train_dirs``: HR photos for the crops (bicubic LR made per crop, as in
    training); ``calibration``: photo folders for the starting ranges (default: the
    training folders). ``checkpoint``: a file to save to every ``cfg.ckpt_every``
    steps and on cancellation, and to resume from when it exists (it must come from
    the same model, recipe and schedule). Cancellation raises
    :class:`~dipnet_core.cancel.Cancelled` after saving. ``callback`` receives
    :mod:`~.events` (``StageStarted``, ``Step``, ``CheckpointSaved``, ``StageFinished``).
    """
    if cfg.steps < 0 or cfg.batch < 1:
        raise ValueError(f"bad QAT schedule: steps {cfg.steps}, batch {cfg.batch}")
    if not cfg.train_dirs:
        raise InputError("QAT needs training photos (QATConfig.train_dirs)")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    emit = callback or (lambda e: None)
    scale = model.config.scale
    teacher = _frozen_grid(model)
    qnet = build_qat_net(model, recipe, fp32_onnx)
    ckpt_path = Path(checkpoint) if checkpoint else None
    fingerprint = _fingerprint(model, recipe, cfg)

    paths, skipped = scan_images(cfg.train_dirs)
    if not paths:
        raise InputError(f"no training images in {', '.join(map(str, cfg.train_dirs))}"
                         + (f" ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    images = ImageSet(paths, scale)
    dataset = SRCropDataset(images, cfg.lr_patch, cfg.batch, cfg.seed, STREAM_QAT)
    probe_set = SRCropDataset(images, cfg.lr_patch, cfg.batch, cfg.seed, STREAM_QAT + 10_000, augment=False)
    probe = tuple(torch.stack(t) for t in zip(*(probe_set[i] for i in range(cfg.batch)), strict=True))
    grid = _grid_inputs(cfg.lr_patch, cfg.lr_patch)

    groups = [{"params": qnet.weight_parameters(), "lr": cfg.lr, "base": cfg.lr}]
    if cfg.range_lr > 0:
        groups.append({"params": qnet.range_parameters(), "lr": cfg.range_lr, "base": cfg.range_lr})
    else:
        for p in qnet.range_parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.Adam(groups, betas=(0.9, 0.99))

    start, metrics = 0, {}
    if ckpt_path is not None and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("stage") != STAGE or ckpt.get("fingerprint") != fingerprint:
            raise InputError(f"'{ckpt_path}' is not a QAT checkpoint of this model, recipe and schedule; "
                             "delete it to start over")
        qnet.load_state_dict(ckpt["qnet"])
        optimizer.load_state_dict(ckpt["optimizer"])
        restore_rng(ckpt["rng"])
        start, metrics = int(ckpt["step"]), dict(ckpt.get("metrics", {}))
    else:
        crops = calibration_crops(list(calibration) or cfg.train_dirs, count=cfg.calibration_crops,
                                  size=cfg.calibration_size, seed=cfg.seed)
        calibrate(qnet, crops)
        metrics = {"probe_error_start": _probe_error(qnet, teacher, probe, grid),
                   "ranges_calibrated": qnet.ranges()}

    def save(step: int) -> None:
        if ckpt_path is None:
            return
        save_checkpoint(ckpt_path, {
            "stage": STAGE, "step": step, "fingerprint": fingerprint,
            "qnet": {k: v.detach().cpu() for k, v in qnet.state_dict().items()},
            "optimizer": optimizer.state_dict(), "rng": capture_rng(), "metrics": metrics,
        })
        emit(ev.CheckpointSaved(str(ckpt_path), STAGE, step))

    emit(ev.StageStarted(STAGE, cfg.steps, start))
    loader = make_loader(dataset, start, cfg.steps)
    qnet.train()
    t0, window, n_window = time.monotonic(), {"total": 0.0, "fp32": 0.0, "hr": 0.0}, 0
    for step, (lr_img, hr_img) in zip(range(start, cfg.steps), loader, strict=False):
        if cancel_token is not None and cancel_token.cancelled:
            save(step)
            raise Cancelled(f"cancelled in {STAGE} at step {step}")
        for g in optimizer.param_groups:
            g["lr"] = lr_at(step, cfg.steps, g["base"], 0, cfg.min_lr_ratio)
        with torch.no_grad():
            target = teacher(lr_img, *grid)
        sr = qnet(lr_img, *grid)
        loss_fp32 = F.l1_loss(sr, target)
        loss_hr = F.l1_loss(sr, hr_img) if cfg.hr_weight > 0 else sr.new_zeros(())
        loss = loss_fp32 + cfg.hr_weight * loss_hr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        window["total"] += float(loss.detach())
        window["fp32"] += float(loss_fp32.detach())
        window["hr"] += float(loss_hr.detach())
        n_window += 1
        if not math.isfinite(float(loss.detach())):
            raise FloatingPointError(f"{STAGE}: loss became {float(loss)} at step {done}; lower the learning rate")
        if done % max(1, cfg.log_every) == 0 or done == cfg.steps:
            means = {k: v / n_window for k, v in window.items()}
            window, n_window = dict.fromkeys(window, 0.0), 0
            eta = (time.monotonic() - t0) / (done - start) * (cfg.steps - done)
            emit(ev.Step(STAGE, done, cfg.steps, means, optimizer.param_groups[0]["lr"], eta))
        if cfg.ckpt_every > 0 and done % cfg.ckpt_every == 0 and done < cfg.steps:
            save(done)
    qnet.eval()
    metrics.update(steps=cfg.steps, probe_error_end=_probe_error(qnet, teacher, probe, grid),
                   train_seconds=round(time.monotonic() - t0, 1))
    if cfg.steps > start:
        save(cfg.steps)
    emit(ev.StageFinished(STAGE, {k: v for k, v in metrics.items() if not k.startswith("ranges")}))
    return QATResult(qnet.model.eval(), qnet.ranges(), metrics)


def _frozen_grid(model: DIPNet) -> nn.Module:
    from ..engine.gridnet import GridDIPNet

    teacher = GridDIPNet(copy.deepcopy(model).float().cpu().eval()).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


# ------------------------------------------------------------------------------------------------ export


def export_qat_int8(model: DIPNet, path: str | Path, cfg: QATConfig, calibration: Sequence[str | Path],
                    eval_sets: Sequence[str | Path] = (), recipe: Int8Recipe = DEFAULT_RECIPE,
                    descriptor: Any = None, checkpoint: str | Path | None = None,
                    callback: ev.Callback | None = None, cancel_token: CancelToken | None = None,
                    opset: int = 17) -> dict[str, Any]:
    """Fine-tune ``model`` with QAT, write its int8 twin to ``path``, return the twin's quality record.

    The twin is made by the ordinary int8 export (same format, read by the engine and
    :func:`~dipnet_core.export.int8.read_int8_quality`) from the fine-tuned weights with
    the trained activation ranges; its loss on ``eval_sets`` is measured against the
    original ``model`` in fp32.
    """
    from ..export.int8 import export_int8
    from ..export.onnx_export import onnx_to_bytes

    reference = onnx_to_bytes(model, grid_aware=True, opset=opset, descriptor=descriptor)
    result = qat_finetune(model, cfg, recipe, calibration, checkpoint, callback, cancel_token, fp32_onnx=reference)
    tuned = onnx_to_bytes(result.model, grid_aware=True, opset=opset, descriptor=descriptor)
    m = result.metrics
    note = {"recipe": f"QAT {cfg.steps} steps + {recipe.label()}",
            "qat": {"steps": cfg.steps, "lr": cfg.lr, "range_lr": cfg.range_lr, "lr_patch": cfg.lr_patch,
                    "batch": cfg.batch, "hr_weight": cfg.hr_weight,
                    "train_dirs": [Path(d).name for d in cfg.train_dirs],
                    "probe_error_start": round(m.get("probe_error_start", float("nan")), 4),
                    "probe_error_end": round(m.get("probe_error_end", float("nan")), 4)}}
    return export_int8(tuned, path, calibration, eval_sets, recipe, scale=model.config.scale,
                       reference_onnx=reference, tensor_ranges=result.ranges, extra_record=note)
