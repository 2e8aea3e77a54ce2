"""Deploy-form building blocks of the DIPNet / RLFN family.

Module and parameter names match the authors' released state dict
(``c1_r``, ``c2_r``, ``c3_r``, ``c5``, ``esa.conv1`` ...), so official weights load
strictly without any key mapping.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.05


def conv3x3(in_ch: int, out_ch: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


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
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        v_max = F.max_pool2d(c1, kernel_size=7, stride=3)
        c3 = self.conv3(v_max)
        c3 = F.interpolate(c3, size=(x.shape[2], x.shape[3]), mode="bilinear", align_corners=False)
        cf = self.conv_f(c1_)
        m = torch.sigmoid(self.conv4(c3 + cf))
        return x * m


class RRFB(nn.Module):
    """Reparameterized residual feature block in its fused (deploy) form.

    ``mid1``/``mid2`` are the outputs of ``c1_r``/``c2_r``; they may differ after
    structured pruning.
    """

    def __init__(self, feat: int, mid1: int, mid2: int, esa: int = 16, bias: bool = False) -> None:
        super().__init__()
        self.c1_r = conv3x3(feat, mid1, bias)
        self.c2_r = conv3x3(mid1, mid2, bias)
        self.c3_r = conv3x3(mid2, feat, bias)
        self.c5 = nn.Conv2d(feat, feat, 1, bias=bias)
        self.esa = ESA(feat, esa)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


def min_input_size() -> int:
    """Smallest H/W the ESA branch accepts (stride-2 conv then 7x7 max-pool)."""
    return 15
