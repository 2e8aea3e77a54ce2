"""DIPNet's architecture description (per-layer widths), without torch.

Kept apart from :mod:`.dipnet` so descriptors, ``dipnet info`` and the
upscale-only install (no torch) can read a model's widths.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BlockWidths:
    mid1: int
    mid2: int
    esa: int = 16


def _default_blocks() -> tuple[BlockWidths, ...]:
    return tuple(BlockWidths(38, 38, 16) for _ in range(4))


@dataclass(frozen=True)
class DIPNetConfig:
    """Every hyperparameter of the deploy-form architecture (official: 44/38/16, x4)."""

    feat: int = 44
    blocks: tuple[BlockWidths, ...] = field(default_factory=_default_blocks)
    scale: int = 4
    in_ch: int = 3
    out_ch: int = 3
    # RLFN-style checkpoints carry conv biases; DIPNet's fused convs have none.
    bias: bool = False

    @classmethod
    def uniform(
        cls, feat: int, mid: int, n_blocks: int = 4, esa: int = 16, scale: int = 4
    ) -> DIPNetConfig:
        return cls(feat=feat, blocks=tuple(BlockWidths(mid, mid, esa) for _ in range(n_blocks)), scale=scale)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks"] = [asdict(b) for b in self.blocks]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DIPNetConfig:
        blocks = tuple(BlockWidths(**b) for b in d["blocks"])
        return cls(feat=int(d["feat"]), blocks=blocks, scale=int(d["scale"]),
                   in_ch=int(d.get("in_ch", 3)), out_ch=int(d.get("out_ch", 3)),
                   bias=bool(d.get("bias", False)))

    def widths_label(self) -> str:
        mids = sorted({w for b in self.blocks for w in (b.mid1, b.mid2)})
        mid = str(mids[0]) if len(mids) == 1 else f"{mids[0]}-{mids[-1]}"
        return f"{self.feat}/{mid}"

    def macs_per_input_pixel(self) -> int:
        """Multiply-adds per LR input pixel, ignoring ESA's sub-sampled branch (it runs at 1/36 area)."""
        f, s = self.feat, self.scale
        macs = 9 * self.in_ch * f  # conv_1
        for b in self.blocks:
            macs += 9 * (f * b.mid1 + b.mid1 * b.mid2 + b.mid2 * f) + f * f  # c1..c3, c5
            macs += f * b.esa + b.esa * b.esa + b.esa * f  # conv1, conv_f, conv4 at full res
            macs += (9 * b.esa * b.esa) // 4 + (9 * b.esa * b.esa) // 36  # conv2 (stride 2), conv3
        macs += 9 * f * f  # conv_2
        macs += 9 * f * self.out_ch * s * s  # upsampler
        return macs
