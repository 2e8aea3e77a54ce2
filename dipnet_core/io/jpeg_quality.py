"""How damaged an input is: JPEG quality from its quantization tables, and a noise estimate.

The app and the CLI use these to suggest the photo model (trained on blurred,
noisy, JPEG-compressed LR) over the clean one: the clean model sharpens JPEG
blocks and noise into artefacts.

JPEG quality: almost every encoder (libjpeg, Pillow, browsers, most phones)
scales the example tables of the JPEG standard (ITU-T T.81 Annex K) by the
IJG formula, so the quality setting is recovered by finding the IJG quality
whose tables are closest to the file's. Encoders with their own tables
(some cameras, Photoshop) get the IJG quality of the same overall strength,
flagged ``exact = False``.

Noise: the mean absolute response to a 3x3 mask that cancels constants, ramps
and planes (the Laplacian difference of Immerkaer, 1996) is proportional to
the noise sigma of white Gaussian noise. It is measured per channel and per
16x16 block and a low quantile kept, so edges and texture, which also respond,
count less than the flat areas where noise shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LOW_JPEG_QUALITY",
    "NOISY_SIGMA",
    "DamageEstimate",
    "JpegQuality",
    "estimate_damage",
    "estimate_jpeg_quality",
    "estimate_noise_sigma",
    "ijg_tables",
]

# Below this JPEG quality, blocking and ringing are visible after a 4x upscale.
LOW_JPEG_QUALITY = 85
# Noise sigma (8-bit levels) above which the photo model is suggested. On Set5 + Set14 the clean
# images measure 0-3.2 (pepper 4.9, baboon's fur 8.7), the same with sigma 5 noise added 4.8-7.1.
NOISY_SIGMA = 4.0

# ITU-T T.81 Annex K example tables, natural (row-major) order, as Pillow's ``im.quantization``.
_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)
_CHROMA = np.full(64, 99.0)
_CHROMA[[0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 24, 25]] = [17, 18, 24, 47, 18, 21, 26, 66, 24, 26, 56, 47, 66]


def ijg_tables(quality: int) -> tuple[np.ndarray, np.ndarray]:
    """(luma, chroma) quantization tables the IJG libjpeg (and Pillow) write at ``quality`` 1..100."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality  # integer maths, as libjpeg
    luma, chroma = (np.clip(np.floor((t * scale + 50) / 100), 1, 255) for t in (_LUMA, _CHROMA))
    return luma, chroma


_ALL_IJG = {q: ijg_tables(q) for q in range(1, 101)}


@dataclass(frozen=True)
class JpegQuality:
    quality: int  # IJG-equivalent quality 1..100
    exact: bool  # the file's tables are exactly IJG's at this quality


def estimate_jpeg_quality(source: Any) -> JpegQuality | None:
    """Quality of a JPEG given as a path or an open Pillow image; None for other formats.

    Raises ``OSError`` naming the file when a path cannot be opened.
    """
    from PIL import Image

    if isinstance(source, (str, Path)):
        try:
            with Image.open(source) as im:
                return estimate_jpeg_quality(im)
        except OSError as exc:
            raise OSError(f"cannot read '{source}': {exc}") from exc
    tables = getattr(source, "quantization", None)
    if getattr(source, "format", None) != "JPEG" or not tables:
        return None
    luma = np.asarray(tables[min(tables)], dtype=np.float64)
    chroma = np.asarray(tables[sorted(tables)[1]], dtype=np.float64) if len(tables) > 1 else None
    if luma.size != 64 or (chroma is not None and chroma.size != 64):
        return None

    def distance(q: int) -> float:
        ref_l, ref_c = _ALL_IJG[q]
        d = float(np.abs(np.log(luma) - np.log(ref_l)).sum())
        if chroma is not None:
            d += float(np.abs(np.log(chroma) - np.log(ref_c)).sum())
        return d

    # Ties (qualities 98-100 differ in few entries) go to the higher quality.
    best = min(range(100, 0, -1), key=distance)
    return JpegQuality(best, distance(best) == 0.0)


# The 10 % quantile of block estimates of pure white noise sits this far below its mean; measured
# once on 256x256 noise (16x16 blocks) and divided out so the result reads as a sigma.
_QUANTILE_BIAS = 0.893


def estimate_noise_sigma(pixels: np.ndarray, block: int = 16, quantile: float = 0.1,
                         max_blocks: int = 4096) -> float:
    """Per-channel noise sigma in 8-bit levels (HxW or HxWxC; uint8/uint16, or float in [0, 1]).

    The mean over the colour channels. Images under 3x3 give 0. At most
    ``max_blocks`` blocks per channel, spread evenly, are read and converted,
    so a 50-megapixel photo costs about what a small one does.
    Strong fine texture (fur, foliage) reads as noise too.
    """
    x = np.asarray(pixels)
    if x.ndim == 2:
        x = x[..., None]
    x = x[..., :3] if x.shape[2] >= 3 else x[..., :1]
    level = 255.0 if np.issubdtype(x.dtype, np.floating) else 255.0 / np.iinfo(x.dtype).max
    h, w = x.shape[:2]
    if h < 3 or w < 3:
        return 0.0
    side = min(block, h - 2, w - 2)  # images smaller than a block are one block
    # Overlapping (side + 2)-pixel windows, one per block: the 3x3 mask's output covers each block.
    grid = np.lib.stride_tricks.sliding_window_view(x, (side + 2, side + 2), axis=(0, 1))[::side, ::side]
    by, bx = grid.shape[:2]
    pick = np.linspace(0, by * bx - 1, min(max_blocks, by * bx)).astype(np.int64)
    windows = grid[pick // bx, pick % bx]  # copies only the picked blocks: n x C x (side+2) x (side+2)
    y = windows.astype(np.float64) * level
    r = (y[..., :-2, :-2] - 2 * y[..., :-2, 1:-1] + y[..., :-2, 2:]
         - 2 * y[..., 1:-1, :-2] + 4 * y[..., 1:-1, 1:-1] - 2 * y[..., 1:-1, 2:]
         + y[..., 2:, :-2] - 2 * y[..., 2:, 1:-1] + y[..., 2:, 2:])
    # For white noise, E|r| = 6 sigma sqrt(2/pi) (the mask's weights square-sum to 36).
    per_block = np.abs(r).mean(axis=(-2, -1)) * (math.sqrt(math.pi / 2) / 6.0)  # blocks x channels
    if per_block.shape[0] == 1:
        return float(per_block.mean())
    return float(np.quantile(per_block, quantile, axis=0).mean() / _QUANTILE_BIAS)


@dataclass(frozen=True)
class DamageEstimate:
    jpeg: JpegQuality | None
    noise_sigma: float  # 8-bit levels
    suggest_photo_model: bool
    reason: str  # one line for a hint, empty when nothing suggests the photo model


def estimate_damage(pixels: np.ndarray, path: str | Path | None = None) -> DamageEstimate:
    """Whether an image looks like a low-quality JPEG or noisy photo, and why (for the app's hint)."""
    jpeg = estimate_jpeg_quality(path) if path is not None else None
    sigma = estimate_noise_sigma(pixels)
    reasons = []
    if jpeg is not None and jpeg.quality < LOW_JPEG_QUALITY:
        reasons.append(f"JPEG quality about {jpeg.quality}")
    if sigma > NOISY_SIGMA:
        reasons.append(f"noise about {sigma:.1f}/255")
    return DamageEstimate(jpeg, sigma, bool(reasons), ", ".join(reasons))
