"""Third-party models through the optional spandrel extra.

spandrel needs torchvision, and PyPI's torchvision does not import beside the
CPU torch wheel the default install uses, so CI skips these with a visible
reason. They run in a venv with `torch==2.14.1 torchvision==0.29.1 spandrel`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def _spandrel():
    try:
        import spandrel
    except Exception as exc:  # torchvision operator errors surface as RuntimeError at import
        pytest.skip(f"spandrel extra not usable here ({type(exc).__name__}: {exc}); see README 'Optional extras'")
    return spandrel


def _tiny_esrgan_file(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    _spandrel()
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    net = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4).eval()
    path = tmp_path / "tiny_esrgan_x4.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_spandrel_model_loads_with_detected_architecture(tmp_path: Path) -> None:
    from dipnet_core.models import load_model

    path, net = _tiny_esrgan_file(tmp_path)
    loaded = load_model(path)
    assert loaded.descriptor.arch == "spandrel:ESRGAN"
    assert loaded.descriptor.scale == 4
    assert loaded.descriptor.params == sum(p.numel() for p in net.parameters())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        ours = loaded.module(x)
        theirs = net(x).clamp(0, 1)  # spandrel clamps outputs to the input range
    assert ours.shape == (1, 3, 80, 96)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_spandrel_model_upscales_through_the_engine(tmp_path: Path) -> None:
    _spandrel()
    from dipnet_core.engine import TiledUpscaler, create_backend
    from dipnet_core.models import load_model

    path, _ = _tiny_esrgan_file(tmp_path)
    loaded = load_model(path)
    upscaler = TiledUpscaler(create_backend(loaded, backend="torch", device="cpu", precision="fp32"))
    out = upscaler.upscale(np.random.default_rng(0).random((30, 26, 3), dtype=np.float32))
    assert out.shape == (120, 104, 3)
    assert np.isfinite(out).all()
