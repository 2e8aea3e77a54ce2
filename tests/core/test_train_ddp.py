"""DDP: two gloo processes on CPU run a distillation stage (torch.multiprocessing spawn)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.train.checkpoint import load_checkpoint
from dipnet_core.train.config import ProgressiveStage, preset
from dipnet_core.train.distributed import launch_local


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (3 + seed % 5) + c) * np.cos(y / (4 + c)) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def test_ddp_two_gloo_processes_run_distill(tmp_path: Path) -> None:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    data = tmp_path / "hr"
    data.mkdir()
    for i in range(6):
        Image.fromarray(_textured(72, 80, i)).save(data / f"img{i}.png")
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
