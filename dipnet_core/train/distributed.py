"""torch.distributed helpers: DDP under torchrun, or a local multi-process launch.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the process group is
initialised from the environment: gloo on CPU, nccl on CUDA. Rank 0 alone logs,
validates and writes checkpoints; every rank draws different crops (the rank is
part of each sample's seed, see :mod:`.data`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "any_true",
    "barrier",
    "broadcast_object",
    "free_port",
    "init_distributed",
    "launch_local",
]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group described by torchrun's environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (used for cancellation)."""
    if not (info.enabled and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not (info.enabled and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local_worker(rank: int, world_size: int, port: int, config_dict: dict[str, Any], stages: list[str] | None,
                  resume: bool) -> None:
    os.environ.update(WORLD_SIZE=str(world_size), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from .config import config_from_dict
    from .pipeline import run_pipeline

    cfg = config_from_dict(config_dict)
    try:
        run_pipeline(cfg, resume=resume, only=stages)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch_local(config: Any, world_size: int, stages: list[str] | None = None, resume: bool = True) -> None:
    """Run :func:`~dipnet_core.train.pipeline.run_pipeline` in ``world_size`` local processes (DDP).

    The CPU equivalent of ``torchrun --nproc-per-node N``; ``stages`` limits the
    run to the named stages (e.g. ``["teacher", "distill_1"]``).
    """
    import torch.multiprocessing as mp

    from .config import config_to_dict

    mp.spawn(_local_worker, args=(world_size, free_port(), config_to_dict(config), stages, resume),
             nprocs=world_size, join=True)
