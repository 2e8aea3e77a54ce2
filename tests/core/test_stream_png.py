"""Streaming PNG and TIFF output: the row-streaming encoders, the band-wise upscaler and the file they make.

The upscaling tests run the shipped built-in model (real weights, fp32 torch) on small textured
images with small tiles, so an image has several tile rows, i.e. several bands.
"""

from __future__ import annotations

import errno
import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.cancel import Cancelled, CancelToken
from dipnet_core.engine import (
    OutputBand,
    TiledUpscaler,
    create_backend,
    upscale_image,
    upscale_image_to_file,
)
from dipnet_core.io import (
    DEFAULT_PNG_COMPRESSION,
    ImageData,
    ImageWriteError,
    open_image_stream,
    read_image,
    stream_png,
    to_uint8,
    to_uint16,
    write_image,
)
from dipnet_core.io.metadata import exif_for_writing
from dipnet_core.io import tiffwrite
from dipnet_core.io.stream_png import PngStreamEncoder, write_png
from dipnet_core.io.tiffwrite import TiffStreamEncoder, write_tiff
from dipnet_core.models import load_model
from dipnet_core.resources import builtin_model_path

# Small tiles with a small overlap (cores of ~32 px): a 100 px tall image has three tile rows. Both
# paths run the same plan, so the overlap's effect on accuracy does not matter here.
TILE, OVERLAP = 64, 16


def _icc(space: bytes) -> bytes:
    """A minimal ICC header: enough for the colour-space check and for a byte-exact round trip."""
    head = bytearray(128)
    head[0:4] = (128).to_bytes(4, "big")
    head[16:20] = space
    head[36:40] = b"acsp"
    return bytes(head)


def _exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "DIPNet test camera"  # Make
    exif[0x0112] = 6  # orientation: must come out as 1
    return b"Exif\x00\x00" + exif.tobytes()


@pytest.fixture(scope="module")
def upscaler() -> TiledUpscaler:
    path = builtin_model_path()
    if path is None:
        pytest.skip("the built-in model is not shipped in this checkout")
    backend = create_backend(load_model(path), backend="torch", device="cpu", precision="fp32")
    up = TiledUpscaler(backend, tile_size=TILE, overlap=OVERLAP)
    yield up
    up.close()


@pytest.fixture(scope="module")
def photo(textured: Callable[[int, int, int], np.ndarray]) -> np.ndarray:
    return textured(100, 120, 3).astype(np.float32) / 255.0


def _decoded(path: Path) -> tuple[np.ndarray, dict[str, object]]:
    """Pixels as stored (8- or 16-bit integers, via the project's reader) and the metadata a reader sees."""
    img = read_image(path)
    planes = img.pixels if img.alpha is None else np.concatenate([img.pixels, img.alpha[:, :, None]], axis=2)
    samples = to_uint16(planes) if img.bit_depth == 16 else to_uint8(planes)
    with Image.open(path) as im:
        exif = im.getexif()
        meta = {"icc": im.info.get("icc_profile"), "make": exif.get(0x010F), "orientation": exif.get(0x0112),
                "mode": im.mode, "size": im.size}
    return samples, meta


# ------------------------------------------------------------------------------------------ encoder


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("level", [0, 1, 6])
def test_encoder_round_trips_every_layout_in_uneven_bands(tmp_path: Path, channels: int, bits: int,
                                                           level: int) -> None:
    rng = np.random.default_rng(channels * 100 + bits + level)
    dtype = np.uint8 if bits == 8 else np.uint16
    samples = rng.integers(0, np.iinfo(dtype).max, (41, 37, channels), dtype=dtype, endpoint=True)
    samples[:, 10:20] = samples[:, 9:10]  # flat runs, as in real images
    path = tmp_path / "x.png"
    with open(path, "wb") as fh:
        enc = PngStreamEncoder(fh, 37, 41, channels, bits, compress_level=level)
        for a, b in ((0, 1), (1, 17), (17, 18), (18, 41)):
            enc.write(samples[a:b])
        enc.close()
    got, meta = _decoded(path)
    assert meta["size"] == (37, 41)
    np.testing.assert_array_equal(got, samples)


