"""Before/after image viewer (a view): split divider, side-by-side with shared zoom/pan, magnifier lens.

Everything is drawn in *output* image coordinates (the upscaled size); the
low-resolution "before" image is simply drawn ``scale`` times larger. One
:class:`ViewState` (zoom + the image point at the view centre) is shared by every
canvas that must stay aligned, so side-by-side panes cannot drift: equal-sized
canvases reading the same state compute identical transforms.

Pixels are exact when inspecting: above 100 % zoom the painter uses
nearest-neighbour sampling; below it, smooth downscaling (nearest would alias).
"""

from __future__ import annotations

import math

from PySide6.QtCore import QObject, QPointF, QRect, QRectF, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QCursor,
    QImage,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QTransform,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

MIN_ZOOM, MAX_ZOOM = 0.02, 64.0
WHEEL_STEP = 1.2
LENS_RADIUS = 85
LENS_FACTOR = 4.0
DIVIDER_GRAB_PX = 8


class ViewState(QObject):
    """Zoom (screen px per image px) and the image point shown at the view centre."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.zoom = 1.0
        self.center = QPointF(0, 0)
        self.image_size = QSizeF(0, 0)
        self.fit_mode = True  # keep fitting on resize until the user zooms or pans

    def set_view(self, zoom: float, center: QPointF, *, fit: bool = False) -> None:
        zoom = min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        self.fit_mode = fit
        if math.isclose(zoom, self.zoom) and center == self.center:
            return
        self.zoom, self.center = zoom, QPointF(center)
        self.changed.emit()

    def image_size_center(self) -> QPointF:
        return QPointF(self.image_size.width() / 2, self.image_size.height() / 2)

    def fit_zoom(self, viewport: QSize) -> float:
        if self.image_size.isEmpty() or viewport.isEmpty():
            return 1.0
        return min(viewport.width() / self.image_size.width(), viewport.height() / self.image_size.height())

    def fit(self, viewport: QSize) -> None:
        c = QPointF(self.image_size.width() / 2, self.image_size.height() / 2)
        self.set_view(self.fit_zoom(viewport), c, fit=True)

    def actual_size(self) -> None:
        """100 %: one image pixel per screen pixel, keeping the centre."""
        self.set_view(1.0, self.center)

    def zoom_at(self, factor: float, widget_pt: QPointF, viewport: QSize) -> None:
        """Zoom keeping the image point under ``widget_pt`` fixed (wheel zoom around the cursor)."""
        new_zoom = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom * factor))
        half = QPointF(viewport.width() / 2, viewport.height() / 2)
        img_pt = self.center + (widget_pt - half) / self.zoom
        self.set_view(new_zoom, img_pt - (widget_pt - half) / new_zoom)

    def pan(self, delta_widget: QPointF) -> None:
        self.set_view(self.zoom, self.center - delta_widget / self.zoom)


class CompareCanvas(QWidget):
    """Paints the before and/or after layer of one image with the shared :class:`ViewState`.

    ``role``: "compare" (split divider: before left, after right), "before" or "after".
    The after layer is the finished upscale if there is one, otherwise the original
    with the live-preview patches painted over it.
    """

    def __init__(self, state: ViewState, role: str = "compare", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.role = role
        self.split = 0.5  # divider position as a fraction of the widget width
        self.lens = False
        self.showing_before = False  # the after side shows the original for a quick comparison
        self.label_before = "Original"
        self.label_after = "Upscaled"
        self._before: QPixmap | None = None
        self._after: QPixmap | None = None
        # Live-preview pieces, oldest first (the controller drops the oldest when too many are kept),
        # as QImages so the canvases showing them share one copy.
        self._patches: list[tuple[QRect, QImage]] = []
        # Finished tiles of a running full upscale: all kept (until the result replaces them), as
        # QImages so the canvases showing them share one copy.
        self._tiles: list[tuple[QRect, QImage]] = []
        self._has_alpha = False
        self._drag: str | None = None  # "pan" | "split"
        self._last_pos = QPointF()
        self._cursor_pos: QPointF | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        state.changed.connect(self.update)

    # ------------------------------------------------------------------ content
    def before_image(self) -> QImage | None:
        return self._before.toImage() if self._before is not None else None

    def set_before(self, image: QImage | None) -> None:
        self._before = QPixmap.fromImage(image) if image is not None else None
        self._has_alpha = bool(image is not None and image.hasAlphaChannel())
        self._patches.clear()
        self._tiles.clear()
        self._after = None
        self.update()

    def set_after(self, image: QImage | None) -> None:
        self._after = QPixmap.fromImage(image) if image is not None else None
        if image is not None:
            self._patches.clear()
            self._tiles.clear()
        self.update()

    def add_patch(self, box: QRect, image: QImage) -> None:
        """One finished live-preview piece (``box`` in output pixels), drawn over the older ones."""
        self._patches.append((QRect(box), image))
        self.update()

    def drop_oldest_patches(self, count: int) -> None:
        del self._patches[:count]
        self.update()

    def add_tile(self, box: QRect, image: QImage) -> None:
        self._tiles.append((QRect(box), image))
        self.update()

    def clear_tiles(self) -> None:
        if self._tiles:
            self._tiles.clear()
            self.update()

    def tiles(self) -> list[QRect]:
        return [b for b, _ in self._tiles]

    def patches(self) -> list[QRect]:
        """Every upscaled area shown so far: finished tiles of a full upscale, then live-preview patches."""
        return [b for b, _ in self._tiles] + [b for b, _ in self._patches]

    def set_showing_before(self, on: bool) -> None:
        if on != self.showing_before:
            self.showing_before = on
            self.update()

    def has_after(self) -> bool:
        return self._after is not None

    def render_after(self, rect: QRect) -> QImage:
        """The upscaled side as painted, for ``rect`` (output pixels) at 100 %: what the user sees there."""
        out = QImage(rect.size(), QImage.Format.Format_RGB888)
        out.fill(QColor(255, 0, 255))  # a colour no layer paints: uncovered pixels stand out
        p = QPainter(out)
        p.translate(-rect.x(), -rect.y())
        self._draw_layer(p, True)
        p.end()
        return out

    # ------------------------------------------------------------------ geometry
    def view_transform(self) -> QTransform:
        s = self.state
        return (
            QTransform()
            .translate(self.width() / 2, self.height() / 2)
            .scale(s.zoom, s.zoom)
            .translate(-s.center.x(), -s.center.y())
        )

    def map_to_image(self, widget_pt: QPointF) -> QPointF:
        inv, _ok = self.view_transform().inverted()
        return inv.map(widget_pt)

    def visible_image_rect(self) -> QRectF:
        """The part of the (output-size) image currently on screen."""
        inv, _ok = self.view_transform().inverted()
        r = inv.mapRect(QRectF(self.rect()))
        return r.intersected(QRectF(QPointF(0, 0), self.state.image_size))

    def split_x(self) -> float:
        return self.split * self.width()

    def set_split(self, fraction: float) -> None:
        self.split = min(1.0, max(0.0, fraction))
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Hidden canvases (the other view mode) are resized too; only the visible one may refit.
        if self.state.fit_mode and self.isVisible() and not self.state.image_size.isEmpty():
            self.state.fit(self.size())

    # ------------------------------------------------------------------ painting
    def _draw_layer(self, p: QPainter, after: bool) -> None:
        after = after and not self.showing_before
        w, h = self.state.image_size.width(), self.state.image_size.height()
        target = QRectF(0, 0, w, h)
        if after and self._after is not None:
            p.drawPixmap(target, self._after, QRectF(self._after.rect()))
            return
        if self._before is not None:
            p.drawPixmap(target, self._before, QRectF(self._before.rect()))
        if after:
            for box, img in self._tiles:
                p.drawImage(QRectF(box), img, QRectF(img.rect()))
            for box, img in self._patches:
                p.drawImage(QRectF(box), img, QRectF(img.rect()))

    def _checker(self, p: QPainter) -> None:
        tile = 8
        light, dark = QColor(0x9A, 0x9A, 0x9A), QColor(0x6E, 0x6E, 0x6E)
        img = QRectF(QPointF(0, 0), self.state.image_size)
        r = self.view_transform().mapRect(img).toAlignedRect().intersected(self.rect())
        p.fillRect(r, light)
        for y in range(r.top() - r.top() % tile, r.bottom() + 1, tile):
            for x in range(r.left() - r.left() % tile + ((y // tile) % 2) * tile, r.right() + 1, 2 * tile):
                p.fillRect(QRect(x, y, tile, tile).intersected(r), dark)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().color(self.backgroundRole()).darker(115))
        if self._before is None:
            p.end()
            return
        if self._has_alpha:
            self._checker(p)
        smooth = self.state.zoom < 1.0
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, smooth)
        t = self.view_transform()
        if self.role == "compare":
            sx = self.split_x()
            for after, clip in (
                (False, QRectF(0, 0, sx, self.height())),
                (True, QRectF(sx, 0, self.width() - sx, self.height())),
            ):
                p.save()
                p.setClipRect(clip)
                p.setTransform(t)
                self._draw_layer(p, after)
                p.restore()
            self._draw_divider(p, sx)
            self._draw_badge(p, self.label_before, left=True)
            self._draw_badge(p, self._after_label(), left=False)
        else:
            p.save()
            p.setTransform(t)
            self._draw_layer(p, self.role == "after")
            p.restore()
            self._draw_badge(p, self.label_before if self.role == "before" else self._after_label(), left=True)
        if self.lens and self._cursor_pos is not None:
            self._draw_lens(p, self._cursor_pos)
        p.end()

    def _after_label(self) -> str:
        return f"{self.label_before} (Space: back to {self.label_after})" if self.showing_before else self.label_after

    def _draw_divider(self, p: QPainter, x: float) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(255, 255, 255, 230), 2))
        p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        c = QPointF(x, self.height() / 2)
        p.setBrush(QColor(255, 255, 255, 235))
        p.setPen(QPen(QColor(0, 0, 0, 90), 1))
        p.drawEllipse(c, 14, 14)
        p.setPen(QPen(QColor(40, 40, 40), 2))
        for sign in (-1, 1):  # two small chevrons: "drag me sideways"
            tip = c + QPointF(sign * 8, 0)
            p.drawLine(tip, tip + QPointF(-sign * 4, -4))
            p.drawLine(tip, tip + QPointF(-sign * 4, 4))

    def _draw_badge(self, p: QPainter, text: str, left: bool) -> None:
        if not text:
            return
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fm = p.fontMetrics()
        w, h = fm.horizontalAdvance(text) + 16, fm.height() + 8
        x = 10 if left else self.width() - w - 10
        r = QRectF(x, 10, w, h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(0, 0, 0, 150))
        p.drawRoundedRect(r, 5, 5)
        p.setPen(QColor(255, 255, 255))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        p.restore()

    def _draw_lens(self, p: QPainter, pos: QPointF) -> None:
        img_pt = self.map_to_image(pos)
        after = self.role == "after" or (self.role == "compare" and pos.x() >= self.split_x())
        p.save()
        p.resetTransform()
        path = QPainterPath()
        path.addEllipse(pos, LENS_RADIUS, LENS_RADIUS)
        p.setClipPath(path)
        p.fillPath(path, QColor(30, 30, 30))
        z = self.state.zoom * LENS_FACTOR
        p.setTransform(
            QTransform().translate(pos.x(), pos.y()).scale(z, z).translate(-img_pt.x(), -img_pt.y())
        )
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)  # the lens is for pixel peeping
        self._draw_layer(p, after)
        p.restore()
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setPen(QPen(QColor(255, 255, 255, 220), 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawEllipse(pos, LENS_RADIUS, LENS_RADIUS)
        p.restore()

    # ------------------------------------------------------------------ input
    def _near_divider(self, x: float) -> bool:
        return self.role == "compare" and abs(x - self.split_x()) <= DIVIDER_GRAB_PX

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        pos = event.position()
        self._drag = "split" if self._near_divider(pos.x()) else "pan"
        self._last_pos = pos
        if self._drag == "pan":
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        pos = event.position()
        self._cursor_pos = pos
        if self._drag == "split":
            self.set_split(pos.x() / max(1, self.width()))
        elif self._drag == "pan":
            self.state.pan(pos - self._last_pos)
            self._last_pos = pos
        else:
            shape = (
                Qt.CursorShape.SplitHCursor if self._near_divider(pos.x()) else Qt.CursorShape.OpenHandCursor
            )
            self.setCursor(QCursor(shape))
        if self.lens:
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None
        self.setCursor(Qt.CursorShape.OpenHandCursor)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        # Double-click toggles fit <-> 100 % around the clicked point, like most image viewers.
        if self.state.fit_mode:
            img_pt = self.map_to_image(event.position())
            self.state.set_view(1.0, img_pt)
        else:
            self.state.fit(self.size())

    def leaveEvent(self, event: object) -> None:
        self._cursor_pos = None
        if self.lens:
            self.update()

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.state.zoom_at(WHEEL_STEP**steps, event.position(), self.size())
        event.accept()


class SideBySide(QWidget):
    """Two canvases of exactly equal size (so their transforms match) sharing one state."""

    GAP = 4

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.left = CompareCanvas(state, "before", self)
        self.right = CompareCanvas(state, "after", self)
        self.setMinimumSize(2 * 120 + self.GAP, 120)

    def resizeEvent(self, event: QResizeEvent) -> None:
        w = (self.width() - self.GAP) // 2
        self.left.setGeometry(0, 0, w, self.height())
        self.right.setGeometry(self.width() - w, 0, w, self.height())
        super().resizeEvent(event)
