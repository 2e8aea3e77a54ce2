"""Training-time (multi-branch) form of DIPNet and its exact fusion into the deploy form.

Every 3x3 conv of an RRFB (``c1_r``, ``c2_r``, ``c3_r``) is trained as a
:class:`RepConv3x3`: a 3x3 -> 1x1 expansion branch, a parallel 1x1 branch and,
when shapes allow, an identity. All branches are linear and bias-free, so their
sum is itself one 3x3 conv; :meth:`RepConv3x3.reparameterize` computes it and
:meth:`DIPNetTrain.reparameterize` returns a plain :class:`DIPNet` whose state
dict uses the authors' key names. Convs are weight-normalised (``g * v/||v||``)
because the over-parameterised branches otherwise fight over scale, and because
``g`` is a natural per-filter importance for the pruner.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ESA, LEAKY_SLOPE, RRFB, conv3x3
from .dipnet import DIPNet, DIPNetConfig

__all__ = ["WNConv2d", "RepConv3x3", "RRFBTrain", "DIPNetTrain"]

# Guards the division in the weight-norm when a filter has been set to exactly zero
# (e.g. by :meth:`RepConv3x3.load_fused`); such a filter then stays zero, not NaN.
_NORM_EPS = 1e-12


class WNConv2d(nn.Module):
    """Bias-free conv with weight normalisation: ``weight = g * v / ||v||`` per output filter.

    Our own parameterisation (instead of ``torch.nn.utils.parametrizations``) keeps
    the state-dict keys flat (``weight_g``, ``weight_v``) and lets the pruner and
    the fusion read ``g`` and the effective ``weight`` directly.
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

    @torch.no_grad()
    def set_weight(self, weight: torch.Tensor) -> None:
        """Make the effective weight equal ``weight`` (g = ||w||, v = w)."""
        self.weight_v.copy_(weight)
        self.weight_g.copy_(_filter_norm(weight))

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

    @torch.no_grad()
    def load_fused(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Set the branches so the unit computes exactly ``conv3x3(weight, bias)``.

        The 1x1 branch keeps its current value; the expansion branch carries the
        remainder in its first ``out`` hidden channels and a one-hot 1x1 selects
        them. The remaining hidden channels keep random filters with zero output
        weight, so they start silent but still receive gradient through ``squeeze``.
        """
        if self.hidden_channels < self.out_channels:
            raise ValueError("load_fused needs expansion >= 1 (hidden channels >= out channels)")
        expected = (self.out_channels, self.in_channels, 3, 3)
        if tuple(weight.shape) != expected:
            raise ValueError(f"weight has shape {tuple(weight.shape)}, expected {expected}")
        weight = weight.to(self.expand.weight_v)
        rest = weight - F.pad(self.shortcut.weight, [1, 1, 1, 1])
        if self.has_identity:
            rest = rest - _identity_kernel(self.out_channels, rest)
        v3 = self.expand.weight.clone()
        v3[: self.out_channels] = rest
        self.expand.set_weight(v3)
        v1 = torch.zeros_like(self.squeeze.weight_v)
        v1[:, : self.out_channels, 0, 0] = torch.eye(self.out_channels, dtype=v1.dtype, device=v1.device)
        self.squeeze.set_weight(v1)
        if self.bias is not None:
            self.bias.copy_(bias if bias is not None else torch.zeros_like(self.bias))
        elif bias is not None and bool(bias.ne(0).any()):
            raise ValueError("this RepConv3x3 has no bias but a non-zero bias was given")

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, hidden={self.hidden_channels}, "
                f"identity={self.has_identity}, bias={self.bias is not None}")


def _identity_kernel(channels: int, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(channels, dtype=like.dtype, device=like.device).view(channels, channels, 1, 1)
    return F.pad(eye, [1, 1, 1, 1])


class RRFBTrain(nn.Module):
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
        super().__init__()
        self.widths = (feat, mid1, mid2, esa)
        self.c1_r = RepConv3x3(feat, mid1, expansion, bias, fuse_in_forward)
        self.c2_r = RepConv3x3(mid1, mid2, expansion, bias, fuse_in_forward)
        self.c3_r = RepConv3x3(mid2, feat, expansion, bias, fuse_in_forward)
        self.c5 = nn.Conv2d(feat, feat, 1, bias=bias)
        self.esa = ESA(feat, esa)
        # Not in-place: autograd keeps the conv outputs of the branch sums alive anyway.
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))

    @torch.no_grad()
    def reparameterize(self) -> RRFB:
        feat, mid1, mid2, esa = self.widths
        p = self.c5.weight
        block = RRFB(feat, mid1, mid2, esa, bias=self.c5.bias is not None).to(device=p.device, dtype=p.dtype)
        for name in ("c1_r", "c2_r", "c3_r"):
            setattr(block, name, getattr(self, name).reparameterize())
        block.c5.load_state_dict(self.c5.state_dict())
        block.esa.load_state_dict(self.esa.state_dict())
        return block.train(self.training)

    @torch.no_grad()
    def load_deploy(self, block: RRFB) -> None:
        """Initialise from a fused block so that this block computes the same function."""
        for name in ("c1_r", "c2_r", "c3_r"):
            conv: nn.Conv2d = getattr(block, name)
            getattr(self, name).load_fused(conv.weight, conv.bias)
        self.c5.load_state_dict(block.c5.state_dict())
        self.esa.load_state_dict(block.esa.state_dict())


class DIPNetTrain(nn.Module):
    """Training form of :class:`DIPNet`: same layout, RRFB blocks replaced by :class:`RRFBTrain`."""

    def __init__(
        self,
        config: DIPNetConfig | None = None,
        expansion: float = 2.0,
        fuse_in_forward: bool = False,
    ) -> None:
        super().__init__()
        self.config = config = config or DIPNetConfig()
        self.expansion = expansion
        f, bias = config.feat, config.bias
        self.conv_1 = conv3x3(config.in_ch, f, bias)
        for i, b in enumerate(config.blocks, start=1):
            block = RRFBTrain(f, b.mid1, b.mid2, b.esa, bias, expansion, fuse_in_forward)
            self.add_module(f"block_{i}", block)
        self.conv_2 = conv3x3(f, f, bias)
        self.upsampler = nn.Sequential(
            conv3x3(f, config.out_ch * config.scale**2, bias), nn.PixelShuffle(config.scale)
        )

    @property
    def blocks(self) -> list[RRFBTrain]:
        return [getattr(self, f"block_{i}") for i in range(1, len(self.config.blocks) + 1)]

    def set_fuse_in_forward(self, enabled: bool) -> None:
        for m in self.modules():
            if isinstance(m, RepConv3x3):
                m.fuse_in_forward = enabled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Output plus every block's output (same contract as :meth:`DIPNet.forward_features`)."""
        feat = self.conv_1(x)
        out, anchors = feat, []
        for block in self.blocks:
            out = block(out)
            anchors.append(out)
        return self.upsampler(self.conv_2(out) + feat), anchors

    @torch.no_grad()
    def reparameterize(self) -> DIPNet:
        """The equivalent deploy model; its state dict loads strictly into ``DIPNet(self.config)``."""
        p = self.conv_1.weight
        deploy = DIPNet(self.config).to(device=p.device, dtype=p.dtype)
        sd: dict[str, torch.Tensor] = {}
        for name in ("conv_1", "conv_2", "upsampler"):
            sd.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        for i, block in enumerate(self.blocks, start=1):
            sd.update({f"block_{i}.{k}": v for k, v in block.reparameterize().state_dict().items()})
        deploy.load_state_dict(sd, strict=True)
        return deploy.train(self.training)

    @classmethod
    @torch.no_grad()
    def from_deploy(
        cls, model: DIPNet, expansion: float = 2.0, fuse_in_forward: bool = False
    ) -> DIPNetTrain:
        """Training form computing the same function as ``model`` (fine-tune a fused model with branches)."""
        p = model.conv_1.weight
        train = cls(model.config, expansion, fuse_in_forward).to(device=p.device, dtype=p.dtype)
        for name in ("conv_1", "conv_2", "upsampler"):
            getattr(train, name).load_state_dict(getattr(model, name).state_dict())
        for tb, db in zip(train.blocks, model.blocks, strict=True):
            tb.load_deploy(db)
        return train.train(model.training)
