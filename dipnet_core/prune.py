"""Structured channel pruning of deploy-form DIPNet models, plus width schedules and latency measurement.

We prune with our own code rather than a generic library such as torch-pruning:

* DIPNet's coupled channel groups are few and fixed (one feature group tied by
  the residual adds and the long skip, two mid groups per block), so they are
  listed explicitly below instead of being traced from a graph;
* a tracer has to be taught that ESA's ``x * sigmoid(conv4(...))`` couples
  ``conv4``'s outputs to the feature channels, and that PixelShuffle groups the
  upsampler's outputs by ``scale**2`` (we simply never prune them);
* it avoids a dependency for ~300 lines of slicing.

Pruning operates on the fused :class:`~dipnet_core.models.dipnet.DIPNet`: the
training pipeline reparameterizes first, then prunes and fine-tunes the plain
model. The multi-branch form is deliberately not pruned: its identity branch
ties a RepConv's input and output channels together, which the groups above
do not respect.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import torch
from torch import nn

from .models.dipnet import BlockWidths, DIPNet, DIPNetConfig

__all__ = [
    "ChannelGroup",
    "ImportanceCriterion",
    "PruneSchedule",
    "channel_groups",
    "grow_dipnet",
    "l1_importance",
    "measure_latency",
    "pad_dipnet",
    "padded_config",
    "prune_dipnet",
    "select_channels",
    "validate_target",
]


# ---------------------------------------------------------------------------
# Channel groups


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that must be kept or dropped together.

    ``producers`` are convs whose output channels (weight dim 0, and bias) are the
    group; ``consumers`` are convs whose input channels (weight dim 1) are.
    """

    name: str
    size: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]


FEAT_GROUP = "feat"


def channel_groups(config: DIPNetConfig) -> list[ChannelGroup]:
    """The coupled groups of a DIPNet with ``config``: ``feat`` then ``block_i.mid1/mid2``."""
    n = len(config.blocks)
    blocks = [f"block_{i}" for i in range(1, n + 1)]
    # Every layer that writes into the residual stream: the conv_1 -> blocks -> conv_2
    # chain is joined by `out + x` in each block, ESA's `x * m` and the long skip.
    feat_producers = (
        ("conv_1",)
        + tuple(f"{b}.{layer}" for b in blocks for layer in ("c3_r", "c5", "esa.conv4"))
        + ("conv_2",)
    )
    feat_consumers = (
        tuple(f"{b}.{layer}" for b in blocks for layer in ("c1_r", "c5", "esa.conv1"))
        + ("conv_2", "upsampler.0")
    )
    groups = [ChannelGroup(FEAT_GROUP, config.feat, feat_producers, feat_consumers)]
    for b, w in zip(blocks, config.blocks, strict=True):
        groups.append(ChannelGroup(f"{b}.mid1", w.mid1, (f"{b}.c1_r",), (f"{b}.c2_r",)))
        groups.append(ChannelGroup(f"{b}.mid2", w.mid2, (f"{b}.c2_r",), (f"{b}.c3_r",)))
    return groups


def _group_width(config: DIPNetConfig, group_name: str) -> int:
    if group_name == FEAT_GROUP:
        return config.feat
    block, which = group_name.split(".")
    widths = config.blocks[int(block.removeprefix("block_")) - 1]
    return int(getattr(widths, which))


# ---------------------------------------------------------------------------
# Importance criteria


class ImportanceCriterion(Protocol):
    """Scores each channel of ``group`` in ``model``; higher means more important."""

    def __call__(self, model: nn.Module, group: ChannelGroup) -> torch.Tensor: ...


def l1_importance(model: nn.Module, group: ChannelGroup) -> torch.Tensor:
    """Sum over producing layers of each filter's L1 norm, each layer normalised to mean 1."""
    score = torch.zeros(group.size, dtype=torch.float64)
    for name in group.producers:
        w = model.get_submodule(name).weight.detach()
        s = w.flatten(1).norm(p=1, dim=1).double().cpu()
        # Per-layer normalisation: without it the layer with the largest weights
        # (e.g. conv_1 on 3 input channels vs c5) would decide the whole feat group.
        score += s / s.mean().clamp_min(1e-12)
    return score


