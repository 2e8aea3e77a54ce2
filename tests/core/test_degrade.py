"""Training degradations: each one's effect is real, the pairs are reproducible, the config and
the teacher's view are wired through."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dipnet_core.resize import bicubic_downscale_uint8
from dipnet_core.train.config import ConfigError, config_from_dict, dumps_toml, load_config, preset
from dipnet_core.train.data import ImageSet, SRCropDataset, scan_images
from dipnet_core.train.degrade import (
    DegradationConfig,
    DegradationPlan,
    Degrader,
    add_gaussian_noise,
    add_poisson_noise,
    blur,
    degrader_for_stage,
    downscale,
    gaussian_kernel,
    jpeg_roundtrip,
)
from dipnet_core.train.teacher_input import clean_lr_from_hr, teacher_input_for


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image (low-frequency field), where JPEG blocking shows clearly."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(30, 225, (h // 16 + 2, w // 16 + 2, 3))
    from PIL import Image

    planes = [np.asarray(Image.fromarray(small[..., c].astype(np.float32)).resize((w, h), Image.Resampling.BICUBIC))
              for c in range(3)]
    return np.clip(np.stack(planes, 2), 0, 255).astype(np.uint8)


def _second_moments(k: np.ndarray) -> np.ndarray:
    r = k.shape[0] // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return np.array([[(k * xx * xx).sum(), (k * xx * yy).sum()], [(k * xx * yy).sum(), (k * yy * yy).sum()]])


# ------------------------------------------------------------------------------------------ kernels + blur


@pytest.mark.parametrize(("sx", "sy", "theta"), [(1.0, None, 0.0), (2.5, 0.6, 0.0), (0.5, 2.0, 1.1), (3.0, 3.0, 0.4)])
def test_kernels_sum_to_one(sx: float, sy: float | None, theta: float) -> None:
    k = gaussian_kernel(21, sx, sy, theta)
    assert k.shape == (21, 21) and k.min() >= 0
    assert k.sum() == pytest.approx(1.0, abs=1e-12)


def test_anisotropic_kernel_is_anisotropic_along_its_angle() -> None:
    iso = np.linalg.eigvalsh(_second_moments(gaussian_kernel(21, 1.5)))
    assert iso[1] / iso[0] == pytest.approx(1.0, abs=1e-6)

    theta = math.pi / 6
    m = _second_moments(gaussian_kernel(21, 3.0, 1.0, theta))
    vals, vecs = np.linalg.eigh(m)
    assert vals[1] / vals[0] == pytest.approx(9.0, rel=0.05)  # (sigma_x / sigma_y)^2
    major = vecs[:, 1]
    assert abs(major @ np.array([math.cos(theta), math.sin(theta)])) == pytest.approx(1.0, abs=1e-3)


def test_blur_removes_high_frequencies_and_keeps_flat_areas() -> None:
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (64, 64, 3)).astype(np.float32)
    k = gaussian_kernel(9, 1.5)

    def hf(img: np.ndarray) -> float:
        lap = 4 * img[1:-1, 1:-1] - img[:-2, 1:-1] - img[2:, 1:-1] - img[1:-1, :-2] - img[1:-1, 2:]
        return float((lap**2).mean())

    blurred = blur(noise, k)
    assert blurred.shape == noise.shape
    assert hf(blurred) < 0.05 * hf(noise)
    flat = np.full((40, 30, 3), 77.0, np.float32)
    np.testing.assert_allclose(blur(flat, gaussian_kernel(21, 3.0, 1.0, 0.7)), 77.0, atol=1e-3)


def test_blur_is_a_convolution_not_a_correlation() -> None:
    img = np.zeros((15, 15, 1), np.float32)
    img[7, 7] = 1.0
    k = np.zeros((3, 3))
    k[0, 2] = 1.0  # out[y, x] = img[y + 1, x - 1] under convolution (a correlation gives the mirror)
    out = blur(img, k)[..., 0]
    assert np.unravel_index(out.argmax(), out.shape) == (6, 8)


# ------------------------------------------------------------------------------------------ downscale


def test_downscale_kernels_differ_but_keep_flat_colour() -> None:
    img = _smooth(64, 48).astype(np.float32)
    outs = {k: downscale(img, 4, k) for k in ("bicubic", "bilinear", "area")}
    for out in outs.values():
        assert out.shape == (16, 12, 3)
    assert np.abs(outs["bicubic"] - outs["area"]).mean() > 0.1
    np.testing.assert_allclose(outs["area"][3, 2], img[12:16, 8:12].mean(axis=(0, 1)), atol=1e-3)
    np.testing.assert_allclose(outs["bicubic"], bicubic_downscale_uint8(img.astype(np.uint8), 4), atol=0.51)
    with pytest.raises(ValueError, match="lanczos"):
        downscale(img, 4, "lanczos")


# ------------------------------------------------------------------------------------------ noise


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_the_asked_sigma(gray: bool) -> None:
    flat = np.full((128, 128, 3), 128.0, np.float32)
    out = add_gaussian_noise(flat, 5.0, gray, np.random.default_rng(1))
    noise = out - flat
    assert noise.std() == pytest.approx(5.0, rel=0.03)
    assert abs(noise.mean()) < 0.1
    spread = np.abs(noise[..., 0] - noise[..., 1]).max()
    assert (spread == 0) if gray else (spread > 1)


def test_poisson_noise_variance_grows_with_intensity() -> None:
    peak = 400.0
    rng = np.random.default_rng(2)
    variances = {}
    for level in (40.0, 160.0):
        flat = np.full((128, 128, 3), level, np.float32)
        noise = (add_poisson_noise(flat, peak, False, rng) - flat) / 255.0
        variances[level] = float(noise.var())
        assert variances[level] == pytest.approx(level / 255.0 / peak, rel=0.06)  # Var = x / peak
    assert variances[160.0] / variances[40.0] == pytest.approx(4.0, rel=0.1)
    gray = add_poisson_noise(np.full((32, 32, 3), 100.0, np.float32), peak, True, rng)
    assert np.array_equal(gray[..., 0], gray[..., 2])


# ------------------------------------------------------------------------------------------ JPEG


def _block_edge_ratio(img: np.ndarray) -> float:
    """Mean |horizontal + vertical step| across 8x8 block boundaries over the mean inside blocks."""
    y = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    on_x, on_y = (np.arange(dx.shape[1]) % 8 == 7), (np.arange(dy.shape[0]) % 8 == 7)
    edge = np.concatenate([dx[:, on_x].ravel(), dy[on_y].ravel()]).mean()
    inside = np.concatenate([dx[:, ~on_x].ravel(), dy[~on_y].ravel()]).mean()
    return float(edge / inside)


def test_jpeg_produces_8x8_block_statistics() -> None:
    img = _smooth(128, 128, 3)
    assert _block_edge_ratio(img) == pytest.approx(1.0, abs=0.1)
    low = jpeg_roundtrip(img, 15)
    assert low.shape == img.shape and low.dtype == np.uint8
    assert _block_edge_ratio(low) > 1.5
    assert _block_edge_ratio(jpeg_roundtrip(img, 15)) > _block_edge_ratio(jpeg_roundtrip(img, 95))


# ------------------------------------------------------------------------------------------ degrader


def test_plan_apply_matches_call_and_clean_plan_is_bicubic() -> None:
    hr = _smooth(64, 64, 5)
    d = Degrader(DegradationConfig(clean_fraction=0.0, second_round_prob=1.0), scale=4)
    a = d(hr, np.random.default_rng(9))
    b = d.apply(hr, d.plan(np.random.default_rng(9)))
    assert a.shape == (16, 16, 3) and np.array_equal(a, b)
    assert np.array_equal(d.apply(hr, DegradationPlan(clean=True)), bicubic_downscale_uint8(hr, 4))
    with pytest.raises(ValueError, match="multiple of scale"):
        d.apply(hr[:62], DegradationPlan(clean=True))


def test_degrader_makes_a_worse_lr_than_bicubic() -> None:
    hr = _smooth(96, 96, 6)
    clean = bicubic_downscale_uint8(hr, 4).astype(np.float64)
    heavy = DegradationConfig(clean_fraction=0.0, blur_prob=1.0, noise_prob=1.0, poisson_prob=0.0,
                              gaussian_sigma=[10.0, 10.0], jpeg_prob=1.0, jpeg_quality=[20, 20])
    lr = Degrader(heavy, 4)(hr, np.random.default_rng(0)).astype(np.float64)
    assert np.sqrt(((lr - clean) ** 2).mean()) > 5.0
    all_clean = Degrader(DegradationConfig(clean_fraction=1.0), 4)
    assert np.array_equal(all_clean(hr, np.random.default_rng(0)), clean.astype(np.uint8))


def test_bad_degradation_config_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="jpeg_quality"):
        Degrader(DegradationConfig(jpeg_quality=[90, 30]), 4)
    with pytest.raises(ValueError, match="teacher_sees"):
        Degrader(DegradationConfig(teacher_sees="both"), 4)
    with pytest.raises(ValueError, match="downscale_kernels"):
        Degrader(DegradationConfig(downscale_kernels=["nearest"]), 4)


def _dataset(root: Path, degrader: Degrader | None, seed: int = 3) -> SRCropDataset:
    paths, _ = scan_images([root])
    return SRCropDataset(ImageSet(paths, 4), lr_patch=16, batch=4, seed=seed, stream=100, degrader=degrader)


def test_degraded_pairs_are_a_function_of_seed_step_and_index(data_dir: Path) -> None:
    degrader = Degrader(DegradationConfig(clean_fraction=0.0, second_round_prob=0.5), 4)
    a, b = _dataset(data_dir, degrader), _dataset(data_dir, degrader)
    for key in (0, 5, 4 * 37 + 2):
        lr_a, hr_a = a[key]
        lr_b, hr_b = b[key]
        assert torch.equal(lr_a, lr_b) and torch.equal(hr_a, hr_b)
        assert lr_a.shape == (3, 16, 16) and hr_a.shape == (3, 64, 64)
    assert not torch.equal(a[1][0], a[2][0])
    assert not torch.equal(a[1][0], _dataset(data_dir, degrader, seed=4)[1][0])
    # Degradation changes the LR only: the crops (and flips) are those of a clean run.
    clean = _dataset(data_dir, None)
    for key in (0, 7, 33):
        assert torch.equal(clean[key][1], a[key][1])
        assert not torch.equal(clean[key][0], a[key][0])


# ------------------------------------------------------------------------------------------ config + teacher


def test_degradation_config_round_trips_and_defaults_off(tmp_path: Path) -> None:
    base = preset("tiny-test")
    assert base.data.degradation is None
    assert "degradation" not in dumps_toml(base)
    cfg = config_from_dict({"preset": "tiny-test",
                            "data": {"degradation": {"jpeg_quality": [40, 90], "teacher_sees": "clean"}}})
    assert cfg.data.degradation == DegradationConfig(jpeg_quality=[40, 90], teacher_sees="clean")
    path = tmp_path / "c.toml"
    path.write_text(dumps_toml(cfg))
    assert load_config(path).data.degradation == cfg.data.degradation
    with pytest.raises(ConfigError, match=r"data.degradation: noise_prob"):
        config_from_dict({"preset": "tiny-test", "data": {"degradation": {"noise_prob": 1.5}}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"preset": "tiny-test", "data": {"degradation": {"jpeg_qualty": [40, 90]}}})
    with pytest.raises(ConfigError, match="paired_lr_dirs"):
        config_from_dict({"preset": "tiny-test", "data": {"paired_lr_dirs": ["x"], "degradation": {}}})


def test_teacher_stage_is_clean_only_when_asked() -> None:
    clean_teacher, degraded_teacher = DegradationConfig(teacher_sees="clean"), DegradationConfig()
    assert degrader_for_stage(None, "distill_1", 4) is None
    assert degrader_for_stage(clean_teacher, "teacher", 4) is None
    assert isinstance(degrader_for_stage(clean_teacher, "distill_1", 4), Degrader)
    assert isinstance(degrader_for_stage(degraded_teacher, "teacher", 4), Degrader)


def test_clean_teacher_input_is_the_bicubic_lr_of_the_hr_batch(textured: Callable[..., np.ndarray]) -> None:
    hrs = [textured(64, 48, s) for s in (1, 2)]
    hr = torch.from_numpy(np.stack(hrs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    lr = clean_lr_from_hr(hr, 4)
    want = np.stack([bicubic_downscale_uint8(h, 4) for h in hrs]).transpose(0, 3, 1, 2) / 255.0
    assert lr.shape == (2, 3, 16, 12)
    # float32 matrices vs float64 imresize: at most one 8-bit level apart, almost always equal
    diff = (lr.numpy() - want) * 255.0
    assert np.abs(diff).max() <= 1.0 + 1e-4 and (np.abs(diff) > 0.5).mean() < 0.01

    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):  # training runs it under AMP
        assert torch.equal(clean_lr_from_hr(hr, 4), lr)

    cfg = preset("tiny-test")
    degraded_lr = torch.rand(2, 3, 16, 12)
    assert teacher_input_for(cfg)(degraded_lr, hr) is degraded_lr  # no degradation: the same LR
    cfg.data.degradation = DegradationConfig()  # teacher_sees = "degraded" by default
    assert teacher_input_for(cfg)(degraded_lr, hr) is degraded_lr
    cfg.data.degradation = DegradationConfig(teacher_sees="clean")
    assert torch.equal(teacher_input_for(cfg)(degraded_lr, hr), lr)


def test_teacher_sees_decides_the_teacher_stage_data_in_a_real_run(
        tiny_config: Callable[[Path], object], tmp_path: Path) -> None:
    from dipnet_core.train.context import load_stage_model
    from dipnet_core.train.pipeline import run_pipeline

    def run(name: str, degradation: DegradationConfig | None) -> tuple[dict, dict]:
        cfg = tiny_config(tmp_path / name)
        cfg.run.val_every = 0
        cfg.data.degradation = degradation
        result = run_pipeline(cfg, only=["teacher", "distill_1"], resume=False)
        assert result.status == "partial"
        stages = tmp_path / name / "stages"
        return (load_stage_model(stages / "teacher" / "model.pt")[0].state_dict(),
                load_stage_model(stages / "distill_1" / "model.pt")[0].state_dict())

    def same(a: dict, b: dict) -> bool:
        return all(torch.equal(a[k], b[k]) for k in a)

    plain_teacher, plain_student = run("plain", None)
    clean_teacher, clean_student = run("clean", DegradationConfig(teacher_sees="clean", clean_fraction=0.0))
    degraded_teacher, degraded_student = run("degraded", DegradationConfig(clean_fraction=0.0))
    assert same(clean_teacher, plain_teacher)  # a clean teacher trains on exactly the plain run's crops
    assert not same(degraded_teacher, plain_teacher)
    assert not same(clean_student, plain_student) and not same(degraded_student, clean_student)
