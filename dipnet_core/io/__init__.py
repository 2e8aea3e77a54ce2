"""Image file input/output for DIPNet Studio (Pillow-based, no Qt).

Reading gives an upright float32 :class:`ImageData` that keeps what is needed to
write the result back faithfully (bit depth, alpha, EXIF, ICC profile); writing
is atomic and refuses to clobber input files.
"""

from .atomic import atomic_output, atomic_write_bytes, atomic_write_text, remove_stale_temp_files
from .convert import to_uint8, to_uint16
from .data import ImageData
from .errors import ImageReadError, ImageWriteError
from .formats import (
    SUPPORTED_READ_EXTENSIONS,
    SUPPORTED_WRITE_EXTENSIONS,
    SUPPORTED_WRITE_FORMATS,
    default_extension,
    is_image_path,
)
from .limits import get_max_image_pixels, set_max_image_pixels
from .reader import read_image
from .stream_png import DEFAULT_PNG_COMPRESSION
from .writer import STREAMABLE_FORMATS, ImageStreamWriter, open_image_stream, write_image

__all__ = [
    "DEFAULT_PNG_COMPRESSION",
    "STREAMABLE_FORMATS",
    "ImageStreamWriter",
    "open_image_stream",
    "SUPPORTED_READ_EXTENSIONS",
    "SUPPORTED_WRITE_EXTENSIONS",
    "SUPPORTED_WRITE_FORMATS",
    "ImageData",
    "ImageReadError",
    "ImageWriteError",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_extension",
    "get_max_image_pixels",
    "is_image_path",
    "read_image",
    "remove_stale_temp_files",
    "set_max_image_pixels",
    "to_uint16",
    "to_uint8",
    "write_image",
]
