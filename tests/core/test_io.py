"""Tests for dipnet_core.io, on tiny real files made in tmp_path (no mocks of the codecs)."""

from __future__ import annotations

import os
import re
import stat
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from dipnet_core.io import (
    SUPPORTED_READ_EXTENSIONS,
    SUPPORTED_WRITE_FORMATS,
    ImageData,
    ImageReadError,
    ImageWriteError,
    atomic_output,
    atomic_write_bytes,
    get_max_image_pixels,
    is_image_path,
    read_image,
    set_max_image_pixels,
    to_uint8,
    to_uint16,
    write_image,
)

RNG = np.random.default_rng(1234)
ORIENTATION, MAKE, SOFTWARE, EXIF_IFD, DATETIME_ORIGINAL = 0x0112, 0x010F, 0x0131, 0x8769, 0x9003


def rand_u8(h: int, w: int, c: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, c), dtype=np.uint8)


def rand_u16(h: int, w: int, c: int) -> np.ndarray:
    a = RNG.integers(0, 65536, (h, w, c), dtype=np.uint16)
    a.flat[:2] = (0, 65535)  # make sure both extremes survive
    return a


def smooth_rgb(h: int = 16, w: int = 24) -> np.ndarray:
    """A gentle gradient, so lossy codecs stay close to it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 0.5 + 0.0 * x], axis=2).astype(np.float32)


def img_from_u8(a: np.ndarray, alpha: np.ndarray | None = None) -> ImageData:
    return ImageData(pixels=a.astype(np.float32) / 255, alpha=alpha)


def sample_exif(orientation: int | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE] = "DIPNetTestMake"
    exif[SOFTWARE] = "DIPNetTestSoftware"
    if orientation is not None:
        exif[ORIENTATION] = orientation
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2024:05:06 07:08:09"
    return exif


def srgb_profile() -> bytes:
    try:
        from PIL import ImageCms

        return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    except ImportError:  # pragma: no cover - littleCMS missing
        pytest.skip("ImageCms not available")


def png_bytes(samples: np.ndarray, color_type: int) -> bytes:
    """A minimal PNG (filter 0 rows) written independently of the code under test."""
    h, w = samples.shape[:2]
    depth = 16 if samples.dtype == np.uint16 else 8
    dt = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + samples[y].astype(dt).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def png_ihdr(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG header, to check what was really stored."""
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return data[24], data[25]


@pytest.fixture
def bomb_limit():
    old = get_max_image_pixels()
    yield
    set_max_image_pixels(old)


# ----------------------------------------------------------------------------- round trips

LOSSLESS = ["png", "tiff", "bmp"]
LOSSY = [("jpeg", 0.03), ("webp", 0.03)] + ([("avif", 0.05)] if "avif" in SUPPORTED_WRITE_FORMATS else [])


@pytest.mark.parametrize("fmt", LOSSLESS)
def test_lossless_round_trip_is_exact(tmp_path: Path, fmt: str) -> None:
    a = rand_u8(5, 7, 3)
    out = write_image(tmp_path / f"x.{fmt}", img_from_u8(a))
    back = read_image(out)
    assert back.pixels.dtype == np.float32 and back.pixels.shape == (5, 7, 3)
    assert back.bit_depth == 8 and not back.has_alpha and (back.height, back.width) == (5, 7)
    assert np.array_equal(to_uint8(back.pixels), a)
    assert back.path == out and back.format == Image.registered_extensions()[f".{fmt}"]


def test_webp_quality_100_is_lossless(tmp_path: Path) -> None:
    a = rand_u8(5, 7, 3)
    back = read_image(write_image(tmp_path / "x.webp", img_from_u8(a), quality=100))
    assert np.array_equal(to_uint8(back.pixels), a)


@pytest.mark.parametrize(("fmt", "tol"), LOSSY)
def test_lossy_round_trip_is_close(tmp_path: Path, fmt: str, tol: float) -> None:
    src = smooth_rgb()
    back = read_image(write_image(tmp_path / f"x.{fmt}", ImageData(src), quality=90))
    assert back.pixels.shape == src.shape
    assert float(np.abs(back.pixels - src).mean()) < tol


