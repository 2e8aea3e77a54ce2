"""The x8 self-ensemble ("best quality"): API, tiles, progress, cancel, files, CLI; the shipped model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_testutil import run_cli

from dipnet_core.cancel import Cancelled, CancelToken
from dipnet_core.engine import (
    TiledUpscaler,
    TileProgress,
    create_backend,
    upscale_image,
    upscale_image_to_file,
)
from dipnet_core.engine.ensemble import DIHEDRAL, dihedral, dihedral_inverse
from dipnet_core.io import ImageData, read_image, write_image


@pytest.fixture(scope="module")
def backend(builtin_model):  # -> Backend: deterministic fp32 torch on the CPU
    return create_backend(builtin_model, backend="torch", device="cpu", precision="fp32")


@pytest.fixture
def pixels(photo: Callable[..., np.ndarray]) -> np.ndarray:
    return (photo("baby")[200:230, 180:224] / 255.0).astype(np.float32)  # 44x30, not square


@pytest.fixture
def big(photo: Callable[..., np.ndarray]) -> np.ndarray:
    """120x90: over the smallest tile (112 px), so TILE splits it, in a different plan once turned."""
    return (photo("baby")[150:240, 160:280] / 255.0).astype(np.float32)


TILE = 112


def _manual(up: TiledUpscaler, x: np.ndarray) -> np.ndarray:
    """The definition: upscale each transformed image, turn each result back, average."""
    return np.mean([dihedral_inverse(up.upscale(np.ascontiguousarray(dihedral(x, t))), t) for t in DIHEDRAL],
                   axis=0, dtype=np.float64)


@pytest.mark.parametrize("tiled", [False, True])  # whole image; grid-aware tiles of the transformed images
def test_equals_the_mean_of_eight_transformed_runs(backend, pixels: np.ndarray, big: np.ndarray,
                                                   tiled: bool) -> None:
    up = TiledUpscaler(backend, tile_size=TILE if tiled else None, workers=1)
    if tiled:
        pixels = big
        assert len(up.plan(90, 120)) == 2 and len(up.plan(120, 90)) == 2
    out = upscale_image(ImageData(pixels=pixels), up, self_ensemble=True).pixels
    assert out.shape == (4 * pixels.shape[0], 4 * pixels.shape[1], 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, _manual(up, pixels), atol=1e-6, rtol=0)
    plain = up.upscale(pixels)
    assert np.abs(out - plain).max() > 0.01  # a real change, not one pass relabelled


@pytest.mark.parametrize("t", [(0, True), (1, False)])  # a mirror, a quarter turn
def test_transformed_input_gives_the_transformed_result(backend, pixels: np.ndarray,
                                                        t: tuple[int, bool]) -> None:
    up = TiledUpscaler(backend, workers=1)
    out = upscale_image(ImageData(pixels=pixels), up, self_ensemble=True).pixels
    moved = np.ascontiguousarray(dihedral(pixels, t))
    out_moved = upscale_image(ImageData(pixels=moved), up, self_ensemble=True).pixels
    np.testing.assert_allclose(out_moved, dihedral(out, t), atol=1e-5, rtol=0)
    # A single pass is not invariant; this is what the ensemble buys.
    assert np.abs(up.upscale(moved) - dihedral(up.upscale(pixels), t)).max() > 0.01


def test_progress_counts_every_pass_and_paints_nothing(backend, big: np.ndarray) -> None:
    up = TiledUpscaler(backend, tile_size=TILE, workers=2)
    per_pass = len(up.plan(90, 120)) + len(up.plan(120, 90))  # quarter turns swap the sides
    events: list[TileProgress] = []
    upscale_image(ImageData(pixels=big), up, progress=events.append, self_ensemble=True)
    assert len(events) == 4 * per_pass and [e.done for e in events] == list(range(1, 4 * per_pass + 1))
    assert {e.total for e in events} == {4 * per_pass}
    assert all(e.core is None and e.output is None for e in events)  # a pass's tile is not final pixels
    assert events[-1].eta_s == 0.0
    up.close()


def test_cancel_stops_between_tiles(backend, big: np.ndarray) -> None:
    up = TiledUpscaler(backend, tile_size=TILE, workers=1)
    token = CancelToken()
    seen: list[TileProgress] = []

    def cancel_in_third_pass(event: TileProgress) -> None:
        seen.append(event)
        if event.done == 2 * event.total // 8 + 1:
            token.cancel()

    with pytest.raises(Cancelled):
        upscale_image(ImageData(pixels=big), up, cancel=token, progress=cancel_in_third_pass,
                      self_ensemble=True)
    assert seen[0].total == 16 and len(seen) == 5  # the first tile of the third pass, then nothing


def test_grey_and_alpha_keep_their_layout(backend, pixels: np.ndarray) -> None:
    up = TiledUpscaler(backend, workers=1)
    pixels = pixels[:24, :30]  # small: 32 passes in this test
    grey = pixels.mean(axis=2, keepdims=True)
    alpha = np.clip(pixels[..., 1] * 1.5, 0, 1)
    img = ImageData(pixels=grey, alpha=alpha)
    events: list[TileProgress] = []
    out = upscale_image(img, up, progress=events.append, self_ensemble=True)
    assert out.pixels.shape == (96, 120, 1) and out.alpha is not None and out.alpha.shape == (96, 120)
    assert len(events) == 16 and {e.phase for e in events} == {"rgb", "alpha"}
    np.testing.assert_allclose(out.alpha, _manual(up, alpha), atol=1e-6, rtol=0)
    np.testing.assert_allclose(out.pixels, _manual(up, grey), atol=1e-6, rtol=0)


def test_to_file_writes_the_ensemble_result(backend, pixels: np.ndarray, tmp_path: Path) -> None:
    up = TiledUpscaler(backend, workers=1)
    img = ImageData(pixels=pixels)
    expected = write_image(tmp_path / "expected.png", upscale_image(img, up, self_ensemble=True))
    events: list[TileProgress] = []
    got = upscale_image_to_file(img, up, tmp_path / "got.png", progress=events.append, self_ensemble=True)
    assert got.read_bytes() == expected.read_bytes()
    assert events[-1].done == events[-1].total and events[-1].total >= 8
    plain = upscale_image_to_file(img, up, tmp_path / "plain.png")  # the streamed plain path differs
    assert plain.read_bytes() != expected.read_bytes()


def test_cli_upscale_and_batch(capsys: pytest.CaptureFixture[str], tmp_path: Path, builtin_weights_path: Path,
                               backend, small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("photo.png", size=(40, 36))
    engine = ("--model", builtin_weights_path, "--backend", "torch", "--device", "cpu", "--precision", "fp32")
    rc, out, _ = run_cli(capsys, "upscale", src, "-o", tmp_path / "best.png", "--self-ensemble", *engine)
    assert rc == 0 and "x8 self-ensemble" in out
    rc, out, _ = run_cli(capsys, "upscale", src, "-o", tmp_path / "plain.png", *engine)
    assert rc == 0 and "x8 self-ensemble" not in out
    expected = upscale_image(read_image(src), TiledUpscaler(backend), self_ensemble=True)
    best = read_image(tmp_path / "best.png").pixels
    np.testing.assert_array_equal(np.round(best * 255), np.round(np.clip(expected.pixels, 0, 1) * 255))
    assert not np.array_equal(best, read_image(tmp_path / "plain.png").pixels)

    folder = tmp_path / "in"
    small_rgb_image("a.png", size=(32, 24), folder=folder)
    rc, _, err = run_cli(capsys, "batch", folder, "-o", tmp_path / "out", "--self-ensemble", *engine)
    assert rc == 0 and "x8 self-ensemble" in err
    report = json.loads((tmp_path / "out" / "dipnet-batch-report.json").read_text())
    assert report["self_ensemble"] is True and report["counts"]["done"] == 1

    rc, out, _ = run_cli(capsys, "upscale", "--help")
    assert rc == 0 and "--self-ensemble" in out and "8x slower" in " ".join(out.split())
