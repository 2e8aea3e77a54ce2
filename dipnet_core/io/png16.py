"""A small 16-bit-per-channel PNG encoder (Pillow can only write 16-bit gray PNG)."""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_BLOCK_BYTES = 1 << 20  # raw bytes filtered at once; bounds the 5 candidate copies
_IDAT_SIZE = 1 << 20


def _chunk(fh: BinaryIO, kind: bytes, data: bytes) -> None:
    fh.write(struct.pack(">I", len(data)))
    fh.write(kind)
    fh.write(data)
    fh.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _filtered_rows(raw: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter a block of rows (uint8, rows x bytes), choosing the filter per row.

    The encoder knows every unfiltered byte, so all five PNG filters vectorise;
    the row with the smallest sum of |signed residual| wins (libpng's heuristic).
    """
    x = raw.astype(np.int16)
    up = np.vstack([prev[None, :].astype(np.int16), x[:-1]])
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = np.stack(
        [x, x - left, x - up, x - ((left + up) >> 1), x - paeth]
    ).astype(np.uint8)  # wraps modulo 256, as the format requires
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = cost.argmin(axis=0)
    rows = candidates[best, np.arange(raw.shape[0])]
    return np.hstack([best.astype(np.uint8)[:, None], rows])


def write_png16(
    fh: BinaryIO,
    samples: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = 6,
) -> None:
    """Write uint16 HxWxC (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG."""
    if samples.dtype != np.uint16 or samples.ndim != 3 or samples.shape[2] not in _COLOR_TYPE:
        raise ValueError(f"expected uint16 HxWxC with C in 1..4, got {samples.dtype} {samples.shape}")
    h, w, c = samples.shape
    fh.write(_SIGNATURE)
    _chunk(fh, b"IHDR", struct.pack(">IIBBBBB", w, h, 16, _COLOR_TYPE[c], 0, 0, 0))
    if icc_profile:
        _chunk(fh, b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc_profile))
    if exif:
        # PNG stores the bare TIFF structure, without the JPEG-style "Exif\0\0" header.
        _chunk(fh, b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)

    big_endian = samples.astype(">u2", copy=False)
    bpp = 2 * c
    prev = np.zeros(w * bpp, np.uint8)
    comp = zlib.compressobj(compress_level)
    pending = bytearray()
    rows_per_block = max(1, _BLOCK_BYTES // (w * bpp))
    for y in range(0, h, rows_per_block):
        raw = np.ascontiguousarray(big_endian[y : y + rows_per_block]).view(np.uint8).reshape(-1, w * bpp)
        pending += comp.compress(_filtered_rows(raw, prev, bpp).tobytes())
        prev = raw[-1]
        while len(pending) >= _IDAT_SIZE:
            _chunk(fh, b"IDAT", bytes(pending[:_IDAT_SIZE]))
            del pending[:_IDAT_SIZE]
    pending += comp.flush()
    _chunk(fh, b"IDAT", bytes(pending))
    _chunk(fh, b"IEND", b"")