def test_format_argument_overrides_extension(tmp_path: Path) -> None:
    out = write_image(tmp_path / "x.dat", img_from_u8(rand_u8(4, 4, 3)), format="JPG")
    with Image.open(out) as im:
        assert im.format == "JPEG"


def test_unknown_format_raises(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match="x.xyz"):
        write_image(tmp_path / "x.xyz", img_from_u8(rand_u8(4, 4, 3)))
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- EXIF and ICC


def test_exif_orientation_6_read_rotated_and_written_as_1(tmp_path: Path) -> None:
    a = rand_u8(2, 3, 3)  # stored 3 wide, 2 high; displayed rotated 90 degrees clockwise
    src = tmp_path / "rot.png"
    Image.fromarray(a).save(src, exif=sample_exif(orientation=6).tobytes())

    img = read_image(src)
    assert (img.height, img.width) == (3, 2)
    assert np.array_equal(to_uint8(img.pixels), np.rot90(a, -1))
    exif = Image.Exif()
    exif.load(img.exif)
    assert exif[ORIENTATION] == 1 and exif[MAKE] == "DIPNetTestMake"

    for fmt in ("jpg", "png", "webp", "tiff"):
        out = write_image(tmp_path / f"out.{fmt}", img)
        with Image.open(out) as im:
            written = im.getexif()
            assert im.size == (2, 3)
            assert written.get(ORIENTATION) == 1
            assert written[MAKE] == "DIPNetTestMake" and written[SOFTWARE] == "DIPNetTestSoftware"
            assert written.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] == "2024:05:06 07:08:09"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    a = rand_u8(3, 5, 3)
    src = tmp_path / "o.png"
    Image.fromarray(a).save(src, exif=sample_exif(orientation).tobytes())
    with Image.open(src) as im:
        expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(to_uint8(read_image(src).pixels), expected)


def test_icc_profile_kept(tmp_path: Path) -> None:
    icc = srgb_profile()
    src = tmp_path / "icc.png"
    Image.fromarray(rand_u8(4, 5, 3)).save(src, icc_profile=icc)
    img = read_image(src)
    assert img.icc_profile == icc
    for fmt in ("png", "jpg", "webp", "tiff"):
        assert read_image(write_image(tmp_path / f"o.{fmt}", img)).icc_profile == icc
    img16 = ImageData(rand_u16(3, 4, 3) / np.float32(65535), bit_depth=16, icc_profile=icc)
    for fmt in ("png", "tiff"):
        assert read_image(write_image(tmp_path / f"o16.{fmt}", img16)).icc_profile == icc


def test_rgb_profile_dropped_for_gray_output(tmp_path: Path) -> None:
    img = ImageData(rand_u8(4, 5, 1) / np.float32(255), icc_profile=srgb_profile())
    back = read_image(write_image(tmp_path / "g.png", img))
    assert back.is_gray and back.icc_profile is None


# ----------------------------------------------------------------------------- 16-bit


