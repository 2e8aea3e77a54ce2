"""MATLAB-compatible bicubic ``imresize`` (antialiased, a = -0.5).

The SR benchmark protocol makes LR images with MATLAB's ``imresize``; any other
bicubic (PIL, OpenCV, torch) shifts PSNR by tenths of a dB, so the core carries
its own implementation. Works on float arrays of shape HxW or HxWxC.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (
        -0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2
    ) * ((ax > 1) & (ax <= 2))


def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if antialias else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # Symmetric (mirror) padding at the borders, as MATLAB does.
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(w != 0, axis=0)
    return w[:, keep], idx[:, keep]


def _resize_axis(img: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    w, idx = _contributions(img.shape[axis], out_len, scale)
    moved = np.moveaxis(img, axis, 0)
    gathered = moved[idx]  # out_len x taps x ...
    wshape = w.shape + (1,) * (moved.ndim - 1)
    out = (gathered * w.reshape(wshape)).sum(axis=1)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize ``img`` (HxW[xC], any float or integer dtype) like MATLAB's ``imresize(img, scale, 'bicubic')``.

    Give either ``scale`` or ``size=(height, width)``. The result is float64 and
    unclamped; integer inputs keep their numeric range (round and clip yourself).
    """
    if (scale is None) == (size is None):
        raise ValueError("give exactly one of scale or size")
    h, w = img.shape[:2]
    if size is None:
        assert scale is not None
        out_h, out_w = int(math.ceil(h * scale)), int(math.ceil(w * scale))
        scales = (float(scale), float(scale))
    else:
        out_h, out_w = size
        scales = (out_h / h, out_w / w)
    out = img.astype(np.float64)
    # MATLAB resizes the dimension with the smaller scale first.
    order = sorted(range(2), key=lambda a: scales[a])
    for axis in order:
        out = _resize_axis(out, axis, (out_h, out_w)[axis], scales[axis])
    return out


def bicubic_downscale_uint8(hr: np.ndarray, scale: int) -> np.ndarray:
    """Benchmark LR from an HR uint8 image: MATLAB bicubic, then round to uint8 like a saved PNG."""
    lr = imresize(hr.astype(np.float64), scale=1.0 / scale)
    return np.clip(np.round(lr), 0, 255).astype(np.uint8)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
