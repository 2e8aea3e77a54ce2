"""x8 self-ensemble of the teacher when it makes the enhanced-HR targets (``distill.teacher_self_ensemble``).

The teacher sets the ceiling of what the student is shown; averaging its SR of
the 8 flips/rotations of the LR batch gives a target closer to the true HR
(``benchmarks/teacher_ensemble_targets.py`` measures how much) at 8 teacher
forwards per step instead of one. Training crops are small and whole, so
unlike the inference option (``engine/ensemble.py``, which must keep the tiler's
ESA grid) the batch tensor is simply flipped and rotated.

Anchors (multi-anchor distillation) come from the identity pass only: they are
feature maps aligned with the student's, which a rotated pass's are not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine.ensemble import DIHEDRAL

__all__ = ["DIHEDRAL", "dihedral_t", "dihedral_t_inverse", "ensemble_forward"]

# (LR batch) -> (SR batch, anchors or None): a Teacher's call signature.
TeacherFn = Callable[[torch.Tensor], tuple[torch.Tensor, list[torch.Tensor] | None]]


def dihedral_t(x: torch.Tensor, t: tuple[int, bool]) -> torch.Tensor:
    """An ``N x C x H x W`` batch turned as :func:`~dipnet_core.engine.ensemble.dihedral` turns an image."""
    k, flip = t
    out = torch.rot90(x, k, dims=(-2, -1)) if k else x
    return torch.flip(out, dims=(-1,)) if flip else out


def dihedral_t_inverse(x: torch.Tensor, t: tuple[int, bool]) -> torch.Tensor:
    k, flip = t
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


@torch.no_grad()
def ensemble_forward(teacher: TeacherFn, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
    """The teacher's SR averaged over the 8 transforms of ``lr``, and the identity pass's anchors."""
    sr, anchors = teacher(lr)  # DIHEDRAL[0] is the identity: its anchors are the ones to keep
    # float32 sum: under autocast the teacher's output may be bf16, too coarse to add 8 terms in.
    acc = sr.float()
    for t in DIHEDRAL[1:]:
        out, _ = teacher(dihedral_t(lr, t))
        acc = acc + dihedral_t_inverse(out, t).float()
    return (acc / len(DIHEDRAL)).to(sr.dtype), anchors