def test_16bit_gray_png_exact(tmp_path: Path) -> None:
    a = rand_u16(4, 6, 1)[:, :, 0]
    src = tmp_path / "g16.png"
    Image.fromarray(a).save(src)  # Pillow writes I;16 gray PNG itself
    img = read_image(src)
    assert img.bit_depth == 16 and img.is_gray and img.mode.startswith("I;16")
    assert np.array_equal(to_uint16(img.pixels)[:, :, 0], a)
    for fmt in ("png", "tiff"):
        out = write_image(tmp_path / f"o.{fmt}", img)
        with Image.open(out) as im:
            assert im.mode.startswith("I;16")
            assert np.array_equal(np.asarray(im).astype(np.uint16), a)
        back = read_image(out)
        assert back.bit_depth == 16 and back.is_gray
        assert np.array_equal(to_uint16(back.pixels)[:, :, 0], a)


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_colour_round_trip_exact(tmp_path: Path, fmt: str, channels: int) -> None:
    a = rand_u16(5, 7, channels)
    alpha = a[:, :, 3] / np.float32(65535) if channels == 4 else None
    img = ImageData(a[:, :, :3] / np.float32(65535), alpha=alpha, bit_depth=16)
    out = write_image(tmp_path / f"c16.{fmt}", img)
    if fmt == "png":
        assert png_ihdr(out) == (16, 2 if channels == 3 else 6)
    else:
        with Image.open(out) as im:
            assert im.tag_v2[258] == (16,) * channels
    back = read_image(out)
    assert back.bit_depth == 16 and back.pixels.shape == (5, 7, 3)
    assert np.array_equal(to_uint16(back.pixels), a[:, :, :3])
    if channels == 4:
        assert np.array_equal(to_uint16(back.alpha), a[:, :, 3])
    else:
        assert back.alpha is None


@pytest.mark.parametrize(("channels", "color_type"), [(3, 2), (4, 6), (2, 4)])
def test_reads_foreign_16bit_png_exactly(tmp_path: Path, channels: int, color_type: int) -> None:
    a = rand_u16(4, 5, channels)
    src = tmp_path / "foreign16.png"
    src.write_bytes(png_bytes(a, color_type))
    img = read_image(src)
    assert img.bit_depth == 16
    color = a[:, :, :-1] if channels in (2, 4) else a
    assert np.array_equal(to_uint16(img.pixels), color)
    if channels in (2, 4):
        assert np.array_equal(to_uint16(img.alpha), a[:, :, -1])


def test_16bit_gray_alpha_png_round_trip(tmp_path: Path) -> None:
    a = rand_u16(4, 5, 2)
    img = ImageData(a[:, :, :1] / np.float32(65535), alpha=a[:, :, 1] / np.float32(65535), bit_depth=16)
    out = write_image(tmp_path / "la16.png", img)
    assert png_ihdr(out) == (16, 4)
    back = read_image(out)
    assert back.is_gray and back.bit_depth == 16
    assert np.array_equal(to_uint16(back.pixels)[:, :, 0], a[:, :, 0])
    assert np.array_equal(to_uint16(back.alpha), a[:, :, 1])


def test_reads_uncompressed_16bit_rgb_tiff_exactly(tmp_path: Path) -> None:
    # Written by hand (one raw strip) so Pillow takes its non-libtiff path.
    a = rand_u16(3, 4, 3)
    h, w, _ = a.shape
    pixels = a.astype("<u2").tobytes()
    entries = [  # tag, type, count, value (inline)
        (256, 4, 1, w), (257, 4, 1, h), (258, 3, 3, 0), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, 8), (277, 3, 1, 3), (278, 4, 1, h), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
    ]
    ifd_at = 8 + len(pixels)
    bps_at = ifd_at + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        # Little-endian: a SHORT left-justified in the 4-byte field packs like a LONG.
        ifd += struct.pack("<HHII", tag, typ, count, bps_at if tag == 258 else value)
    ifd += struct.pack("<I", 0) + struct.pack("<3H", 16, 16, 16)
    src = tmp_path / "raw16.tif"
    src.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + pixels + ifd)
    img = read_image(src)
    assert img.bit_depth == 16 and np.array_equal(to_uint16(img.pixels), a)


def test_16bit_gray_alpha_tiff_is_stored_as_rgba(tmp_path: Path) -> None:
    a = rand_u16(3, 4, 2)
    img = ImageData(a[:, :, :1] / np.float32(65535), alpha=a[:, :, 1] / np.float32(65535), bit_depth=16)
    back = read_image(write_image(tmp_path / "la16.tif", img))
    assert back.bit_depth == 16 and back.mode == "RGBA"
    assert np.array_equal(to_uint16(back.pixels), np.repeat(a[:, :, :1], 3, axis=2))
    assert np.array_equal(to_uint16(back.alpha), a[:, :, 1])


