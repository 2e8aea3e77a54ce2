"""The fused DIPNet network with per-layer widths.

A pruned model has non-uniform widths, so the architecture is described by a
:class:`DIPNetConfig` that lists every prunable width rather than a single
``feature_channels`` number.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import RRFB, conv3x3
from .config import BlockWidths, DIPNetConfig

__all__ = ["BlockWidths", "DIPNet", "DIPNetConfig", "count_parameters"]


class DIPNet(nn.Module):
    """conv_1 -> 4 RRFB -> conv_2 (+ long skip) -> conv3x3 + PixelShuffle.

    Input RGB in [0, 1], output RGB in [0, 1] (unclamped).
    """

    def __init__(self, config: DIPNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or DIPNetConfig()
        f = config.feat
        bias = config.bias
        self.conv_1 = conv3x3(config.in_ch, f, bias)
        for i, b in enumerate(config.blocks, start=1):
            self.add_module(f"block_{i}", RRFB(f, b.mid1, b.mid2, b.esa, bias))
        self.conv_2 = conv3x3(f, f, bias)
        self.upsampler = nn.Sequential(
            conv3x3(f, config.out_ch * config.scale**2, bias), nn.PixelShuffle(config.scale)
        )

    @property
    def blocks(self) -> list[RRFB]:
        return [getattr(self, f"block_{i}") for i in range(1, len(self.config.blocks) + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_1(x)
        out = feat
        for block in self.blocks:
            out = block(out)
        return self.upsampler(self.conv_2(out) + feat)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output plus every block's output (the anchors used for distillation)."""
        feat = self.conv_1(x)
        out, anchors = feat, []
        for block in self.blocks:
            out = block(out)
            anchors.append(out)
        return self.upsampler(self.conv_2(out) + feat), anchors


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
