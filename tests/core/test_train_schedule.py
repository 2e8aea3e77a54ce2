"""The training loop's EMA of the weights and its learning-rate schedule, against hand-computed values.

EMA: decay ramps as min(decay, (1 + n) / (10 + n)) for the n-th update, so the
first updates mostly copy the live weights. LR: linear warm-up to the base rate,
then cosine down to ``base * min_ratio`` at the last step.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dipnet_core.train.loop import EMA, lr_at


def _single_weight(value: float) -> nn.Module:
    m = nn.Sequential(nn.Linear(1, 1, bias=False), nn.BatchNorm1d(1))
    with torch.no_grad():
        m[0].weight.fill_(value)
    return m


def test_ema_follows_the_ramped_decay() -> None:
    model = _single_weight(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    ema.update(model)  # n=1: d = 2/11, shadow = 0 * 2/11 + 1 * 9/11
    assert ema.shadow["0.weight"].item() == pytest.approx(9 / 11)
    ema.update(model)  # n=2: d = 3/12 = 0.25
    assert ema.shadow["0.weight"].item() == pytest.approx(0.25 * 9 / 11 + 0.75)
    for _ in range(200):
        ema.update(model)
    assert ema.shadow["0.weight"].item() == pytest.approx(1.0, abs=1e-6)

    # Once n >= 81 the ramp exceeds 0.9, so the configured decay applies: one step moves 10% of the way.
    with torch.no_grad():
        model[0].weight.fill_(3.0)
    ema.update(model)
    assert ema.shadow["0.weight"].item() == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)


def test_ema_copies_integer_buffers_and_round_trips() -> None:
    model = _single_weight(2.0)
    ema = EMA(model, decay=0.999)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    assert ema.shadow["1.num_batches_tracked"].item() == 7  # counters are copied, not averaged

    averaged = ema.model_copy(model)
    assert averaged is not model and model[0].weight.item() == 2.0
    restored = EMA(_single_weight(-5.0), decay=0.5)
    restored.load_state_dict(ema.state_dict())
    assert (restored.decay, restored.updates) == (0.999, 1)
    assert torch.equal(restored.shadow["0.weight"], ema.shadow["0.weight"])


def test_lr_warmup_then_cosine_to_the_minimum_ratio() -> None:
    base, total, warmup, ratio = 1e-3, 110, 10, 0.01
    # Warm-up: step k gives base * (k + 1) / warmup.
    assert lr_at(0, total, base, warmup, ratio) == pytest.approx(1e-4)
    assert lr_at(4, total, base, warmup, ratio) == pytest.approx(5e-4)
    assert lr_at(9, total, base, warmup, ratio) == pytest.approx(1e-3)
    # Cosine over the remaining 100 steps: full rate, half way, the floor at the end and after.
    assert lr_at(10, total, base, warmup, ratio) == pytest.approx(base)
    assert lr_at(60, total, base, warmup, ratio) == pytest.approx(base * (ratio + (1 - ratio) / 2))
    assert lr_at(35, total, base, warmup, ratio) == pytest.approx(
        base * (ratio + (1 - ratio) * (1 + math.cos(math.pi / 4)) / 2))
    assert lr_at(110, total, base, warmup, ratio) == pytest.approx(base * ratio)
    assert lr_at(500, total, base, warmup, ratio) == pytest.approx(base * ratio)
    rates = [lr_at(s, total, base, warmup, ratio) for s in range(warmup, total + 1)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_lr_without_warmup_starts_at_the_base_rate() -> None:
    assert lr_at(0, 100, 2e-4, 0, 0.1) == pytest.approx(2e-4)
    assert lr_at(100, 100, 2e-4, 0, 0.1) == pytest.approx(2e-5)
