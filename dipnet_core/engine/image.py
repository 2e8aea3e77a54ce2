"""Whole images with metadata: grey and alpha planes go through the model too.

The alpha plane is upscaled by the network (replicated to RGB, channel mean
back), not bilinearly: a cut-out's edge then stays as sharp as the colour
edges next to it instead of leaving a blurred halo.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken
from .upscaler import TiledUpscaler, TileProgress, drive

if TYPE_CHECKING:
    from ..io import ImageData


def _with_planes(img: Any, pixels: np.ndarray, alpha: np.ndarray | None) -> Any:
    if dataclasses.is_dataclass(img) and not isinstance(img, type):
        return dataclasses.replace(img, pixels=pixels, alpha=alpha)
    out = copy.copy(img)
    out.pixels, out.alpha = pixels, alpha
    return out


def upscale_image_iter(img: ImageData, upscaler: TiledUpscaler, cancel: CancelToken | None = None
                       ) -> Generator[TileProgress, None, ImageData]:
    """Generator form of :func:`upscale_image` (for GUI generator workers)."""
    pixels = np.asarray(img.pixels)
    passes = [upscaler._make_pass(pixels, "rgb")]
    alpha = getattr(img, "alpha", None)
    if alpha is not None:
        alpha = np.asarray(alpha)
        passes.append(upscaler._make_pass(alpha, "alpha"))
    yield from upscaler._run_passes(passes, cancel)
    rgb = upscaler._finish(passes[0], pixels)
    up_alpha = upscaler._finish(passes[1], alpha) if alpha is not None else None
    return _with_planes(img, rgb, up_alpha)  # type: ignore[no-any-return]


def upscale_image(img: ImageData, upscaler: TiledUpscaler, cancel: CancelToken | None = None,
                  progress: Callable[[TileProgress], None] | None = None) -> ImageData:
    """Upscale an image's colour (RGB or grey) and alpha planes; every other field is kept.

    Grey images and the alpha plane are replicated to three channels for the
    model and reduced back with the channel mean, clipped to [0, 1]. Progress
    counts the tiles of both passes (``phase`` says which one).
    """
    return drive(upscale_image_iter(img, upscaler, cancel), progress)  # type: ignore[arg-type,return-value]
