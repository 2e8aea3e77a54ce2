"""PSNR and SSIM with the standard SR protocol (Y of BT.601 YCbCr, border crop).

Inputs are uint8-range arrays (HxWx3, values 0..255, any dtype); computation is
in float64 so the numbers match the literature to the hundredth of a dB.
"""

from __future__ import annotations

import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] from RGB in [0, 255] (MATLAB ``rgb2ycbcr``)."""
    img = img.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border > 0 else img


def _comparable(a: np.ndarray, b: np.ndarray, border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """The pixels both metrics compare: float64, Y only when asked (RGB input), ``border`` cropped."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if y_channel and a.ndim == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    return _crop(a.astype(np.float64), border), _crop(b.astype(np.float64), border)


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0, y_channel: bool = True) -> float:
    a, b = _comparable(a, b, border, y_channel)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    # Separable 'valid' correlation: rows then columns.
    n = len(k)
    h, w = img.shape
    rows = sum(k[i] * img[i : h - n + 1 + i, :] for i in range(n))
    return sum(k[i] * rows[:, i : w - n + 1 + i] for i in range(n))


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0, y_channel: bool = True) -> float:
    """SSIM with an 11x11 Gaussian window (sigma 1.5), averaged over channels if not Y."""
    a, b = _comparable(a, b, border, y_channel)
    if a.ndim == 3:
        return float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[2])]))
    return _ssim_2d(a, b)


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    k = _gaussian_kernel()
    mu_a, mu_b = _filter_valid(a, k), _filter_valid(b, k)
    saa = _filter_valid(a * a, k) - mu_a**2
    sbb = _filter_valid(b * b, k) - mu_b**2
    sab = _filter_valid(a * b, k) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * sab + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2)
    return float(np.mean(num / den))
