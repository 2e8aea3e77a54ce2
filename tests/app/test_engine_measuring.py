"""The status bar says why the first run of a model waits: the engine paths are being timed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dipnet_core.engine import create_backend
from dipnet_core.engine.backends import autoselect
from dipnet_core.models import load_model


def test_status_bar_names_the_measurement(window: object, qtbot: object, tmp_path: Path,
                                          builtin_weights_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")

    def fake_timing(self: autoselect.BackendRunner, cand: autoselect.Candidate, tile: int) -> float:
        self.backend(cand)  # real backends are built; only the seconds are made up
        return 1.0 if cand.backend == "onnx" else 2.0

    monkeypatch.setattr(autoselect.BackendRunner, "__call__", fake_timing)
    model = load_model(builtin_weights_path)
    status = window.statusBar()  # type: ignore[attr-defined]
    # As in the app: the engine is built on a worker thread, the message crosses to the GUI thread.
    worker = threading.Thread(target=lambda: create_backend(model, device="cpu"))
    worker.start()
    qtbot.waitUntil(lambda: status.currentMessage() == autoselect.MEASURING_MESSAGE, timeout=20_000)  # type: ignore[attr-defined]
    worker.join(20)
    status.clearMessage()
    create_backend(model, device="cpu")  # cached: no wait, no message
    qtbot.wait(50)  # type: ignore[attr-defined]
    assert status.currentMessage() == ""


def test_a_closed_window_stops_listening(window: object) -> None:
    listening = len(autoselect._listeners)
    assert listening >= 1
    window.close()  # type: ignore[attr-defined]
    assert len(autoselect._listeners) == listening - 1
