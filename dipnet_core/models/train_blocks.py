"""Training-time (multi-branch) form of DIPNet and its exact fusion into the deploy form.

Every 3x3 conv of an RRFB (``c1_r``, ``c2_r``, ``c3_r``) is trained as a
:class:`RepConv3x3`: a 3x3 -> 1x1 expansion branch, a parallel 1x1 branch and,
when shapes allow, an identity. All branches are linear, so their sum is itself
one 3x3 conv, which :meth:`RepConv3x3.reparameterize` computes. The model and
block here are the shared skeleton (:class:`~.dipnet.DIPNetSkeleton`,
:class:`~.blocks.RRFB`) built with that unit; their ``reparameterize`` fuses
every unit (through :func:`dipnet_core.reparam.fuse_submodules`) and returns the
deploy twin, whose state dict uses the authors' key names. Convs are
weight-normalised (``g * v/||v||``) because the over-parameterised branches
otherwise fight over scale.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..reparam import fuse_submodules
from .blocks import RRFB, conv3x3
from .config import BlockWidths, DIPNetConfig
from .dipnet import DIPNet, DIPNetSkeleton

__all__ = ["WNConv2d", "RepConv3x3", "RepConvFactory", "RRFBTrain", "DIPNetTrain"]

# Guards the division in the weight-norm when a filter is exactly zero (a pruned or
# zero-initialised one); such a filter then stays zero, not NaN.
_NORM_EPS = 1e-12


class WNConv2d(nn.Module):
    """Bias-free conv with weight normalisation: ``weight = g * v / ||v||`` per output filter.

    Our own parameterisation (instead of ``torch.nn.utils.parametrizations``) keeps
    the state-dict keys flat (``weight_g``, ``weight_v``) and lets the fusion read
    the effective ``weight`` directly.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, padding: int = 0) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_ch, out_ch
        self.kernel_size, self.padding = kernel_size, padding
        v = torch.empty(out_ch, in_ch, kernel_size, kernel_size)
        # Same init as nn.Conv2d so an untrained RepConv behaves like a sum of ordinary convs.
        nn.init.kaiming_uniform_(v, a=math.sqrt(5))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(_filter_norm(v))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_g * self.weight_v / _filter_norm(self.weight_v).clamp_min(_NORM_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, padding={self.padding}")


def _filter_norm(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


class RepConv3x3(nn.Module):
    """Multi-branch unit that fuses exactly into one 3x3 conv.

    Branches: (a) 3x3 conv (padding 1) to ``round(expansion * out_ch)`` channels
    followed by a 1x1 conv, (b) a 1x1 conv, (c) identity when ``in_ch == out_ch``.
    Zero padding is applied once, to the input of the 3x3, so (a) is the same
    linear map as a single padded 3x3 conv at every pixel, borders included.

    ``fuse_in_forward=True`` builds the fused kernel on every call and runs one
    conv: the gradient is identical (it is the same linear function of the
    parameters) while the full-resolution expansion to ``2*out`` channels is
    skipped, which roughly halves training cost on CPU.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        expansion: float = 2.0,
        bias: bool = False,
        fuse_in_forward: bool = False,
    ) -> None:
        super().__init__()
        if expansion <= 0:
            raise ValueError(f"expansion must be positive, got {expansion}")
        self.in_channels, self.out_channels = in_ch, out_ch
        hidden = max(1, round(expansion * out_ch))
        self.expand = WNConv2d(in_ch, hidden, 3, padding=1)
        self.squeeze = WNConv2d(hidden, out_ch, 1)
        self.shortcut = WNConv2d(in_ch, out_ch, 1)
        self.has_identity = in_ch == out_ch
        # A single output bias is enough: per-branch biases would just add up.
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.fuse_in_forward = fuse_in_forward

    @property
    def hidden_channels(self) -> int:
        return self.expand.out_channels

    def fused_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The single 3x3 kernel equal to the sum of all branches (differentiable)."""
        w3 = self.expand.weight
        w1 = self.squeeze.weight.flatten(1)
        wb = self.shortcut.weight
        if dtype is not None:
            w3, w1, wb = w3.to(dtype), w1.to(dtype), wb.to(dtype)
        kernel = torch.einsum("oh,hikl->oikl", w1, w3) + F.pad(wb, [1, 1, 1, 1])
        if self.has_identity:
            kernel = kernel + _identity_kernel(self.out_channels, kernel)
        return kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fuse_in_forward:
            return F.conv2d(x, self.fused_weight(), self.bias, padding=1)
        out = self.squeeze(self.expand(x)) + self.shortcut(x)
        if self.has_identity:
            out = out + x
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1, 1)
        return out

    @torch.no_grad()
    def reparameterize(self) -> nn.Conv2d:
        w = self.expand.weight_v
        # The composition is a sum of many products; doing it in float64 keeps the
        # fused conv within float32 rounding of the branch-wise forward.
        kernel = self.fused_weight(dtype=torch.float64).to(w.dtype)
        conv = conv3x3(self.in_channels, self.out_channels, bias=self.bias is not None)
        conv = conv.to(device=w.device, dtype=w.dtype)
        conv.weight.copy_(kernel)
        if self.bias is not None:
            assert conv.bias is not None
            conv.bias.copy_(self.bias)
        return conv

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, hidden={self.hidden_channels}, "
                f"identity={self.has_identity}, bias={self.bias is not None}")


