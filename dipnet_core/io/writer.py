"""``write_image``: :class:`ImageData` -> file, atomically and without clobbering inputs.

``open_image_stream``: the same file written band by band (PNG, TIFF), so a large result never has to
sit in memory whole; the encoder runs on its own thread while the caller computes the next band.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from PIL import Image

from .atomic import atomic_output
from .convert import to_uint8, to_uint16
from .data import ImageData
from .errors import ImageWriteError
from .formats import SUPPORTED_WRITE_FORMATS, normalize_format, pillow_write_format
from .metadata import exif_for_writing, icc_fits
from .stream_png import DEFAULT_PNG_COMPRESSION, PngStreamEncoder, check_compress_level, write_png
from .tiffwrite import TIFF_COMPRESS_LEVEL, TiffStreamEncoder, write_tiff

_ALPHA_FORMATS = frozenset({"png", "webp", "tiff", "avif", "jxl"})
_GRAY_FORMATS = frozenset({"png", "jpeg", "tiff", "bmp", "avif", "jxl"})
_METADATA_FORMATS = frozenset({"png", "jpeg", "webp", "tiff", "avif", "jxl"})
_SIXTEEN_BIT_FORMATS = frozenset({"png", "tiff"})
#: Formats :func:`open_image_stream` can write band by band; the others need the whole image.
STREAMABLE_FORMATS = frozenset({"png", "tiff"})
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
    pillow_fmt = pillow_write_format(fmt)

    def encode(tmp: Path) -> None:
        pil.save(tmp, format=pillow_fmt, **params)

    return encode


def _own_encoder(
    planes: np.ndarray, fmt: str, sixteen: bool, exif: bytes | None, icc: bytes | None, png_compression: int
) -> Callable[[Path], None]:
    """PNG (the streaming encoder's, so one-shot and streamed files match) and TIFF (Pillow cannot write
    16-bit RGB(A) nor EXIF sub-directories in compressed TIFF)."""
    samples = to_uint16(planes) if sixteen else to_uint8(planes)
    if fmt == "tiff" and sixteen and samples.shape[2] == 2:
        # Pillow cannot open 16-bit gray+alpha TIFF, so such a file could not be
        # read back by this program; RGBA keeps every bit instead.
        samples = samples[:, :, [0, 0, 0, 1]]
        if not icc_fits(icc, gray=False):
            icc = None

    def encode(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            if fmt == "png":
                write_png(fh, samples, icc_profile=icc, exif=exif, compress_level=png_compression)
            else:
                write_tiff(fh, samples, icc_profile=icc, exif=exif, compress_level=TIFF_COMPRESS_LEVEL)

    return encode


def _metadata(img: ImageData, fmt: str, gray: bool) -> tuple[bytes | None, bytes | None]:
    """(EXIF, ICC profile) to store for ``img`` in ``fmt``; None where format or colour space rule one out."""
    if fmt not in _METADATA_FORMATS:
        return None, None
    icc = img.icc_profile if icc_fits(img.icc_profile, gray) else None
    return exif_for_writing(img.exif), icc


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
    png_compression: int = DEFAULT_PNG_COMPRESSION,
) -> Path:
    """Write ``img`` to ``path`` and return the path.

    The format comes from ``format`` (``"png"``, ``"jpg"``, ``"webp"``, ...) or
    else from the extension. ``quality`` (1-100) applies to JPEG, WebP, AVIF
    and JXL; WebP at 100 is lossless. JPEG is written without chroma
    subsampling at quality >= 90. ``png_compression`` (0-9, default 1: fast,
    about the size of Pillow's level 6; 9: smallest files, slow) applies to PNG,
    see :mod:`.stream_png`.

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
    level = check_compress_level(png_compression)
    fmt = _resolve_format(p, format)
    _check_protected(p, protect)

    planes, gray = _planes(img, fmt)
    exif, icc = _metadata(img, fmt, gray)
    sixteen = img.bit_depth == 16 and fmt in _SIXTEEN_BIT_FORMATS
    if fmt in ("tiff", "png"):
        encode = _own_encoder(planes, fmt, sixteen, exif, icc, level)
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


class ImageStreamWriter(AbstractContextManager["ImageStreamWriter"]):
    """A PNG or TIFF written band by band on a background thread; made by :func:`open_image_stream`.

    Use as a context manager: bands go in with :meth:`write` (top to bottom, as
    samples already quantized with :meth:`quantize`); a clean exit finishes the
    file and renames it over the target, an exception (or :meth:`abort`) deletes
    the temporary file and leaves the target untouched. At most one band waits
    for the encoder, so the caller is held back rather than memory growing when
    encoding falls behind.
    """

    def __init__(self, path: Path, width: int, height: int, *, gray: bool, alpha: bool, sixteen: bool,
                 exif: bytes | None, icc: bytes | None, level: int, overwrite: bool, fmt: str = "png") -> None:
        if fmt not in STREAMABLE_FORMATS:
            raise ValueError(f"cannot stream {fmt!r} (streams: {', '.join(sorted(STREAMABLE_FORMATS))})")
        self.path, self.width, self.height, self.format = path, width, height, fmt
        self.gray, self.alpha, self.sixteen = gray, alpha, sixteen
        #: Sample type of the bands :meth:`write` takes.
        self.dtype = np.dtype(np.uint16 if sixteen else np.uint8)
        self._exif, self._icc, self._level, self._overwrite = exif, icc, level, overwrite
        self._queue: queue.Queue[tuple[np.ndarray, np.ndarray | None] | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self._thread: threading.Thread | None = None
        self._atomic: AbstractContextManager[Path] | None = None
        self._fh: Any = None
        self._encoder: PngStreamEncoder | TiffStreamEncoder | None = None

    def quantize(self, floats: np.ndarray) -> np.ndarray:
        """Float samples in [0, 1] -> this file's integer samples, rounded as :func:`write_image` does."""
        return to_uint16(floats) if self.sixteen else to_uint8(floats)

    def __enter__(self) -> ImageStreamWriter:
        try:
            self._atomic = atomic_output(self.path, overwrite=self._overwrite)
            tmp = self._atomic.__enter__()
            try:
                self._fh = open(tmp, "wb")
                channels = (1 if self.gray else 3) + (1 if self.alpha else 0)
                encoder = PngStreamEncoder if self.format == "png" else TiffStreamEncoder
                self._encoder = encoder(self._fh, self.width, self.height, channels, 16 if self.sixteen else 8,
                                        icc_profile=self._icc, exif=self._exif, compress_level=self._level)
            except BaseException as exc:
                self._close_file()
                self._atomic.__exit__(type(exc), exc, exc.__traceback__)
                raise
        except Exception as exc:
            raise ImageWriteError.about(self.path, _cause(exc, self.path)) from exc
        self._thread = threading.Thread(target=self._encode_loop, name=f"dipnet-{self.format}-writer",
                                        daemon=True)
        self._thread.start()
        return self

    def write(self, color: np.ndarray, alpha: np.ndarray | None = None) -> None:
        """Queue the next rows: ``color`` n x W x C (C = 1 or 3) or n x W; ``alpha`` n x W with alpha."""
        c = np.asarray(color)
        if c.ndim == 2:
            c = c[:, :, None]
        want_c = 1 if self.gray else 3
        if c.ndim != 3 or c.shape[1:] != (self.width, want_c) or c.dtype != self.dtype:
            raise ValueError(f"expected {self.dtype} colour rows n x {self.width} x {want_c}, "
                             f"got {c.dtype} {c.shape}")
        if (alpha is not None) != self.alpha:
            raise ValueError("alpha rows must be given exactly when the image has alpha")
        if alpha is not None and (alpha.shape != c.shape[:2] or alpha.dtype != self.dtype):
            raise ValueError(f"expected {self.dtype} alpha rows {c.shape[:2]}, "
                             f"got {alpha.dtype} {alpha.shape}")
        while True:
            self._raise_encoder_error()
            try:
                self._queue.put((c, alpha), timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise_encoder_error(self) -> None:
        if self._error is not None:
            exc = self._error
            raise ImageWriteError.about(self.path, _cause(exc, self.path)) from exc

    def _encode_loop(self) -> None:
        assert self._encoder is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._aborted.is_set() or self._error is not None:
                continue  # drain, so that a blocked write() returns
            color, alpha = item
            try:
                rows = color if alpha is None else np.concatenate([color, alpha[:, :, None]], axis=2)
                self._encoder.write(rows)
            except BaseException as exc:  # surfaced on the caller's thread by write() / __exit__
                self._error = exc

    def _stop_thread(self) -> None:
        if self._thread is None:
            return
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join()
        self._thread = None

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def abort(self) -> None:
        """Stop encoding and delete the temporary file (also what an exception in the ``with`` body does)."""
        self.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._atomic is None:
            return
        atomic, self._atomic = self._atomic, None
        if exc_type is not None:
            self._aborted.set()
        try:
            self._stop_thread()
            if exc_type is None:
                self._raise_encoder_error()
                assert self._encoder is not None
                try:
                    self._encoder.close()
                    self._close_file()
                except MemoryError:
                    raise ImageWriteError.about(self.path, "not enough memory to encode it") from None
                except Exception as err:
                    raise ImageWriteError.about(self.path, _cause(err, self.path)) from err
        except BaseException as err:
            self._close_file()
            atomic.__exit__(type(err), err, err.__traceback__)
            raise
        self._close_file()
        if exc_type is not None:
            atomic.__exit__(exc_type, exc, tb)  # deletes the temporary file
            return
        try:
            atomic.__exit__(None, None, None)  # fsync and rename into place
        except Exception as err:
            raise ImageWriteError.about(self.path, _cause(err, self.path)) from err


def open_image_stream(
    path: str | os.PathLike[str],
    like: ImageData,
    width: int,
    height: int,
    *,
    format: str | None = None,
    overwrite: bool = True,
    protect: Iterable[str | os.PathLike[str]] = (),
    png_compression: int = DEFAULT_PNG_COMPRESSION,
) -> ImageStreamWriter | None:
    """A band-wise writer for a ``width`` x ``height`` image laid out like ``like``; None if it cannot stream.

    ``like`` gives everything but the pixels: gray or colour, alpha, bit depth,
    EXIF and ICC profile, treated exactly as :func:`write_image` treats them,
    so a streamed file is byte for byte the file ``write_image`` would write for
    the same pixels. PNG and TIFF stream (:data:`STREAMABLE_FORMATS`; not
    16-bit gray+alpha TIFF, which is stored as RGBA); other formats return None
    and the caller uses :func:`write_image`. The same
    checks as :func:`write_image` (protected inputs, ``overwrite``) raise
    :class:`ImageWriteError` here or when the ``with`` block is entered.
    """
    p = Path(path)
    level = check_compress_level(png_compression)
    fmt = _resolve_format(p, format)
    sixteen = like.bit_depth == 16
    if fmt not in STREAMABLE_FORMATS or (fmt == "tiff" and sixteen and like.is_gray and like.has_alpha):
        return None
    _check_protected(p, protect)
    gray = like.is_gray  # PNG and TIFF store gray as gray (see _planes)
    exif, icc = _metadata(like, fmt, gray)
    return ImageStreamWriter(p, int(width), int(height), gray=gray, alpha=like.has_alpha, sixteen=sixteen,
                             exif=exif, icc=icc, level=level if fmt == "png" else TIFF_COMPRESS_LEVEL,
                             overwrite=overwrite, fmt=fmt)
