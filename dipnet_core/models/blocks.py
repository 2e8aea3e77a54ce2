"""Building blocks of the DIPNet / RLFN family, shared by the training and deploy forms.

Module and parameter names match the authors' released state dict
(``c1_r``, ``c2_r``, ``c3_r``, ``c5``, ``esa.conv1`` ...), so official weights load
strictly without any key mapping.

The 3x3 convs of a block come from a :class:`ConvFactory`: :func:`conv3x3` builds
the fused (deploy) conv, :class:`~.train_blocks.RepConv3x3` the multi-branch
training unit. Everything else in a block is the same in both forms.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.05

# ESA's coarse branch: a stride-2 conv without padding, then a max-pool without padding.
ESA_CONV_KERNEL = 3
ESA_CONV_STRIDE = 2
ESA_POOL_KERNEL = 7
ESA_POOL_STRIDE = 3


class ConvFactory(Protocol):
    """Builds a 3x3, stride-1, padding-1 conv-like module from ``in_ch`` to ``out_ch`` channels."""

    def __call__(self, in_ch: int, out_ch: int, *, bias: bool = False) -> nn.Module: ...


def conv3x3(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    """The plain (fused) 3x3 conv: the deploy form's :class:`ConvFactory`."""
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


def min_input_size() -> int:
    """Smallest H/W the ESA branch accepts (15 px): the single source of this limit.

    The max-pool needs ``ESA_POOL_KERNEL`` rows after the stride-2 conv, which
    needs ``(pool - 1) * stride + kernel`` input rows.
    """
    return (ESA_POOL_KERNEL - 1) * ESA_CONV_STRIDE + ESA_CONV_KERNEL


class ESA(nn.Module):
    """Enhanced Spatial Attention (RFANet/RLFN).

    A strided conv plus a 7x7/3 max-pool give a coarse attention map that is
    bilinearly resized back to the input size. Because that resize depends on the
    full input size, tiled inference is close to, not bit-identical with,
    whole-image inference (the tiling engine's overlap accounts for this).
    """

    def __init__(self, n_feats: int, esa_channels: int = 16) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, ESA_CONV_KERNEL, stride=ESA_CONV_STRIDE, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=ESA_POOL_KERNEL, stride=ESA_POOL_STRIDE)
        c3 = self.conv3(v_max)
        c3 = F.interpolate(c3, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        m = torch.sigmoid(self.conv4(c3 + cf))
        return x * m


class RRFB(nn.Module):
    """Reparameterized residual feature block: three 3x3 convs, a 1x1, ESA, a residual add.

    ``conv`` builds the three 3x3 convs (fused in the deploy form, multi-branch while
    training). ``mid1``/``mid2`` are the outputs of ``c1_r``/``c2_r``; they may differ
    after structured pruning.
    """

    def __init__(
        self,
        feat: int,
        mid1: int,
        mid2: int,
        esa: int = 16,
        bias: bool = False,
        conv: ConvFactory = conv3x3,
        inplace_act: bool = True,
    ) -> None:
        super().__init__()
        self.widths = (feat, mid1, mid2, esa)
        self.c1_r = conv(feat, mid1, bias=bias)
        self.c2_r = conv(mid1, mid2, bias=bias)
        self.c3_r = conv(mid2, feat, bias=bias)
        self.c5 = nn.Conv2d(feat, feat, 1, bias=bias)
        self.esa = ESA(feat, esa)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=inplace_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))
