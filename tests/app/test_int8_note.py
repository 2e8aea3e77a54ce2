"""The Upscale tab's engine line and the About box say when auto left the model's int8 twin out here."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.controllers.engine import int8_note
from dipnet_core.engine import create_backend
from dipnet_core.engine.backends import autoselect
from tests.core.test_int8_guard import TWIN, _model_with_twin, _tampered


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")
    # The note is about the int8 guard's verdict, not the tile ladder (test_engine_choice.py):
    # the 320 and 512 px timings of the real measurement would add ~20 s per test.
    monkeypatch.setattr(autoselect, "TILE_CANDIDATES", (160,))


def test_engine_line_names_a_rejected_twin(tmp_path: Path) -> None:
    backend = create_backend(_model_with_twin(tmp_path / "bad", _tampered(scale_rms=0.4)), device="cpu")
    assert backend.precision != "int8"
    assert int8_note(backend) == " · int8 twin not used (it computes differently on this CPU)"
    assert "error power" in int8_note(backend, full=True)


def test_engine_line_is_quiet_for_a_verified_twin(tmp_path: Path) -> None:
    backend = create_backend(_model_with_twin(tmp_path / "good", TWIN.read_bytes()), device="cpu")
    assert backend.choice is not None and backend.choice.int8_check["ok"]
    assert int8_note(backend) == ""
