"""Tile planning: pure Python, no torch, so it is cheap to unit-test.

A plan is a list of :class:`TileBox`. Each box has a *window* (the LR pixels the
model sees, at most ``tile`` px on a side) and a *core* (the pixels whose output
this tile contributes). Cores partition the image exactly; every core edge that
is not an image edge lies at least ``overlap`` px inside its window, so the
pixels we keep always have ``overlap`` px of real context around them and no
seam is visible.

Windows are spread evenly rather than stepped from the top-left, and each axis
uses the fewest windows that fit, shrunk to the smallest common size that still
covers it: all windows of a plan have the same shape (at most ``tile``), and a
side just over ``tile`` is not computed almost twice. Equal shapes keep the
per-tile cost and the allocator's block sizes constant, and let shape-specialised
runtimes (TensorRT, ``torch.compile``) reuse one engine for the whole image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TileBox:
    """One tile of a plan, in LR pixel coordinates (``x1``/``y1`` exclusive)."""

    x0: int
    y0: int
    x1: int
    y1: int
    core_x0: int
    core_y0: int
    core_x1: int
    core_y1: int

    @property
    def window(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def core(self) -> tuple[int, int, int, int]:
        return (self.core_x0, self.core_y0, self.core_x1, self.core_y1)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def core_in_window(self) -> tuple[int, int, int, int]:
        """The core relative to the window's top-left corner (to crop the tile's output)."""
        return (self.core_x0 - self.x0, self.core_y0 - self.y0, self.core_x1 - self.x0, self.core_y1 - self.y0)


def _fit(length: int, tile: int, overlap: int, align: int, n: int) -> tuple[int, int]:
    """Smallest window size (<= tile) for n windows, and the first-to-last start distance / align; 0 if none."""
    for size in range(math.ceil((length + 2 * overlap * (n - 1)) / n), tile + 1):
        if (length - size) % align:
            continue  # the last window ends at `length`, so it must start aligned
        span, max_step = (length - size) // align, (size - 2 * overlap) // align
        if max_step >= 1 and span <= max_step * (n - 1):
            return size, span
    return 0, 0


def _axis_plan(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int, int, int]]:
    """Windows and cores along one axis: a list of (start, end, core_start, core_end)."""
    if length <= tile:
        return [(0, length, 0, length)]
    # Fewest windows of at most `tile` px whose neighbours share >= 2*overlap px, shrunk to the
    # smallest common size that still covers the axis (a 300 px side at tile 256 costs 2 x 166 px
    # of compute, not 2 x 256), with every start on a multiple of `align`.
    n = 1 + math.ceil((length - tile) / (tile - 2 * overlap))
    size, span = _fit(length, tile, overlap, align, n)
    while size == 0:
        n += 1
        size, span = _fit(length, tile, overlap, align, n)
    starts = [align * round(i * span / (n - 1)) for i in range(n)]
    spans = []
    for i, s in enumerate(starts):
        # Core boundaries sit in the middle of each shared band; a band is >= 2*overlap wide,
        # so its middle is at least `overlap` px from both windows' inner edges.
        c0 = 0 if i == 0 else (starts[i - 1] + size + s) // 2
        c1 = length if i == n - 1 else (s + size + starts[i + 1]) // 2
        spans.append((s, s + size, c0, c1))
    return spans


def plan_tiles(h: int, w: int, tile: int, overlap: int, align: int = 1) -> list[TileBox]:
    """Overlapping tiles covering an ``h`` x ``w`` image, row-major.

    ``tile`` is the window side in LR px; ``overlap`` the context kept around each
    core (must satisfy ``tile > 2 * overlap``). An image no larger than ``tile``
    in a dimension gets a single window along it. ``align``: every window starts
    on a multiple of it (6 for grid-aware DIPNet, whose ESA pools in 6 px cells);
    ``tile - 2 * overlap`` must be at least ``2 * align - 1``.
    """
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    if align < 1 or tile - 2 * overlap < 2 * align - 1:
        raise ValueError(f"tile ({tile}) must exceed twice the overlap ({overlap}) by at least 2*align-1 ({align})")
    rows = _axis_plan(h, tile, overlap, align)
    cols = _axis_plan(w, tile, overlap, align)
    return [
        TileBox(x0, y0, x1, y1, cx0, cy0, cx1, cy1)
        for (y0, y1, cy0, cy1) in rows
        for (x0, x1, cx0, cx1) in cols
    ]
