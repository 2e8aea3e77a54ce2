"""Structured pruning of deploy-form DIPNet: slicing correctness, schedules, latency."""

from __future__ import annotations

import math

import pytest
import torch

from dipnet_core.models.dipnet import BlockWidths, DIPNet, DIPNetConfig
from dipnet_core.models.loader import detect_dipnet_config
from dipnet_core.prune import (
    PruneSchedule,
    channel_groups,
    grow_dipnet,
    l1_importance,
    measure_latency,
    pad_dipnet,
    prune_dipnet,
    select_channels,
)

SMALL = DIPNetConfig.uniform(24, 20, n_blocks=4, esa=8)
TARGET = DIPNetConfig(
    feat=16,
    blocks=(BlockWidths(12, 15, 8), BlockWidths(20, 9, 8), BlockWidths(7, 18, 8), BlockWidths(14, 14, 8)),
    scale=4,
)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _silence(model: DIPNet, current: DIPNetConfig, target: DIPNetConfig) -> dict[str, list[int]]:
    """Zero every producing filter (and bias) of a spread of channels so they contribute nothing.

    Returns the dropped channels per group. Consumers are left random on purpose:
    slicing the wrong input columns would then change the output.
    """
    dropped: dict[str, list[int]] = {}
    for group in channel_groups(current):
        if group.name == "feat":
            n_drop = current.feat - target.feat
        else:
            block, which = group.name.split(".")
            i = int(block.removeprefix("block_")) - 1
            n_drop = getattr(current.blocks[i], which) - getattr(target.blocks[i], which)
        # Spread out, not a prefix/suffix, to catch off-by-one and ordering mistakes.
        idx = sorted({(3 * j + 1) % group.size for j in range(n_drop)})
        assert len(idx) == n_drop
        dropped[group.name] = idx
        with torch.no_grad():
            for name in group.producers:
                conv = model.get_submodule(name)
                conv.weight[idx] = 0
                if conv.bias is not None:
                    conv.bias[idx] = 0
    return dropped


@pytest.mark.parametrize("bias", [False, True])
def test_prune_removes_silent_channels_exactly(bias: bool) -> None:
    torch.manual_seed(0)
    current = DIPNetConfig(feat=SMALL.feat, blocks=SMALL.blocks, bias=bias)
    target = DIPNetConfig(feat=TARGET.feat, blocks=TARGET.blocks, bias=bias)
    model = DIPNet(current).eval()
    dropped = _silence(model, current, target)
    keep = select_channels(model, target)
    for name, idx in dropped.items():
        assert set(keep[name].tolist()).isdisjoint(idx), name

    pruned = prune_dipnet(model, target)
    assert pruned.config == target
    assert _shapes(pruned) == _shapes(DIPNet(target))
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        ref, ref_anchors = model.forward_features(x)
        out, anchors = pruned.forward_features(x)
    assert out.shape == ref.shape == (1, 3, 68, 92)
    assert (out - ref).abs().max().item() < 1e-5
    # Block outputs live in the feat group: compare on the kept channels.
    feat_keep = keep["feat"]
    for a, b in zip(ref_anchors, anchors, strict=True):
        assert (a[:, feat_keep] - b).abs().max().item() < 1e-5


def test_prune_does_not_modify_input_and_validates_target() -> None:
    torch.manual_seed(1)
    model = DIPNet(SMALL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_dipnet(model, TARGET)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="between 1 and"):
        prune_dipnet(model, DIPNetConfig.uniform(32, 20, n_blocks=4, esa=8))
    with pytest.raises(ValueError, match="between 1 and"):
        prune_dipnet(model, DIPNetConfig.uniform(24, 0, n_blocks=4, esa=8))
    with pytest.raises(ValueError, match="blocks"):
        prune_dipnet(model, DIPNetConfig.uniform(16, 16, n_blocks=3, esa=8))
    with pytest.raises(ValueError, match="scale"):
        prune_dipnet(model, DIPNetConfig.uniform(16, 16, n_blocks=4, esa=8, scale=2))
    with pytest.raises(ValueError, match="ESA"):
        prune_dipnet(model, DIPNetConfig.uniform(16, 16, n_blocks=4, esa=4))
    with pytest.raises(TypeError):
        prune_dipnet(torch.nn.Conv2d(3, 3, 3), TARGET)  # type: ignore[arg-type]


def test_importance_ranks_scaled_channel_highest() -> None:
    torch.manual_seed(2)
    model = DIPNet(SMALL)
    groups = {g.name: g for g in channel_groups(SMALL)}
    for name, ch in (("feat", 5), ("block_2.mid1", 11)):
        group = groups[name]
        with torch.no_grad():
            for producer in group.producers:
                model.get_submodule(producer).weight[ch] *= 10
        scores = l1_importance(model, group)
        assert scores.shape == (group.size,)
        assert int(scores.argmax()) == ch


