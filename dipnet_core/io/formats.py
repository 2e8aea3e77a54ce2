"""Which formats the installed Pillow can read/write, and naming file contents."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from PIL import Image

# Formats the app offers, with the extensions users give them. Whether each is
# really available depends on how Pillow was built (AVIF) or on plugins (JXL).
_CANDIDATE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"),
    "webp": (".webp",),
    "tiff": (".tif", ".tiff"),
    "bmp": (".bmp",),
    "avif": (".avif",),
    "jxl": (".jxl",),
}

_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "tif": "tiff"}


def _pillow_format(ext: str) -> str | None:
    Image.init()
    return Image.registered_extensions().get(ext)


def _available(kind: Mapping[str, object]) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, exts in _CANDIDATE_EXTENSIONS.items():
        usable = tuple(e for e in exts if (fmt := _pillow_format(e)) is not None and fmt in kind)
        if usable:
            found[name] = usable
    return found


Image.init()
_READABLE = _available(Image.OPEN)
_WRITABLE = _available(Image.SAVE)

#: Lower-case extensions (with dot) that :func:`read_image` is known to handle.
SUPPORTED_READ_EXTENSIONS: frozenset[str] = frozenset(e for exts in _READABLE.values() for e in exts)
#: Format names accepted by :func:`write_image` (``format=`` also takes aliases: jpg, tif).
SUPPORTED_WRITE_FORMATS: frozenset[str] = frozenset(_WRITABLE)
#: Extensions :func:`write_image` can infer a format from.
SUPPORTED_WRITE_EXTENSIONS: frozenset[str] = frozenset(e for exts in _WRITABLE.values() for e in exts)


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """True if the file name has an extension :func:`read_image` supports (content is not checked)."""
    return Path(path).suffix.lower() in SUPPORTED_READ_EXTENSIONS


def default_extension(fmt: str) -> str:
    """Canonical extension for a write format name or alias, e.g. ``"jpeg" -> ".jpg"``."""
    name = normalize_format(fmt)
    return {"jpeg": ".jpg", "tiff": ".tif"}.get(name, f".{name}")


def normalize_format(fmt: str) -> str:
    """``"JPG"``, ``".jpg"``, ``"jpeg"`` -> ``"jpeg"``; unknown names are returned lower-cased."""
    name = fmt.strip().lower().lstrip(".")
    return _FORMAT_ALIASES.get(name, name)


def pillow_write_format(name: str) -> str:
    """Pillow's format id (``"JPEG"``) for a normalized write format name."""
    fmt = _pillow_format(_WRITABLE[name][0])
    assert fmt is not None
    return fmt


# (magic bytes, offset, description, our format name or None); descriptions finish
# the sentence "content is ...".
_SIGNATURES: tuple[tuple[bytes, int, str, str | None], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "a PNG image", "png"),
    (b"\xff\xd8\xff", 0, "a JPEG image", "jpeg"),
    (b"GIF87a", 0, "a GIF image", None),
    (b"GIF89a", 0, "a GIF image", None),
    (b"II*\x00", 0, "a TIFF image", "tiff"),
    (b"MM\x00*", 0, "a TIFF image", "tiff"),
    (b"BM", 0, "a BMP image", "bmp"),
    (b"\xff\x0a", 0, "a JPEG XL image", "jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "a JPEG XL image", "jxl"),
    (b"%PDF", 0, "a PDF document", None),
    (b"PK\x03\x04", 0, "a ZIP archive (or an office document)", None),
    (b"\x1f\x8b", 0, "gzip-compressed data", None),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive", None),
)
_FTYP_BRANDS = {
    b"avif": ("an AVIF image", "avif"),
    b"avis": ("an AVIF image", "avif"),
    b"heic": ("a HEIC image", None),
    b"heix": ("a HEIC image", None),
    b"mif1": ("a HEIF image", None),
    b"msf1": ("a HEIF image", None),
}


def _sniff(head: bytes) -> tuple[str, str | None] | None:
    for magic, offset, desc, fmt in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return desc, fmt
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image", "webp"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], ("an ISO media file (video or HEIF)", None))
    return None


def _describe_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The sample may end inside a multi-byte character.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not text or any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        return None
    low = text.lstrip("\ufeff \t\r\n").lower()
    if low.startswith(("<!doctype html", "<html")):
        return "an HTML page (perhaps a web page saved instead of the image)"
    if "<svg" in low[:1000]:
        return "an SVG drawing (vector images are not supported)"
    if low.startswith("<?xml"):
        return "an XML document"
    if low.startswith(("{", "[")):
        return "JSON or other text"
    return "plain text"


def describe_content(head: bytes, path: Path) -> str:
    """Plain-words reason why a file that Pillow could not identify is not usable.

    ``head`` is the first few KiB of the file.
    """
    sniffed = _sniff(head)
    if sniffed is not None:
        desc, fmt = sniffed
        if fmt is not None and fmt in _READABLE:
            return f"content starts like {desc} but is damaged or truncated"
        return f"content is {desc}, which this program cannot decode"
    what = _describe_text(head) or f"unrecognised binary data (starts with {head[:8].hex(' ')})"
    ext = path.suffix.lower()
    if ext:
        return f"is not an image (extension {ext} but content is {what})"
    return f"is not an image (content is {what})"
