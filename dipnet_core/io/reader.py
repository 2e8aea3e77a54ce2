"""``read_image``: any supported file -> upright float32 :class:`ImageData`."""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .convert import from_uint
from .data import ImageData
from .errors import ImageReadError
from .formats import describe_content
from .highbit import read_sixteen_bit, sixteen_bit_plan
from .integrity import png_complete
from .limits import bomb_checked_open
from .metadata import apply_orientation, exif_from_image, icc_color_space, icc_fits

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 4096
_I16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _special_file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a special file"


def file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be an image file, judged by ``stat`` alone: the file is never opened.

    None for a regular file (or a link to one) and for a folder (callers decide about
    those). A FIFO or a device would block or never end if opened; a symlink loop or
    a dangling symlink has no file behind it. A missing or unreadable path also gives
    None: :func:`read_image` names those problems itself.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (the link leads back to itself), not an image file"
        if os.path.islink(path):
            try:
                target = os.readlink(path)
            except OSError:
                target = "?"
            return f"is a broken symlink (its target '{target}' does not exist)"
        return None
    if stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
        return None
    return f"is {_special_file_kind(st.st_mode)}, not a regular file; it was not opened"


def _check_file(path: Path) -> None:
    problem = file_problem(path)
    if problem is not None:
        raise ImageReadError.about(path, problem)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageReadError.about(path, "file not found") from None
    except NotADirectoryError:
        raise ImageReadError.about(path, "file not found (a folder in the path is a file)") from None
    except PermissionError:
        raise ImageReadError.about(path, "permission denied") from None
    except OSError as exc:
        raise ImageReadError.about(path, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError.about(path, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):  # changed since file_problem() looked
        raise ImageReadError.about(path, f"is {_special_file_kind(st.st_mode)}, not a regular file")
    if st.st_size == 0:
        raise ImageReadError.about(path, "file is empty (0 bytes)")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(_SNIFF_BYTES)
    except OSError:
        return b""


def _alpha_from_key(arr: np.ndarray, key: object) -> np.ndarray | None:
    """Alpha for PNG's tRNS colour key: fully transparent where the pixel equals it."""
    if isinstance(key, int) and arr.ndim == 2:
        return (arr != key).astype(np.float32)
    if isinstance(key, tuple) and arr.ndim == 3 and len(key) == arr.shape[2]:
        return np.any(arr != np.asarray(key, dtype=arr.dtype), axis=2).astype(np.float32)
    return None


def _float_gray(im: Image.Image) -> np.ndarray:
    a = np.nan_to_num(np.asarray(im, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    # Float images carry no scale; [0, 1] is the usual convention, larger maxima
    # are taken as 8- or 16-bit data stored as float.
    top = float(a.max()) if a.size else 0.0
    if top > 255.0:
        a = a / 65535.0
    elif top > 1.0:
        a = a / 255.0
    return np.clip(a, 0.0, 1.0)


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """Convert CMYK to RGB; a CMYK profile cannot describe RGB pixels, so it never survives.

    With littleCMS available the embedded CMYK profile is used for a proper
    conversion to sRGB (and the sRGB profile is attached); otherwise Pillow's
    naive formula is used and no profile is kept.
    """
    if icc_color_space(icc) == b"CMYK":
        try:
            from PIL import ImageCms

            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))  # type: ignore[arg-type]
            dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            rgb = ImageCms.profileToProfile(im, src, dst, outputMode="RGB")
            if rgb is not None:
                return rgb, dst.tobytes()
        except Exception as exc:  # missing littleCMS or a broken profile
            logger.info("CMYK profile not usable, converting without it: %s", exc)
    return im.convert("RGB"), None


def _decode(
    im: Image.Image, path: Path, icc: bytes | None
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """-> (colour uint/float array HxW[xC], alpha or None, maxval, icc).

    ``maxval`` is 255 or 65535 for integer data, 0 when the colour array is float.
    """
    plan = sixteen_bit_plan(im)
    if plan is not None:
        samples = read_sixteen_bit(im, path, plan)
        if samples.shape[2] in (2, 4):
            return samples[..., :-1], samples[..., -1].astype(np.float32) / 65535.0, 65535, icc
        alpha = _alpha_from_key(samples, im.info.get("transparency"))
        return samples, alpha, 65535, icc

    im.load()
    mode = im.mode
    if mode in _I16_MODES or mode == "I":
        arr = np.asarray(im)
        if mode == "I":
            arr = np.clip(arr, 0, 65535)
        arr = arr.astype(np.uint16)
        return arr, _alpha_from_key(arr, im.info.get("transparency")), 65535, icc
    if mode == "F":
        return _float_gray(im), None, 0, icc
    if mode == "CMYK":
        im, icc = _cmyk_to_rgb(im, icc)
    elif mode == "1":
        im = im.convert("L")
    elif mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and "A" in im.palette.mode)
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("La", "PA"):
        im = im.convert("LA" if mode == "La" else "RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = mode.endswith(("A", "a")) or "transparency" in im.info
        try:
            im = im.convert("RGBA" if has_alpha else "RGB")
        except (ValueError, OSError) as exc:
            cause = f"unsupported pixel format (Pillow mode {mode}): {exc}"
            raise ImageReadError.about(path, cause) from None

    arr = np.asarray(im)
    if im.mode in ("LA", "RGBA"):
        return arr[..., :-1], from_uint(arr[..., -1], 255), 255, icc
    return arr, _alpha_from_key(arr, im.info.get("transparency")), 255, icc


def frame_count(im: Image.Image) -> int:
    """Frames or pages in the file (1 for a still image); counted after the first frame is decoded."""
    if im.format == "MPO" or not getattr(im, "is_animated", False):
        return 1  # MPO: a camera JPEG's further pictures are previews or depth maps, not frames
    try:
        return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # a damaged later frame: there are several, how many is unknown  # noqa: BLE001
        return 2


def _read_open(im: Image.Image, path: Path) -> ImageData:
    fmt = im.format
    source_mode = im.mode
    color, alpha, maxval, icc = _decode(im, path, im.info.get("icc_profile") or None)
    frames = frame_count(im)
    if fmt == "PNG" and not png_complete(path):
        raise ImageReadError.about(path, "file is truncated (the PNG ends before its IEND chunk)")
    exif, orientation = exif_from_image(im)

    pixels = from_uint(color, maxval) if maxval else np.asarray(color, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    gray = pixels.shape[2] == 1
    if icc is not None and not icc_fits(icc, gray):
        # e.g. the CMYK profile of a converted image, or an RGB profile in a gray file.
        icc = None
    return ImageData(
        pixels=apply_orientation(pixels, orientation),
        alpha=apply_orientation(alpha, orientation) if alpha is not None else None,
        bit_depth=16 if maxval != 255 else 8,
        mode=source_mode,
        exif=exif,
        icc_profile=icc,
        format=fmt,
        path=path,
        frames=frames,
    )


def _damage_cause(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if "truncat" in text.lower():
        return f"file is truncated ({text})"
    return f"file is damaged or not a valid image ({text})"


def read_image(path: str | os.PathLike[str]) -> ImageData:
    """Decode an image file into an upright float32 :class:`ImageData`.

    EXIF orientation is applied to the pixels (as ``ImageOps.exif_transpose``)
    and the stored EXIF says orientation 1. The ICC profile is kept. 16-bit
    files (PNG, TIFF, 16/32-bit integer and float gray) keep full precision and
    give ``bit_depth=16``. CMYK becomes RGB, palette images RGB(A), 1-bit
    images gray. Any failure - missing, empty, truncated, damaged, not an image,
    over the decompression-bomb limit - raises :class:`ImageReadError`.

    Truncation detection relies on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    being False (Pillow's default) for JPEG, WebP and AVIF.
    """
    p = Path(path)
    _check_file(p)
    try:
        with bomb_checked_open(p) as im:
            return _read_open(im, p)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError.about(p, describe_content(_head(p), p)) from None
    except FileNotFoundError:
        raise ImageReadError.about(p, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError.about(p, "is a directory, not a file") from None
    except PermissionError:
        raise ImageReadError.about(p, "permission denied") from None
    except MemoryError:
        raise ImageReadError.about(p, "not enough memory to decode it") from None
    except Exception as exc:  # Pillow signals damage with many exception types
        raise ImageReadError.about(p, _damage_cause(exc)) from exc
