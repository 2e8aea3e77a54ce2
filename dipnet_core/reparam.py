"""Turn a training-form model into its deploy form and verify the two agree.

This module only walks models: the fusion maths belongs to each training block.
Any module exposing ``reparameterize() -> nn.Module`` (returning its fused
equivalent and leaving itself untouched) is treated as fusable
(:class:`~dipnet_core.models.train_blocks.DIPNetTrain`, ``RRFBTrain``,
``RepConv3x3`` or third-party blocks following the same convention).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from .errors import ModelError

__all__ = ["EquivalenceError", "check_equivalence", "fuse_submodules", "reparameterize_model"]


class EquivalenceError(ModelError):
    """Two models that should compute the same function differ by more than the tolerance.

    A model error, not an ``AssertionError``: it reports a bad model at run time and
    must survive ``python -O``.
    """


def _fusable(module: nn.Module) -> bool:
    return callable(getattr(module, "reparameterize", None))


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Return a fused copy of ``model``; the input model is left untouched.

    If the root itself is fusable its own ``reparameterize`` decides the result
    type (``DIPNetTrain -> DIPNet``). Otherwise the tree is copied and every
    outermost fusable submodule is replaced by its fused form, so a block's own
    ``reparameterize`` handles its children consistently.
    """
    if _fusable(model):
        return model.reparameterize()
    return fuse_submodules(model)


def fuse_submodules(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose outermost fusable descendants are replaced by their fused form.

    The root itself is kept (even if fusable), so a training-form skeleton can use
    this to fuse its blocks and then load the result into its deploy twin.
    """
    fused = copy.deepcopy(model)
    _replace_fusable_children(fused)
    return fused


def _replace_fusable_children(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if _fusable(child):
            setattr(module, name, child.reparameterize())
        else:
            _replace_fusable_children(child)


def _infer_in_channels(model: nn.Module) -> int:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "in_ch"):
        return int(config.in_ch)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise ValueError("cannot infer the input channel count; pass in_ch")


@torch.no_grad()
def check_equivalence(
    a: nn.Module,
    b: nn.Module,
    sizes: Sequence[tuple[int, int]] = ((17, 23), (32, 32)),
    atol: float | None = 1e-5,
    *,
    batch: int = 1,
    in_ch: int | None = None,
    seed: int = 0,
) -> float:
    """Max absolute output difference of ``a`` and ``b`` over random inputs of ``sizes``.

    Both models run in eval mode (their modes are restored afterwards). Odd sizes
    are the default because they exercise border padding and ESA's resize.
    Raises :class:`EquivalenceError` when the difference exceeds ``atol``; pass
    ``atol=None`` to only measure.
    """
    in_ch = in_ch if in_ch is not None else _infer_in_channels(a)
    param = next(a.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    gen = torch.Generator().manual_seed(seed)
    modes = (a.training, b.training)
    a.eval()
    b.eval()
    try:
        worst = 0.0
        for h, w in sizes:
            x = torch.rand(batch, in_ch, h, w, generator=gen, dtype=dtype).to(device)
            ya, yb = a(x), b(x)
            if ya.shape != yb.shape:
                raise EquivalenceError(
                    f"output shapes differ at {h}x{w}: {tuple(ya.shape)} vs {tuple(yb.shape)}"
                )
            worst = max(worst, float((ya - yb).abs().max()))
    finally:
        a.train(modes[0])
        b.train(modes[1])
    if atol is not None and not worst <= atol:  # 'not <=' also catches NaN
        raise EquivalenceError(f"max abs difference {worst:.3g} exceeds atol {atol:.3g}")
    return worst
