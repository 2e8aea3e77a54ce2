"""Live preview: latest wins, stale requests are cancelled, only the newest result is painted."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPointF, QRect
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.controllers.preview import PreviewScheduler
from dipnet_core.cancel import CancelToken


def test_scheduler_cancels_stale_and_applies_only_the_latest(qtbot: object) -> None:
    started: list[int] = []
    release = threading.Event()
    cancelled_seen: list[int] = []

    def compute(payload: int, token: CancelToken) -> int:
        started.append(payload)
        if payload == 1:  # the first request blocks until it is cancelled
            while not token.cancelled:
                release.wait(0.005)
            cancelled_seen.append(payload)
        return payload * 10

    sched = PreviewScheduler(compute, debounce_ms=0)
    applied: list[tuple[int, int]] = []
    sched.ready.connect(lambda rid, payload, result: applied.append((payload, result)))

    r1 = sched.request(1)
    qtbot.waitUntil(lambda: started == [1])  # type: ignore[attr-defined]
    r2 = sched.request(2)  # cancels 1 at once, waits for its turn
    r3 = sched.request(3)  # replaces 2 before it ever starts
    with qtbot.waitSignal(sched.idle, timeout=5000):  # type: ignore[attr-defined]
        pass
    assert applied == [(3, 30)]
    assert sched.outcomes == {r1: "cancelled", r2: "superseded", r3: "applied"}
    assert cancelled_seen == [1] and 2 not in started


def test_debounce_coalesces_a_burst(qtbot: object) -> None:
    """The first change after a quiet spell starts at once; the rest of a burst makes one request."""
    calls: list[int] = []
    sched = PreviewScheduler(lambda p, _t: calls.append(p) or p, debounce_ms=200)
    ids = [sched.request(i) for i in range(5)]
    assert sched.outcomes[ids[0]] == "cancelled"  # started at once, then cancelled by the next one
    assert [sched.outcomes[i] for i in ids[1:]] == ["superseded"] * 3 + ["pending"]
    with qtbot.waitSignal(sched.idle, timeout=5000):  # type: ignore[attr-defined]
        pass
    assert calls == [0, 4]  # this compute ignores its token; a real one stops at the next tile
    assert [sched.outcomes[i] for i in ids] == ["cancelled"] + ["superseded"] * 3 + ["applied"]


def test_a_single_change_or_a_new_image_starts_without_the_debounce(qtbot: object) -> None:
    started: list[int] = []
    sched = PreviewScheduler(lambda p, _t: started.append(p) or p, debounce_ms=60_000)
    r1 = sched.request(1)  # nothing came before it: no reason to wait
    assert sched.outcomes[r1] == "running"
    with qtbot.waitSignal(sched.idle, timeout=5000):  # type: ignore[attr-defined]
        pass
    r2 = sched.request(2)  # right after another one: part of a burst, so it waits
    assert sched.outcomes[r2] == "pending"
    r3 = sched.request(3, immediate=True)  # e.g. a newly opened image: starts now all the same
    assert sched.outcomes[r3] == "running" and sched.outcomes[r2] == "superseded"
    with qtbot.waitSignal(sched.idle, timeout=5000):  # type: ignore[attr-defined]
        pass
    assert started == [1, 3]


def hold_previews(up: object) -> threading.Event:
    """Hold every preview computation of ``up`` in its worker until the returned event is set or it
    is cancelled, so a test decides when a preview may finish (a fast machine could otherwise finish
    it before the next view arrives)."""
    gate_open = threading.Event()
    real = up.preview._compute  # type: ignore[attr-defined]

    def gated(payload: object, token: CancelToken) -> object:
        while not gate_open.is_set() and not token.cancelled:
            gate_open.wait(0.005)
        return real(payload, token)

    up.preview._compute = gated  # type: ignore[attr-defined]
    return gate_open


def visible_rect(canvas: object) -> QRect:
    return canvas.visible_image_rect().toAlignedRect()  # type: ignore[attr-defined]


def magenta_pixels(image: QImage) -> int:
    """Pixels no layer painted (``render_after`` fills with magenta first)."""
    from app.qt_image import qimage_to_array

    px, _a, _b = qimage_to_array(image)
    rgb = np.round(px * 255)
    return int(np.all(rgb == (255, 0, 255), axis=2).sum())


def test_view_changes_in_the_app_apply_only_the_last_preview(
    window: object, qtbot: object, tmp_path: Path
) -> None:
    from studio_testutil import write_png

    w = window
    path = write_png(tmp_path / "p.png", 160, 120, seed=3)
    up = w.upscale  # type: ignore[attr-defined]
    up.preview.debounce_ms = 0
    gate_open = hold_previews(up)
    before = set(up.preview.outcomes)
    up.open_path(path)
    state = w.upscale_view.state  # type: ignore[attr-defined]
    canvas = w.upscale_view.active_canvas()  # type: ignore[attr-defined]
    corners = [QPointF(40, 40), QPointF(600, 40), QPointF(40, 440), QPointF(600, 440)]
    for c in [None, *corners[:-1]]:
        if c is not None:
            state.set_view(8.0, c)
        # Wait until this view's preview is computing, so the next view has to cancel it.
        qtbot.waitUntil(
            lambda: bool(up.preview.outcomes) and up.preview.outcomes[max(up.preview.outcomes)] == "running",
            timeout=20_000,
        )
    gate_open.set()
    state.set_view(8.0, corners[-1])
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        pass
    new = {rid: o for rid, o in up.preview.outcomes.items() if rid not in before}
    latest = max(new)
    assert new[latest] == "applied"
    assert [o for rid, o in sorted(new.items()) if rid != latest] == ["cancelled"] * 4
    # Only the last view was painted: it is covered, the first corner (cancelled) is not.
    assert canvas.patches() and up.preview_complete()
    assert magenta_pixels(canvas.render_after(visible_rect(canvas))) == 0
    first_corner = QRect(0, 0, 80, 80)
    assert not any(p.intersects(first_corner) for p in canvas.patches())


@pytest.mark.slow
def test_preview_fills_the_visible_region_with_the_models_output(
    window: object, qtbot: object, tmp_path: Path
) -> None:
    """Issue 17.1: at 100 % the whole visible upscaled region becomes the model's output on its own,
    centre first, tile by tile, with nothing of the placeholder (the original, enlarged) left."""
    from studio_testutil import write_png

    from app.qt_image import qimage_to_array
    from dipnet_core.engine import TiledUpscaler

    w = window
    w.resize(1600, 1000)  # type: ignore[attr-defined]
    up, view = w.upscale, w.upscale_view  # type: ignore[attr-defined]
    # With the automatic tile size this view fits one window; 192 px tiles make a dozen, to see
    # them painted one by one, centre first, and their seams.
    up.ctx.settings.tile_size = 192  # type: ignore[attr-defined]
    up.ctx.inference_settings_changed()  # type: ignore[attr-defined]
    path = write_png(tmp_path / "wide.png", 480, 320, seed=4)
    gate_open = hold_previews(up)  # the fit view's preview waits, and is cancelled by the next view
    up.open_path(path)
    qtbot.waitUntil(lambda: up.loaded is not None, timeout=30_000)  # type: ignore[attr-defined]
    pieces: list[tuple[int, int, int, int]] = []
    up.preview.ready.connect(lambda _rid, _payload, piece: pieces.append(piece[0]))
    view.actual_btn.click()  # 100 %
    gate_open.set()
    qtbot.waitUntil(up.preview_complete, timeout=120_000)  # type: ignore[attr-defined]
    canvas = view.active_canvas()
    rect = visible_rect(canvas)
    assert rect.width() > 1200 and rect.height() > 600  # most of a 1600x1000 window
    # One engine job, painted tile by tile as the tiles finish: the tile holding the view's centre
    # starts first, then outward; the first painted is one of those the workers started together.
    engine = up.ctx.engine(up.ctx.engine_key())  # type: ignore[attr-defined]
    workers = engine.preview_upscaler.workers
    box = up.visible_lr_box()  # type: ignore[attr-defined]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    h, w = up.loaded.rgb.shape[:2]  # type: ignore[attr-defined]
    plan = [core for _i, _w, core in engine.preview_upscaler.plan_regions(h, w, [box], centre=(cx, cy))]
    assert sorted(pieces) == sorted(plan) and len(pieces) >= 6
    assert plan[0][0] <= cx < plan[0][2] and plan[0][1] <= cy < plan[0][3]
    assert pieces[0] in plan[:workers]
    dist = [np.hypot((p[0] + p[2]) / 2 - cx, (p[1] + p[3]) / 2 - cy) for p in plan]
    assert dist[-1] > dist[0] and max(dist[:workers]) <= min(dist[-workers:])

    shown = canvas.render_after(rect)
    assert magenta_pixels(shown) == 0
    seen = np.round(qimage_to_array(shown)[0] * 255)
    # The model's output for the same region, from a whole-image run of the engine.
    with TiledUpscaler(engine.backend) as tiler:
        full = tiler.upscale(up.loaded.rgb)  # type: ignore[attr-defined]
    expect = np.round(np.clip(full, 0, 1)[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1] * 255)
    assert seen.shape == expect.shape
    assert np.abs(seen - expect).max() <= 2  # tiling error (< 1 level) plus 8-bit rounding
    # The placeholder (the original enlarged) is far from that: the check can tell them apart.
    lr = up.loaded.rgb  # type: ignore[attr-defined]
    nearest = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)
    placeholder = np.round(nearest[rect.top():rect.bottom() + 1, rect.left():rect.right() + 1] * 255)
    assert np.abs(placeholder - expect).max() > 20


def test_closing_the_window_with_a_preview_in_flight(ctx: object, qtbot: object, tmp_path: Path) -> None:
    """Issue 13: a preview result that arrives after its window is gone must be dropped, not crash.

    The held computation ignores the cancel and delivers its pieces and result anyway (as one that
    was already past its last cancel check would), after the window is closed or deleted.
    """
    from studio_testutil import write_png

    from app.window import MainWindow
    from app.workers import shutdown

    for how in ("close", "delete"):
        w = MainWindow(ctx)  # type: ignore[arg-type]
        w.show()
        up = w.upscale
        up.preview.debounce_ms = 0
        gate_open = threading.Event()
        real = up.preview._compute
        cancel_seen: list[bool] = []

        def stubborn(payload: object, token: CancelToken, real: object = real, gate: threading.Event = gate_open,
                     seen: list[bool] = cancel_seen) -> object:
            gate.wait(20)
            seen.append(token.cancelled)
            return list(real(payload, CancelToken()))  # type: ignore[operator]  # runs to the end regardless

        up.preview._compute = stubborn
        up.open_path(write_png(tmp_path / f"{how}.png", 64, 48))
        qtbot.waitUntil(lambda up=up: "running" in up.preview.outcomes.values(), timeout=20_000)  # type: ignore[attr-defined]
        task = up.preview._running[1]
        if how == "close":
            w.close()  # cancels the window's work (and would wait for it, but this one is held)
        else:
            w.deleteLater()  # gone without a close: deleting the controllers cancels their work
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        gate_open.set()
        assert shutdown(20_000)
        assert cancel_seen == [True]  # the window's end did cancel it
        assert task.outcome == "result"  # ... but it delivered a result anyway
        if how == "close":
            w.deleteLater()
            QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        # Deliver the late result to the deleted window's scheduler: it must be dropped quietly.
        QApplication.processEvents()
