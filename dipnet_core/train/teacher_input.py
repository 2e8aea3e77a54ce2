"""What the teacher is given while it guides a student trained on degraded LR.

With ``[data.degradation] teacher_sees = "clean"`` the student gets the degraded
LR of a crop and the teacher the clean bicubic LR of the same HR crop. The data
loader yields only ``(degraded LR, HR)``, so the clean LR is remade here from
the HR batch, on the training device: MATLAB's bicubic ``imresize`` is linear
along each axis, i.e. one matrix per axis (built from :mod:`dipnet_core.resize`),
so ``W_h @ HR @ W_w^T`` is the benchmark LR of the crop, rounded to 8 bits like
the loader's. Only the outermost two LR pixels differ from the whole image's
LR (mirror padding at the crop edge instead of the real neighbours).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from ..resize import _contributions

__all__ = ["TeacherInput", "bicubic_matrix", "clean_lr_from_hr", "teacher_input_for"]

# (student's LR batch, HR batch) -> the teacher's LR batch
TeacherInput = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@lru_cache(maxsize=32)
def bicubic_matrix(in_len: int, out_len: int) -> np.ndarray:
    """The ``out_len x in_len`` matrix of MATLAB bicubic resizing along one axis (float64)."""
    w, idx = _contributions(in_len, out_len, out_len / in_len)
    m = np.zeros((out_len, in_len))
    np.add.at(m, (np.repeat(np.arange(out_len), w.shape[1]), idx.ravel()), w.ravel())
    return m


def clean_lr_from_hr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-bicubic LR of an ``N x C x H x W`` batch in [0, 1], rounded to 8-bit levels."""
    h, w = hr.shape[-2:]
    mh = torch.from_numpy(bicubic_matrix(h, h // scale)).to(hr.device, torch.float32)
    mw = torch.from_numpy(bicubic_matrix(w, w // scale)).to(hr.device, torch.float32)
    # Outside autocast: in bf16 the matmuls would be off by about one 8-bit level before rounding.
    with torch.autocast(device_type=hr.device.type, enabled=False):
        lr = mh @ hr.float() @ mw.T
    return (lr * 255.0).round().clamp(0, 255) / 255.0


def teacher_input_for(config: Any) -> TeacherInput:
    """The teacher's input for a run's config (a ``TrainConfig``): the student's own LR, or its clean twin."""
    degradation = config.data.degradation
    if degradation is None or degradation.teacher_sees == "degraded":
        return lambda lr, hr: lr
    scale = config.data.scale
    return lambda lr, hr: clean_lr_from_hr(hr, scale)
