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

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.blocks import ESA, LEAKY_SLOPE, RRFB
from ..models.dipnet import DIPNet

#: Tiles of a grid-aware model must start on multiples of this (conv stride 2 x pool stride 3).
GRID_ALIGN = 6


def coarse_size(n: int) -> int:
    """Coarse-map length ESA produces for an input length ``n`` (>= 15)."""
    return ((n - 3) // 2 + 1 - 7) // 3 + 1


@dataclass(frozen=True)
class TileGrid:
    """Where a tile lies in the image whose ESA grid it must follow."""

    y0: int
    x0: int
    height: int  # whole image
    width: int


@functools.lru_cache(maxsize=512)
def _axis_matrix(start: int, length: int, full: int) -> np.ndarray:
    """(length x coarse_size(length)) bilinear weights: tile pixels -> tile coarse cells, on the full grid."""
    n_full = coarse_size(full)
    n_tile = coarse_size(length)
    if start % GRID_ALIGN:
        raise ValueError(f"tile start {start} is not a multiple of {GRID_ALIGN}")
    ratio = np.float32(n_full) / np.float32(full)  # PyTorch computes the resize ratio in float32
    y = np.arange(start, start + length, dtype=np.float32)
    u = np.maximum((y + np.float32(0.5)) * ratio - np.float32(0.5), np.float32(0.0))
    i0 = u.astype(np.int64)
    i1 = np.where(i0 < n_full - 1, i0 + 1, i0)
    lam = np.clip(u - i0, 0.0, 1.0).astype(np.float32)
    # Cells of the tile are the full grid's cells start/6 ... ; near the tile's far edge the
    # needed cell may be missing: clamp (those pixels lie in the overlap and are discarded).
    shift = start // GRID_ALIGN
    j0 = np.clip(i0 - shift, 0, n_tile - 1)
    j1 = np.clip(i1 - shift, 0, n_tile - 1)
    m = np.zeros((length, n_tile), np.float32)
    rows = np.arange(length)
    np.add.at(m, (rows, j0), 1.0 - lam)
    np.add.at(m, (rows, j1), lam)
    m.flags.writeable = False  # cached and shared between tiles
    return m


def grid_matrices(grid: TileGrid, tile_h: int, tile_w: int) -> tuple[np.ndarray, np.ndarray]:
    """``ry`` (tile_h x coarse_h) and ``rx_t`` (coarse_w x tile_w) for :class:`GridDIPNet`."""
    # Fresh writable copies (a few tens of kB): torch refuses read-only numpy arrays.
    ry = _axis_matrix(grid.y0, tile_h, grid.height).copy()
    rx_t = _axis_matrix(grid.x0, tile_w, grid.width).T.copy()
    return ry, rx_t


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
