"""Which formats the installed Pillow can read/write, and naming file contents."""

from __future__ import annotations

import os
import struct
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

# Formats read but never written: the output of an upscale is a still image in one of the above.
_READ_ONLY_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "gif": (".gif",),
    "tga": (".tga",),
}

_FORMAT_ALIASES = {"jpg": "jpeg", "jpe": "jpeg", "jfif": "jpeg", "tif": "tiff"}


def _pillow_format(ext: str) -> str | None:
    Image.init()
    return Image.registered_extensions().get(ext)


def _available(kind: Mapping[str, object], candidates: Mapping[str, tuple[str, ...]]
               ) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for name, exts in candidates.items():
        usable = tuple(e for e in exts if (fmt := _pillow_format(e)) is not None and fmt in kind)
        if usable:
            found[name] = usable
    return found


Image.init()
_READABLE = _available(Image.OPEN, {**_CANDIDATE_EXTENSIONS, **_READ_ONLY_EXTENSIONS})
_WRITABLE = _available(Image.SAVE, _CANDIDATE_EXTENSIONS)

#: Pillow format ids whose decoders may run: pass as ``Image.open(path, formats=DECODER_FORMATS)``.
#: Without it Pillow tries every plugin it has, and some start external programs on untrusted
#: files (EPS runs Ghostscript) or parse rarely used, little-tested formats. TGA goes last: its
#: header has no magic number, so it must not shadow a format that has one.
DECODER_FORMATS: tuple[str, ...] = tuple(sorted(
    {fmt for exts in _READABLE.values() for e in exts if (fmt := _pillow_format(e)) is not None},
    key=lambda f: (f == "TGA", f),
))

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
    (b"GIF87a", 0, "a GIF image", "gif"),
    (b"GIF89a", 0, "a GIF image", "gif"),
    (b"II*\x00", 0, "a TIFF image", "tiff"),
    (b"MM\x00*", 0, "a TIFF image", "tiff"),
    (b"BM", 0, "a BMP image", "bmp"),
    (b"\xff\x0a", 0, "a JPEG XL image", "jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", 0, "a JPEG XL image", "jxl"),
    (b"%PDF", 0, "a PDF document", None),
    (b"%!PS", 0, "a PostScript document", None),
    (b"\xc5\xd0\xd3\xc6", 0, "a PostScript document", None),
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


def _header_size(head: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) as the file header states them, for the formats whose header is fixed."""
    try:
        if fmt == "png" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return int(w), int(h)
        if fmt == "gif":
            w, h = struct.unpack("<HH", head[6:10])
            return int(w), int(h)
        if fmt == "bmp" and len(head) >= 26:
            w, h = struct.unpack("<ii", head[18:26])
            return abs(int(w)), abs(int(h))
    except struct.error:
        return None
    return None


def describe_content(head: bytes, path: Path) -> str:
    """Plain-words reason why a file that Pillow could not identify is not usable.

    ``head`` is the first few KiB of the file.
    """
    sniffed = _sniff(head)
    if sniffed is not None:
        desc, fmt = sniffed
        if fmt is not None and fmt in _READABLE:
            size = _header_size(head, fmt)
            if size is not None and 0 in size:
                empty = "zero width" if size[0] == 0 else "zero height"
                return f"image has {empty}: its header says {size[0]}x{size[1]} pixels, so it holds no pixels"
            return f"content starts like {desc} but is damaged or truncated"
        return f"content is {desc}, which this program cannot decode"
    what = _describe_text(head) or f"unrecognised binary data (starts with {head[:8].hex(' ')})"
    ext = path.suffix.lower()
    if ext:
        return f"is not an image (extension {ext} but content is {what})"
    return f"is not an image (content is {what})"
