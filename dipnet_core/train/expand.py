"""Re-expand a fused DIPNet into its training form, computing exactly the same function.

Adaptation starts from a finished model (the built-in one) instead of random
weights. Distillation trains the multi-branch form (``DIPNetTrain``), so each
fused 3x3 conv becomes a :class:`~dipnet_core.models.train_blocks.RepConv3x3`
whose branches add up to it: the 1x1 shortcut keeps its fresh random filters
(so it trains from the start), the identity is fixed, and the 3x3 expansion
branch carries the remainder in its first ``out`` hidden channels, passed
through by a one-hot 1x1 squeeze. The other hidden channels keep random
filters with a zero output weight: silent at first, they still receive
gradient through the squeeze, which is the extra capacity the training form is for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.dipnet import DIPNet
from ..models.train_blocks import DIPNetTrain, RepConv3x3

__all__ = ["expand_fused"]


def _filter_norm(w: torch.Tensor) -> torch.Tensor:
    return w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)


def _set_wn_weight(conv: nn.Module, weight: torch.Tensor) -> None:
    """Make a weight-normalised conv's effective weight ``weight`` (v = w, g = ||w|| per filter)."""
    conv.weight_v.copy_(weight)
    conv.weight_g.copy_(_filter_norm(weight))


@torch.no_grad()
def _load_fused_conv(rep: RepConv3x3, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    out_ch = rep.out_channels
    if rep.hidden_channels < out_ch:
        raise ValueError("re-expanding a fused model needs expansion >= 1 (hidden channels >= out channels)")
    weight = weight.to(rep.expand.weight_v)
    rest = weight - F.pad(rep.shortcut.weight, [1, 1, 1, 1])
    if rep.has_identity:
        eye = torch.eye(out_ch, dtype=rest.dtype, device=rest.device).view(out_ch, out_ch, 1, 1)
        rest = rest - F.pad(eye, [1, 1, 1, 1])
    v3 = rep.expand.weight.clone()
    v3[:out_ch] = rest
    _set_wn_weight(rep.expand, v3)
    v1 = torch.zeros_like(rep.squeeze.weight_v)
    v1[:, :out_ch, 0, 0] = torch.eye(out_ch, dtype=v1.dtype, device=v1.device)
    _set_wn_weight(rep.squeeze, v1)
    if rep.bias is not None:
        rep.bias.copy_(bias if bias is not None else torch.zeros_like(rep.bias))
    elif bias is not None and bool(bias.ne(0).any()):
        raise ValueError("the fused conv has a bias but the training block has none")


@torch.no_grad()
def expand_fused(model: DIPNet, expansion: float = 2.0, fuse_in_forward: bool = True) -> DIPNetTrain:
    """The training form of ``model`` (same widths) that computes the same function.

    Every conv that the training form keeps as a plain conv (first and last convs,
    upsampler, ``c5``, ESA) is copied; every 3x3 that it trains as a RepConv is
    re-expanded as described in the module docstring.
    """
    if not isinstance(model, DIPNet):
        raise TypeError(f"expected a fused DIPNet, got {type(model).__name__}")
    p = next(model.parameters())
    train = DIPNetTrain(model.config, expansion=expansion, fuse_in_forward=fuse_in_forward)
    train = train.to(device=p.device, dtype=p.dtype)
    fused = model.state_dict()
    rep_names = {name for name, m in train.named_modules() if isinstance(m, RepConv3x3)}
    for name in rep_names:
        _load_fused_conv(train.get_submodule(name), fused[f"{name}.weight"], fused.get(f"{name}.bias"))
    plain = {k: v for k, v in fused.items() if k.rsplit(".", 1)[0] not in rep_names}
    missing = set(plain) - set(train.state_dict())
    if missing:
        raise ValueError(f"the training form has no place for {sorted(missing)[:3]}")
    train.load_state_dict(plain, strict=False)
    return train.train(model.training)
