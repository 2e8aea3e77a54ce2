"""The DIPNet network with per-layer widths: one skeleton for the training and deploy forms.

A pruned model has non-uniform widths, so the architecture is described by a
:class:`~.config.DIPNetConfig` that lists every prunable width rather than a single
``feature_channels`` number.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from .blocks import RRFB, conv3x3
from .config import BlockWidths, DIPNetConfig


class BlockFactory(Protocol):
    """Builds block ``i`` of a DIPNet from the feature width, its :class:`BlockWidths` and the bias flag."""

    def __call__(self, feat: int, widths: BlockWidths, bias: bool) -> nn.Module: ...


def deploy_block(feat: int, widths: BlockWidths, bias: bool) -> RRFB:
    """The fused (deploy) block: the :class:`BlockFactory` of :class:`DIPNet`."""
    return RRFB(feat, widths.mid1, widths.mid2, widths.esa, bias)


class DIPNetSkeleton(nn.Module):
    """conv_1 -> one block per ``config.blocks`` -> conv_2 (+ long skip) -> conv3x3 + PixelShuffle.

    The one layout of both forms: :class:`DIPNet` fills it with fused blocks,
    :class:`~.train_blocks.DIPNetTrain` with multi-branch ones. Both therefore
    share module names, so a training state dict and its fused twin differ only
    inside the blocks' 3x3 convs. Input RGB in [0, 1], output RGB in [0, 1] (unclamped).
    """

    def __init__(self, config: DIPNetConfig, block: BlockFactory) -> None:
        super().__init__()
        self.config = config
        f, bias = config.feat, config.bias
        self.conv_1 = conv3x3(config.in_ch, f, bias)
        for i, widths in enumerate(config.blocks, start=1):
            self.add_module(f"block_{i}", block(f, widths, bias))
        self.conv_2 = conv3x3(f, f, bias)
        self.upsampler = nn.Sequential(
            conv3x3(f, config.out_ch * config.scale**2, bias), nn.PixelShuffle(config.scale)
        )

    @property
    def blocks(self) -> list[nn.Module]:
        return [getattr(self, f"block_{i}") for i in range(1, len(self.config.blocks) + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not via forward_features: holding every block's output would raise inference's peak memory.
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


class DIPNet(DIPNetSkeleton):
    """The fused (deploy) DIPNet; its state dict uses the authors' key names."""

    def __init__(self, config: DIPNetConfig | None = None) -> None:
        super().__init__(config or DIPNetConfig(), deploy_block)

    @property
    def blocks(self) -> list[RRFB]:
        return super().blocks  # type: ignore[return-value]  # deploy_block builds RRFBs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
