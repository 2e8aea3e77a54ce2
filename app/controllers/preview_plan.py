"""Which parts of the visible region the live preview computes (pure, Qt-free).

Controller helper: reads a coverage mask, touches nothing else.

The preview fills the whole visible region on its own. What is not covered yet becomes a few
rectangles (usually one: the whole view after a jump or a zoom, or the newly exposed strip or
L-shape after a pan), and they run through the engine as ONE job
(:meth:`dipnet_core.engine.TiledUpscaler.iter_regions`): the engine tiles them, runs the tiles
on its parallel workers nearest the view's centre first, and every tile is painted as it
finishes. Only what is not covered is planned, so panning computes the newly exposed part only.

Why one job and not pieces planned here: every separately computed piece pays its own context
margin (the model's tiling overlap, 32-48 LR px per side) and runs one after the other, so the
three bands this module used to plan over a 1600x1000 view at 100 % cost 1.4-2.2x one engine
call over the same box. As one job the margin is paid once around the region and along the
seams between its tiles. A region that would fit one window is still cut into one tile per
worker (a 1600x1000 view at 100 %: two tiles side by side on 2 cores): measured on the 2-core
AVX2 machine it completes as fast as one window on both threads (1.07x vs 1.06-1.11x of the
one-call reference), and a stale request stops after half the work, since cancellation is
checked between tiles. Larger regions (zoomed out, big screens) run as the engine's usual tiles
on the parallel workers, centre first, each painted as it finishes.

Why a few rectangles and not the bounding box of what is uncovered: after a diagonal pan the
uncovered part is an L; its bounding box is the whole view. Each rectangle pays its own margin,
so :func:`plan_regions` keeps the rectangles only while they cost less than the bounding box.
"""

from __future__ import annotations

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in LR pixels, exclusive ends

#: Context the engine adds around a region, per side, in LR px (its overlap for large tiles):
#: only used to compare the cost of a few rectangles with that of their bounding box.
MARGIN = 32


def _cost(box: Box) -> int:
    return (box[2] - box[0] + 2 * MARGIN) * (box[3] - box[1] + 2 * MARGIN)


def uncovered_rectangles(todo: np.ndarray) -> list[Box]:
    """Rectangles that exactly tile the True pixels of ``todo`` (coordinates within ``todo``).

    Consecutive rows with the same runs of True pixels become one rectangle per run.
    """
    h = todo.shape[0]
    # Rows where the pattern changes start a new group of identical rows.
    starts = np.flatnonzero(np.r_[True, (todo[1:] != todo[:-1]).any(axis=1)])
    ends = np.r_[starts[1:], h]
    rects: list[Box] = []
    for y0, y1 in zip(starts.tolist(), ends.tolist()):
        row = np.r_[False, todo[y0], False].astype(np.int8)
        edges = np.flatnonzero(np.diff(row))
        rects += [(int(a), y0, int(b), y1) for a, b in zip(edges[::2], edges[1::2])]
    return rects


def plan_regions(view: Box, covered: np.ndarray | None = None) -> list[Box]:
    """The uncovered parts of ``view`` as a few rectangles (image coordinates), to run as one job.

    ``covered``: a bool array over the whole LR image (True where the preview is already
    painted), or None when nothing is. Returns [] when the whole view is covered.
    """
    vx0, vy0, vx1, vy1 = view
    if vx1 <= vx0 or vy1 <= vy0:
        return []
    if covered is None:
        return [view]
    todo = ~covered[vy0:vy1, vx0:vx1]
    rows, cols = np.flatnonzero(todo.any(axis=1)), np.flatnonzero(todo.any(axis=0))
    if rows.size == 0:
        return []
    bbox = (vx0 + int(cols[0]), vy0 + int(rows[0]), vx0 + int(cols[-1]) + 1, vy0 + int(rows[-1]) + 1)
    rects = [(x0 + vx0, y0 + vy0, x1 + vx0, y1 + vy0) for x0, y0, x1, y1 in uncovered_rectangles(todo)]
    if len(rects) > 1 and sum(map(_cost, rects)) >= _cost(bbox):
        return [bbox]  # scattered holes: recomputing what is covered between them is cheaper
    return rects
