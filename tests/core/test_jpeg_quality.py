"""JPEG quality from quantization tables and the noise estimate, on images encoded here."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.io.jpeg_quality import (
    estimate_damage,
    estimate_jpeg_quality,
    estimate_noise_sigma,
    ijg_tables,
)


def _smooth(h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32)
    planes = [np.asarray(Image.fromarray(small[..., c]).resize((w, h), Image.Resampling.BICUBIC)) for c in range(3)]
    return np.clip(np.stack(planes, 2), 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, path: Path | None = None, **save: object) -> Image.Image:
    target: io.BytesIO | Path = path if path is not None else io.BytesIO()
    Image.fromarray(img).save(target, format="JPEG", **save)
    if isinstance(target, io.BytesIO):
        target.seek(0)
    return Image.open(target)


def test_quality_of_pillow_jpegs_is_recovered_exactly() -> None:
    img = _smooth(32, 32)
    found = {}
    for quality in range(1, 101):
        with _jpeg(img, quality=quality) as im:
            est = estimate_jpeg_quality(im)
        assert est is not None and est.exact
        found[quality] = est.quality
    assert found == {q: q for q in range(1, 101)}


def test_grey_jpeg_and_file_paths(tmp_path: Path) -> None:
    grey = _smooth()[..., 0]
    path = tmp_path / "grey.jpg"
    Image.fromarray(grey).save(path, quality=42)
    est = estimate_jpeg_quality(path)
    assert est is not None and est.quality == 42
    png = tmp_path / "x.png"
    Image.fromarray(grey).save(png)
    assert estimate_jpeg_quality(png) is None
    with pytest.raises(OSError, match="missing.jpg"):
        estimate_jpeg_quality(tmp_path / "missing.jpg")


def test_non_ijg_tables_get_the_nearest_quality_not_exact() -> None:
    luma, chroma = ijg_tables(60)
    custom = [[int(v) for v in np.clip(np.round(t * 1.15), 1, 255)] for t in (luma, chroma)]
    with _jpeg(_smooth(), qtables=custom) as im:
        est = estimate_jpeg_quality(im)
    assert est is not None and not est.exact
    assert 50 <= est.quality < 60  # coarser than 60's tables: a slightly lower quality


def test_ijg_tables_follow_the_standard_scaling() -> None:
    luma50, chroma50 = ijg_tables(50)
    assert luma50[0] == 16 and chroma50[0] == 17 and chroma50[-1] == 99  # the Annex K tables themselves
    assert (ijg_tables(100)[0] == 1).all()
    assert (ijg_tables(25)[0] >= ijg_tables(75)[0]).all()
    with pytest.raises(ValueError, match="1..100"):
        ijg_tables(0)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate_reads_the_added_sigma(sigma: float) -> None:
    rng = np.random.default_rng(int(sigma))
    clean = _smooth(192, 192)
    noisy = np.clip(np.round(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)
    assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.15)
    assert estimate_noise_sigma(noisy.astype(np.float32) / 255.0) == pytest.approx(estimate_noise_sigma(noisy))
    assert estimate_noise_sigma(clean) < 1.0


def test_noise_estimate_handles_grey_tiny_and_16_bit() -> None:
    rng = np.random.default_rng(1)
    grey = np.clip(128 + rng.normal(0, 6, (80, 80)), 0, 255).astype(np.uint8)
    assert estimate_noise_sigma(grey) == pytest.approx(6.0, rel=0.15)
    assert estimate_noise_sigma(grey.astype(np.uint16) * 257) == pytest.approx(estimate_noise_sigma(grey))
    assert estimate_noise_sigma(np.zeros((2, 5, 3), np.uint8)) == 0.0
    assert estimate_noise_sigma(grey[:10, :10]) > 0  # smaller than one block: still measured
    # Large images are sampled: 64 of the 25 x 25 blocks still read the same sigma.
    big = np.clip(128 + rng.normal(0, 6, (400, 400, 3)), 0, 255).astype(np.uint8)
    assert estimate_noise_sigma(big, max_blocks=64) == pytest.approx(6.0, rel=0.15)


def test_damage_estimate_suggests_the_photo_model(tmp_path: Path) -> None:
    clean = _smooth(128, 128)
    low, high = tmp_path / "low.jpg", tmp_path / "high.jpg"
    Image.fromarray(clean).save(low, quality=50)
    Image.fromarray(clean).save(high, quality=95)
    d_low = estimate_damage(np.asarray(Image.open(low)), low)
    assert d_low.suggest_photo_model and d_low.jpeg is not None and "quality about 50" in d_low.reason
    d_high = estimate_damage(np.asarray(Image.open(high)), high)
    assert not d_high.suggest_photo_model and d_high.reason == ""
    noisy = np.clip(np.round(clean + np.random.default_rng(0).normal(0, 8, clean.shape)), 0, 255).astype(np.uint8)
    d_noisy = estimate_damage(noisy)
    assert d_noisy.suggest_photo_model and d_noisy.jpeg is None and "noise" in d_noisy.reason
