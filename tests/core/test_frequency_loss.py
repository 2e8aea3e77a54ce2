"""Options of the distillation loss: the frequency-domain term (distill.freq_weight) and the pixel loss (distill.pixel_loss)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dipnet_core.train.config import ConfigError, load_config, preset
from dipnet_core.train.losses import DistillLoss, FrequencyL1Loss


def test_zero_for_equal_images_and_positive_with_gradient_otherwise() -> None:
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 16, 16)
    loss = FrequencyL1Loss()
    assert float(loss(hr.clone(), hr)) == 0.0
    sr = (hr + 0.05 * torch.randn_like(hr)).requires_grad_(True)
    value = loss(sr, hr)
    assert float(value.detach()) > 0
    value.backward()
    assert sr.grad is not None and float(sr.grad.abs().sum()) > 0


def test_its_size_does_not_depend_on_the_patch_size() -> None:
    # Orthonormal FFT: white noise of one sigma gives the same mean coefficient size at any patch size,
    # so one weight serves every progressive stage.
    torch.manual_seed(1)
    small = FrequencyL1Loss()(0.1 * torch.randn(8, 3, 32, 32), torch.zeros(8, 3, 32, 32))
    large = FrequencyL1Loss()(0.1 * torch.randn(8, 3, 128, 128), torch.zeros(8, 3, 128, 128))
    assert float(small) == pytest.approx(float(large), rel=0.1)


def test_it_weighs_a_fine_error_more_than_pixel_l1_does() -> None:
    # Two errors of the same pixel L1: a smooth ramp and a one-pixel checkerboard. The FFT term
    # concentrates the checkerboard in one coefficient and the ramp in a few low ones; it tells them
    # apart, where pixel L1 cannot.
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    checker = 0.02 * (((yy + xx) % 2) * 2 - 1)
    ramp = 0.02 * torch.sign(xx - 15.5)
    hr = torch.zeros(1, 1, 32, 32)
    l1 = torch.nn.functional.l1_loss
    assert float(l1(checker[None, None], hr)) == pytest.approx(float(l1(ramp[None, None], hr)))
    f = FrequencyL1Loss()
    assert float(f(checker[None, None], hr)) != pytest.approx(float(f(ramp[None, None], hr)), rel=0.05)


def test_distill_loss_adds_the_term_with_its_weight() -> None:
    torch.manual_seed(2)
    sr, hr = torch.rand(1, 3, 12, 12), torch.rand(1, 3, 12, 12)
    off_total, off_parts = DistillLoss(1.0)(sr, hr)
    assert "fft_hr" not in off_parts
    total, parts = DistillLoss(1.0, freq_weight=0.5)(sr, hr)
    assert float(total) == pytest.approx(float(parts["l1_hr"] + 0.5 * parts["fft_hr"]))
    assert float(total) > float(off_total)


def test_config_option_round_trips(tmp_path: Path) -> None:
    assert preset("quick-cpu").distill.freq_weight == 0.0  # off unless asked for
    p = tmp_path / "c.toml"
    p.write_text('preset = "quick-cpu"\n[distill]\nfreq_weight = 0.05\n')
    assert load_config(p).distill.freq_weight == 0.05


def test_mse_pixel_loss_squares_both_pixel_terms_and_is_refused_unknown(tmp_path: Path) -> None:
    torch.manual_seed(3)
    sr, hr, t_sr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    total, parts = DistillLoss(1.0, alpha=0.5, pixel="mse")(sr, hr, t_sr)
    assert set(parts) == {"mse_hr", "mse_teacher", "total"}
    assert float(parts["mse_hr"]) == pytest.approx(float(((sr - hr) ** 2).mean()))
    assert float(total) == pytest.approx(float(((sr - hr) ** 2).mean() + 0.5 * ((sr - t_sr) ** 2).mean()))
    with pytest.raises(ValueError, match="pixel loss"):
        DistillLoss(1.0, pixel="l2")
    p = tmp_path / "c.toml"
    p.write_text('preset = "quick-cpu"\n[distill]\npixel_loss = "mse"\n')
    assert load_config(p).distill.pixel_loss == "mse"
    p.write_text('preset = "quick-cpu"\n[distill]\npixel_loss = "huber"\n')
    with pytest.raises(ConfigError, match="pixel_loss"):
        load_config(p)
