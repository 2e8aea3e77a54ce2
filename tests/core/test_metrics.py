"""PSNR/SSIM against values worked out by hand from their definitions (Wang et al. 2004; BT.601 luma).

SSIM with C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = 255 and an 11x11 Gaussian window
(sigma 1.5), the convention of the SR literature. The reference numbers below come
from the closed forms for constant images and for one window, computed in this file
without the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dipnet_core.metrics import psnr, rgb_to_y, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def test_ssim_of_constant_images_is_the_luminance_term() -> None:
    # Zero variance everywhere: SSIM = (2 p q + C1) / (p^2 + q^2 + C1), here 24006.5025 / 24406.5025.
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 120.0)
    assert ssim(a, b, y_channel=False) == pytest.approx(0.98361092, abs=1e-8)
    assert ssim(a, b, y_channel=False) == pytest.approx((2 * 100 * 120 + C1) / (100**2 + 120**2 + C1), rel=1e-12)
    assert ssim(a, a, y_channel=False) == 1.0


def test_ssim_of_one_window_matches_the_definition() -> None:
    """An 11x11 image is exactly one window: weighted means, variances, covariance by hand."""
    rng = np.random.default_rng(5)
    a = rng.integers(0, 256, (11, 11)).astype(np.float64)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).round()
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mu_a, mu_b = (w * a).sum(), (w * b).sum()
    var_a, var_b = (w * (a - mu_a) ** 2).sum(), (w * (b - mu_b) ** 2).sum()
    cov = (w * (a - mu_a) * (b - mu_b)).sum()
    expected = ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / ((mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2))
    assert 0.3 < expected < 0.99  # a real, not a degenerate, case
    assert ssim(a, b, y_channel=False) == pytest.approx(expected, rel=1e-10)


def test_ssim_of_inverted_contrast_is_negative() -> None:
    # b = 255 - a on a zero-mean-around-127.5 pattern: structure term -1 dominates.
    a = np.tile(np.array([[50.0, 205.0], [205.0, 50.0]]), (8, 8))
    assert ssim(a, 255.0 - a, y_channel=False) < -0.9


def test_ssim_on_rgb_uses_luma_and_border() -> None:
    rng = np.random.default_rng(6)
    a = rng.integers(0, 256, (20, 20, 3)).astype(np.uint8)
    b = a.copy()
    b[:3] = 0  # only the border rows differ: cropped away
    assert ssim(a, b, border=3) == pytest.approx(1.0, abs=1e-12)
    assert ssim(a, b) < 0.99


def test_luma_and_psnr_reference_values() -> None:
    # MATLAB rgb2ycbcr: white 235, black 16; pure red 16 + 65.481 = 81.481.
    assert rgb_to_y(np.array([255.0, 255.0, 255.0])) == pytest.approx(235.0)
    assert rgb_to_y(np.array([0.0, 0.0, 0.0])) == pytest.approx(16.0)
    assert rgb_to_y(np.array([255.0, 0.0, 0.0])) == pytest.approx(81.481)
    a = np.zeros((8, 8))
    b = a + 5.0  # MSE 25: PSNR = 10 log10(255^2 / 25) = 34.1514 dB
    assert psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255**2 / 25), abs=1e-9)
    assert psnr(a, b, y_channel=False) == pytest.approx(34.1514, abs=1e-4)
    assert psnr(a, a, y_channel=False) == math.inf
