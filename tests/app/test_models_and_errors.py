"""Model library (import, rename, default, delete, speed) and readable errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from studio_testutil import needs_engine

from app.errors import ErrorReporter, NoModelError, is_expected, user_message


def test_library_import_rename_default_delete(
    ctx: object, tmp_path: Path, official_weights_path: Path
) -> None:
    lib = ctx.library  # type: ignore[attr-defined]
    second = lib.import_file(official_weights_path, name="Second copy")
    assert second.path.parent == ctx.store.paths.models_dir  # type: ignore[attr-defined]
    assert second.scale == 4 and second.params == 243_252 and second.widths == "44/38"
    lib.rename(second.id, "Renamed")
    assert lib.get(second.id).name == "Renamed"
    lib.set_default(second.id)
    assert ctx.current_model().id == second.id  # type: ignore[attr-defined]
    lib.delete(second.id)
    assert lib.get(second.id) is None and not second.path.exists()
    # the deleted default falls back to the built-in model, which cannot be deleted
    fallback = ctx.current_model()  # type: ignore[attr-defined]
    assert fallback is not None and fallback.builtin and fallback.name == "dipnet-studio-x4"
    with pytest.raises(ValueError):
        lib.delete(fallback.id)
    with pytest.raises(ValueError):
        lib.rename(ctx.current_model().id, "  ")  # type: ignore[attr-defined]


def test_importing_a_broken_file_is_refused_with_a_reason(window: object, tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    w = window
    before = len(w.ctx.library.entries())  # type: ignore[attr-defined]
    assert w.models.import_file(bad) is None  # type: ignore[attr-defined]
    text = w.models_view.banner.text.text()  # type: ignore[attr-defined]
    assert "weights.pth" in text and "Traceback" not in text
    assert len(w.ctx.library.entries()) == before  # type: ignore[attr-defined]


@needs_engine
def test_measure_speed_records_it(window: object, qtbot: object) -> None:
    w = window
    entry = w.ctx.current_model()  # type: ignore[attr-defined]
    with qtbot.waitSignal(w.models.speedMeasured, timeout=60_000) as sig:  # type: ignore[attr-defined]
        w.models.measure_speed(entry.id)  # type: ignore[attr-defined]
    assert sig.args[1] > 0
    assert w.ctx.library.get(entry.id).speed_mps == pytest.approx(sig.args[1], rel=1e-2)  # type: ignore[attr-defined]
    row = [e.id for e in w.ctx.library.entries()].index(entry.id)  # type: ignore[attr-defined]
    assert "MP/s" in w.models_view.table.item(row, 6).text()  # type: ignore[attr-defined]


def test_user_messages_name_the_file_and_cause() -> None:
    from dipnet_core.io import ImageReadError

    msg = user_message(
        ImageReadError("cannot read '/x/a.png': file is truncated", "/x/a.png"), "Cannot open a.png"
    )
    assert msg.startswith("Cannot open a.png:") and "truncated" in msg
    assert "permission denied" in user_message(PermissionError(13, "Permission denied", "/root/x"))
    assert is_expected(NoModelError()) and not is_expected(KeyError("bug"))


def test_unexpected_errors_are_logged_and_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shown: list[tuple[str, str]] = []
    rep = ErrorReporter(tmp_path / "app.log", lambda t, m: shown.append((t, m)))
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            try:
                {}["missing"]
            except KeyError as exc:
                rep.report(exc, "testing")
    assert len(shown) == 1 and str(tmp_path / "app.log") in shown[0][1]
    assert sum("unexpected error" in r.message for r in caplog.records) == 3
    assert "Traceback" in caplog.text