def test_16bit_png_keeps_exif(tmp_path: Path) -> None:
    img = ImageData(rand_u16(3, 4, 3) / np.float32(65535), bit_depth=16, exif=sample_exif(8).tobytes())
    for fmt in ("png", "tiff"):
        out = write_image(tmp_path / f"e16.{fmt}", img)
        with Image.open(out) as im:
            exif = im.getexif()
            assert exif.get(ORIENTATION) == 1 and exif[MAKE] == "DIPNetTestMake"
            assert exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] == "2024:05:06 07:08:09"
        back = read_image(out)
        assert (back.height, back.width) == (3, 4)  # orientation 8 was not applied twice


def test_16bit_to_8bit_format_rounds(tmp_path: Path) -> None:
    a = rand_u16(3, 4, 3)
    back = read_image(write_image(tmp_path / "x.bmp", ImageData(a / np.float32(65535), bit_depth=16)))
    assert back.bit_depth == 8
    assert np.array_equal(to_uint8(back.pixels), to_uint8(a / np.float32(65535)))


# ----------------------------------------------------------------------------- modes


@pytest.mark.parametrize("fmt", ["png", "jpg", "tiff", "bmp"])
def test_gray_stays_gray(tmp_path: Path, fmt: str) -> None:
    a = rand_u8(4, 6, 1)
    out = write_image(tmp_path / f"g.{fmt}", img_from_u8(a))
    with Image.open(out) as im:
        assert im.mode == "L"
    back = read_image(out)
    assert back.is_gray and back.pixels.shape == (4, 6, 1)
    if fmt != "jpg":
        assert np.array_equal(to_uint8(back.pixels), a)


@pytest.mark.parametrize("fmt", ["png", "tiff", "webp"])
def test_rgba_alpha_kept(tmp_path: Path, fmt: str) -> None:
    a = rand_u8(4, 6, 4)
    img = img_from_u8(a[:, :, :3], alpha=a[:, :, 3] / np.float32(255))
    back = read_image(write_image(tmp_path / f"a.{fmt}", img, quality=100))
    assert back.has_alpha and back.mode == "RGBA"
    assert np.array_equal(to_uint8(back.alpha), a[:, :, 3])
    # WebP lossless may change colour under fully transparent pixels; elsewhere exact.
    visible = a[:, :, 3] > 0 if fmt == "webp" else np.ones(a.shape[:2], bool)
    assert np.array_equal(to_uint8(back.pixels)[visible], a[:, :, :3][visible])


@pytest.mark.parametrize("fmt", ["jpg", "bmp"])
def test_alpha_flattened_onto_white_without_alpha_support(tmp_path: Path, fmt: str) -> None:
    px = np.zeros((8, 8, 3), np.float32)
    alpha = np.zeros((8, 8), np.float32)
    alpha[:, 4:] = 1.0
    back = read_image(write_image(tmp_path / f"f.{fmt}", ImageData(px, alpha=alpha)))
    assert not back.has_alpha
    assert back.pixels[:, :2].min() > 0.95  # transparent -> white
    assert back.pixels[:, 6:].max() < 0.05  # opaque black stays black


def test_la_png(tmp_path: Path) -> None:
    a = rand_u8(4, 5, 2)
    src = tmp_path / "la.png"
    Image.fromarray(a).save(src)
    img = read_image(src)
    assert img.is_gray and img.has_alpha and img.mode == "LA"
    assert np.array_equal(to_uint8(img.pixels)[:, :, 0], a[:, :, 0])
    assert np.array_equal(to_uint8(img.alpha), a[:, :, 1])
    with Image.open(write_image(tmp_path / "la_out.png", img)) as im:
        assert im.mode == "LA" and np.array_equal(np.asarray(im), a)


def test_la_tiff_8bit(tmp_path: Path) -> None:
    a = rand_u8(3, 4, 2)
    img = img_from_u8(a[:, :, :1], alpha=a[:, :, 1] / np.float32(255))
    back = read_image(write_image(tmp_path / "la.tif", img))
    assert back.is_gray and back.mode == "LA" and np.array_equal(to_uint8(back.alpha), a[:, :, 1])


