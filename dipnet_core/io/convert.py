"""Float <-> integer conversions shared by the reader, the writer and callers."""

from __future__ import annotations

import numpy as np

# Rows converted per step: a float32 scratch copy of the whole image would double the peak memory
# of saving a large upscale (2.3 GB more for a 16000x12000 RGB result); a band of rows costs ~100 MB.
_QUANTIZE_BAND_PIXELS = 8_000_000


def _quantize(arr: np.ndarray, maxval: int, dtype: type[np.integer]) -> np.ndarray:
    if arr.ndim == 0:
        return _quantize(arr[None], maxval, dtype)[0]
    out = np.empty(arr.shape, dtype)
    if arr.size == 0:
        return out
    row_pixels = max(1, arr[:1].size)
    band = max(1, _QUANTIZE_BAND_PIXELS // row_pixels)
    for y in range(0, arr.shape[0], band):
        x = np.multiply(arr[y:y + band], maxval, dtype=np.float32)
        # NaN would survive clip and make astype() warn and produce garbage; treat it as black.
        np.nan_to_num(x, copy=False, nan=0.0, posinf=float(maxval), neginf=0.0)
        np.rint(x, out=x)
        np.clip(x, 0, maxval, out=x)
        out[y:y + band] = x
    return out


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
