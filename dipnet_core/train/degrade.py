"""Real-world degradations for training LR: blur, random-kernel downscale, noise, JPEG.

The built-in model learned from clean MATLAB-bicubic LR, so it sharpens JPEG
blocks and sensor noise into artefacts. A :class:`Degrader` turns an HR crop
into a degraded LR instead, in the order a real photo suffers them: optical
blur (isotropic or anisotropic Gaussian) on the HR grid, downscaling with a
randomly chosen kernel, Gaussian or Poisson noise (per channel or grey), and
JPEG compression at a random quality; optionally a second, milder round of
blur, noise and JPEG on the LR grid (a re-shared, re-compressed image).

Everything is numpy and Pillow (no torch), a pure function of the HR crop and
the generator it is given: :func:`~.data.sample_generator` seeds one per
``(seed, stream, rank, step, index)``, so a degraded pair is as reproducible
as a clean crop. A :class:`DegradationPlan` holds one sample's random choices,
drawn first and applied second, so tests and benchmarks can apply an exact
degradation without a generator.

Intermediate images are float32 in [0, 255] and only rounded where a real
pipeline rounds too (before JPEG, and at the end).

``teacher_sees`` (read by the training stages, not here) says what the teacher
learns from and is given during distillation:

- ``"degraded"`` (default): the teacher is trained on degraded LR too and, while
  distilling, sees the student's exact input. For PSNR, the best a student can
  output is the mean HR given its degraded input; a degraded teacher
  approximates exactly that, so its target is one the student can reach.
- ``"clean"``: the teacher is trained on clean bicubic LR and, while distilling,
  gets the clean LR of the same HR crop (:mod:`.teacher_input`) while the
  student gets the degraded one: privileged input, whose sharp SR and
  noise-free anchor features the student must match from worse input. Cheaper
  (a clean teacher can be reused as is), but its target holds detail the
  student's input no longer carries.

The default follows the argument above; ``benchmarks/degrade_teacher_ab.py``
measures both on the degraded benchmark.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np

from ..resize import imresize

__all__ = [
    "DOWNSCALE_KERNELS",
    "TEACHER_VIEWS",
    "DegradationConfig",
    "DegradationPlan",
    "Degrader",
    "add_gaussian_noise",
    "add_poisson_noise",
    "blur",
    "degrader_for_stage",
    "downscale",
    "gaussian_kernel",
    "jpeg_roundtrip",
    "validate_degradation",
]

DOWNSCALE_KERNELS = ("bicubic", "bilinear", "area")
TEACHER_VIEWS = ("clean", "degraded")


@dataclass
class DegradationConfig:
    """Probabilities and ranges of the degradations; ranges are ``[low, high]``.

    Blur sigmas are in HR pixels (first round) or LR pixels (second round);
    noise sigmas in 8-bit levels (0..255); Poisson ``peak`` is the photon count
    of a white pixel (noise variance = intensity / peak, so lower = noisier).
    """

    # Share of samples left clean (plain bicubic LR), so the model keeps its quality on clean input.
    clean_fraction: float = 0.1
    teacher_sees: str = "degraded"  # "degraded" | "clean", see the module docstring
    blur_prob: float = 0.7
    blur_sigma: list[float] = field(default_factory=lambda: [0.2, 2.5])
    anisotropic_prob: float = 0.5  # of the blurred samples
    kernel_max_size: int = 21
    downscale_kernels: list[str] = field(default_factory=lambda: list(DOWNSCALE_KERNELS))
    noise_prob: float = 0.6
    poisson_prob: float = 0.4  # of the noisy samples; the others get Gaussian noise
    gray_noise_prob: float = 0.4  # same noise in every channel (luminance noise)
    gaussian_sigma: list[float] = field(default_factory=lambda: [1.0, 12.0])
    poisson_peak: list[float] = field(default_factory=lambda: [150.0, 3000.0])  # drawn log-uniformly
    jpeg_prob: float = 0.8
    jpeg_quality: list[int] = field(default_factory=lambda: [30, 95])
    second_round_prob: float = 0.2
    second_blur_sigma: list[float] = field(default_factory=lambda: [0.2, 0.8])
    second_gaussian_sigma: list[float] = field(default_factory=lambda: [1.0, 6.0])
    second_jpeg_quality: list[int] = field(default_factory=lambda: [50, 95])


def validate_degradation(cfg: DegradationConfig) -> list[str]:
    """Every problem of ``cfg`` as a message naming the key (empty when it is valid)."""
    problems: list[str] = []
    for name in ("clean_fraction", "blur_prob", "anisotropic_prob", "noise_prob", "poisson_prob",
                 "gray_noise_prob", "jpeg_prob", "second_round_prob"):
        v = getattr(cfg, name)
        if not 0.0 <= v <= 1.0:
            problems.append(f"{name} must be in [0, 1], got {v}")
    for name, lo_min, hi_max in (("blur_sigma", 0.0, 50.0), ("gaussian_sigma", 0.0, 255.0),
                                 ("poisson_peak", 1e-3, 1e9), ("jpeg_quality", 1, 100),
                                 ("second_blur_sigma", 0.0, 50.0), ("second_gaussian_sigma", 0.0, 255.0),
                                 ("second_jpeg_quality", 1, 100)):
        r = getattr(cfg, name)
        if len(r) != 2 or not lo_min <= r[0] <= r[1] <= hi_max:
            problems.append(f"{name} must be [low, high] with {lo_min} <= low <= high <= {hi_max}, got {r}")
    if cfg.teacher_sees not in TEACHER_VIEWS:
        problems.append(f"teacher_sees must be one of {', '.join(TEACHER_VIEWS)}, got {cfg.teacher_sees!r}")
    unknown = [k for k in cfg.downscale_kernels if k not in DOWNSCALE_KERNELS]
    if not cfg.downscale_kernels or unknown:
        problems.append(f"downscale_kernels must be a non-empty subset of {list(DOWNSCALE_KERNELS)}, "
                        f"got {cfg.downscale_kernels}")
    if cfg.kernel_max_size < 3 or cfg.kernel_max_size % 2 == 0:
        problems.append(f"kernel_max_size must be an odd number >= 3, got {cfg.kernel_max_size}")
    return problems


# ------------------------------------------------------------------------------------------ pieces


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float | None = None,
                    theta: float = 0.0) -> np.ndarray:
    """A ``size`` x ``size`` Gaussian (float64, sums to 1), rotated by ``theta`` radians when anisotropic."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    sigma_y = sigma_x if sigma_y is None else sigma_y
    if sigma_x <= 0 or sigma_y <= 0:
        raise ValueError(f"kernel sigmas must be positive, got {sigma_x}, {sigma_y}")
    r = size // 2
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy  # coordinates along the kernel's own axes
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def _kernel_size(sigma: float, max_size: int) -> int:
    # +-3 sigma holds 99.7 % of the mass; larger kernels only cost time.
    return min(max_size, 2 * max(1, math.ceil(3.0 * sigma)) + 1)


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``img`` (HxWxC float) convolved with ``kernel``, mirror-padded at the borders.

    Uses the FFT: a 21x21 kernel on a 256 px patch is ~40x cheaper than direct
    convolution, which keeps data loading off the critical path.
    """
    kh, kw = kernel.shape
    ry, rx = kh // 2, kw // 2
    h, w = img.shape[:2]
    padded = np.pad(img.astype(np.float64), ((ry, ry), (rx, rx), (0, 0)), mode="symmetric")
    ph, pw = padded.shape[:2]
    kpad = np.zeros((ph, pw))
    kpad[:kh, :kw] = kernel  # centred by the roll below; the FFT product is then a true convolution
    kpad = np.roll(kpad, (-ry, -rx), axis=(0, 1))
    spectrum = np.fft.rfft2(padded, axes=(0, 1)) * np.fft.rfft2(kpad)[..., None]
    out = np.fft.irfft2(spectrum, s=(ph, pw), axes=(0, 1))
    return out[ry:ry + h, rx:rx + w].astype(np.float32)


def downscale(img: np.ndarray, scale: int, kernel: str) -> np.ndarray:
    """``img`` (HxWxC float, H and W multiples of ``scale``) shrunk by ``scale`` with the named kernel.

    ``bicubic`` is MATLAB's (the benchmark's LR); ``bilinear`` and ``area``
    (box average) are Pillow's antialiased filters, run on float planes so no
    rounding happens here.
    """
    if kernel == "bicubic":
        return imresize(img.astype(np.float64), scale=1.0 / scale).astype(np.float32)
    from PIL import Image

    filters = {"bilinear": Image.Resampling.BILINEAR, "area": Image.Resampling.BOX}
    if kernel not in filters:
        raise ValueError(f"unknown downscale kernel {kernel!r}; known: {', '.join(DOWNSCALE_KERNELS)}")
    h, w = img.shape[:2]
    size = (w // scale, h // scale)
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], dtype=np.float32))
                         .resize(size, filters[kernel])) for c in range(img.shape[2])]
    return np.stack(planes, axis=2)


def add_gaussian_noise(img: np.ndarray, sigma: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise (sigma in 0..255 levels), one field for all channels when ``gray``."""
    h, w, c = img.shape
    noise = rng.standard_normal((h, w, 1 if gray else c)).astype(np.float32) * np.float32(sigma)
    return np.clip(img + noise, 0.0, 255.0)