def test_rgb_colour_key_transparency(tmp_path: Path) -> None:
    a = rand_u8(3, 4, 3)
    a[1, 2] = (10, 20, 30)
    src = tmp_path / "key.png"
    Image.fromarray(a).save(src, transparency=(10, 20, 30))
    img = read_image(src)
    assert img.has_alpha and img.alpha[1, 2] == 0 and img.alpha.sum() == a.shape[0] * a.shape[1] - 1


def test_palette_with_transparency_gives_rgba(tmp_path: Path) -> None:
    idx = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    pal = Image.fromarray(idx)
    pal = pal.convert("P")  # keep indices as they are
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (253 * 3))
    src = tmp_path / "pal.png"
    pal.save(src, transparency=1)
    img = read_image(src)
    assert img.mode == "P" and img.has_alpha and not img.is_gray
    assert np.array_equal(to_uint8(img.alpha), np.where(idx == 1, 0, 255))
    assert np.array_equal(to_uint8(img.pixels)[0, 0], [255, 0, 0])

    pal.save(src)  # same palette without transparency
    img = read_image(src)
    assert not img.has_alpha and np.array_equal(to_uint8(img.pixels)[1, 0], [0, 0, 255])


def test_cmyk_jpeg_reads_as_rgb(tmp_path: Path) -> None:
    src = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 6), (255, 0, 0, 0)).save(src, quality=95)  # pure cyan
    img = read_image(src)
    assert img.mode == "CMYK" and img.pixels.shape == (6, 8, 3) and img.icc_profile is None
    assert np.allclose(img.pixels.mean(axis=(0, 1)), [0, 1, 1], atol=0.05)


def test_one_bit_and_float_and_int_modes(tmp_path: Path) -> None:
    bits = RNG.integers(0, 2, (4, 6)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "b.png")
    img = read_image(tmp_path / "b.png")
    assert img.is_gray and img.bit_depth == 8 and np.array_equal(img.pixels[:, :, 0], bits.astype(np.float32))

    f = RNG.random((4, 6)).astype(np.float32)
    Image.fromarray(f).save(tmp_path / "f.tif")
    img = read_image(tmp_path / "f.tif")
    assert img.is_gray and img.bit_depth == 16 and np.allclose(img.pixels[:, :, 0], f)

    i = RNG.integers(0, 65536, (4, 6)).astype(np.int32)
    Image.fromarray(i).save(tmp_path / "i.tif")
    img = read_image(tmp_path / "i.tif")
    assert img.bit_depth == 16 and np.array_equal(to_uint16(img.pixels)[:, :, 0], i)


# ----------------------------------------------------------------------------- bad input


def _valid_png(tmp_path: Path) -> bytes:
    Image.fromarray(rand_u8(24, 24, 3)).save(tmp_path / "ok.png")
    return (tmp_path / "ok.png").read_bytes()


