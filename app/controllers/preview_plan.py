"""Which pieces of the visible region the live preview computes, and in what order (pure, Qt-free).

Controller helper: reads a coverage mask, touches nothing else.

The preview fills the whole visible region on its own, the centre first: the region is cut into
horizontal bands, the band through the view's centre first, then the bands above and below it
alternately, outward. A band wider than ``max_piece`` is cut into pieces, its middle one first.
Only what is not yet covered is planned, so panning computes the newly exposed strip only.

Why bands, not small squares: every piece runs with its own context margin (the model's tiling
overlap, 32-48 LR px per side), so small pieces multiply the work; a band's margin is paid along
its long sides once. Three bands (a third of the view each) cost about 1.4x one window over the
whole view, and the first one is painted after about a third of the time.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in LR pixels, exclusive ends

#: A view at most this many LR pixels runs as one piece: splitting it would only add margins.
ONE_PIECE_MAX_PIXELS = 160 * 160
MIN_BAND = 96
MAX_BAND = 192
#: Widest piece: wider bands are cut (a piece of this size still runs as one window in the engine).
MAX_PIECE = 448


def band_height(view_h: int) -> int:
    """About a third of the view's height, within [MIN_BAND, MAX_BAND]."""
    return max(MIN_BAND, min(MAX_BAND, math.ceil(view_h / 3)))


def _band_edges(y0: int, y1: int, band: int) -> list[tuple[int, int]]:
    """Bands of height ``band`` covering [y0, y1): the centre one first, then outward, alternating.

    A remainder thinner than half a band joins its neighbour (a thin band is mostly margin).
    """
    if y1 - y0 <= band + band // 2:
        return [(y0, y1)]
    top = (y0 + y1) // 2 - band // 2
    centre = (top, top + band)
    above: list[tuple[int, int]] = []
    t = centre[0]
    while t > y0:
        nt = max(y0, t - band)
        if nt - y0 < band // 2:
            nt = y0
        above.append((nt, t))
        t = nt
    below: list[tuple[int, int]] = []
    b = centre[1]
    while b < y1:
        nb = min(y1, b + band)
        if y1 - nb < band // 2:
            nb = y1
        below.append((b, nb))
        b = nb
    order = [centre]
    for i in range(max(len(above), len(below))):
        order += [side[i] for side in (above, below) if i < len(side)]
    return order


def _split_width(x0: int, x1: int, centre_x: float, max_piece: int) -> list[tuple[int, int]]:
    n = math.ceil((x1 - x0) / max_piece)
    edges = [x0 + round(i * (x1 - x0) / n) for i in range(n + 1)]
    parts = list(pairwise(edges))
    return sorted(parts, key=lambda p: abs((p[0] + p[1]) / 2 - centre_x))


def plan_pieces(view: Box, covered: np.ndarray | None = None, max_piece: int = MAX_PIECE) -> list[Box]:
    """The uncovered parts of ``view`` as pieces, in the order to compute them.

    ``covered``: a bool array over the whole LR image (True where the preview is already
    painted), or None when nothing is.
    """
    vx0, vy0, vx1, vy1 = view
    if vx1 <= vx0 or vy1 <= vy0:
        return []
    todo = np.ones((vy1 - vy0, vx1 - vx0), bool) if covered is None else ~covered[vy0:vy1, vx0:vx1]
    if not todo.any():
        return []
    if todo.size <= ONE_PIECE_MAX_PIXELS:
        rows, cols = np.flatnonzero(todo.any(axis=1)), np.flatnonzero(todo.any(axis=0))
        return [(vx0 + int(cols[0]), vy0 + int(rows[0]), vx0 + int(cols[-1]) + 1, vy0 + int(rows[-1]) + 1)]
    centre_x = (vx0 + vx1) / 2
    pieces: list[Box] = []
    for by0, by1 in _band_edges(vy0, vy1, band_height(vy1 - vy0)):
        band = todo[by0 - vy0 : by1 - vy0]
        rows = np.flatnonzero(band.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(band.any(axis=0))
        y0, y1 = by0 + int(rows[0]), by0 + int(rows[-1]) + 1
        x0, x1 = vx0 + int(cols[0]), vx0 + int(cols[-1]) + 1
        pieces += [(a, y0, b, y1) for a, b in _split_width(x0, x1, centre_x, max_piece)]
    return pieces