# ---------------------------------------------------------------------------
# Pruning


def validate_target(current: DIPNetConfig, target: DIPNetConfig) -> None:
    """Raise ``ValueError`` unless ``target`` is a narrowing of ``current`` that pruning can produce."""
    for attr in ("scale", "in_ch", "out_ch", "bias"):
        if getattr(current, attr) != getattr(target, attr):
            have, want = getattr(current, attr), getattr(target, attr)
            raise ValueError(f"target {attr}={want} differs from the model's {have}")
    if len(target.blocks) != len(current.blocks):
        raise ValueError(f"target has {len(target.blocks)} blocks, the model has {len(current.blocks)}")
    for group in channel_groups(current):
        want = _group_width(target, group.name)
        if not 1 <= want <= group.size:
            raise ValueError(f"target width {want} for '{group.name}' must be between 1 and {group.size}")
    for i, (c, t) in enumerate(zip(current.blocks, target.blocks, strict=True), start=1):
        if c.esa != t.esa:
            raise ValueError(f"block_{i}: ESA width is not pruned ({c.esa} -> {t.esa} requested)")


def select_channels(
    model: DIPNet, target: DIPNetConfig, criterion: ImportanceCriterion = l1_importance
) -> dict[str, torch.Tensor]:
    """Indices (ascending) of the channels each group keeps when pruning ``model`` to ``target``."""
    validate_target(model.config, target)
    keep: dict[str, torch.Tensor] = {}
    for group in channel_groups(model.config):
        k = _group_width(target, group.name)
        if k == group.size:
            keep[group.name] = torch.arange(group.size)
            continue
        scores = criterion(model, group)
        if scores.shape != (group.size,):
            raise ValueError(
                f"criterion returned shape {tuple(scores.shape)} for group '{group.name}' of {group.size}"
            )
        # Stable sort: ties keep the lower index, so pruning is deterministic.
        order = torch.argsort(scores.detach().cpu(), descending=True, stable=True)
        keep[group.name] = order[:k].sort().values
    return keep


def prune_dipnet(
    model: DIPNet, target: DIPNetConfig, criterion: ImportanceCriterion = l1_importance
) -> DIPNet:
    """A new DIPNet with exactly ``target``'s widths, keeping the top channels of each group.

    Kept channels stay in their original order, so the pruned model computes the
    original function restricted to them (exactly so when the dropped channels
    contribute nothing). ``model`` is not modified.
    """
    if not isinstance(model, DIPNet):
        raise TypeError(
            f"prune_dipnet needs a deploy-form DIPNet, got {type(model).__name__}; "
            "reparameterize a training model first"
        )
    keep = select_channels(model, target, criterion)
    slices: dict[str, list[tuple[int, str]]] = {}
    for group in channel_groups(model.config):
        for name in group.producers:
            slices.setdefault(f"{name}.weight", []).append((0, group.name))
            slices.setdefault(f"{name}.bias", []).append((0, group.name))
        for name in group.consumers:
            slices.setdefault(f"{name}.weight", []).append((1, group.name))

    old = model.state_dict()
    new_sd: dict[str, torch.Tensor] = {}
    for key, tensor in old.items():
        t = tensor
        for dim, group_name in slices.get(key, ()):
            t = t.index_select(dim, keep[group_name].to(t.device))
        new_sd[key] = t.clone()

    p = next(model.parameters())
    pruned = DIPNet(target).to(device=p.device, dtype=p.dtype)
    pruned.load_state_dict(new_sd, strict=True)
    return pruned.train(model.training)


