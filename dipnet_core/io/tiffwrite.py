"""A small TIFF encoder for 8- and 16-bit gray, gray+alpha, RGB and RGBA.

Pillow cannot write 16-bit RGB(A), and its libtiff-based compressed writer
rejects EXIF sub-directories, so all TIFF output goes through here. Pixels are
stored as deflate-compressed strips with the horizontal-differencing predictor,
which every TIFF reader handles; :class:`TiffStreamEncoder` writes them band by
band, so a large result never sits in memory whole. The directory is built with Pillow's own
:class:`ImageFileDirectory_v2`, so EXIF sub-directories are serialised exactly
as Pillow serialises them.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

import numpy as np
from PIL import Image, TiffImagePlugin, TiffTags

from .stream_png import checked_band

_STRIP_BYTES = 1 << 18
#: zlib level of every TIFF written (deflate at 6: TIFF output is chosen for archiving, not speed).
TIFF_COMPRESS_LEVEL = 6
_SHORT, _LONG, _RATIONAL, _UNDEFINED = TiffTags.SHORT, TiffTags.LONG, TiffTags.RATIONAL, TiffTags.UNDEFINED
_SUB_IFDS = (0x8769, 0x8825)  # EXIF, GPS


def _strip(rows: np.ndarray, level: int) -> bytes:
    little = rows.dtype.newbyteorder("<")
    block = rows.copy()
    # Predictor 2: each sample minus its left neighbour, wrapping like the
    # unsigned sample type (numpy array arithmetic wraps silently).
    block[:, 1:] -= rows[:, :-1]
    return zlib.compress(block.astype(little, copy=False).tobytes(), level)


class TiffStreamEncoder:
    """Encodes a ``width`` x ``height`` TIFF into ``fh`` from bands of rows given top to bottom.

    The same interface as :class:`~.stream_png.PngStreamEncoder`: ``write(rows)``
    takes ``n x width x channels`` uint8/uint16 samples, ``close()`` checks that
    exactly ``height`` rows came. The directory goes first, as every reader
    prefers: its size is known up front (the strip count follows from the size),
    so it is written with zero strip sizes and rewritten in place at ``close()``,
    which needs a seekable ``fh``. Holds at most one strip (256 KB) plus the band
    being written.
    """

    def __init__(self, fh: BinaryIO, width: int, height: int, channels: int, bit_depth: int = 8, *,
                 icc_profile: bytes | None = None, exif: bytes | None = None,
                 compress_level: int = TIFF_COMPRESS_LEVEL) -> None:
        if not 1 <= channels <= 4 or bit_depth not in (8, 16):
            raise ValueError(f"TIFF needs 1 to 4 channels of 8 or 16 bits, got {channels} x {bit_depth}")
        if channels == 2 and bit_depth == 16:
            raise ValueError("16-bit gray+alpha TIFF is not supported (Pillow cannot read it)")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"TIFF size must be positive and below 2^31, got {width}x{height}")
        self.width, self.height, self.channels, self.bit_depth = int(width), int(height), channels, bit_depth
        self.dtype = np.dtype(np.uint8 if bit_depth == 8 else np.uint16)
        self.rows_written = 0
        self._fh, self._level = fh, compress_level
        self._rows_per_strip = max(1, _STRIP_BYTES // (self.width * channels * self.dtype.itemsize))
        n_strips = -(-self.height // self._rows_per_strip)
        self._sizes: list[int] = []
        self._pending: list[np.ndarray] = []  # rows of the strip being filled
        self._pending_rows = 0
        self.closed = False
        self._ifd = self._directory(icc_profile, exif)
        self._start = fh.tell()
        fh.write(b"II" + struct.pack("<HI", 42, 8))
        self._ifd_bytes = self._directory_bytes([0] * n_strips)
        fh.write(self._ifd_bytes)

    def _directory(self, icc_profile: bytes | None, exif: bytes | None) -> TiffImagePlugin.ImageFileDirectory_v2:
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

        c = self.channels
        put(256, self.width, _LONG)
        put(257, self.height, _LONG)
        put(258, (self.bit_depth,) * c, _SHORT)
        put(259, 8, _SHORT)  # Adobe deflate
        put(262, 1 if c <= 2 else 2, _SHORT)  # BlackIsZero / RGB
        put(277, c, _SHORT)
        put(278, self._rows_per_strip, _LONG)
        put(282, 72.0, _RATIONAL)
        put(283, 72.0, _RATIONAL)
        put(284, 1, _SHORT)  # chunky
        put(296, 2, _SHORT)  # inch
        put(317, 2, _SHORT)  # horizontal differencing
        if c in (2, 4):
            put(338, 2, _SHORT)  # unassociated alpha
        if icc_profile:
            put(34675, icc_profile, _UNDEFINED)
        return ifd

    def _directory_bytes(self, sizes: list[int]) -> bytes:
        # ImageFileDirectory_v2.tobytes() adds the end of the directory (and of its
        # out-of-line values) to StripOffsets, so the offsets given here are relative
        # to where the pixel data starts: right after the directory.
        offsets, pos = [], 0
        for n in sizes:
            offsets.append(pos)
            pos += n
        for tag, value in ((279, tuple(sizes)), (273, tuple(offsets))):
            self._ifd[tag] = value
            self._ifd.tagtype[tag] = _LONG
        return self._ifd.tobytes(8)

    def write(self, rows: np.ndarray) -> None:
        """Encode the next ``len(rows)`` rows (``n x width x channels``, or ``n x width`` for one channel)."""
        a = checked_band(self, rows, "TIFF")
        y = 0
        while y < a.shape[0]:
            take = min(self._rows_per_strip - self._pending_rows, a.shape[0] - y)
            self._pending.append(a[y : y + take])
            self._pending_rows += take
            y += take
            if self._pending_rows == self._rows_per_strip:
                self._flush_strip()
        self.rows_written += a.shape[0]

    def _flush_strip(self) -> None:
        rows = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        data = _strip(rows, self._level)
        self._fh.write(data)
        self._sizes.append(len(data))
        self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        """Finish the file; raises ValueError if fewer rows than the height were written."""
        if self.closed:
            return
        if self.rows_written != self.height:
            raise ValueError(f"TIFF stream got {self.rows_written} of {self.height} rows")
        self.closed = True
        if self._pending_rows:
            self._flush_strip()
        end = self._fh.tell()
        ifd = self._directory_bytes(self._sizes)
        if len(ifd) != len(self._ifd_bytes):  # cannot happen: same tags, same value counts
            raise RuntimeError("TIFF directory changed size")
        self._fh.seek(self._start + 8)
        self._fh.write(ifd)
        self._fh.seek(end)


def write_tiff(
    fh: BinaryIO,
    samples: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = TIFF_COMPRESS_LEVEL,
) -> None:
    """Write uint8/uint16 HxWxC as a little-endian TIFF (one band of :class:`TiffStreamEncoder`).

    C = 1 gray, 2 gray+alpha (8-bit only: Pillow cannot open 16-bit gray+alpha),
    3 RGB, 4 RGBA (alpha unassociated). ``exif`` must already be cleaned by
    :func:`metadata.exif_for_writing` (no layout tags of its own).
    """
    if samples.dtype not in (np.uint8, np.uint16) or samples.ndim != 3 or not 1 <= samples.shape[2] <= 4:
        raise ValueError(f"expected uint8/uint16 HxWxC with C in 1..4, got {samples.dtype} {samples.shape}")
    h, w, c = samples.shape
    enc = TiffStreamEncoder(fh, w, h, c, samples.dtype.itemsize * 8, icc_profile=icc_profile, exif=exif,
                            compress_level=compress_level)
    enc.write(samples)
    enc.close()
