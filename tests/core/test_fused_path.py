"""The oneDNN-fused CPU path is really the one that runs: checked by the operators it executes.

Recorded with torch's profiler (public API) on the shipped built-in model: which
kernels ran, not how fast, so the test means the same on every machine.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from dipnet_core.engine import create_backend, gridnet
from dipnet_core.engine.gridnet import FusedGridDIPNet, GridDIPNet, TileGrid, grid_matrices
from dipnet_core.models import LoadedModel

FUSED_CONV = "mkldnn::_convolution_pointwise"


def _operators_run(backend: object, h: int = 24, w: int = 20) -> Counter[str]:
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    x = x.contiguous(memory_format=torch.channels_last)
    ry, rx_t = (torch.from_numpy(a) for a in grid_matrices(TileGrid(0, 0, h, w), h, w))
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        backend.module(x, ry, rx_t)  # type: ignore[attr-defined]
    return Counter({e.key: e.count for e in prof.key_averages()})


def _leaky_relus(ops: Counter[str]) -> int:
    return ops["aten::leaky_relu"] + ops["aten::leaky_relu_"]


def _expected_fused_convs(model: LoadedModel) -> int:
    # Per block: c1_r, c2_r, c3_r (+leaky ReLU), c5, ESA conv1, conv2, conv3, conv4 (+sigmoid) and
    # conv_f (+add); then conv_1 and conv_2 (+add). Only the upsampler's conv stays an eager conv.
    return 9 * len(model.module.config.blocks) + 2


def test_fused_path_runs_fused_convolutions_only(builtin_model: LoadedModel) -> None:
    backend = create_backend(builtin_model, backend="torch", device="cpu", precision="fp32")
    assert backend.fused and isinstance(backend.module, FusedGridDIPNet)
    assert "oneDNN-fused" in backend.describe()
    ops = _operators_run(backend)
    assert ops[FUSED_CONV] == _expected_fused_convs(builtin_model)
    assert ops["aten::conv2d"] == 1  # the upsampler
    assert _leaky_relus(ops) == 0 and ops["aten::sigmoid"] == 0  # folded into the convolutions


def test_unfused_path_runs_eager_modules(builtin_model: LoadedModel) -> None:
    backend = create_backend(builtin_model, backend="torch", device="cpu", precision="fp32", fuse=False)
    assert not backend.fused and isinstance(backend.module, GridDIPNet)
    assert "oneDNN-fused" not in backend.describe()
    ops = _operators_run(backend)
    assert ops[FUSED_CONV] == 0
    assert ops["aten::conv2d"] == _expected_fused_convs(builtin_model) + 1  # the same convolutions, unfused
    assert _leaky_relus(ops) == 3 * len(builtin_model.module.config.blocks)


def test_missing_fused_ops_fall_back_to_eager(builtin_model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*_args: object, **_kwargs: object) -> torch.Tensor:
        raise RuntimeError("this torch build has no mkldnn::_convolution_pointwise")

    monkeypatch.setattr(gridnet, "_conv", unavailable)
    backend = create_backend(builtin_model, backend="torch", device="cpu", precision="fp32")
    assert not backend.fused and isinstance(backend.module, GridDIPNet)
    assert _operators_run(backend)[FUSED_CONV] == 0
