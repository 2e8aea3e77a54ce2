"""EXIF orientation and ICC-profile helpers."""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825

# Tags that describe how a TIFF file stores its pixels. When EXIF is taken from a
# TIFF, Pillow returns them mixed with the real metadata; copied into another
# file they would describe pixels that are not there (or even override the
# writer's own layout tags), so they are dropped.
_LAYOUT_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281,
        284, 290, 291, 292, 293, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 338,
        339, 340, 341, 347, 530, 531, 532, 559,
        700,  # XMP: kept out because it can carry its own orientation
        33723, 34377, 34675, 37724,  # IPTC, Photoshop, ICC (kept separately), layer data
    }
)


def _clean(exif: Image.Exif) -> bytes | None:
    for tag in [t for t in exif if t in _LAYOUT_TAGS]:
        del exif[tag]
    if ORIENTATION in exif:
        exif[ORIENTATION] = 1
    if len(exif) == 0:
        return None
    return exif.tobytes()


def exif_from_image(im: Image.Image) -> tuple[bytes | None, int]:
    """(EXIF bytes with orientation 1, original orientation 1..8) of an open image.

    Unparseable EXIF is dropped rather than failing the read: the pixels are what
    the user needs, and a broken maker note should not cost them the image.
    """
    try:
        exif = im.getexif()
        orientation = exif.get(ORIENTATION, 1)
        if not isinstance(orientation, int) or not 1 <= orientation <= 8:
            orientation = 1
        return _clean(exif), orientation
    except Exception as exc:  # Pillow raises assorted types on corrupt EXIF
        logger.info("ignoring unreadable EXIF in %s: %s", getattr(im, "filename", "?"), exc)
        return None, 1


def exif_for_writing(data: bytes | None) -> bytes | None:
    """Normalise EXIF before writing: orientation 1 (pixels are upright), no layout tags."""
    if not data:
        return None
    try:
        exif = Image.Exif()
        exif.load(data)
        # Sub-IFDs are parsed lazily from the source bytes; load them now so
        # tobytes() writes them out.
        for ifd in (_EXIF_IFD, _GPS_IFD):
            if ifd in exif:
                exif.get_ifd(ifd)
        return _clean(exif)
    except Exception as exc:
        logger.info("dropping unreadable EXIF block: %s", exc)
        return None


def apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an HxW[xC] array stored with EXIF ``orientation`` into its upright layout.

    Same result as ``PIL.ImageOps.exif_transpose`` on the equivalent image.
    """
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = np.swapaxes(a, 0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = np.swapaxes(a[::-1, ::-1], 0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    else:
        return a
    return np.ascontiguousarray(a)


def icc_color_space(icc: bytes | None) -> bytes | None:
    """The 4-byte colour-space signature of an ICC profile (``b"RGB "``, ``b"GRAY"``, ``b"CMYK"``)."""
    if not icc or len(icc) < 128:
        return None
    return bytes(icc[16:20])


def icc_fits(icc: bytes | None, gray: bool) -> bool:
    """Whether ``icc`` may be embedded in a gray (or RGB) image; mismatches upset readers."""
    return icc_color_space(icc) == (b"GRAY" if gray else b"RGB ")
