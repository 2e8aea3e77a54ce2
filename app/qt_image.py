"""numpy <-> QImage conversions (8/16-bit, gray/RGB, optional alpha).

Safe to call from worker threads: QImage (unlike QPixmap) is not tied to the
GUI thread. Every QImage returned owns its pixels (``.copy()``), because a
QImage built on a numpy buffer would dangle once the array is freed.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def _quantize(a: np.ndarray, bits: int) -> np.ndarray:
    if a.dtype == np.uint8 and bits == 8:
        return a
    if a.dtype == np.uint16 and bits == 16:
        return a
    if a.dtype == np.uint8:  # 8 -> 16 bit
        return a.astype(np.uint16) * 257
    if a.dtype == np.uint16:  # 16 -> 8 bit, rounded
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    top = 255.0 if bits == 8 else 65535.0
    out = np.clip(np.asarray(a, dtype=np.float32), 0.0, 1.0) * top + 0.5
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def array_to_qimage(pixels: np.ndarray, alpha: np.ndarray | None = None, bits: int = 8) -> QImage:
    """HxW, HxWx1 or HxWx3 (float in [0, 1], uint8 or uint16) plus optional HxW alpha -> QImage."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"expected HxW, HxWx1, HxWx3 or HxWx4 pixels, got shape {a.shape}")
    h, w = a.shape[:2]
    if a.ndim == 3 and a.shape[2] == 4 and alpha is None:
        a, alpha = a[:, :, :3], a[:, :, 3]
    q = _quantize(a, bits)
    if alpha is not None:
        if q.ndim == 2:
            q = np.repeat(q[:, :, None], 3, axis=2)
        q = np.concatenate([q, _quantize(np.asarray(alpha), bits)[:, :, None]], axis=2)
        fmt = QImage.Format.Format_RGBA8888 if bits == 8 else QImage.Format.Format_RGBA64
    elif q.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8 if bits == 8 else QImage.Format.Format_Grayscale16
    elif bits == 8:
        fmt = QImage.Format.Format_RGB888
    else:  # Qt has no 48-bit RGB: pad with an opaque alpha
        q = np.concatenate([q, np.full((h, w, 1), 65535, np.uint16)], axis=2)
        fmt = QImage.Format.Format_RGBX64
    q = np.ascontiguousarray(q)
    return QImage(q.data, w, h, q.strides[0], fmt).copy()


def qimage_to_array(image: QImage) -> tuple[np.ndarray, np.ndarray | None, int]:
    """QImage -> (float32 HxWx{1,3} pixels in [0, 1], HxW alpha or None, bit depth 8/16)."""
    if image.isNull():
        raise ValueError("the image is empty")
    deep = image.depth() > 32 or image.format() == QImage.Format.Format_Grayscale16
    gray = image.isGrayscale() and not image.hasAlphaChannel()
    has_alpha = image.hasAlphaChannel()
    if deep:
        conv = image.convertToFormat(QImage.Format.Format_RGBA64)
        dtype, top, channels = np.uint16, 65535.0, 4
    else:
        conv = image.convertToFormat(QImage.Format.Format_RGBA8888)
        dtype, top, channels = np.uint8, 255.0, 4
    w, h = conv.width(), conv.height()
    bpl = conv.bytesPerLine()
    buf = np.frombuffer(conv.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    itemsize = np.dtype(dtype).itemsize
    arr = buf[:, : w * channels * itemsize].copy().view(dtype).reshape(h, w, channels)
    rgb = arr[:, :, :3].astype(np.float32) / top
    alpha = arr[:, :, 3].astype(np.float32) / top if has_alpha else None
    pixels = rgb[:, :, :1] if gray else rgb
    return np.ascontiguousarray(pixels), alpha, 16 if deep else 8