def add_poisson_noise(img: np.ndarray, peak: float, gray: bool, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: a white pixel collects ``peak`` photons, so the variance grows with intensity.

    ``gray`` draws the noise on luminance (BT.601) and adds it to every channel.
    """
    x = np.clip(img, 0.0, 255.0).astype(np.float64) / 255.0
    if gray:
        y = x @ np.array([0.299, 0.587, 0.114])
        noise = (rng.poisson(y * peak) / peak - y)[..., None]
    else:
        noise = rng.poisson(x * peak) / peak - x
    return np.clip((x + noise) * 255.0, 0.0, 255.0).astype(np.float32)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode to JPEG at ``quality`` with Pillow's defaults (4:2:0), in memory, and decode (uint8)."""
    from PIL import Image

    u8 = img if img.dtype == np.uint8 else np.clip(np.round(img), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


# ------------------------------------------------------------------------------------------ plan + apply


@dataclass
class DegradationPlan:
    """One sample's concrete degradations (None = that step is skipped)."""

    clean: bool = False
    kernel: np.ndarray | None = None  # HR blur kernel
    downscale: str = "bicubic"
    gaussian_sigma: float | None = None
    poisson_peak: float | None = None
    gray_noise: bool = False
    noise_seed: int = 0
    jpeg_quality: int | None = None
    second: DegradationPlan | None = None  # LR-grid round: kernel, noise and JPEG only


def _uniform(rng: np.random.Generator, r: list[float]) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _draw_kernel(rng: np.random.Generator, sigma_range: list[float], anisotropic_prob: float,
                 max_size: int) -> np.ndarray:
    sx = max(_uniform(rng, sigma_range), 1e-3)
    if rng.random() < anisotropic_prob:
        sy = max(_uniform(rng, sigma_range), 1e-3)
        theta = float(rng.uniform(0.0, math.pi))
        return gaussian_kernel(_kernel_size(max(sx, sy), max_size), sx, sy, theta)
    return gaussian_kernel(_kernel_size(sx, max_size), sx)


def _draw_noise(plan: DegradationPlan, rng: np.random.Generator, cfg: DegradationConfig,
                sigma_range: list[float], allow_poisson: bool) -> None:
    plan.gray_noise = bool(rng.random() < cfg.gray_noise_prob)
    if allow_poisson and rng.random() < cfg.poisson_prob:
        lo, hi = math.log(cfg.poisson_peak[0]), math.log(cfg.poisson_peak[1])
        plan.poisson_peak = math.exp(_uniform(rng, [lo, hi]))
    else:
        plan.gaussian_sigma = _uniform(rng, sigma_range)


class Degrader:
    """``degrader(hr_crop, rng) -> lr``: HR uint8 (sides multiples of ``scale``) to degraded LR uint8."""

    def __init__(self, config: DegradationConfig, scale: int) -> None:
        problems = validate_degradation(config)
        if problems:
            raise ValueError("bad degradation config: " + "; ".join(problems))
        self.config, self.scale = config, scale

    def plan(self, rng: np.random.Generator) -> DegradationPlan:
        """Draw one sample's degradations (a pure function of ``rng``'s state)."""
        c = self.config
        p = DegradationPlan()
        p.clean = bool(rng.random() < c.clean_fraction)
        probs = (c.blur_prob, c.noise_prob, c.jpeg_prob)
        use_blur, use_noise, use_jpeg = (bool(rng.random() < q) for q in probs)
        kernel = _draw_kernel(rng, c.blur_sigma, c.anisotropic_prob, c.kernel_max_size)
        p.kernel = kernel if use_blur else None
        p.downscale = c.downscale_kernels[int(rng.integers(0, len(c.downscale_kernels)))]
        if use_noise:
            _draw_noise(p, rng, c, c.gaussian_sigma, allow_poisson=True)
        p.noise_seed = int(rng.integers(0, 2**63))
        quality = int(rng.integers(c.jpeg_quality[0], c.jpeg_quality[1] + 1))
        p.jpeg_quality = quality if use_jpeg else None
        if rng.random() < c.second_round_prob:
            s = DegradationPlan()
            use_blur2, use_noise2, use_jpeg2 = (bool(rng.random() < q) for q in probs)
            s.kernel = _draw_kernel(rng, c.second_blur_sigma, c.anisotropic_prob, c.kernel_max_size) \
                if use_blur2 else None
            if use_noise2:
                _draw_noise(s, rng, c, c.second_gaussian_sigma, allow_poisson=False)
            s.noise_seed = int(rng.integers(0, 2**63))
            q2 = int(rng.integers(c.second_jpeg_quality[0], c.second_jpeg_quality[1] + 1))
            s.jpeg_quality = q2 if use_jpeg2 else None
            p.second = s
        if p.clean:
            return DegradationPlan(clean=True)
        return p

    def apply(self, hr: np.ndarray, plan: DegradationPlan) -> np.ndarray:
        """Degrade ``hr`` (uint8 HxWx3) by ``plan``; returns uint8 (H/scale)x(W/scale)x3."""
        h, w = hr.shape[:2]
        if h % self.scale or w % self.scale:
            raise ValueError(f"HR crop {w}x{h} is not a multiple of scale {self.scale}")
        img = hr.astype(np.float32)
        if plan.clean:
            return _to_uint8(downscale(img, self.scale, "bicubic"))
        if plan.kernel is not None:
            img = blur(img, plan.kernel)
        img = downscale(img, self.scale, plan.downscale)
        img = _noise_and_jpeg(img, plan)
        if plan.second is not None:
            if plan.second.kernel is not None:
                img = blur(img.astype(np.float32), plan.second.kernel)
            img = _noise_and_jpeg(img.astype(np.float32), plan.second)
        return _to_uint8(img)

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(hr, self.plan(rng))


def _noise_and_jpeg(img: np.ndarray, plan: DegradationPlan) -> np.ndarray:
    noise_rng = np.random.Generator(np.random.PCG64(plan.noise_seed))
    if plan.gaussian_sigma is not None:
        img = add_gaussian_noise(img, plan.gaussian_sigma, plan.gray_noise, noise_rng)
    elif plan.poisson_peak is not None:
        img = add_poisson_noise(img, plan.poisson_peak, plan.gray_noise, noise_rng)
    if plan.jpeg_quality is not None:
        img = jpeg_roundtrip(img, plan.jpeg_quality)
    return img


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def degrader_for_stage(config: DegradationConfig | None, stage: str, scale: int) -> Degrader | None:
    """The degrader a training stage's crops go through, or None for clean bicubic LR.

    The teacher stage trains on clean LR when ``teacher_sees = "clean"``, else on
    degraded LR; every student stage (distill, prune fine-tunes, final fine-tune) is degraded.
    """
    if config is None:
        return None
    if stage == "teacher" and config.teacher_sees == "clean":
        return None
    return Degrader(config, scale)
