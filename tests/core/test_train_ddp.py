"""DDP: two gloo processes on CPU run a distillation stage (torch.multiprocessing spawn)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.train.checkpoint import load_checkpoint
from dipnet_core.train.config import ProgressiveStage, preset
from dipnet_core.train.launch import launch_local


def test_ddp_two_gloo_processes_run_distill(textured: Callable[[int, int, int], np.ndarray],
                                            tmp_path: Path) -> None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    data = tmp_path / "hr"
    data.mkdir()
    for i in range(6):
        Image.fromarray(textured(72, 80, i)).save(data / f"img{i}.png")
    cfg = preset("tiny-test")
    cfg.data.train_dirs = [str(data)]
    cfg.run.out_dir = str(tmp_path / "run")
    cfg.run.log_every, cfg.run.ckpt_every = 1, 4
    cfg.teacher.kind = "none"
    cfg.distill.stages = [ProgressiveStage(16, 8, 2)]

    launch_local(cfg, world_size=2, stages=["distill_1"])

    run = tmp_path / "run"
    state = json.loads((run / "state.json").read_text())
    assert state["done"] == ["distill_1"]
    m = state["metrics"]["distill_1"]
    assert m["probe_loss_end"] < m["probe_loss_start"]
    assert load_checkpoint(run / "stages" / "distill_1" / "checkpoint.pt")["step"] == 8
    log = (run / "log.txt").read_text()
    assert "world size 2" in log
    # rank 0 alone logs: every step appears exactly once
    assert sum(1 for line in log.splitlines() if " distill_1 3/8 " in line) == 1
