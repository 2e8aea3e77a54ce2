"""Model library (import, rename, default, delete, speed) and readable errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from studio_testutil import write_png

from app.errors import ErrorReporter, NoModelError, is_expected, user_message


def test_library_import_rename_default_delete(
    ctx: object, tmp_path: Path, builtin_weights_path: Path
) -> None:
    lib = ctx.library  # type: ignore[attr-defined]
    second = lib.import_file(builtin_weights_path, name="Second copy")
    assert second.path.parent == ctx.store.paths.models_dir  # type: ignore[attr-defined]
    # Expected values read from the file itself, not through the code under test.
    from safetensors import safe_open

    with safe_open(builtin_weights_path, "pt") as f:
        params = sum(f.get_tensor(k).numel() for k in f.keys())
        feat, mid = f.get_tensor("conv_1.weight").shape[0], f.get_tensor("block_1.c1_r.weight").shape[0]
    assert second.scale == 4 and second.params == params and second.widths == f"{feat}/{mid}"
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


def test_built_in_model_shows_its_recorded_validation_psnr(ctx: object) -> None:
    import json

    from safetensors import safe_open

    builtin = next(e for e in ctx.library.entries() if e.builtin)  # type: ignore[attr-defined]
    # The raw safetensors header, read here without the project's descriptor code.
    with safe_open(builtin.path, "pt") as f:
        recorded = json.loads(f.metadata()["dipnet_descriptor"])["training"]["final"]["psnr_y"]
    assert builtin.psnr == pytest.approx(recorded) and recorded > 30


def test_importing_a_broken_file_is_refused_with_a_reason(window: object, tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not a checkpoint")
    w = window
    before = len(w.ctx.library.entries())  # type: ignore[attr-defined]
    assert w.models.import_file(bad) is None  # type: ignore[attr-defined]
    text = w.models_view.banner.text.text()  # type: ignore[attr-defined]
    assert "weights.pth" in text and "Traceback" not in text
    assert len(w.ctx.library.entries()) == before  # type: ignore[attr-defined]


@pytest.mark.slow
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


def _hr_folder(root: Path, count: int = 3) -> Path:
    folder = root / "my-photos"
    for i in range(count):  # 128x112: crops that hold edges (smaller ones here are nearly flat, 40 dB for any method)
        write_png(folder / f"crop{i}.png", 128, 112, seed=i)
    (folder / "notes.png").write_bytes(b"not an image")  # skipped, reported, never fatal
    return folder


@pytest.mark.slow
def test_measure_quality_scores_the_model_on_a_folder(window: object, qtbot: object, tmp_path: Path) -> None:
    from dipnet_core.eval import evaluate

    w = window
    entry = w.ctx.current_model()  # type: ignore[attr-defined]
    folder = _hr_folder(tmp_path)
    with qtbot.waitSignal(w.models.qualityMeasured, timeout=60_000) as sig:  # type: ignore[attr-defined]
        assert w.models.measure_quality(entry.id, folder) is not None  # type: ignore[attr-defined]
    result = sig.args[1]
    assert result["n_images"] == 3 and [Path(p).name for p, _why in result["skipped"]] == ["notes.png"]
    # the app's numbers are the core's numbers for the same model and folder
    expected = evaluate(entry.path, folder, scale=4)["mean"]
    recorded = w.ctx.library.get(entry.id).quality  # type: ignore[attr-defined]
    assert recorded["psnr_y"] == pytest.approx(expected["psnr_y"], abs=1e-3)
    assert recorded["bicubic_psnr_y"] == pytest.approx(expected["bicubic_psnr_y"], abs=1e-3)
    assert recorded["psnr_y"] > recorded["bicubic_psnr_y"] + 0.2  # the built-in model beats bicubic (+0.39 dB)
    row = [e.id for e in w.ctx.library.entries()].index(entry.id)  # type: ignore[attr-defined]
    assert "my-photos" in w.models_view.table.item(row, 5).text()  # type: ignore[attr-defined]
    w.models_view.select_id(entry.id)  # type: ignore[attr-defined]
    assert "SSIM-Y on my-photos (3 images" in w.models_view.details.text()  # type: ignore[attr-defined]
    assert "notes.png" not in w.models_view.banner.text.text()  # type: ignore[attr-defined]
    assert "skipped 1 unusable file" in w.models_view.banner.text.text()  # type: ignore[attr-defined]


def test_measure_quality_can_be_cancelled_and_explains_an_empty_folder(
    window: object, qtbot: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = window
    entry = w.ctx.current_model()  # type: ignore[attr-defined]
    # Hold the real evaluation at its start until the test has cancelled: no race with a fast machine.
    import threading

    from dipnet_core import eval as eval_module

    real_evaluate, started = eval_module.evaluate, threading.Event()

    def evaluate_after_cancel(*args: object, cancel: object, **kwargs: object) -> object:
        started.set()
        for _ in range(600):
            if cancel.cancelled:  # type: ignore[attr-defined]
                break
            threading.Event().wait(0.05)
        return real_evaluate(*args, cancel=cancel, **kwargs)

    monkeypatch.setattr(eval_module, "evaluate", evaluate_after_cancel)
    task = w.models.measure_quality(entry.id, _hr_folder(tmp_path, count=2))  # type: ignore[attr-defined]
    qtbot.waitUntil(started.is_set, timeout=30_000)
    task.cancel()
    qtbot.waitUntil(lambda: w.models._quality is None, timeout=60_000)  # type: ignore[attr-defined]
    assert task.outcome == "cancelled"
    assert w.ctx.library.get(entry.id).quality is None  # type: ignore[attr-defined]
    assert "cancelled" in w.models_view.banner.text.text()  # type: ignore[attr-defined]
    assert w.models_view.quality_btn.text() == "Measure quality…"  # type: ignore[attr-defined]

    monkeypatch.setattr(eval_module, "evaluate", real_evaluate)
    empty = tmp_path / "empty"
    empty.mkdir()
    w.models.measure_quality(entry.id, empty)  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: w.models._quality is None, timeout=60_000)  # type: ignore[attr-defined]
    text = w.models_view.banner.text.text()  # type: ignore[attr-defined]
    assert "no usable HR images" in text and str(empty) in text
