"""The live preview's plan: the whole visible region, only what is not covered yet, centre first."""

from __future__ import annotations

import numpy as np

from app.controllers.preview_plan import MAX_PIECE, ONE_PIECE_MAX_PIXELS, plan_pieces


def coverage(pieces: list[tuple[int, int, int, int]], h: int, w: int) -> np.ndarray:
    counts = np.zeros((h, w), int)
    for x0, y0, x1, y1 in pieces:
        counts[y0:y1, x0:x1] += 1
    return counts


def test_a_1600x1000_view_at_100_percent_is_covered_once_centre_first() -> None:
    view = (300, 200, 700, 450)  # 400x250 LR: a 1600x1000 view at x4, 100 %
    pieces = plan_pieces(view)
    counts = coverage(pieces, 600, 1000)
    assert (counts[200:450, 300:700] == 1).all() and counts.sum() == 400 * 250  # all of it, once, nothing else
    assert len(pieces) >= 3
    cx, cy = 500, 325
    assert pieces[0][0] <= cx < pieces[0][2] and pieces[0][1] <= cy < pieces[0][3]
    # Outward: each later piece is no nearer the centre than the ones before it (by band).
    dist = [abs((p[1] + p[3]) / 2 - cy) for p in pieces]
    assert dist == sorted(dist)
    assert all(p[2] - p[0] <= MAX_PIECE for p in pieces)


def test_only_the_uncovered_part_is_planned() -> None:
    covered = np.zeros((600, 1000), bool)
    covered[200:450, 300:650] = True  # a pan to the right exposed a 50 px strip
    pieces = plan_pieces((350, 200, 750, 450), covered)
    counts = coverage(pieces, 600, 1000)
    assert counts[200:450, 650:750].min() == 1  # the new strip is planned
    assert counts[:, :650].sum() == 0  # nothing already painted is recomputed
    assert plan_pieces((300, 200, 650, 450), covered) == []


def test_a_small_view_is_one_piece_and_a_wide_one_is_split() -> None:
    assert plan_pieces((0, 0, 100, 80)) == [(0, 0, 100, 80)]
    side = int(np.sqrt(ONE_PIECE_MAX_PIXELS)) + 40
    wide = plan_pieces((0, 0, 3 * MAX_PIECE, side))
    assert all(p[2] - p[0] <= MAX_PIECE for p in wide)
    assert coverage(wide, side, 3 * MAX_PIECE).min() == 1