def test_schedule_rounds_sequence() -> None:
    start = DIPNetConfig.uniform(64, 64)
    widths = [(c.feat, c.blocks[0].mid1) for c in PruneSchedule(start, n_rounds=3).rounds()]
    assert widths == [(44, 44), (30, 30), (21, 21)]
    # Floor: never below min_width, and it stops once nothing changes.
    floored = PruneSchedule(start, n_rounds=20, min_width=16).rounds()
    assert [c.feat for c in floored] == [44, 30, 21, 16]
    # Multiples of 16 for oneDNN.
    sixteen = PruneSchedule(start, n_rounds=5, round_multiple=16).rounds()
    assert [c.feat for c in sixteen] == [48, 32, 16]
    # Only mids; feat untouched.
    mids = PruneSchedule(start, n_rounds=1, prune_feat=False).rounds()
    assert mids[0].feat == 64 and mids[0].blocks[0] == BlockWidths(44, 44, 16)
    # A final target is hit exactly, with non-uniform per-block widths.
    final = DIPNetConfig(
        feat=48, blocks=(BlockWidths(32, 40, 16),) * 2 + (BlockWidths(20, 20, 16),) * 2, scale=4
    )
    to_final = PruneSchedule(start, final=final).rounds()
    assert to_final[-1] == final
    assert to_final[0].feat == 48 and to_final[0].blocks[0] == BlockWidths(44, 44, 16)
    # Latency target with an injected latency model (proportional to MACs).
    budget = DIPNetConfig.uniform(30, 30).macs_per_input_pixel() * 1e-9
    by_latency = PruneSchedule(
        start, latency_budget_s_per_mp=budget, latency_fn=lambda c: c.macs_per_input_pixel() * 1e-9
    ).rounds()
    assert by_latency[-1].feat == 30 and len(by_latency) == 2
    with pytest.raises(ValueError):
        PruneSchedule(start)


def test_prune_rounds_give_expected_shapes() -> None:
    torch.manual_seed(3)
    model = DIPNet(SMALL)
    configs = PruneSchedule(SMALL, n_rounds=3, min_width=4).rounds()
    assert len(configs) == 3
    x = torch.rand(1, 3, 16, 16)
    for cfg in configs:
        model = prune_dipnet(model, cfg)
        assert _shapes(model) == _shapes(DIPNet(cfg))
        with torch.no_grad():
            assert model(x).shape == (1, 3, 64, 64)


def test_measure_latency() -> None:
    tiny = DIPNetConfig.uniform(8, 8, n_blocks=1, esa=4)
    lat = measure_latency(tiny, size=(24, 24), threads=1, repeats=1, warmup=0)
    assert math.isfinite(lat) and lat > 0


def test_pruned_state_dict_is_detected() -> None:
    torch.manual_seed(4)
    pruned = prune_dipnet(DIPNet(SMALL), TARGET)
    assert detect_dipnet_config(pruned.state_dict()) == TARGET


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("multiple", [8, 16])
def test_padding_widths_keeps_the_function_exactly(bias: bool, multiple: int) -> None:
    torch.manual_seed(3)
    config = DIPNetConfig(feat=21, blocks=(BlockWidths(13, 9, 8), BlockWidths(16, 19, 8)), scale=4, bias=bias)
    model = DIPNet(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-zero biases too, so zero padding is really tested
    padded = pad_dipnet(model, multiple).eval()
    widths = [padded.config.feat] + [w for b in padded.config.blocks for w in (b.mid1, b.mid2)]
    assert all(w % multiple == 0 for w in widths)
    assert padded.config.feat == -(-21 // multiple) * multiple
    assert [b.esa for b in padded.config.blocks] == [8, 8]  # ESA's width is not a padded group
    x = torch.rand(1, 3, 27, 31)
    with torch.no_grad():
        torch.testing.assert_close(padded(x), model(x), rtol=0, atol=2e-6)
    # Already aligned: the same object back; a bad multiple is refused.
    assert pad_dipnet(padded, multiple) is padded
    with pytest.raises(ValueError, match="multiple"):
        pad_dipnet(model, 0)


def test_growing_widths_keeps_the_function_and_the_new_channels_learn() -> None:
    torch.manual_seed(5)
    config = DIPNetConfig(feat=12, blocks=(BlockWidths(10, 8, 4), BlockWidths(9, 11, 4)), scale=2, bias=True)
    model = DIPNet(config).eval()
    target = DIPNetConfig.uniform(16, 14, n_blocks=2, esa=4, scale=2)
    target = DIPNetConfig(feat=16, blocks=target.blocks, scale=2, bias=True)
    grown = grow_dipnet(model, target, init_std=0.05, generator=torch.Generator().manual_seed(0)).eval()
    assert grown.config == target
    x = torch.rand(1, 3, 19, 23)
    with torch.no_grad():
        torch.testing.assert_close(grown(x), model(x), rtol=0, atol=2e-6)
    # The added feature channels carry a signal (random producers), read by zero weights...
    up = grown.upsampler[0].weight
    assert torch.count_nonzero(up[:, 12:]) == 0 and torch.count_nonzero(grown.conv_1.weight[12:]) > 0
    # ...which get gradient, so training can use them (zero padding would leave them dead).
    grown.train()
    grown(x).square().mean().backward()
    assert float(up.grad[:, 12:].abs().sum()) > 0
    padded = grow_dipnet(model, target).train()
    padded(x).square().mean().backward()
    assert float(padded.upsampler[0].weight.grad[:, 12:].abs().sum()) == 0
    with pytest.raises(ValueError, match="narrow"):
        grow_dipnet(grown, config)