def _valid_jpeg(tmp_path: Path) -> bytes:
    Image.fromarray(rand_u8(24, 24, 3)).save(tmp_path / "ok.jpg")
    return (tmp_path / "ok.jpg").read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("empty.png", lambda d: b"", "empty (0 bytes)"),
        ("half.png", lambda d: _valid_png(d)[: len(_valid_png(d)) // 2], "truncated"),
        ("noiend.png", lambda d: _valid_png(d)[:-12], "truncated"),
        ("half.jpg", lambda d: _valid_jpeg(d)[: len(_valid_jpeg(d)) // 2], "truncated"),
        # The end marker and the last bytes of scan data. A JPEG missing only its 2-byte EOI decodes
        # completely for ~6 % of contents (libjpeg already has every scanline), so that alone is no
        # loss to report; cutting into the scan data always is (measured on 300 random crops).
        ("noeoi.jpg", lambda d: _valid_jpeg(d)[:-4], "truncated"),
        ("notes.png", lambda d: b"hi\n", "is not an image (extension .png but content is plain text)"),
        ("page.jpg", lambda d: b"<!DOCTYPE html><html><body>404</body></html>", "HTML"),
        ("damaged.png", lambda d: _valid_png(d)[:40], "PNG"),
    ],
)
def test_bad_files_raise_read_error_naming_the_file(tmp_path: Path, name: str, make, words: str) -> None:
    bad = tmp_path / "bad" / name
    bad.parent.mkdir()
    bad.write_bytes(make(tmp_path))
    with pytest.raises(ImageReadError) as info:
        read_image(bad)
    assert name in str(info.value) and words in str(info.value)
    assert info.value.path == bad


def test_directory_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageReadError, match=r"folder\.png'.*directory"):
        read_image(tmp_path / "folder.png")
    with pytest.raises(ImageReadError, match=r"missing\.png'.*not found"):
        read_image(tmp_path / "missing.png")


# Root reads any file whatever its mode, and CI runs as root: there the read runs in a child
# process that drops to an unprivileged user after importing, so the file mode really applies.
_READ_AS_NOBODY = """
import os, sys
from PIL import Image
from dipnet_core.io import ImageReadError, read_image
Image.init()  # load Pillow's plugins while still allowed to
os.chdir(sys.argv[1])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    read_image(sys.argv[2])
except ImageReadError as exc:
    print(exc)
    sys.exit(0)
print("read succeeded")
sys.exit(1)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no POSIX file modes")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.png"
    p.write_bytes(_valid_png(tmp_path))
    p.chmod(0)
    try:
        if os.geteuid() != 0:
            with pytest.raises(ImageReadError, match=r"secret\.png'.*permission denied"):
                read_image(p)
        else:
            repo = Path(__file__).resolve().parents[2]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
            child = subprocess.run([sys.executable, "-c", _READ_AS_NOBODY, str(tmp_path), p.name],
                                   capture_output=True, text=True, env=env, timeout=120)
            assert child.returncode == 0, child.stdout + child.stderr
            assert re.search(r"secret\.png'.*permission denied", child.stdout), child.stdout
    finally:
        p.chmod(0o600)


@pytest.mark.usefixtures("bomb_limit")
@pytest.mark.parametrize("limit", [700, 100])  # in Pillow's warning band, and far above 2x
def test_decompression_bomb(tmp_path: Path, limit: int) -> None:
    p = tmp_path / "big.png"
    Image.new("RGB", (30, 30)).save(p)  # 900 pixels
    set_max_image_pixels(limit)
    assert get_max_image_pixels() == limit
    with pytest.raises(ImageReadError) as info:
        read_image(p)
    msg = str(info.value)
    assert "big.png" in msg and "decompression-bomb limit" in msg and "set_max_image_pixels" in msg
    assert "900 pixels" in msg
    set_max_image_pixels(None)
    assert read_image(p).width == 30


def test_set_max_image_pixels_validates() -> None:
    with pytest.raises(ValueError):
        set_max_image_pixels(0)


# ----------------------------------------------------------------------------- atomic writes


def test_failed_encode_leaves_previous_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    # JPEG goes through Pillow's save (PNG has its own encoder: tests/core/test_stream_png.py).
    target = tmp_path / "out.jpg"
    write_image(target, img_from_u8(rand_u8(4, 4, 3)))
    before = target.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as fh:
            fh.write(b"\x89PNG partial")
        raise OSError("simulated encoder crash")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ImageWriteError, match=r"out\.jpg'.*simulated encoder crash"):
        write_image(target, img_from_u8(rand_u8(4, 4, 3)))
    with pytest.raises(ImageWriteError):
        write_image(tmp_path / "new.jpg", img_from_u8(rand_u8(4, 4, 3)))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jpg"]


def test_protected_input_is_never_overwritten(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    write_image(src, img_from_u8(rand_u8(4, 4, 3)))
    before = src.read_bytes()
    other_spelling = tmp_path / "sub" / ".." / "in.png"
    (tmp_path / "sub").mkdir()
    for target in (src, other_spelling):
        with pytest.raises(ImageWriteError, match=r"in\.png'.*input file"):
            write_image(target, img_from_u8(rand_u8(4, 4, 3)), protect=[src])
    assert src.read_bytes() == before


def test_overwrite_false_and_parent_creation(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.png"
    write_image(target, img_from_u8(rand_u8(4, 4, 3)), overwrite=False)
    before = target.read_bytes()
    with pytest.raises(ImageWriteError, match="already exists"):
        write_image(target, img_from_u8(rand_u8(4, 4, 3)), overwrite=False)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def test_atomic_helpers(tmp_path: Path) -> None:
    target = tmp_path / "d" / "model.bin"
    assert atomic_write_bytes(target, b"one") == target
    assert target.read_bytes() == b"one"
    if sys.platform != "win32":  # not mkstemp's private 0600, but what open() would give
        umask = os.umask(0o022)
        os.umask(umask)
        assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask

    with atomic_output(target, ".onnx") as tmp:
        assert tmp.parent == target.parent and tmp.name.endswith(".onnx") and tmp != target
        tmp.write_bytes(b"two")
    assert target.read_bytes() == b"two"

    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("export failed")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["model.bin"]

    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"three", overwrite=False)
    assert target.read_bytes() == b"two"


# ----------------------------------------------------------------------------- helpers


def test_to_uint_round_and_clip() -> None:
    x = np.array([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 0.5, 1.0, 1.5, np.nan], np.float32)
    assert to_uint8(x).tolist() == [0, 0, 0, 1, 128, 255, 255, 0]
    assert to_uint16(x).tolist()[:2] == [0, 0] and to_uint16(x).tolist()[-3:] == [65535, 65535, 0]
    v = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(to_uint16(v / np.float32(65535)), v)


def test_supported_lists_and_is_image_path() -> None:
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"} <= SUPPORTED_READ_EXTENSIONS
    assert {"png", "jpeg", "webp", "tiff", "bmp"} <= SUPPORTED_WRITE_FORMATS
    assert is_image_path("a/B.PNG") and is_image_path(Path("x.jpeg")) and not is_image_path("notes.txt")


def test_image_data_validation() -> None:
    img = ImageData(np.zeros((2, 3), np.float64))
    assert img.pixels.shape == (2, 3, 1) and img.pixels.dtype == np.float32 and img.mode == "L"
    assert ImageData(np.zeros((2, 3, 3)), alpha=np.ones((2, 3))).mode == "RGBA"
    with pytest.raises(ValueError):
        ImageData(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError):
        ImageData(np.zeros((2, 3, 3)), alpha=np.ones((3, 2)))


def test_quantization_in_row_bands_matches_the_whole_image_formula(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saving converts large images a band of rows at a time (bounded memory); the result must not change."""
    import dipnet_core.io.convert as convert

    rng = np.random.default_rng(3)
    a = rng.random((37, 23, 3), dtype=np.float32) * 1.2 - 0.1
    a[0, 0, 0], a[5, 5, 1], a[36, 22, 2] = np.nan, np.inf, -np.inf
    for maxval, fn in ((255, to_uint8), (65535, to_uint16)):
        expected = np.clip(np.rint(np.nan_to_num(a * np.float32(maxval), nan=0.0, posinf=maxval, neginf=0.0)),
                           0, maxval)
        for band_pixels in (convert._QUANTIZE_BAND_PIXELS, 23 * 3 * 4, 1):  # whole, 4 rows, 1 row per band
            monkeypatch.setattr(convert, "_QUANTIZE_BAND_PIXELS", band_pixels)
            out = fn(a)
            assert out.dtype == (np.uint8 if maxval == 255 else np.uint16)
            np.testing.assert_array_equal(out, expected.astype(out.dtype))
    assert to_uint8(np.float32(0.5)) == 128 and to_uint8(np.zeros((0, 4, 3), np.float32)).shape == (0, 4, 3)