def padded_config(config: DIPNetConfig, multiple: int) -> DIPNetConfig:
    """``config`` with the feature and mid widths rounded up to multiples of ``multiple``."""
    def up(n: int) -> int:
        return -(-n // multiple) * multiple

    blocks = tuple(replace(b, mid1=up(b.mid1), mid2=up(b.mid2)) for b in config.blocks)
    return replace(config, feat=up(config.feat), blocks=blocks)


def pad_dipnet(model: DIPNet, multiple: int) -> DIPNet:
    """The same function with the feature and mid widths zero-padded to multiples of ``multiple``.

    The inverse of pruning, for speed: oneDNN's blocked conv kernels work on 8
    (AVX2) or 16 (AVX-512) channels at a time, and a width like the official 44
    or 38 leaves a ragged block. Added channels are produced by zero filters (and
    zero biases) and read by zero weights, so they stay zero through the LeakyReLU,
    the residual adds and ESA's ``x * m``, and the output is unchanged.
    Returns ``model`` itself when its widths already fit.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    target = padded_config(model.config, multiple)
    return model if target == model.config else grow_dipnet(model, target)


def grow_dipnet(model: DIPNet, target: DIPNetConfig, init_std: float = 0.0,
                generator: torch.Generator | None = None) -> DIPNet:
    """``model`` widened to ``target``'s widths, computing the same function.

    Every added channel is read by zero weights, so whatever it holds never reaches
    the output. With ``init_std = 0`` it is also produced by zero filters and stays
    zero (exact padding, :func:`pad_dipnet`); with ``init_std > 0`` its filters start
    random (normal, that std), so it carries a signal and the zero weights reading it
    get gradient: the room a continued training run grows into (net2net-style
    widening, function-preserving at step 0). Biases of added channels are zero.
    """
    pads: dict[str, list[tuple[int, int]]] = {}
    for group in channel_groups(model.config):
        extra = _group_width(target, group.name) - group.size
        if extra < 0:
            raise ValueError(f"grow_dipnet cannot narrow group '{group.name}' ({group.size} -> {group.size + extra})")
        for name in group.producers:
            pads.setdefault(f"{name}.weight", []).append((0, extra))
            pads.setdefault(f"{name}.bias", []).append((0, extra))
        for name in group.consumers:
            pads.setdefault(f"{name}.weight", []).append((1, extra))
    new_sd: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        t = tensor
        # Output rows (dim 0) first: their new rows span the old input width only, and the
        # input padding after them is zero for every row, old and new alike.
        for dim, extra in sorted(pads.get(key, ()), key=lambda p: p[0]):
            if extra:
                shape = list(t.shape)
                shape[dim] = extra
                fill = t.new_zeros(shape)
                if dim == 0 and init_std > 0 and key.endswith(".weight"):
                    fill = torch.randn(shape, generator=generator, dtype=torch.float32).to(t) * init_std
                t = torch.cat([t, fill], dim=dim)
        new_sd[key] = t.clone()
    p = next(model.parameters())
    grown = DIPNet(target).to(device=p.device, dtype=p.dtype)
    grown.load_state_dict(new_sd, strict=True)
    return grown.train(model.training)


# ---------------------------------------------------------------------------
# Width schedules


def _round_to(x: float, multiple: int) -> int:
    return math.floor(x / multiple + 0.5) * multiple  # round half up (Python's round() goes to even)


@dataclass
class PruneSchedule:
    """Widths for iterative prune / fine-tune rounds.

    Each round removes ``ratio`` of every pruned width (64 -> 44 -> 30 with the
    default 0.3125), rounded to ``round_multiple`` and never below ``min_width``
    (nor below ``round_multiple``). Stop conditions, any combination, at least one:
    ``n_rounds`` (at most that many rounds), ``final`` (stop once every width has
    reached it; the last round lands exactly on it), ``latency_budget_s_per_mp``
    (stop at the first round whose ``latency_fn`` is within budget). A schedule
    also stops when a round would change nothing.
    """

    start: DIPNetConfig
    ratio: float = 0.3125
    n_rounds: int | None = None
    final: DIPNetConfig | None = None
    latency_budget_s_per_mp: float | None = None
    round_multiple: int = 1
    prune_feat: bool = True
    prune_mid: bool = True
    min_width: int = 8
    max_rounds: int = 32
    # Defaults to measure_latency(config); inject a partial (size/threads) or a model.
    latency_fn: Callable[[DIPNetConfig], float] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"ratio must be in (0, 1), got {self.ratio}")
        if self.round_multiple < 1 or self.min_width < 1:
            raise ValueError("round_multiple and min_width must be >= 1")
        if not (self.prune_feat or self.prune_mid):
            raise ValueError("nothing to prune: prune_feat and prune_mid are both False")
        if self.n_rounds is None and self.final is None and self.latency_budget_s_per_mp is None:
            raise ValueError("give n_rounds, final or latency_budget_s_per_mp")
        if self.n_rounds is not None and self.n_rounds < 0:
            raise ValueError("n_rounds must be >= 0")
        if self.final is not None:
            validate_target(self.start, self.final)
            if not self.prune_feat and self.final.feat != self.start.feat:
                raise ValueError("final changes feat but prune_feat is False")
            if not self.prune_mid and self.final.blocks != self.start.blocks:
                raise ValueError("final changes mid widths but prune_mid is False")

    @property
    def floor(self) -> int:
        return max(self.min_width, self.round_multiple)

    def _next(self, current: int, stop: int) -> int:
        if current <= stop:
            return current
        new = _round_to(current * (1.0 - self.ratio), self.round_multiple)
        if new >= current:  # a small ratio rounded back up: force progress by one step
            new = (current - 1) // self.round_multiple * self.round_multiple
        return max(new, stop)

    def _step(self, cfg: DIPNetConfig) -> DIPNetConfig:
        fin = self.final
        feat = cfg.feat
        if self.prune_feat:
            feat = self._next(cfg.feat, fin.feat if fin else min(self.floor, cfg.feat))
        blocks = cfg.blocks
        if self.prune_mid:
            new_blocks = []
            for i, b in enumerate(cfg.blocks):
                stop1 = fin.blocks[i].mid1 if fin else min(self.floor, b.mid1)
                stop2 = fin.blocks[i].mid2 if fin else min(self.floor, b.mid2)
                new_blocks.append(BlockWidths(self._next(b.mid1, stop1), self._next(b.mid2, stop2), b.esa))
            blocks = tuple(new_blocks)
        return replace(cfg, feat=feat, blocks=blocks)

    def rounds(self) -> list[DIPNetConfig]:
        """Target config of each round, in order; ``start`` itself is not included."""
        limit = self.max_rounds if self.n_rounds is None else min(self.n_rounds, self.max_rounds)
        latency_fn = self.latency_fn or measure_latency
        out: list[DIPNetConfig] = []
        cfg = self.start
        while len(out) < limit:
            nxt = self._step(cfg)
            if nxt == cfg:
                break
            out.append(nxt)
            cfg = nxt
            if self.final is not None and cfg == self.final:
                break
            if self.latency_budget_s_per_mp is not None and latency_fn(cfg) <= self.latency_budget_s_per_mp:
                break
        return out


# ---------------------------------------------------------------------------
# Latency


def measure_latency(
    config: DIPNetConfig,
    size: tuple[int, int] = (128, 128),
    threads: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    statistic: Literal["median", "min"] = "median",
) -> float:
    """Wall-clock seconds per input megapixel of a random-weight ``DIPNet(config)`` on CPU.

    Only widths matter for speed, so no trained weights are needed. ``threads``
    temporarily sets torch's intra-op thread count (restored afterwards); oneDNN
    is much faster when widths are multiples of 16, so measure instead of
    trusting MAC counts. ``statistic="min"`` is the better estimate on a machine
    shared with other jobs, whose interference only ever adds time.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be >= 1 and warmup >= 0")
    if statistic not in ("median", "min"):
        raise ValueError(f"statistic must be 'median' or 'min', got {statistic!r}")
    h, w = size
    model = DIPNet(config).eval()
    x = torch.rand(1, config.in_ch, h, w)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                t0 = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
    seconds = statistics.median(times) if statistic == "median" else min(times)
    return seconds / (h * w / 1e6)
