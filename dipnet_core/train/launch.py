"""Start a training run in several local processes: the CPU equivalent of ``torchrun --nproc-per-node N``.

Kept apart from :mod:`.distributed` (the helpers every stage uses) because a
launcher needs the whole pipeline, and the pipeline needs those helpers.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import torch.distributed as dist
import torch.multiprocessing as mp

from .config import TrainConfig, config_from_dict, config_to_dict
from .pipeline import run_pipeline

__all__ = ["free_port", "launch_local"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local_worker(rank: int, world_size: int, port: int, config_dict: dict[str, Any], stages: list[str] | None,
                  resume: bool) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cfg = config_from_dict(config_dict)
    try:
        run_pipeline(cfg, resume=resume, only=stages)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_local(config: TrainConfig, world_size: int, stages: list[str] | None = None, resume: bool = True) -> None:
    """Run :func:`~dipnet_core.train.pipeline.run_pipeline` in ``world_size`` local processes (DDP).

    The CPU equivalent of ``torchrun --nproc-per-node N``; ``stages`` limits the
    run to the named stages (e.g. ``["teacher", "distill_1"]``).
    """
    mp.spawn(_local_worker, args=(world_size, free_port(), config_to_dict(config), stages, resume),
             nprocs=world_size, join=True)