def _identity_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(channels, dtype=like.dtype, device=like.device).view(channels, channels, 1, 1)
    return F.pad(eye, [1, 1, 1, 1])


class _TrainForm(nn.Module):
    """Shared ``reparameterize`` of the training-form skeletons: fuse every unit, return the deploy twin."""

    def deploy_twin(self) -> nn.Module:
        """An untrained module of the deploy form with the same widths."""
        raise NotImplementedError

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        p = next(self.parameters())
        deploy = self.deploy_twin().to(device=p.device, dtype=p.dtype)
        deploy.load_state_dict(fuse_submodules(self).state_dict(), strict=True)
        return deploy.train(self.training)


class RepConvFactory:
    """The training form's conv factory: a :class:`RepConv3x3` with fixed expansion and forward mode."""

    def __init__(self, expansion: float = 2.0, fuse_in_forward: bool = False) -> None:
        self.expansion, self.fuse_in_forward = expansion, fuse_in_forward

    def __call__(self, in_ch: int, out_ch: int, *, bias: bool = False) -> RepConv3x3:
        return RepConv3x3(in_ch, out_ch, self.expansion, bias, self.fuse_in_forward)


class RRFBTrain(_TrainForm, RRFB):
    """:class:`RRFB` with its three 3x3 convs in multi-branch form; same names otherwise."""

    def __init__(
        self,
        feat: int,
        mid1: int,
        mid2: int,
        esa: int = 16,
        bias: bool = False,
        expansion: float = 2.0,
        fuse_in_forward: bool = False,
    ) -> None:
        # Not in-place: autograd keeps the conv outputs of the branch sums alive anyway.
        super().__init__(feat, mid1, mid2, esa, bias, conv=RepConvFactory(expansion, fuse_in_forward),
                         inplace_act=False)

    def deploy_twin(self) -> RRFB:
        feat, mid1, mid2, esa = self.widths
        return RRFB(feat, mid1, mid2, esa, bias=self.c5.bias is not None)

    def reparameterize(self) -> RRFB:
        return super().reparameterize()  # type: ignore[return-value]


class DIPNetTrain(_TrainForm, DIPNetSkeleton):
    """Training form of :class:`DIPNet`: the same skeleton with :class:`RRFBTrain` blocks."""

    def __init__(
        self,
        config: DIPNetConfig | None = None,
        expansion: float = 2.0,
        fuse_in_forward: bool = False,
    ) -> None:
        def block(feat: int, widths: BlockWidths, bias: bool) -> RRFBTrain:
            return RRFBTrain(feat, widths.mid1, widths.mid2, widths.esa, bias, expansion, fuse_in_forward)

        super().__init__(config or DIPNetConfig(), block)
        self.expansion = expansion

    @property
    def blocks(self) -> list[RRFBTrain]:
        return super().blocks  # type: ignore[return-value]

    def set_fuse_in_forward(self, enabled: bool) -> None:
        for m in self.modules():
            if isinstance(m, RepConv3x3):
                m.fuse_in_forward = enabled

    def deploy_twin(self) -> DIPNet:
        return DIPNet(self.config)

    def reparameterize(self) -> DIPNet:
        """The equivalent deploy model; its state dict loads strictly into ``DIPNet(self.config)``."""
        return super().reparameterize()  # type: ignore[return-value]
