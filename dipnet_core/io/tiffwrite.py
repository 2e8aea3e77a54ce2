"""A small TIFF encoder for 8- and 16-bit gray, gray+alpha, RGB and RGBA.

Pillow cannot write 16-bit RGB(A), and its libtiff-based compressed writer
rejects EXIF sub-directories, so all TIFF output goes through here. Pixels are
stored as deflate-compressed strips with the horizontal-differencing predictor,
which every TIFF reader handles. The directory is built with Pillow's own
:class:`ImageFileDirectory_v2`, so EXIF sub-directories are serialised exactly
as Pillow serialises them.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

_STRIP_BYTES = 1 << 18
_SHORT, _LONG, _RATIONAL, _UNDEFINED = TiffTags.SHORT, TiffTags.LONG, TiffTags.RATIONAL, TiffTags.UNDEFINED
_SUB_IFDS = (0x8769, 0x8825)  # EXIF, GPS


def _strips(samples: np.ndarray, rows_per_strip: int, level: int) -> list[bytes]:
    little = samples.dtype.newbyteorder("<")
    out = []
    for y in range(0, samples.shape[0], rows_per_strip):
        rows = samples[y : y + rows_per_strip]
        block = rows.copy()
        # Predictor 2: each sample minus its left neighbour, wrapping like the
        # unsigned sample type (numpy array arithmetic wraps silently).
        block[:, 1:] -= rows[:, :-1]
        out.append(zlib.compress(block.astype(little, copy=False).tobytes(), level))
    return out


def write_tiff(
    fh: BinaryIO,
    samples: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = 6,
) -> None:
    """Write uint8/uint16 HxWxC as a little-endian TIFF.

    C = 1 gray, 2 gray+alpha (8-bit only: Pillow cannot open 16-bit gray+alpha),
    3 RGB, 4 RGBA (alpha unassociated). ``exif`` must already be cleaned by
    :func:`metadata.exif_for_writing` (no layout tags of its own).
    """
    if samples.dtype not in (np.uint8, np.uint16) or samples.ndim != 3 or not 1 <= samples.shape[2] <= 4:
        raise ValueError(f"expected uint8/uint16 HxWxC with C in 1..4, got {samples.dtype} {samples.shape}")
    h, w, c = samples.shape
    bits = samples.dtype.itemsize * 8
    if c == 2 and bits == 16:
        raise ValueError("16-bit gray+alpha TIFF is not supported (Pillow cannot read it)")
    rows_per_strip = max(1, _STRIP_BYTES // (w * c * samples.dtype.itemsize))
    strips = _strips(samples, rows_per_strip, compress_level)

    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    if exif:
        meta = Image.Exif()
        meta.load(exif)
        for tag in meta:
            if tag in _SUB_IFDS:
                ifd[tag] = meta.get_ifd(tag)
                ifd.tagtype[tag] = _LONG
            else:
                ifd[tag] = meta[tag]

    def put(tag: int, value: object, typ: int) -> None:
        ifd[tag] = value
        ifd.tagtype[tag] = typ

    put(256, w, _LONG)
    put(257, h, _LONG)
    put(258, (bits,) * c, _SHORT)
    put(259, 8, _SHORT)  # Adobe deflate
    put(262, 1 if c <= 2 else 2, _SHORT)  # BlackIsZero / RGB
    put(277, c, _SHORT)
    put(278, rows_per_strip, _LONG)
    put(279, tuple(len(s) for s in strips), _LONG)
    put(282, 72.0, _RATIONAL)
    put(283, 72.0, _RATIONAL)
    put(284, 1, _SHORT)  # chunky
    put(296, 2, _SHORT)  # inch
    put(317, 2, _SHORT)  # horizontal differencing
    if c in (2, 4):
        put(338, 2, _SHORT)  # unassociated alpha
    if icc_profile:
        put(34675, icc_profile, _UNDEFINED)
    # ImageFileDirectory_v2.tobytes() adds the end of the directory (and of its
    # out-of-line values) to StripOffsets, so the offsets given here are relative
    # to where the pixel data starts: right after the directory.
    offsets, pos = [], 0
    for s in strips:
        offsets.append(pos)
        pos += len(s)
    put(273, tuple(offsets), _LONG)

    fh.write(b"II" + struct.pack("<HI", 42, 8))
    fh.write(ifd.tobytes(8))
    for s in strips:
        fh.write(s)
