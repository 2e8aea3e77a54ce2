"""16-bit PNG output (Pillow can only write 16-bit gray PNG); the encoder is :mod:`.stream_png`."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from .stream_png import DEFAULT_PNG_COMPRESSION, write_png


def write_png16(
    fh: BinaryIO,
    samples: np.ndarray,
    *,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
    compress_level: int = DEFAULT_PNG_COMPRESSION,
) -> None:
    """Write uint16 HxWxC (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as a 16-bit PNG."""
    if samples.dtype != np.uint16 or samples.ndim != 3 or not 1 <= samples.shape[2] <= 4:
        raise ValueError(f"expected uint16 HxWxC with C in 1..4, got {samples.dtype} {samples.shape}")
    write_png(fh, samples, icc_profile=icc_profile, exif=exif, compress_level=compress_level)
