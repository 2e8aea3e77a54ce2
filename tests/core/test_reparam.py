"""Exactness of the multi-branch -> fused conversion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dipnet_core.errors import ModelError
from dipnet_core.models.blocks import RRFB
from dipnet_core.models.dipnet import DIPNet, DIPNetConfig
from dipnet_core.models.train_blocks import DIPNetTrain, RepConv3x3, RRFBTrain
from dipnet_core.reparam import EquivalenceError, check_equivalence, reparameterize_model

TOL = 1e-5


def _train_a_little(module: nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    # Move the weights (g and v) away from their init so fusion is tested on trained-like values.
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        module(x).square().mean().backward()
        opt.step()


@pytest.mark.parametrize(("in_ch", "out_ch", "bias"), [(8, 8, False), (6, 10, False), (10, 6, True)])
def test_repconv_fuses_exactly_including_borders(in_ch: int, out_ch: int, bias: bool) -> None:
    torch.manual_seed(0)
    unit = RepConv3x3(in_ch, out_ch, bias=bias)
    assert unit.has_identity == (in_ch == out_ch)
    x = torch.randn(1, in_ch, 17, 23)
    _train_a_little(unit, x)
    conv = unit.reparameterize()
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
    assert (conv.bias is not None) == bias
    with torch.no_grad():
        ref = unit(x)
        fused = conv(x)
    # Whole image, and the one-pixel border ring on its own (where padding matters).
    assert (ref - fused).abs().max().item() < TOL
    border = torch.ones(17, 23, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert (ref - fused)[..., border].abs().max().item() < TOL


def test_repconv_fused_forward_matches_branches() -> None:
    torch.manual_seed(1)
    unit = RepConv3x3(5, 5)
    x = torch.randn(2, 5, 9, 11)
    ref = unit(x)
    unit.fuse_in_forward = True
    assert (unit(x) - ref).abs().max().item() < TOL


def test_rrfb_train_reparameterize_type_and_equivalence() -> None:
    torch.manual_seed(3)
    block = RRFBTrain(12, 10, 8, esa=8)
    fused = block.reparameterize()
    assert isinstance(fused, RRFB)
    assert check_equivalence(block, fused, sizes=[(17, 19)], in_ch=12) < TOL


@pytest.fixture(scope="module")
def official_pair() -> tuple[DIPNetTrain, DIPNet]:
    torch.manual_seed(4)
    model = DIPNetTrain(DIPNetConfig())
    _train_a_little(model, torch.rand(1, 3, 17, 19), steps=2)
    return model, model.reparameterize()


def test_dipnet_train_reparameterize_equivalent(official_pair: tuple[DIPNetTrain, DIPNet]) -> None:
    model, deploy = official_pair
    assert isinstance(deploy, DIPNet)
    x = torch.rand(1, 3, 17, 23)
    with torch.no_grad():
        ref, ref_anchors = model.forward_features(x)
        out, anchors = deploy.forward_features(x)
    assert out.shape == (1, 3, 68, 92)
    assert (ref - out).abs().max().item() < TOL
    assert len(anchors) == len(ref_anchors) == 4
    for a, b in zip(ref_anchors, anchors, strict=True):
        assert (a - b).abs().max().item() < TOL


def _authors_layout(feat: int = 44, mid: int = 38, esa: int = 16, n_blocks: int = 4, scale: int = 4) -> dict:
    """Key names and shapes of the authors' published x4 file, written out here from that file's layout.

    Independent of this project's DIPNet class, so a renamed or reshaped layer fails the test.
    """
    layout: dict[str, tuple[int, ...]] = {"conv_1.weight": (feat, 3, 3, 3)}
    for i in range(1, n_blocks + 1):
        b = f"block_{i}."
        layout |= {
            b + "c1_r.weight": (mid, feat, 3, 3), b + "c2_r.weight": (mid, mid, 3, 3),
            b + "c3_r.weight": (feat, mid, 3, 3), b + "c5.weight": (feat, feat, 1, 1),
            b + "esa.conv1.weight": (esa, feat, 1, 1), b + "esa.conv1.bias": (esa,),
            b + "esa.conv_f.weight": (esa, esa, 1, 1), b + "esa.conv_f.bias": (esa,),
            b + "esa.conv2.weight": (esa, esa, 3, 3), b + "esa.conv2.bias": (esa,),
            b + "esa.conv3.weight": (esa, esa, 3, 3), b + "esa.conv3.bias": (esa,),
            b + "esa.conv4.weight": (feat, esa, 1, 1), b + "esa.conv4.bias": (feat,),
        }
    layout |= {"conv_2.weight": (feat, feat, 3, 3), "upsampler.0.weight": (3 * scale * scale, feat, 3, 3)}
    return layout


def test_fused_state_dict_has_official_keys(official_pair: tuple[DIPNetTrain, DIPNet]) -> None:
    _, deploy = official_pair
    fused = {k: tuple(v.shape) for k, v in deploy.state_dict().items()}
    assert fused == _authors_layout()
    assert len(fused) == 59  # the authors' file holds 59 tensors


def test_reparameterize_model_walker_and_check_equivalence(official_pair: tuple[DIPNetTrain, DIPNet]) -> None:
    model, deploy = official_pair
    direct = reparameterize_model(model)
    assert isinstance(direct, DIPNet)
    # A wrapper without reparameterize(): the walker replaces the fusable child and leaves the input alone.
    wrapped = nn.Sequential(model, nn.Identity())
    fused = reparameterize_model(wrapped)
    assert isinstance(fused[0], DIPNet) and isinstance(wrapped[0], DIPNetTrain)
    assert check_equivalence(wrapped, fused, sizes=[(17, 17)], in_ch=3) < TOL
    with pytest.raises(EquivalenceError):
        check_equivalence(model, DIPNet(DIPNetConfig()), sizes=[(17, 17)])
    assert check_equivalence(model, DIPNet(DIPNetConfig()), sizes=[(17, 17)], atol=None) > TOL


def test_equivalence_error_is_a_model_error_not_an_assertion() -> None:
    # An assertion would vanish under `python -O` and be reported as a bug, not as a bad model.
    assert not issubclass(EquivalenceError, AssertionError)
    assert issubclass(EquivalenceError, ModelError)
    with pytest.raises(EquivalenceError, match="exceeds atol"):
        check_equivalence(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), sizes=[(4, 4)], atol=0.0)


def test_reparameterize_leaves_the_training_model_untouched() -> None:
    torch.manual_seed(6)
    model = DIPNetTrain(DIPNetConfig.uniform(12, 8, n_blocks=2, esa=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = model.reparameterize()
    assert isinstance(deploy, DIPNet) and not isinstance(deploy, DIPNetTrain)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert all(isinstance(b.c1_r, RepConv3x3) for b in model.blocks)
    assert all(isinstance(b.c1_r, nn.Conv2d) for b in deploy.blocks)
