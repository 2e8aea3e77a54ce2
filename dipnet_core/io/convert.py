"""Float <-> integer conversions shared by the reader, the writer and callers."""

from __future__ import annotations

import numpy as np


def _quantize(arr: np.ndarray, maxval: int, dtype: type[np.integer]) -> np.ndarray:
    x = np.multiply(arr, maxval, dtype=np.float32)
    # NaN would survive clip and make astype() warn and produce garbage; treat it as black.
    np.nan_to_num(x, copy=False, nan=0.0, posinf=float(maxval), neginf=0.0)
    np.rint(x, out=x)
    np.clip(x, 0, maxval, out=x)
    return x.astype(dtype)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8, rounded to nearest and clipped (NaN -> 0)."""
    return _quantize(np.asarray(arr), 255, np.uint8)


def to_uint16(arr: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint16, rounded to nearest and clipped (NaN -> 0)."""
    return _quantize(np.asarray(arr), 65535, np.uint16)


def from_uint(arr: np.ndarray, maxval: int) -> np.ndarray:
    """Integer samples -> float32 in [0, 1] (exact inverse of to_uint8/to_uint16 after rounding)."""
    out = np.asarray(arr).astype(np.float32)
    out /= np.float32(maxval)
    return out
