"""DIPNet forward pass that keeps the ESA attention on the whole image's grid.

Why: each ESA block pools its features to a coarse map (stride-2 conv, then a
7x7 max-pool with stride 3, so one coarse cell per 6 px) and bilinearly
resizes that map back to *the size of its input*. Run naively on a tile, both
the pooling grid (it starts at the tile's corner) and the resize ratio (coarse
size / tile size) differ from the whole image's, and the output differs by
12-46 levels of 255 however much overlap the tile has (Set5 ``baby``, tiles of
128-384 px, overlaps of 8-32 px).

Here a tile starts on a multiple of 6 px, so its coarse cells are exactly the
whole image's cells, and the resize is done with two small interpolation
matrices built from the whole image's geometry (:func:`grid_matrices`): every
pixel samples the coarse map at the position the whole-image resize would use.
What remains is receptive-field truncation at tile edges, which the tiler's
overlap bounds (32-48 px keep every Set5/Set14 image within 1/255, see
``upscaler.py``). For a single tile covering the image the matrices reproduce
``F.interpolate(mode="bilinear", align_corners=False)`` (max difference 3e-4
levels on a Set5 crop).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import ESA, LEAKY_SLOPE, RRFB
from ..models.dipnet import DIPNet
from .grid import GRID_ALIGN, TileGrid, coarse_size, grid_matrices

__all__ = ["GRID_ALIGN", "FusedGridDIPNet", "GridDIPNet", "TileGrid", "coarse_size", "grid_matrices"]


class GridESA(nn.Module):
    def __init__(self, esa: ESA) -> None:
        super().__init__()
        self.conv1, self.conv_f, self.conv2, self.conv3, self.conv4 = (
            esa.conv1, esa.conv_f, esa.conv2, esa.conv3, esa.conv4)

    def forward(self, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = self.conv2(c1_)
        c3 = self.conv3(F.max_pool2d(c1, kernel_size=7, stride=3))
        # Separable bilinear resize on the whole image's grid: (H x h) @ map @ (w x W).
        up = torch.matmul(torch.matmul(ry, c3), rx_t)
        m = torch.sigmoid(self.conv4(up + self.conv_f(c1_)))
        return x * m


class GridRRFB(nn.Module):
    def __init__(self, block: RRFB) -> None:
        super().__init__()
        self.c1_r, self.c2_r, self.c3_r, self.c5 = block.c1_r, block.c2_r, block.c3_r, block.c5
        self.esa = GridESA(block.esa)

    def forward(self, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), LEAKY_SLOPE, inplace=True)
        out = F.leaky_relu(self.c2_r(out), LEAKY_SLOPE, inplace=True)
        out = F.leaky_relu(self.c3_r(out), LEAKY_SLOPE, inplace=True)
        return self.esa(self.c5(out + x), ry, rx_t)


class GridDIPNet(nn.Module):
    """Same weights and maths as :class:`DIPNet`; ``forward(x, ry, rx_t)`` takes the ESA grid matrices."""

    def __init__(self, net: DIPNet) -> None:
        super().__init__()
        self.scale = net.config.scale
        self.conv_1 = net.conv_1
        self.blocks = nn.ModuleList(GridRRFB(b) for b in net.blocks)
        self.conv_2 = net.conv_2
        self.upsampler = net.upsampler

    def forward(self, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        feat = self.conv_1(x)
        out = feat
        for block in self.blocks:
            out = block(out, ry, rx_t)
        return self.upsampler(self.conv_2(out) + feat)


# ------------------------------------------------------------------------------ oneDNN-fused CPU path


def _conv(x: torch.Tensor, conv: nn.Conv2d, attr: str = "none", scalars: tuple[float, ...] = ()) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups,
        attr, list(scalars), "")


def _conv_add(x: torch.Tensor, other: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
        conv.groups, "add", None, None, [], "")


class FusedGridDIPNet(nn.Module):
    """:class:`GridDIPNet` with every activation and residual add folded into its convolution.

    Eager PyTorch runs ``conv -> leaky_relu`` as two passes over a full-resolution
    tensor; oneDNN's post-ops (the kernels ``torch.compile`` emits for CPU, called
    directly) apply them while the conv output is still in registers. That
    removes 5 of the ~12 memory-bound passes per block, without a compile step.
    CPU with channels_last only; :class:`TorchBackend` checks it against the
    eager module once and falls back if this torch build lacks the ops.
    """

    def __init__(self, net: GridDIPNet) -> None:
        super().__init__()
        self.net = net

    def _esa(self, esa: GridESA, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        c1_ = _conv(x, esa.conv1)
        c3 = _conv(F.max_pool2d(_conv(c1_, esa.conv2), kernel_size=7, stride=3), esa.conv3)
        # The fused add wants both operands channels_last; the 16-channel map is cheap to re-lay.
        up = torch.matmul(torch.matmul(ry, c3), rx_t).contiguous(memory_format=torch.channels_last)
        m = _conv(_conv_add(c1_, up, esa.conv_f), esa.conv4, "sigmoid")
        return x * m

    def forward(self, x: torch.Tensor, ry: torch.Tensor, rx_t: torch.Tensor) -> torch.Tensor:
        net = self.net
        feat = _conv(x, net.conv_1)
        out = feat
        for block in net.blocks:
            t = _conv(out, block.c1_r, "leaky_relu", (LEAKY_SLOPE,))
            t = _conv(t, block.c2_r, "leaky_relu", (LEAKY_SLOPE,))
            t = _conv(t, block.c3_r, "leaky_relu", (LEAKY_SLOPE,))
            out = self._esa(block.esa, _conv(t + out, block.c5), ry, rx_t)
        return net.upsampler(_conv_add(out, feat, net.conv_2))
