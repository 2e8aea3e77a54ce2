"""``write_image``: :class:`ImageData` -> file, atomically and without clobbering inputs."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_output
from .convert import to_uint8, to_uint16
from .data import ImageData
from .errors import ImageWriteError
from .formats import SUPPORTED_WRITE_FORMATS, normalize_format, pillow_write_format
from .metadata import exif_for_writing, icc_fits
from .png16 import write_png16
from .tiffwrite import write_tiff

_ALPHA_FORMATS = frozenset({"png", "webp", "tiff", "avif", "jxl"})
_GRAY_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "avif", "jxl"})
_METADATA_FORMATS = frozenset({"png", "jpeg", "webp", "tiff", "avif", "jxl"})
_SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})
_JPEG_MAX_EXIF = 65533  # one APP1 segment; Pillow refuses the whole save beyond it

logger = logging.getLogger(__name__)


def _resolve_format(path: Path, fmt: str | None) -> str:
    name = normalize_format(fmt if fmt is not None else path.suffix)
    if name in SUPPORTED_WRITE_FORMATS:
        return name
    supported = ", ".join(sorted(SUPPORTED_WRITE_FORMATS))
    if not name:
        cause = f"no format given and the file name has no extension (supported: {supported})"
    else:
        cause = f"unsupported output format '{name}' (supported: {supported})"
    raise ImageWriteError.about(path, cause)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def _check_protected(path: Path, protect: Iterable[str | os.PathLike[str]]) -> None:
    for item in protect:
        if _same_file(path, Path(item)):
            cause = "refusing to overwrite an input file; choose another output name"
            raise ImageWriteError.about(path, cause)


def _planes(img: ImageData, fmt: str) -> tuple[np.ndarray, bool]:
    """Colour (+alpha) planes as float HxWxC in the layout the format will store."""
    color = img.pixels
    gray = img.is_gray and fmt in _GRAY_FORMATS
    if img.is_gray and not gray:
        color = np.repeat(color, 3, axis=2)
    if img.alpha is None:
        return color, gray
    alpha = np.clip(img.alpha, 0.0, 1.0)[:, :, None]
    if fmt in _ALPHA_FORMATS:
        if gray and fmt != "png" and fmt != "tiff":
            # AVIF/JXL encoders have no gray+alpha layout; store RGBA instead.
            color, gray = np.repeat(color, 3, axis=2), False
        return np.concatenate([color, alpha], axis=2), gray
    # No alpha in this format: show the image as it would look on a white page.
    return np.clip(color, 0.0, 1.0) * alpha + (1.0 - alpha), gray


def _pillow_encoder(
    planes: np.ndarray, fmt: str, quality: int, exif: bytes | None, icc: bytes | None
) -> Callable[[Path], None]:
    data = to_uint8(planes)
    pil = Image.fromarray(data[:, :, 0] if data.shape[2] == 1 else data)
    params: dict[str, object] = {}
    if exif and not (fmt == "jpeg" and len(exif) > _JPEG_MAX_EXIF):
        params["exif"] = exif
    elif exif:
        logger.info("EXIF block of %d bytes does not fit a JPEG APP1 segment; not written", len(exif))
    if icc:
        params["icc_profile"] = icc
    if fmt == "jpeg":
        # Chroma subsampling visibly blurs colour edges, which is what a
        # super-resolution result is judged on; keep full chroma at high quality.
        params.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "webp":
        params.update(quality=quality, lossless=quality >= 100, method=4)
    elif fmt in ("avif", "jxl"):
        params.update(quality=quality)
    elif fmt == "png":
        params.update(compress_level=6)
    pillow_fmt = pillow_write_format(fmt)

    def encode(tmp: Path) -> None:
        pil.save(tmp, format=pillow_fmt, **params)

    return encode


def _own_encoder(
    planes: np.ndarray, fmt: str, sixteen: bool, exif: bytes | None, icc: bytes | None
) -> Callable[[Path], None]:
    """16-bit PNG and all TIFF output, which Pillow cannot write (fully) itself."""
    samples = to_uint16(planes) if sixteen else to_uint8(planes)
    if fmt == "tiff" and sixteen and samples.shape[2] == 2:
        # Pillow cannot open 16-bit gray+alpha TIFF, so such a file could not be
        # read back by this program; RGBA keeps every bit instead.
        samples = samples[:, :, [0, 0, 0, 1]]
        if not icc_fits(icc, gray=False):
            icc = None
    writer = write_png16 if fmt == "png" else write_tiff

    def encode(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            writer(fh, samples, icc_profile=icc, exif=exif)

    return encode


def _cause(exc: BaseException, target: Path) -> str:
    name = getattr(exc, "filename", None)
    named = Path(name) if name else None
    if named is not None and named.name.startswith(f".{target.name[:20]}"):
        named = None  # our temporary file: users only know the target name
    if isinstance(exc, FileExistsError) and named == target:
        return "file already exists (overwriting was not allowed)"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        for folder in (target.parent, *target.parent.parents):
            if os.path.lexists(folder):
                if not folder.is_dir():
                    return f"cannot create the folder: '{folder}' is a file"
                break
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    where = f" ('{named}')" if named is not None and named != target else ""
    if isinstance(exc, PermissionError):
        return f"permission denied{where}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}{where}"
    return f"encoding failed: {exc or type(exc).__name__}"


def write_image(
    path: str | os.PathLike[str],
    img: ImageData,
    *,
    format: str | None = None,
    quality: int = 95,
    overwrite: bool = True,
    protect: Iterable[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``img`` to ``path`` and return the path.

    The format comes from ``format`` (``"png"``, ``"jpg"``, ``"webp"``, ...) or
    else from the extension. ``quality`` (1-100) applies to JPEG, WebP, AVIF
    and JXL; WebP at 100 is lossless. JPEG is written without chroma
    subsampling at quality >= 90.

    What is kept: EXIF (orientation forced to 1, since the pixels are upright)
    and the ICC profile in every format but BMP (a profile whose colour space
    does not match the stored pixels is dropped); 16-bit precision in PNG and
    TIFF (other formats get 8 bits); gray stays gray except in WebP (which has
    no gray mode); alpha in PNG, TIFF, WebP, AVIF and JXL. JPEG and BMP cannot
    store alpha: the image is composited onto white instead. 16-bit gray+alpha
    TIFF is stored as RGBA, the only 16-bit alpha layout Pillow can read back.

    The file appears atomically: data goes to a temporary file in the same
    folder that replaces ``path`` only when complete; on failure nothing is
    left behind and an existing file is untouched. Parent folders are created.
    Raises :class:`ImageWriteError` when ``path`` is (the same file as) one of
    ``protect``, when it exists and ``overwrite`` is False, or on any I/O or
    encoder failure.
    """
    p = Path(path)
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    fmt = _resolve_format(p, format)
    _check_protected(p, protect)

    planes, gray = _planes(img, fmt)
    exif = icc = None
    if fmt in _METADATA_FORMATS:
        exif = exif_for_writing(img.exif)
        icc = img.icc_profile if icc_fits(img.icc_profile, gray) else None
    sixteen = img.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS
    if fmt == "tiff" or (sixteen and fmt == "png"):
        encode = _own_encoder(planes, fmt, sixteen, exif, icc)
    else:
        encode = _pillow_encoder(planes, fmt, int(quality), exif, icc)

    try:
        with atomic_output(p, overwrite=overwrite) as tmp:
            encode(tmp)
    except ImageWriteError:
        raise
    except MemoryError:
        raise ImageWriteError.about(p, "not enough memory to encode it") from None
    except Exception as exc:
        raise ImageWriteError.about(p, _cause(exc, p)) from exc
    return p
