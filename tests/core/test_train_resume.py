"""Resume after kill -9 gives the same next-step losses; cancel stops within one step."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from dipnet_core.cancel import CancelToken
from dipnet_core.train import events as ev
from dipnet_core.train.checkpoint import load_checkpoint
from dipnet_core.train.config import ProgressiveStage, TrainConfig, save_config
from dipnet_core.train.pipeline import resume_config, run_pipeline

KILL_AT = 7  # the child dies right after finishing step 7; its last checkpoint is at step 6


def _cfg(cfg: TrainConfig) -> TrainConfig:
    """The tiny config, logging every step and checkpointing every 3 steps."""
    cfg.run.log_every, cfg.run.ckpt_every, cfg.run.val_every = 1, 3, 5
    cfg.teacher.steps = 4
    cfg.distill.stages = [ProgressiveStage(16, 10, 3)]
    return cfg


class Recorder:
    def __init__(self, stage: str, token: CancelToken | None = None, cancel_at: int | None = None) -> None:
        self.stage, self.token, self.cancel_at = stage, token, cancel_at
        self.losses: dict[int, float] = {}
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)
        if isinstance(event, ev.Step) and event.stage == self.stage:
            self.losses[event.step] = event.losses["total"]
            if self.token is not None and event.step == self.cancel_at:
                self.token.cancel()


def test_resume_after_kill_9_continues_with_the_same_losses(tiny_config: Callable[[Path], TrainConfig],
                                                             tmp_path: Path) -> None:
    only = ["teacher", "distill_1"]
    ref = Recorder("distill_1")
    run_pipeline(_cfg(tiny_config(tmp_path / "ref")), ref, resume=False, only=only)
    assert sorted(ref.losses) == list(range(1, 11))

    killed = tmp_path / "killed"
    save_config(_cfg(tiny_config(killed)), tmp_path / "killed.toml")
    child = textwrap.dedent(f"""
        import os, signal
        from dipnet_core.train import events as ev
        from dipnet_core.train.config import load_config
        from dipnet_core.train.pipeline import run_pipeline
        def die(e):
            if isinstance(e, ev.Step) and e.stage == "distill_1" and e.step == {KILL_AT}:
                os.kill(os.getpid(), signal.SIGKILL)
        run_pipeline(load_config({str(tmp_path / 'killed.toml')!r}), die, resume=False, only={only!r})
    """)
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -9, proc.stderr
    ckpt = load_checkpoint(killed / "stages" / "distill_1" / "checkpoint.pt")
    assert ckpt["step"] == 6
    seconds_before_kill = ckpt["train_seconds"]
    assert seconds_before_kill > 0

    again = Recorder("distill_1")
    result = run_pipeline(resume_config(killed), again, resume=True, only=only)
    assert result.status == "partial"
    assert sorted(again.losses) == list(range(7, 11))  # nothing before the checkpoint is redone
    for step in range(7, 11):
        assert again.losses[step] == pytest.approx(ref.losses[step], abs=1e-6), step
    started = [e for e in again.events if isinstance(e, ev.StageStarted)]
    assert started[0].stage == "distill_1" and started[0].start_step == 6  # teacher was not retrained
    # the stage's training time includes the killed process's six steps, not only the resumed four
    stage = json.loads((killed / "state.json").read_text())["metrics"]["distill_1"]
    assert stage["train_seconds"] > seconds_before_kill and "train_seconds_since_step" not in stage


def test_cancel_stops_within_one_step_and_resumes(tiny_config: Callable[[Path], TrainConfig],
                                                  tmp_path: Path) -> None:
    cfg = _cfg(tiny_config(tmp_path / "run"))
    cfg.teacher.kind = "none"
    cfg.run.ckpt_every = 100
    token = CancelToken()
    rec = Recorder("distill_1", token, cancel_at=4)
    result = run_pipeline(cfg, rec, token, resume=False)
    assert result.status == "cancelled"
    assert max(rec.losses) == 4  # no further step ran after the token was set
    assert load_checkpoint(tmp_path / "run" / "stages" / "distill_1" / "checkpoint.pt")["step"] == 4
    assert any(isinstance(e, ev.CheckpointSaved) and e.step == 4 for e in rec.events)

    rec2 = Recorder("distill_1")
    done = run_pipeline(cfg, rec2, CancelToken(), resume=True)
    assert done.status == "done" and min(rec2.losses) == 5
    assert done.model_path is not None and done.model_path.exists()
