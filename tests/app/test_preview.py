"""Live preview: latest wins, stale requests are cancelled, only the newest result is painted."""

from __future__ import annotations

import threading
from pathlib import Path


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
    calls: list[int] = []
    sched = PreviewScheduler(lambda p, _t: calls.append(p) or p, debounce_ms=50)
    ids = [sched.request(i) for i in range(5)]
    with qtbot.waitSignal(sched.idle, timeout=5000):  # type: ignore[attr-defined]
        pass
    assert calls == [4]
    assert [sched.outcomes[i] for i in ids] == ["superseded"] * 4 + ["applied"]


def test_view_changes_in_the_app_apply_only_the_last_preview(
    window: object, qtbot: object, tmp_path: Path
) -> None:
    from PySide6.QtCore import QPointF
    from studio_testutil import write_png

    w = window
    # Larger than the first preview box, so zooming into the corners needs new previews.
    path = write_png(tmp_path / "p.png", 160, 120, seed=3)
    up = w.upscale  # type: ignore[attr-defined]
    up.preview.debounce_ms = 0
    with qtbot.waitSignal(up.preview.ready, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(path)
    assert len(w.upscale_view.compare.patches()) == 1  # type: ignore[attr-defined]

    state = w.upscale_view.state  # type: ignore[attr-defined]
    canvas = w.upscale_view.active_canvas()  # type: ignore[attr-defined]
    # Hold each preview in the worker until it is cancelled (a fast machine could otherwise finish
    # it before the next view arrives); the last one runs through to the real engine.
    gate_open = threading.Event()
    real = up.preview._compute

    def gated(payload: object, token: CancelToken) -> object:
        while not gate_open.is_set() and not token.cancelled:
            gate_open.wait(0.005)
        return real(payload, token)

    up.preview._compute = gated
    before = set(up.preview.outcomes)
    corners = [QPointF(40, 40), QPointF(600, 40), QPointF(40, 440), QPointF(600, 440)]
    for c in corners[:-1]:
        state.set_view(8.0, c)
        # Wait until this view's preview is computing, so the next view has to cancel it.
        qtbot.waitUntil(
            lambda: up.preview.outcomes[max(up.preview.outcomes)] == "running",  # type: ignore[attr-defined]
            timeout=10_000,
        )
    gate_open.set()
    state.set_view(8.0, corners[-1])
    with qtbot.waitSignal(up.preview.idle, timeout=30_000):  # type: ignore[attr-defined]
        pass
    new = {rid: o for rid, o in up.preview.outcomes.items() if rid not in before}
    latest = max(new)
    assert new[latest] == "applied"
    assert [o for rid, o in sorted(new.items()) if rid != latest] == ["cancelled"] * 3
    # Exactly one new patch was painted, and it covers the last view (the bottom-right corner).
    patches = canvas.patches()
    assert len(patches) == 2
    assert patches[-1].intersects(canvas.visible_image_rect().toAlignedRect())
    assert patches[-1].contains(corners[-1].toPoint())
