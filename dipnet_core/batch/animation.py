"""Animated inputs (GIF, WebP, APNG): every frame upscaled, written as an animation.

Only PNG (as APNG) and WebP outputs hold an animation; for other outputs, for
16-bit files and for multi-page TIFF (pages of a document, each far too large
to keep in memory together once upscaled) the batch upscales the first frame
and says so. Frames are read composited onto the full canvas (Pillow undoes
GIF/APNG/WebP frame deltas), so each is a complete picture for the model, and
the animation is written with each frame replacing the previous one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageSequence

from ..io import ImageData, ImageReadError, ImageWriteError, atomic_output, to_uint8
from ..io.convert import from_uint
from ..io.formats import normalize_format
from ..io.limits import bomb_checked_open

if TYPE_CHECKING:
    from ..cancel import CancelToken
    from ..engine import TiledUpscaler, TileProgress

#: Output formats that hold an animation, by our name -> Pillow's.
ANIMATED_OUTPUT_FORMATS = {"png": "PNG", "webp": "WEBP"}
# Upscaled frames are all held in memory until written (Pillow's encoders need them so);
# above this many bytes of 8-bit RGBA output the batch upscales the first frame only.
MAX_ANIMATION_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class Animation:
    frames: int
    durations_ms: list[int]
    loop: int
    has_alpha: bool


def animation_plan(path: Path, first: ImageData, output: Path, scale: int) -> tuple[Animation | None, str]:
    """(the animation to write, "") or (None, why only the first frame is upscaled)."""
    fmt = normalize_format(output.suffix)
    if first.format == "TIFF":
        return None, "a multi-page TIFF; only the first page was upscaled"
    if fmt not in ANIMATED_OUTPUT_FORMATS:
        return None, f"an animation; {output.suffix or 'this'} output holds one frame, so only the first was upscaled"
    if first.bit_depth == 16:
        return None, "a 16-bit animation; only the first frame was upscaled"
    out_bytes = first.frames * first.width * first.height * scale * scale * 4
    if out_bytes > MAX_ANIMATION_BYTES:
        return None, (f"an animation too large to upscale whole ({out_bytes / 1024**3:.1f} GB once upscaled); "
                      "only the first frame was upscaled")
    durations: list[int] = []
    loop = 0
    has_alpha = first.has_alpha
    with bomb_checked_open(path) as im:
        loop = int(im.info.get("loop", 0) or 0)
        for frame in ImageSequence.Iterator(im):
            durations.append(int(frame.info.get("duration", 100) or 100))
            has_alpha = has_alpha or frame.mode in ("RGBA", "LA", "PA") or "transparency" in frame.info
    return Animation(len(durations), durations, loop, has_alpha), ""


def _frames(path: Path, has_alpha: bool) -> Iterator[ImageData]:
    mode = "RGBA" if has_alpha else "RGB"
    with bomb_checked_open(path) as im:
        for frame in ImageSequence.Iterator(im):
            arr = np.asarray(frame.convert(mode))
            yield ImageData(pixels=from_uint(arr[..., :3], 255),
                            alpha=from_uint(arr[..., 3], 255) if has_alpha else None, path=path)


def upscale_animation(path: Path, output: Path, animation: Animation, upscaler: TiledUpscaler, *,
                      quality: int, cancel: CancelToken | None,
                      progress: Callable[[TileProgress, int], None], self_ensemble: bool = False) -> None:
    """Upscale every frame of ``path`` and write them atomically to ``output`` as an animation.

    ``progress`` gets each tile's progress and the frame's index. A cancel, a bad
    frame or a failed write leaves no file behind.
    """
    from ..engine import upscale_image
    from ..errors import Cancelled

    fmt = normalize_format(output.suffix)
    done: list[Image.Image] = []
    try:
        for index, frame in enumerate(_frames(path, animation.has_alpha)):
            result = upscale_image(frame, upscaler, cancel=cancel,
                                   progress=lambda tp, _i=index: progress(tp, _i),
                                   self_ensemble=self_ensemble)
            rgb = to_uint8(result.pixels)
            if result.alpha is not None:
                rgb = np.concatenate([rgb, to_uint8(result.alpha)[..., None]], axis=2)
            done.append(Image.fromarray(rgb))
            if cancel is not None and cancel.cancelled:
                raise Cancelled("cancelled by the user")
    except OSError as exc:  # Pillow: a damaged later frame
        raise ImageReadError.about(path, f"frame {len(done) + 1} is damaged ({exc})") from exc
    if os.path.lexists(output) and os.path.samefile(output, path):
        raise ImageWriteError.about(output, "is the input file itself; inputs are never overwritten")
    params: dict[str, object] = {"save_all": True, "append_images": done[1:], "loop": animation.loop,
                                 "duration": animation.durations_ms[:len(done)]}
    if fmt == "webp":
        params.update(quality=quality, lossless=quality >= 100, method=4)
    else:
        params.update(compress_level=6)
    try:
        with atomic_output(output) as tmp:
            done[0].save(tmp, format=ANIMATED_OUTPUT_FORMATS[fmt], **params)
    except MemoryError:
        raise ImageWriteError.about(output, "not enough memory to encode the animation") from None
    except OSError as exc:
        raise ImageWriteError.about(output, str(exc)) from exc