def test_encoder_checks_rows_and_types() -> None:
    enc = PngStreamEncoder(io.BytesIO(), 8, 4, 3)
    with pytest.raises(ValueError, match="uint8 rows"):
        enc.write(np.zeros((2, 8, 3), np.uint16))
    with pytest.raises(ValueError, match="n x 8 x 3"):
        enc.write(np.zeros((2, 9, 3), np.uint8))
    enc.write(np.zeros((3, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="more rows"):
        enc.write(np.zeros((2, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="3 of 4 rows"):
        enc.close()
    with pytest.raises(ValueError, match="0..9"):
        PngStreamEncoder(io.BytesIO(), 8, 4, 3, compress_level=10)


@pytest.mark.parametrize("channels, bits", [(1, 8), (2, 8), (3, 8), (4, 8), (1, 16), (3, 16), (4, 16)])
def test_tiff_encoder_round_trips_in_bands_that_cross_strips(tmp_path: Path, monkeypatch, channels: int,
                                                            bits: int) -> None:
    dtype = np.uint8 if bits == 8 else np.uint16
    # Five rows per strip, so the bands below start and end inside strips and one strip spans three bands.
    monkeypatch.setattr(tiffwrite, "_STRIP_BYTES", 5 * 37 * channels * np.dtype(dtype).itemsize)
    rng = np.random.default_rng(channels * 10 + bits)
    samples = rng.integers(0, np.iinfo(dtype).max, (41, 37, channels), dtype=dtype, endpoint=True)
    path = tmp_path / "x.tif"
    with open(path, "wb") as fh:
        enc = TiffStreamEncoder(fh, 37, 41, channels, bits, icc_profile=_icc(b"RGB " if channels > 2 else b"GRAY"))
        for a, b in ((0, 1), (1, 12), (12, 13), (13, 14), (14, 41)):
            enc.write(samples[a:b])
        enc.close()
    one_shot = io.BytesIO()
    write_tiff(one_shot, samples, icc_profile=_icc(b"RGB " if channels > 2 else b"GRAY"))
    assert path.read_bytes() == one_shot.getvalue()
    with Image.open(path) as im:
        assert im.tag_v2[278] == 5 and len(im.tag_v2[273]) == 9  # 41 rows in strips of 5
    got, meta = _decoded(path)
    assert meta["size"] == (37, 41)
    np.testing.assert_array_equal(got, samples)


def test_tiff_encoder_checks_rows_and_layouts() -> None:
    enc = TiffStreamEncoder(io.BytesIO(), 8, 4, 3)
    with pytest.raises(ValueError, match="uint8 rows"):
        enc.write(np.zeros((2, 8, 3), np.uint16))
    enc.write(np.zeros((3, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="more rows"):
        enc.write(np.zeros((2, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="3 of 4 rows"):
        enc.close()
    with pytest.raises(ValueError, match=r"gray\+alpha"):
        TiffStreamEncoder(io.BytesIO(), 8, 4, 2, 16)


def test_compression_levels_trade_size_and_keep_pixels(tmp_path: Path, photo: np.ndarray) -> None:
    img = ImageData(photo)
    sizes = {}
    for level in (0, 1, 9):
        path = write_image(tmp_path / f"l{level}.png", img, png_compression=level)
        sizes[level] = path.stat().st_size
        np.testing.assert_array_equal(_decoded(path)[0], to_uint8(photo))
    assert sizes[9] < sizes[1] < sizes[0]
    assert DEFAULT_PNG_COMPRESSION == 1
    assert write_image(tmp_path / "d.png", img).read_bytes() == (tmp_path / "l1.png").read_bytes()
    with pytest.raises(ValueError, match="0..9"):
        write_image(tmp_path / "bad.png", img, png_compression=-1)


def test_one_shot_png_keeps_icc_and_exif_like_pillow(tmp_path: Path, photo: np.ndarray) -> None:
    img = ImageData(photo, icc_profile=_icc(b"RGB "), exif=_exif())
    ours = write_image(tmp_path / "ours.png", img)
    pillow = tmp_path / "pillow.png"
    # What the old writer did: Pillow's save with the cleaned EXIF (orientation 1).
    Image.fromarray(to_uint8(photo)).save(pillow, icc_profile=img.icc_profile, exif=exif_for_writing(_exif()))
    got, meta = _decoded(ours)
    ref, ref_meta = _decoded(pillow)
    np.testing.assert_array_equal(got, ref)
    assert meta["icc"] == ref_meta["icc"] == img.icc_profile
    assert meta["make"] == ref_meta["make"] == "DIPNet test camera"
    assert meta["orientation"] == 1  # the pixels are upright


# --------------------------------------------------------------------------------- streamed upscale


LAYOUTS = {
    "rgb": lambda x: ImageData(x, icc_profile=_icc(b"RGB "), exif=_exif()),
    "gray": lambda x: ImageData(x[:, :, :1], icc_profile=_icc(b"GRAY")),
    "rgba": lambda x: ImageData(x, alpha=x[:, :, 1], exif=_exif()),
    "rgb16": lambda x: ImageData(x, bit_depth=16, icc_profile=_icc(b"RGB ")),
    "gray-alpha16": lambda x: ImageData(x[:, :, :1], alpha=x[:, :, 2], bit_depth=16),
    "tiny": lambda x: ImageData(x[:9, :11]),  # below the model's minimum size: one padded band
}


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_streamed_file_is_the_one_shot_file(tmp_path: Path, upscaler: TiledUpscaler, photo: np.ndarray,
                                            layout: str, suffix: str) -> None:
    img = LAYOUTS[layout](photo)
    up = upscale_image(img, upscaler)
    one_shot = write_image(tmp_path / f"one{suffix}", up)
    # 16-bit gray+alpha TIFF is stored as RGBA by the one-shot writer alone (it does not stream).
    streams = not (suffix == ".tif" and layout == "gray-alpha16")
    assert (open_image_stream(tmp_path / f"probe{suffix}", img, 8, 8) is not None) == streams
    events: list[object] = []
    streamed = upscale_image_to_file(img, upscaler, tmp_path / f"streamed{suffix}", progress=events.append)

    got, meta = _decoded(streamed)
    ref, ref_meta = _decoded(one_shot)
    assert meta == ref_meta
    np.testing.assert_array_equal(got, ref)
    # Independent of any encoder: the stored samples are the float result rounded as write_image rounds it.
    planes = up.pixels if up.alpha is None else np.concatenate([up.pixels, up.alpha[:, :, None]], axis=2)
    if not streams:
        planes = planes[:, :, [0, 0, 0, 1]]
    np.testing.assert_array_equal(got, to_uint16(planes) if img.bit_depth == 16 else to_uint8(planes))
    # Same encoder, same settings: the same bytes.
    assert streamed.read_bytes() == one_shot.read_bytes()
    assert events and events[-1].done == events[-1].total  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"one{suffix}", f"streamed{suffix}"]


def test_bands_come_top_to_bottom_and_match_the_whole_result(upscaler: TiledUpscaler,
                                                             photo: np.ndarray) -> None:
    whole = upscaler.upscale(photo)
    bands = [e for e in upscaler.iter_bands([(photo, "rgb")], quantize=to_uint8) if isinstance(e, OutputBand)]
    assert len(bands) >= 3  # the test image really has several tile rows
    assert [b.y0 for b in bands] == list(np.cumsum([0] + [b.height for b in bands[:-1]]))
    assert bands[-1].y0 + bands[-1].height == whole.shape[0]
    np.testing.assert_array_equal(np.concatenate([b.planes[0] for b in bands]), to_uint8(whole))
    assert max(b.height for b in bands) < whole.shape[0] / 2


def test_non_streaming_formats_take_the_one_shot_path(tmp_path: Path, upscaler: TiledUpscaler,
                                                      photo: np.ndarray) -> None:
    img = ImageData(photo)
    assert open_image_stream(tmp_path / "x.jpg", img, 10, 10) is None
    out = upscale_image_to_file(img, upscaler, tmp_path / "x.jpg", quality=90)
    ref = write_image(tmp_path / "ref.jpg", upscale_image(img, upscaler), quality=90)
    assert out.read_bytes() == ref.read_bytes()


def test_cancel_mid_stream_publishes_nothing(tmp_path: Path, upscaler: TiledUpscaler,
                                             photo: np.ndarray) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")
    token = CancelToken()

    def cancel_after_a_few_tiles(event: object) -> None:
        if event.done == 5:  # type: ignore[attr-defined]
            token.cancel()

    with pytest.raises(Cancelled):
        upscale_image_to_file(ImageData(photo), upscaler, target, cancel=token,
                              progress=cancel_after_a_few_tiles)
    assert target.read_bytes() == b"previous result"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_encoder_failure_names_the_file_and_leaves_no_temp(tmp_path: Path, upscaler: TiledUpscaler,
                                                           photo: np.ndarray, monkeypatch) -> None:
    calls = []

    def disk_full(self: PngStreamEncoder, rows: np.ndarray) -> None:
        calls.append(len(rows))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stream_png.PngStreamEncoder, "write", disk_full)
    target = tmp_path / "out.png"
    with pytest.raises(ImageWriteError, match=r"out\.png.*disk is full"):
        upscale_image_to_file(ImageData(photo), upscaler, target)
    assert calls  # the failure came from the encoder thread
    assert list(tmp_path.iterdir()) == []


def test_stream_refuses_to_overwrite_an_input(tmp_path: Path, upscaler: TiledUpscaler,
                                              photo: np.ndarray) -> None:
    src = write_image(tmp_path / "in.png", ImageData(photo))
    before = src.read_bytes()
    with pytest.raises(ImageWriteError, match="input file"):
        upscale_image_to_file(read_image(src), upscaler, src, protect=[src])
    with pytest.raises(ImageWriteError, match="already exists"):
        upscale_image_to_file(read_image(src), upscaler, src, overwrite=False)
    assert src.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["in.png"]


def test_streamed_write_holds_a_band_not_the_image(tmp_path: Path, upscaler: TiledUpscaler,
                                                   textured: Callable[[int, int, int], np.ndarray]) -> None:
    """tracemalloc sees every numpy buffer (not torch's): the one-shot path holds the whole float32
    output, the streamed one a few uint8 bands of rows plus small per-tile and encoder scratch."""
    h, w = 1000, 120  # tall, so it has many tile rows
    x = textured(h, w, 5).astype(np.float32) / 255.0
    img = ImageData(x)
    tiler = TiledUpscaler(upscaler.backend, tile_size=TILE, overlap=8)
    s = tiler.backend.scale
    row_bytes = s * w * 3
    output_u8 = s * h * row_bytes
    plan = tiler.plan(h, w)
    assert len({b.core_y0 for b in plan}) >= 20
    band_u8 = s * max(b.core_y1 - b.core_y0 for b in plan) * row_bytes

    tracemalloc.start()
    try:
        write_image(tmp_path / "one.png", upscale_image(img, tiler))
        one_shot_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        upscale_image_to_file(img, tiler, tmp_path / "streamed.png")
        streamed_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        tiler.close()
    assert one_shot_peak > 4 * output_u8  # the float32 output alone is 4x the file's samples
    # At most five bands (two being computed, one handed over, one queued, one being encoded) plus
    # each tile worker's float scratch (two copies of a tile, here) and about 1 MB of encoder state.
    tile_float = (s * TILE) ** 2 * 3 * 4
    assert streamed_peak < 5 * band_u8 + tiler.workers * 2 * tile_float + (1 << 20)
    assert streamed_peak < min(output_u8, one_shot_peak / 4)
    assert (tmp_path / "one.png").read_bytes() == (tmp_path / "streamed.png").read_bytes()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_stream_writer_memory_is_bands_not_the_image(tmp_path: Path, suffix: str) -> None:
    """An 8 MP image written in 100-row bands made on the fly: the writer keeps a few bands at most."""
    h, w, band = 4000, 2000, 100

    def rows(y0: int) -> np.ndarray:
        yy = np.arange(y0, y0 + band, dtype=np.int32)[:, None]
        xx = np.arange(w, dtype=np.int32)[None, :]
        out = np.empty((band, w, 3), np.uint8)
        out[:, :, 0], out[:, :, 1], out[:, :, 2] = (xx + yy) % 256, (xx * 3) % 256, (yy // 7) % 256
        return out

    band_bytes = band * w * 3
    tracemalloc.start()
    try:
        stream = open_image_stream(tmp_path / f"big{suffix}", ImageData(np.zeros((1, 1, 3), np.float32)), w, h)
        assert stream is not None
        with stream:
            for y0 in range(0, h, band):
                stream.write(rows(y0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * band_bytes + (2 << 20)  # queue + encoder + the test's own band and temporaries
    assert peak < h * w * 3 / 4
    got = np.asarray(Image.open(tmp_path / f"big{suffix}"))
    np.testing.assert_array_equal(got[1500:1600], rows(1500))
    np.testing.assert_array_equal(got[-band:], rows(h - band))


def test_write_png_helper_matches_the_encoder(tmp_path: Path) -> None:
    samples = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    a, b = io.BytesIO(), io.BytesIO()
    write_png(a, samples)
    enc = PngStreamEncoder(b, 6, 5, 3)
    enc.write(samples[:2])
    enc.write(samples[2:])
    enc.close()
    assert a.getvalue() == b.getvalue()
