"""The status bar says why the first run of a model waits: the engine paths are being timed."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from dipnet_core.engine import create_backend
from dipnet_core.engine.backends import autoselect
from dipnet_core.models import load_model


def test_status_bar_names_the_measurement(window: object, qtbot: object, tmp_path: Path, builtin_weights_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")

    def fake_timing(self: autoselect.BackendRunner, cand: autoselect.Candidate, tile: int) -> float:
        self.backend(cand)  # real backends are built; only the seconds are made up
        return 1.0 if cand.backend == "onnx" else 2.0

    monkeypatch.setattr(autoselect.BackendRunner, "__call__", fake_timing)
    model = load_model(builtin_weights_path)
    status = window.statusBar()  # type: ignore[attr-defined]
    shown: list[str] = []
    status.messageChanged.connect(lambda text: shown.append(text) if text else None)
    # As in the app: the engine is built on a worker thread, the messages cross to the GUI thread.
    worker = threading.Thread(target=lambda: create_backend(model, device="cpu"))
    worker.start()
    qtbot.waitUntil(lambda: len(shown) == 2, timeout=20_000)  # type: ignore[attr-defined]
    worker.join(20)
    assert shown[0] == autoselect.MEASURING_MESSAGE
    assert shown[1].startswith(autoselect.MEASURED_PREFIX) and "onnxruntime" in shown[1]
    assert status.currentMessage() == shown[1]  # the wait is over, and the status bar says so
    status.clearMessage()
    create_backend(model, device="cpu")  # cached: no wait, no message
    qtbot.wait(50)  # type: ignore[attr-defined]
    assert status.currentMessage() == ""


def test_a_closed_window_stops_listening(window: object) -> None:
    listening = len(autoselect._listeners)
    assert listening >= 1
    window.close()  # type: ignore[attr-defined]
    assert len(autoselect._listeners) == listening - 1
