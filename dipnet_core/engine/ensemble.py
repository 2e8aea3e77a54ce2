"""x8 geometric self-ensemble: the "best quality" option (8x the compute).

The model is run on the 8 flips/rotations of the input (the dihedral group of
the square), each output is turned back and the 8 are averaged. A CNN is not
exactly equivariant to these, so the errors of the 8 runs partly cancel:
+0.12 dB PSNR-Y on Set5 and +0.06 dB on Set14 for the built-in model (README,
*Upscale options*; `benchmarks/self_ensemble_inference.py`).

Why whole images and not tiles: the grid-aware tiler starts every tile on the
6 px ESA grid of the *whole* image (``gridnet.py``). Flipping a tile would put
its grid origin at the far edge, off that grid. So each transformed whole
image goes through the normal tiled upscaler (its own plan, grid, overlap and
out-of-memory handling), and only the finished, inverse-transformed outputs
are combined, in one float32 accumulator: peak memory is that accumulator plus
one pass's output, about twice a plain upscale, which is why the streaming PNG
writer is not used for it.

numpy only: the onnxruntime edition (no torch) offers the option too. The
training side (teacher targets) has its torch twin in
``dipnet_core/train/self_ensemble.py``, built on the same :data:`DIHEDRAL` list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..cancel import CancelToken
from .upscaler import TileProgress, _Tracker

if TYPE_CHECKING:
    from .upscaler import TiledUpscaler

__all__ = ["DIHEDRAL", "ENSEMBLE_SIZE", "dihedral", "dihedral_inverse", "self_ensemble_iter"]

#: The 8 transforms as (quarter turns, then mirror left-right); (0, False) is the identity.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, flip) for flip in (False, True) for k in range(4))
ENSEMBLE_SIZE = len(DIHEDRAL)


def dihedral(a: np.ndarray, t: tuple[int, bool]) -> np.ndarray:
    """``a`` (HxW or HxWxC) turned ``t[0]`` quarter turns counter-clockwise, then mirrored if ``t[1]``."""
    k, flip = t
    out = np.rot90(a, k, axes=(0, 1))
    return out[:, ::-1] if flip else out


def dihedral_inverse(a: np.ndarray, t: tuple[int, bool]) -> np.ndarray:
    """Undo :func:`dihedral` (mirror first, then turn back); works on the upscaled image too."""
    k, flip = t
    if flip:
        a = a[:, ::-1]
    return np.rot90(a, -k, axes=(0, 1))


def _strip_view(event: TileProgress) -> TileProgress:
    # A tile of a transformed pass lies elsewhere in the final image, and it is one of 8 terms of
    # the average, not final pixels: nothing a GUI may paint as the result.
    return dataclasses.replace(event, core=None, output=None)


def self_ensemble_iter(upscaler: TiledUpscaler, planes: Sequence[tuple[np.ndarray, str]],
                       cancel: CancelToken | None = None) -> Generator[TileProgress, None, list[np.ndarray]]:
    """Self-ensembled upscale of same-sized planes (``(pixels, phase)``, as for ``iter_bands``).

    Yields one :class:`TileProgress` per tile, counting every tile of all 8
    passes and all planes together (``core``/``output`` are None); cancellation
    is checked between tiles as in a plain upscale. Returns one float32 array per
    plane, clipped to [0, 1], with the layout :meth:`TiledUpscaler.upscale` gives.
    """
    if not planes:
        raise ValueError("no planes to upscale")
    srcs = [np.asarray(px) for px, _ in planes]
    if not all(np.issubdtype(s.dtype, np.floating) for s in srcs):
        raise TypeError(f"expected float pixels in [0, 1], got {[s.dtype for s in srcs]}")
    h, w = srcs[0].shape[:2]
    if any(s.shape[:2] != (h, w) for s in srcs):
        raise ValueError(f"planes differ in size: {[s.shape[:2] for s in srcs]}")
    # Quarter turns swap height and width, so the plan (and tile count) can differ per transform.
    work = [upscaler.work(w, h) if t[0] % 2 else upscaler.work(h, w) for t in DIHEDRAL]
    tracker = _Tracker(sum(n for n, _ in work) * len(srcs), sum(px for _, px in work) * len(srcs))
    acc: list[np.ndarray | None] = [None] * len(srcs)
    for t in DIHEDRAL:
        turned = [np.ascontiguousarray(dihedral(s, t)) for s in srcs]
        passes = [upscaler._make_pass(s, phase) for s, (_, phase) in zip(turned, planes)]
        for event in upscaler._run_passes(passes, cancel, tracker):
            yield _strip_view(event)
        for i, (p, s) in enumerate(zip(passes, turned)):
            back = dihedral_inverse(upscaler._finish(p, s), t)
            if acc[i] is None:
                acc[i] = np.array(back, dtype=np.float32, copy=True, order="C")
            else:
                acc[i] += back  # type: ignore[operator]
        del passes, turned
    # Each term is in [0, 1], so the mean is too; scaling by 1/8 is exact in binary floating point.
    out = [a for a in acc if a is not None]
    for a in out:
        a *= np.float32(1.0 / ENSEMBLE_SIZE)  # in place: no second full-size array
    return out
