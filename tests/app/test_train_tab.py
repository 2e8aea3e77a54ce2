"""Train tab: the tiny-test preset end to end in the child process, install, upscale; cancel + resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from studio_testutil import write_png


def _data(root: Path) -> Path:
    for i in range(4):
        write_png(root / "hr" / f"img{i}.png", 96, 96, seed=i)
    return root / "hr"


def _setup(window: object, data: Path, name: str) -> object:
    w = window
    f = w.train_view.form  # type: ignore[attr-defined]
    f.add_data_dirs([data])
    f.set_preset_name("tiny-test")
    f.name_edit.setText(name)
    f.name_edit.editingFinished.emit()
    return w.train  # type: ignore[attr-defined]


@pytest.mark.slow
def test_tiny_run_end_to_end_then_install_and_upscale(window: object, qtbot: object, tmp_path: Path) -> None:
    tc = _setup(window, _data(tmp_path), "tiny-app-model")
    events: list[dict] = []
    tc.event.connect(events.append)  # type: ignore[attr-defined]
    with qtbot.waitSignal(tc.runFinished, timeout=170_000) as sig:  # type: ignore[attr-defined]
        tc.view.form.start_btn.click()  # type: ignore[attr-defined]
        assert tc.running  # type: ignore[attr-defined]
    assert sig.args == ["done"], tc.view.banner.text.text()  # type: ignore[attr-defined]
    kinds = {e["type"] for e in events}
    assert {"StageStarted", "Step", "Validation", "StageFinished", "RunFinished", "Result"} <= kinds
    v = tc.view.monitor  # type: ignore[attr-defined]
    stages = [v.stage_list.item(i).text() for i in range(v.stage_list.count())]
    assert all(s.startswith("✔") for s in stages), stages
    assert any("Prune round 1" in s for s in stages) and not any("Prune rounds" in s for s in stages)
    assert v._loss_data and v._psnr_data[0]  # the plots got data
    assert v.sample_labels["sr"].pixmap() is not None and not v.sample_labels["sr"].pixmap().isNull()
    assert not v.install_btn.isHidden()  # (the Train tab itself is not the current tab)

    # One click installs it as the default model; the Upscale tab uses it right away.
    with qtbot.waitSignal(tc.installed, timeout=10_000) as inst:  # type: ignore[attr-defined]
        v.install_btn.click()
    entry = inst.args[0]
    w = window
    assert w.ctx.current_model().id == entry.id and entry.origin == "trained"  # type: ignore[attr-defined]
    assert "tiny-app-model" in w.model_status.text()  # type: ignore[attr-defined]
    up = w.upscale  # type: ignore[attr-defined]
    img = write_png(tmp_path / "x.png", 24, 20, seed=5)
    with qtbot.waitSignal(up.preview.ready, timeout=30_000):  # type: ignore[attr-defined]
        up.open_path(img)
    with qtbot.waitSignal(up.resultReady, timeout=30_000):  # type: ignore[attr-defined]
        up.upscale()
    assert (up.result.width, up.result.height) == (96, 80)
    assert "tiny-app-model" in up.view.info_label.text()


@pytest.mark.slow
def test_cancel_then_resume_from_checkpoint(window: object, qtbot: object, tmp_path: Path) -> None:
    tc = _setup(window, _data(tmp_path), "tiny-cancel")
    f, m = tc.view.form, tc.view.monitor  # type: ignore[attr-defined]
    f.teacher_steps.setValue(5000)  # long enough that the cancel surely lands mid-stage
    events: list[dict] = []
    tc.event.connect(events.append)  # type: ignore[attr-defined]
    with qtbot.waitSignal(tc.runFinished, timeout=120_000) as sig:  # type: ignore[attr-defined]
        f.start_btn.click()
        qtbot.waitUntil(
            lambda: any(e["type"] == "Step" and e["step"] >= 3 for e in events),  # type: ignore[attr-defined]
            timeout=100_000,
        )
        # The step line says when the plots get their next (here: first) validation point.
        assert "next validation at step" in m.step_label.text()
        assert "first at step" in m.sample_box.title() or m._psnr_data[0]
        f.cancel_btn.click()
    assert sig.args == ["cancelled"]
    assert f.resume_btn.isEnabled() and "Resume" in m.stage_label.text()
    assert m.stage_list.item(0).text().startswith("■")
    assert "left" not in m.step_label.text() and "stopped at step" in m.step_label.text()
    steps_before = list(m._loss_data["total"][0])
    assert steps_before and steps_before[-1] >= 3

    events.clear()
    with qtbot.waitSignal(tc.runFinished, timeout=120_000) as sig2:  # type: ignore[attr-defined]
        f.resume_btn.click()
        # Resuming redraws the earlier curve from the run's recorded events at once.
        assert m._loss_data["total"][0][: len(steps_before)] == steps_before
        qtbot.waitUntil(lambda: any(e["type"] == "Step" for e in events), timeout=100_000)  # type: ignore[attr-defined]
        f.cancel_btn.click()
    assert sig2.args == ["cancelled"]
    started = [e for e in events if e["type"] == "StageStarted"]
    assert (
        started and started[0]["stage"] == "teacher" and started[0]["start_step"] >= 2
    )  # resumed, not restarted
    xs = m._loss_data["total"][0]
    assert xs[: len(steps_before)] == steps_before and len(xs) > len(steps_before)  # old curve + new points


def test_train_tab_explains_its_empty_panels_before_a_run(window: object) -> None:
    m = window.train_view.monitor  # type: ignore[attr-defined]
    assert m.stage_list.count() == 1 and "stages" in m.stage_list.item(0).text().lower()
    form = window.train_view.form  # type: ignore[attr-defined]
    assert form.val_edit.placeholderText() == "optional folder"  # short enough to show whole


@pytest.mark.slow
def test_frozen_bundle_starts_the_training_child_through_itself(tmp_path: Path, monkeypatch: object) -> None:
    """A PyInstaller bundle has no ``python -m``: its own executable takes ``--train-runner``."""
    import json
    import os
    import subprocess
    import sys

    from app.controllers.train import train_runner_command

    program, args = train_runner_command(tmp_path / "run", fresh=True)
    assert (program, args) == (sys.executable, ["-m", "app.train_runner", str(tmp_path / "run"), "--fresh"])
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # type: ignore[attr-defined]
    program, args = train_runner_command(tmp_path / "run", fresh=False)
    assert args == ["--train-runner", str(tmp_path / "run")]

    # The app's entry point really dispatches it: a run folder without config.toml comes back as the
    # runner's Error event on stdout (the GUI's protocol), not as a window or a usage error.
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120,
                          cwd=repo, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 1 and events and events[-1]["type"] == "Error"
    assert "config.toml" in events[-1]["message"]
