"""Whole images with metadata: grey and alpha planes go through the model too.

The alpha plane is upscaled by the network (replicated to RGB, channel mean
back), not bilinearly: a cut-out's edge then stays as sharp as the colour
edges next to it instead of leaving a blurred halo.

:func:`upscale_image_to_file` goes straight to a file: for PNG it streams
finished bands of rows to an encoder thread, so encoding overlaps the compute
and the whole output never sits in memory (a 16000x12000 result would take
2.3 GB as float32); other formats, and the x8 self-ensemble (whose 8 passes
are averaged before any row is final), upscale whole and then write.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Generator, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from .ensemble import self_ensemble_iter
from .upscaler import OutputBand, TiledUpscaler, TileProgress, drive

if TYPE_CHECKING:
    from ..io import ImageData


def _with_planes(img: Any, pixels: np.ndarray, alpha: np.ndarray | None) -> Any:
    if dataclasses.is_dataclass(img) and not isinstance(img, type):
        return dataclasses.replace(img, pixels=pixels, alpha=alpha)
    out = copy.copy(img)
    out.pixels, out.alpha = pixels, alpha
    return out


def upscale_image_iter(img: ImageData, upscaler: TiledUpscaler, cancel: CancelToken | None = None, *,
                       self_ensemble: bool = False) -> Generator[TileProgress, None, ImageData]:
    """Generator form of :func:`upscale_image` (for GUI generator workers)."""
    pixels = np.asarray(img.pixels)
    if self_ensemble:
        planes = [(pixels, "rgb")]
        if getattr(img, "alpha", None) is not None:
            planes.append((np.asarray(img.alpha), "alpha"))
        outs = yield from self_ensemble_iter(upscaler, planes, cancel)
        return _with_planes(img, outs[0], outs[1] if len(outs) > 1 else None)  # type: ignore[no-any-return]
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
                  progress: Callable[[TileProgress], None] | None = None, *,
                  self_ensemble: bool = False) -> ImageData:
    """Upscale an image's colour (RGB or grey) and alpha planes; every other field is kept.

    Grey images and the alpha plane are replicated to three channels for the
    model and reduced back with the channel mean, clipped to [0, 1]. Progress
    counts the tiles of both passes (``phase`` says which one).

    ``self_ensemble``: the "best quality" option, the average of the 8
    flips/rotations (:mod:`.ensemble`), 8x the time; progress then counts the
    tiles of all 8 passes and carries no tile views (``core``/``output`` None).
    """
    gen = upscale_image_iter(img, upscaler, cancel, self_ensemble=self_ensemble)
    return drive(gen, progress)  # type: ignore[arg-type,return-value]


def upscale_image_to_file(
    img: ImageData,
    upscaler: TiledUpscaler,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    quality: int = 95,
    png_compression: int | None = None,
    overwrite: bool = True,
    protect: Iterable[str | os.PathLike[str]] = (),
    cancel: CancelToken | None = None,
    progress: Callable[[TileProgress], None] | None = None,
    self_ensemble: bool = False,
) -> Path:
    """Upscale ``img`` and write it to ``path``: the same file as ``write_image(path, upscale_image(...))``.

    PNG output streams: each tile row's output rows are quantized by the tile
    workers and encoded on a writer thread while the next row computes, so
    memory holds a few bands of rows instead of the whole result, and the
    encoding time mostly hides behind the compute. Other formats (JPEG, WebP,
    TIFF, ...) are upscaled whole, then written by :func:`write_image`. Either
    way the file appears atomically, only once complete: cancelling (or any
    error) leaves no partial file and an existing target untouched. Keyword
    arguments are those of :func:`write_image` (``png_compression=None``: its
    default). ``self_ensemble`` (see :func:`upscale_image`) always takes the
    whole-image path: the 8 passes are averaged in memory before anything is written.
    """
    from ..io import DEFAULT_PNG_COMPRESSION, open_image_stream, write_image

    level = DEFAULT_PNG_COMPRESSION if png_compression is None else png_compression
    s = upscaler.backend.scale
    stream = None if self_ensemble else open_image_stream(
        path, img, s * img.width, s * img.height, format=format, overwrite=overwrite, protect=protect,
        png_compression=level)
    if stream is None:
        result = upscale_image(img, upscaler, cancel=cancel, progress=progress, self_ensemble=self_ensemble)
        check(cancel)
        return write_image(path, result, format=format, quality=quality, overwrite=overwrite, protect=protect,
                           png_compression=level)
    planes = [(np.asarray(img.pixels), "rgb")]
    if img.alpha is not None:
        planes.append((np.asarray(img.alpha), "alpha"))
    with stream:
        for event in upscaler.iter_bands(planes, cancel, quantize=stream.quantize):
            if isinstance(event, OutputBand):
                stream.write(*event.planes)
            elif progress is not None:
                progress(event)
        check(cancel)  # cancelled after the last tile: still publish nothing
    return Path(path)
