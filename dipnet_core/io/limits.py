"""The decompression-bomb limit (a thin wrapper over ``PIL.Image.MAX_IMAGE_PIXELS``).

Pillow raises above twice the limit but only *warns* between one and two times
it; a warning would let a huge image through, so reads treat both as errors:
the warning is silenced and the size checked here instead, which also lets the
message give the dimensions.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from .errors import ImageReadError
from .formats import DECODER_FORMATS

# warnings.catch_warnings() swaps a process-wide filter list; serialising our own
# opens keeps two reader threads from restoring each other's filters.
_OPEN_LOCK = threading.Lock()


def set_max_image_pixels(n: int | None) -> None:
    """Set the largest image (width*height) that reads accept; ``None`` disables the check."""
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"max image pixels must be a positive int or None, got {n!r}")
    Image.MAX_IMAGE_PIXELS = n


def get_max_image_pixels() -> int | None:
    """The current decompression-bomb limit in pixels (``None`` = unlimited)."""
    return Image.MAX_IMAGE_PIXELS


def format_pixels(n: int) -> str:
    return f"{n / 1e6:.1f} MP" if n >= 1_000_000 else f"{n} pixels"


def _bomb_error(path: Path, size: tuple[int, int] | None, pillow_msg: str) -> ImageReadError:
    limit = get_max_image_pixels()
    limit_txt = format_pixels(limit) if limit else "?"
    if size is not None:
        what = f"{size[0]}x{size[1]} = {format_pixels(size[0] * size[1])}"
    else:
        match = re.search(r"\((\d+) pixels\)", pillow_msg)
        what = format_pixels(int(match.group(1))) if match else "too large"
    return ImageReadError.about(
        path,
        f"image is {what}, above the decompression-bomb limit of {limit_txt}; "
        "raise it with set_max_image_pixels()",
    )


def check_size(path: Path, size: tuple[int, int]) -> None:
    """Raise ImageReadError if ``size`` (w, h) is above the limit."""
    limit = get_max_image_pixels()
    if limit is not None and size[0] * size[1] > limit:
        raise _bomb_error(path, size, "")


@contextmanager
def bomb_checked_open(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` that fails with ImageReadError on any decompression-bomb signal.

    Only the decoders of the supported formats may run (:data:`DECODER_FORMATS`): never
    a plugin that starts an external program on the file, such as EPS with Ghostscript.
    """
    with _OPEN_LOCK:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                im = Image.open(path, formats=DECODER_FORMATS)
            except Image.DecompressionBombError as exc:
                raise _bomb_error(path, None, str(exc)) from None
    with im:
        check_size(path, im.size)
        yield im
