"""Train tab for issue 16: adapt first, the expected time, the closing comparison, and a warning
before a model that lost to its starting point becomes the default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

COMPARISON: dict[str, Any] = {
    "models": {"new": {"label": "new model (mine)"}, "start": {"label": "built-in model (start)"}},
    "reference": "start",
    "datasets": {
        "validation": {"n_images": 2, "psnr_y": {"new": 29.5, "start": 30.25, "bicubic": 27.0}},
        "Set5": {"n_images": 5, "psnr_y": {"new": 31.0, "start": 31.1, "bicubic": 28.4}},
    },
    "worse_than_reference": True,
    "summary": "validation (2 images, PSNR-Y): new 29.50 dB, built-in model (start) 30.25 dB (-0.75)",
}


def _model_with_comparison(src: Path, target: Path, worse: bool) -> Path:
    """A real model file (the built-in weights) carrying a run's comparison, as the compare stage
    records it: in the descriptor's ``training["comparison"]``."""
    from dipnet_core.models.loader import load_model, save_model

    loaded = load_model(src)
    assert loaded.module is not None
    stored = {k: COMPARISON[k] for k in ("reference", "datasets", "summary")}
    loaded.descriptor.training = {**(loaded.descriptor.training or {}),
                                  "comparison": {**stored, "worse_than_reference": worse}}
    return save_model(target, loaded.module, loaded.descriptor)


@pytest.fixture
def train(ctx: object, qtbot: object) -> object:
    from app.controllers.train import TrainController
    from app.views.train_view import TrainView

    view = TrainView()
    qtbot.addWidget(view)  # type: ignore[attr-defined]
    return TrainController(view, ctx)  # type: ignore[arg-type]


def _answer(monkeypatch: pytest.MonkeyPatch, button: QMessageBox.StandardButton) -> list[tuple[Any, ...]]:
    asked: list[tuple[Any, ...]] = []

    def question(*args: Any) -> QMessageBox.StandardButton:
        asked.append(args)
        return button

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


def test_adapt_is_the_first_preset_and_the_default(train: Any) -> None:
    from app.views.train_view import PRESETS
    from dipnet_core.train.config import preset

    f = train.view.form
    assert PRESETS[0][0] == "adapt" and "Adapt the built-in model" in f.preset_combo.itemText(0)
    assert f.preset_name() == "adapt"
    assert "minutes" in f.time_hint.text()
    f.set_preset_name("quick-cpu")
    assert "hours" in f.time_hint.text()  # from scratch: the time is stated before it starts
    f.set_preset_name("adapt")
    cfg = train.build_config()  # the form keeps what makes it an adaptation
    ref = preset("adapt")
    assert cfg.student.from_model == ref.student.from_model and cfg.student.mid == ref.student.mid
    assert (cfg.teacher.kind, cfg.teacher.path) == (ref.teacher.kind, ref.teacher.path)


def test_estimate_and_comparison_events_are_shown(train: Any) -> None:
    m = train.view.monitor
    train._dispatch({"type": "Estimate", "total_s": 600.0, "stages": {"distill_1": 400.0}})
    assert "expected time: 10m 00s" in m.estimate_label.text()
    assert m.comparison_label.text() == ""
    train._dispatch({"type": "Comparison", "comparison": COMPARISON})
    html = m.comparison_label.text()
    assert "29.50" in html and "30.25" in html and "27.00" in html and "Set5" in html
    assert "worse than the built-in model (start)" in html
    assert train.comparison is COMPARISON


def test_run_finished_carries_the_comparison(train: Any) -> None:
    better = {**COMPARISON, "worse_than_reference": False}
    train._dispatch({"type": "RunFinished", "model_path": "x.safetensors", "onnx_path": None,
                     "metrics": {"comparison": better}})
    html = train.view.monitor.comparison_label.text()
    assert "beats the built-in model (start)" in html and "31.10" in html
    assert better["summary"] in train.view.monitor.comparison_label.toolTip()


@pytest.mark.parametrize("answer", [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
def test_train_install_of_a_worse_model_asks_first(train: Any, ctx: Any, tmp_path: Path,
                                                   builtin_weights_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   answer: QMessageBox.StandardButton) -> None:
    model = _model_with_comparison(builtin_weights_path, tmp_path / "mine.safetensors", worse=True)
    asked = _answer(monkeypatch, answer)
    train.result = {"type": "Result", "status": "done", "model_path": str(model), "metrics": {}}
    train.view.form.name_edit.setText("mine")
    before = {e.id for e in ctx.library.entries()}
    entry = train.install()
    assert len(asked) == 1 and "30.25" in asked[0][2]  # the summary is in the question
    assert asked[0][4] == QMessageBox.StandardButton.No  # No is the default button
    added = {e.id for e in ctx.library.entries()} - before
    if answer == QMessageBox.StandardButton.No:
        assert entry is None and not added and ctx.current_model().builtin
    else:
        assert entry is not None and added == {entry.id} and ctx.current_model().id == entry.id


@pytest.mark.parametrize("answer", [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
def test_use_as_default_of_a_worse_model_asks_first(ctx: Any, qtbot: Any, tmp_path: Path,
                                                    builtin_weights_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    answer: QMessageBox.StandardButton) -> None:
    from app.controllers.models_tab import ModelsController
    from app.views.models_view import ModelsView

    view = ModelsView()
    qtbot.addWidget(view)
    mc = ModelsController(view, ctx, can_measure_quality=False)
    model = _model_with_comparison(builtin_weights_path, tmp_path / "worse.safetensors", worse=True)
    entry = ctx.library.import_file(model, name="worse")
    assert ctx.current_model().builtin
    asked = _answer(monkeypatch, answer)
    made = mc.set_default(entry.id)
    assert len(asked) == 1
    if answer == QMessageBox.StandardButton.No:
        assert not made and ctx.current_model().builtin
    else:
        assert made and ctx.current_model().id == entry.id


def test_models_without_a_bad_comparison_install_without_asking(ctx: Any, qtbot: Any, tmp_path: Path,
                                                                builtin_weights_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from app.controllers.models_tab import ModelsController
    from app.views.models_view import ModelsView

    view = ModelsView()
    qtbot.addWidget(view)
    mc = ModelsController(view, ctx, can_measure_quality=False)
    asked = _answer(monkeypatch, QMessageBox.StandardButton.No)
    better = ctx.library.import_file(
        _model_with_comparison(builtin_weights_path, tmp_path / "better.safetensors", worse=False), name="better")
    plain = ctx.library.import_file(builtin_weights_path, name="plain")
    assert mc.set_default(better.id) and ctx.current_model().id == better.id
    assert "30.25" in view.banner.text.text()  # the comparison summary is shown
    assert mc.set_default(plain.id) and ctx.current_model().id == plain.id
    assert asked == []
