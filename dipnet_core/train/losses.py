"""Losses of DIPNet training as small callables.

* :class:`L1Loss` to the ground-truth HR;
* :class:`EnhancedHRLoss`: L1 to the teacher's SR of the same LR input (the
  "teacher-enhanced HR" target, sharper and more consistent than bicubic-made pairs);
* :class:`MultiAnchorLoss`: L1 between student block outputs, lifted by 1x1
  "adapter" convs to the teacher's width, and the teacher's block outputs at
  matching depths. Adapters are trained with the student and dropped afterwards,
  so they cost nothing at inference;
* :class:`FrequencyL1Loss`: L1 between the 2-D Fourier transforms of SR and HR, an
  option (``distill.freq_weight``): pixel L1 under-weights the small high-frequency
  coefficients that carry edges and texture, and this term counts them directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import PIXEL_LOSSES

__all__ = ["PIXEL_LOSSES", "AnchorAdapters", "DistillLoss", "EnhancedHRLoss", "FrequencyL1Loss", "L1Loss",
           "MSELoss", "MultiAnchorLoss", "default_anchor_pairs", "pixel_loss"]


class L1Loss:
    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(sr.float(), hr.float())


class MSELoss:
    """Mean squared error: the loss PSNR measures. L1 trains these small networks better from scratch
    (Zhao et al., "Loss functions for image restoration"); a last stretch on MSE moves a trained
    model from the median of what its input allows toward the mean, which is what PSNR rewards."""

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(sr.float(), hr.float())


def pixel_loss(name: str) -> L1Loss | MSELoss:
    """The pixel loss ``distill.pixel_loss`` names."""
    if name not in PIXEL_LOSSES:
        raise ValueError(f"pixel loss must be one of {PIXEL_LOSSES}, got {name!r}")
    return L1Loss() if name == "l1" else MSELoss()


class FrequencyL1Loss:
    """Mean |FFT2(sr) - FFT2(hr)| over real and imaginary parts, per channel (orthonormal FFT).

    "ortho" scaling keeps the term's size independent of the patch size, so one weight
    serves every progressive stage (patches of 128 to 256 HR px).
    """

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        d = torch.fft.rfft2(sr.float() - hr.float(), norm="ortho")  # linear: FFT of the difference
        return torch.view_as_real(d).abs().mean()


class EnhancedHRLoss:
    """L1 (or MSE) to the teacher's output; the target is detached so no gradient reaches the teacher."""

    def __init__(self, pixel: str = "l1") -> None:
        self.pixel = pixel_loss(pixel)

    def __call__(self, sr: torch.Tensor, teacher_sr: torch.Tensor) -> torch.Tensor:
        return self.pixel(sr, teacher_sr.detach())


def default_anchor_pairs(n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """Student block i (1-based) -> teacher block at the same relative depth (4 vs 8: 1->2 ... 4->8)."""
    return [(i, max(1, round(i * n_teacher / n_student))) for i in range(1, n_student + 1)]


class AnchorAdapters(nn.Module):
    """One 1x1 conv per anchor pair, student width -> teacher width.

    Initialised to a (scaled) identity where widths allow it, so the feature loss
    starts by comparing the features themselves rather than a random projection.
    """

    def __init__(self, student_width: int, teacher_width: int, n_anchors: int) -> None:
        super().__init__()
        self.student_width, self.teacher_width = student_width, teacher_width
        self.convs = nn.ModuleList(nn.Conv2d(student_width, teacher_width, 1) for _ in range(n_anchors))
        with torch.no_grad():
            for conv in self.convs:
                conv.weight.zero_()
                conv.bias.zero_()
                n = min(student_width, teacher_width)
                conv.weight[:n, :n, 0, 0] = torch.eye(n)

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [conv(f) for conv, f in zip(self.convs, feats, strict=True)]


class MultiAnchorLoss:
    """Mean over anchors of L1(adapter_k(student_feat[s_k]), teacher_feat[t_k])."""

    def __init__(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.pairs = list(pairs)

    def __call__(self, adapted: Sequence[torch.Tensor], teacher_feats: Sequence[torch.Tensor]) -> torch.Tensor:
        losses = [F.l1_loss(a.float(), t.detach().float()) for a, t in zip(adapted, teacher_feats, strict=True)]
        return torch.stack(losses).mean()


class DistillLoss:
    """``hr_weight * L1(sr, hr) + freq_weight * FFT-L1(sr, hr) + alpha * L1(sr, teacher_sr) + beta * multi-anchor``.

    ``pixel = "mse"`` puts squared errors in the two pixel terms (named ``mse_hr`` and
    ``mse_teacher`` in the parts then). Terms with zero weight (or no teacher) are not
    computed. Returns the total and a dict of the detached parts (still tensors on the
    device: the training loop reads them on the host only at log steps) including ``"total"``.
    """

    def __init__(self, hr_weight: float = 1.0, alpha: float = 0.0, beta: float = 0.0,
                 pairs: Sequence[tuple[int, int]] = (), freq_weight: float = 0.0, pixel: str = "l1") -> None:
        self.hr_weight, self.alpha, self.beta, self.freq_weight = hr_weight, alpha, beta, freq_weight
        self.pixel_name, self.pixel = pixel, pixel_loss(pixel)
        self.enhanced, self.anchor = EnhancedHRLoss(pixel), MultiAnchorLoss(pairs)
        self.freq = FrequencyL1Loss()

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor, teacher_sr: torch.Tensor | None = None,
                 adapted: Sequence[torch.Tensor] | None = None, teacher_anchors: Sequence[torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts: dict[str, torch.Tensor] = {}
        total = sr.new_zeros((), dtype=torch.float32)
        if self.hr_weight > 0:
            key = f"{self.pixel_name}_hr"
            parts[key] = self.pixel(sr, hr)
            total = total + self.hr_weight * parts[key]
        if self.freq_weight > 0:
            parts["fft_hr"] = self.freq(sr, hr)
            total = total + self.freq_weight * parts["fft_hr"]
        if self.alpha > 0 and teacher_sr is not None:
            key = f"{self.pixel_name}_teacher"
            parts[key] = self.enhanced(sr, teacher_sr)
            total = total + self.alpha * parts[key]
        if self.beta > 0 and adapted is not None and teacher_anchors is not None:
            parts["anchor"] = self.anchor(adapted, teacher_anchors)
            total = total + self.beta * parts["anchor"]
        logged = {k: v.detach() for k, v in parts.items()}
        logged["total"] = total.detach()
        return total, logged
