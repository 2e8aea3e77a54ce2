"""Split divider and side-by-side views stay aligned; zoom keeps the point under the cursor."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt

from app.qt_image import array_to_qimage
from app.views.upscale_view import UpscaleView


def _view(qtbot: object) -> UpscaleView:
    v = UpscaleView()
    qtbot.addWidget(v)  # type: ignore[attr-defined]
    v.resize(900, 600)
    v.show()
    qtbot.waitExposed(v)  # type: ignore[attr-defined]
    img = array_to_qimage(np.random.default_rng(0).random((30, 40, 3), dtype=np.float32))
    v.show_image(img, 4, "test")
    return v


def test_split_divider_drag_moves_only_the_divider(qtbot: object) -> None:
    v = _view(qtbot)
    c = v.compare
    before = c.view_transform()
    y = c.height() // 2
    qtbot.mousePress(c, Qt.MouseButton.LeftButton, pos=QPoint(int(c.split_x()), y))  # type: ignore[attr-defined]
    qtbot.mouseMove(c, QPoint(int(c.width() * 0.25), y))  # type: ignore[attr-defined]
    qtbot.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QPoint(int(c.width() * 0.25), y))  # type: ignore[attr-defined]
    assert abs(c.split - 0.25) < 0.01
    assert c.view_transform() == before  # both halves still show the same image geometry


def test_side_by_side_zoom_and_pan_keep_both_views_aligned(qtbot: object) -> None:
    v = _view(qtbot)
    v.set_mode("side")
    left, right = v.side.left, v.side.right
    assert left.size() == right.size()
    assert left.view_transform() == right.view_transform()
    # Wheel over the right pane, then drag-pan the left one: the transforms must stay identical.
    pos = QPointF(right.width() * 0.3, right.height() * 0.6)
    img_pt = right.map_to_image(pos)
    v.state.zoom_at(2.0, pos, right.size())
    assert left.view_transform() == right.view_transform()
    assert (right.map_to_image(pos) - img_pt).manhattanLength() < 1e-6  # zoom around the cursor
    qtbot.mousePress(left, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))  # type: ignore[attr-defined]
    qtbot.mouseMove(left, QPoint(140, 90))  # type: ignore[attr-defined]
    qtbot.mouseRelease(left, Qt.MouseButton.LeftButton, pos=QPoint(140, 90))  # type: ignore[attr-defined]
    assert left.view_transform() == right.view_transform()
    assert left.visible_image_rect() == right.visible_image_rect()


def test_fit_and_actual_size(qtbot: object) -> None:
    v = _view(qtbot)
    c = v.active_canvas()
    v.fit_btn.click()
    r = c.view_transform().mapRect(QRectF(0, 0, 160, 120))  # the whole 4x output of a 40x30 image
    assert r.width() <= c.width() + 1 and r.height() <= c.height() + 1
    assert abs(r.width() - c.width()) < 1 or abs(r.height() - c.height()) < 1
    v.actual_btn.click()
    assert v.state.zoom == 1.0 and v.zoom_label.text() == "100%"


def test_lens_and_modes_paint_without_errors(qtbot: object) -> None:
    v = _view(qtbot)
    v.lens_btn.setChecked(True)
    c = v.compare
    qtbot.mouseMove(c, QPoint(50, 50))  # type: ignore[attr-defined]
    assert not c.grab().isNull()
    v.set_mode("side")
    assert not v.side.grab().isNull()
