"""The live preview's plan: the visible region's uncovered part, as few rectangles as pay off."""

from __future__ import annotations

import numpy as np

from app.controllers.preview_plan import plan_regions, uncovered_rectangles


def coverage(boxes: list[tuple[int, int, int, int]], h: int, w: int) -> np.ndarray:
    counts = np.zeros((h, w), int)
    for x0, y0, x1, y1 in boxes:
        counts[y0:y1, x0:x1] += 1
    return counts


def test_an_uncovered_view_is_one_region() -> None:
    view = (300, 200, 700, 450)  # 400x250 LR: a 1600x1000 view at x4, 100 %
    assert plan_regions(view) == [view]
    assert plan_regions(view, np.zeros((600, 1000), bool)) == [view]
    assert plan_regions((5, 5, 5, 9)) == []


def test_only_the_uncovered_part_is_planned() -> None:
    covered = np.zeros((600, 1000), bool)
    covered[200:450, 300:650] = True  # a pan to the right exposed a 50 px strip
    assert plan_regions((350, 200, 750, 450), covered) == [(650, 200, 750, 450)]
    assert plan_regions((300, 200, 650, 450), covered) == []


def test_a_diagonal_pan_plans_the_l_not_the_whole_view() -> None:
    covered = np.zeros((600, 1000), bool)
    covered[200:450, 300:700] = True
    view = (340, 230, 740, 480)  # moved right by 40 and down by 30
    regions = plan_regions(view, covered)
    counts = coverage(regions, 600, 1000)
    todo = np.zeros((600, 1000), bool)
    todo[230:480, 340:740] = True
    todo &= ~covered
    assert (counts[todo] == 1).all() and counts.sum() == todo.sum()  # exactly the L, each pixel once
    assert len(regions) == 2


def test_scattered_holes_become_their_bounding_box() -> None:
    covered = np.ones((300, 300), bool)
    for y in range(20, 280, 40):  # many small holes: each rectangle would pay its own context
        for x in range(20, 280, 40):
            covered[y:y + 4, x:x + 4] = False
    regions = plan_regions((0, 0, 300, 300), covered)
    assert regions == [(20, 20, 264, 264)]


def test_uncovered_rectangles_tile_the_mask_exactly() -> None:
    rng = np.random.default_rng(1)
    todo = rng.random((40, 60)) < 0.3
    todo[10:30] = todo[10]  # runs of identical rows merge
    rects = uncovered_rectangles(todo)
    counts = coverage(rects, 40, 60)
    assert (counts == todo).all()
    assert sum(1 for r in rects if r[1] == 10) == len(uncovered_rectangles(todo[10:11]))
    assert all(r[3] == 30 for r in rects if r[1] == 10)
