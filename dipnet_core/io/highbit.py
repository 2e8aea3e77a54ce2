"""Full-precision reading of 16-bit-per-channel colour images through Pillow.

Pillow has no 16-bit RGB(A) mode: a 48/64-bit PNG or TIFF is decoded to 8-bit
RGB(A) by keeping only the high byte of each sample. Its unpackers pick "the
high byte" by assuming an endianness (``RGB;16B`` takes the first byte of each
pair, ``RGB;16L`` the second), so decoding the same data a second time with the
opposite endianness yields the low bytes instead. Filtering, decompression,
interlacing and TIFF predictors all still run inside Pillow's C decoders.

16-bit gray+alpha PNG has no such pair of unpackers; its 4 bytes per pixel are
instead unpacked unchanged as 8-bit "RGBA" and reassembled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

_NATIVE = "L" if sys.byteorder == "little" else "B"
_OPPOSITE = {"B": "L", "L": "B", "N": "B" if _NATIVE == "L" else "L"}
_SPLIT_BASES = ("RGB;16", "RGBA;16")
_PNG_GRAY_ALPHA = "LA;16B"


def _rawmode(args: Any) -> str | None:
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    args = tile[3]
    new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    if hasattr(tile, "_replace"):
        return tile._replace(args=new_args)
    return (*tile[:3], new_args, *tile[4:])


def sixteen_bit_plan(im: Image.Image) -> str | None:
    """``"split"``, ``"gray-alpha"`` or ``None``; must be called before ``im.load()``."""
    tiles = getattr(im, "tile", None) or []
    rawmodes = {_rawmode(t[3]) for t in tiles}
    if len(rawmodes) != 1:
        return None
    raw = rawmodes.pop()
    if raw is None:
        return None
    if im.format == "PNG" and raw == _PNG_GRAY_ALPHA:
        return "gray-alpha"
    if im.format in ("PNG", "TIFF") and raw[:-1] in _SPLIT_BASES and raw[-1] in _OPPOSITE:
        return "split"
    return None


def _decode_with(path: Path, frame_tiles: list[Any], rawmode: str) -> np.ndarray:
    with Image.open(path, formats=("PNG", "TIFF")) as again:  # only these get a 16-bit plan
        tiles = list(again.tile)
        if [tuple(t[:3]) for t in tiles] != [tuple(t[:3]) for t in frame_tiles]:
            raise OSError("file changed while it was being read")
        again.tile = [_with_rawmode(t, rawmode) for t in tiles]
        again.load()
        return np.asarray(again)


def read_sixteen_bit(im: Image.Image, path: Path, plan: str) -> np.ndarray:
    """Decode ``im`` (opened from ``path``, not yet loaded) to uint16 HxWxC.

    C is 2 (gray+alpha), 3 or 4. ``im`` itself gets loaded as a side effect.
    """
    tiles = list(im.tile)
    if plan == "gray-alpha":
        im.load()  # validates the file and fills im.info (eXIf may follow the pixels)
        b = _decode_with(path, tiles, "RGBA").astype(np.uint16)
        return np.stack([(b[..., 0] << 8) | b[..., 1], (b[..., 2] << 8) | b[..., 3]], axis=-1)
    raw = _rawmode(tiles[0][3])
    assert raw is not None
    im.load()
    high = np.asarray(im).astype(np.uint16)
    low = _decode_with(path, tiles, raw[:-1] + _OPPOSITE[raw[-1]])
    high <<= 8
    high |= low
    return high
