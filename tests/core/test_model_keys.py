"""State-dict formats are a contract: the shipped model, the authors' weights and training
checkpoints (stage ``model.pt`` and resumable ``checkpoint.pt``) must keep loading.

The expected keys were recorded from the code before DIPNet and DIPNetTrain shared one
skeleton; the order matters too, because an optimizer's saved state is matched to
parameters by position when a run resumes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from dipnet_core.models import DIPNet, DIPNetConfig, load_model
from dipnet_core.models.train_blocks import DIPNetTrain
from dipnet_core.resources import builtin_model_path

DATA = Path(__file__).parent / "data"
SMALL = DIPNetConfig.uniform(12, 8, n_blocks=2, esa=8)


def _models() -> dict[str, torch.nn.Module]:
    biased = dataclasses.replace(SMALL, bias=True)
    return {
        "dipnet": DIPNet(SMALL),
        "dipnet_bias": DIPNet(biased),
        "dipnet_train": DIPNetTrain(SMALL, expansion=2.0),
        "dipnet_train_bias": DIPNetTrain(biased, expansion=1.5),
    }


@pytest.mark.parametrize("name", ["dipnet", "dipnet_bias", "dipnet_train", "dipnet_train_bias"])
def test_state_dict_keys_shapes_and_order_are_pinned(name: str) -> None:
    expected = json.loads((DATA / "dipnet_state_dict_keys.json").read_text())[name]
    model = _models()[name]
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert got == expected
    # Optimizer state is saved per parameter index: parameters must keep the same order.
    assert [k for k, _ in model.named_parameters()] == [k for k, _ in expected]


def test_training_weights_saved_by_the_old_code_load_and_compute_the_same() -> None:
    with safe_open(str(DATA / "dipnet_train_saved_by_v1.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = DIPNetConfig.from_dict(json.loads(meta["config"]))
    train_sd = {k.removeprefix("train."): v for k, v in tensors.items() if k.startswith("train.")}
    deploy_sd = {k.removeprefix("deploy."): v for k, v in tensors.items() if k.startswith("deploy.")}
    x = tensors["probe.input"]

    train = DIPNetTrain(config, expansion=float(meta["expansion"])).eval()
    train.load_state_dict(train_sd, strict=True)
    deploy = DIPNet(config).eval()
    deploy.load_state_dict(deploy_sd, strict=True)
    fused_now = train.reparameterize().eval()
    with torch.no_grad():
        assert (train(x) - tensors["probe.train_output"]).abs().max().item() < 1e-6
        assert (deploy(x) - tensors["probe.deploy_output"]).abs().max().item() < 1e-6
        assert (fused_now(x) - tensors["probe.deploy_output"]).abs().max().item() < 1e-5
    assert fused_now.state_dict().keys() == deploy_sd.keys()


def test_shipped_model_loads_strictly() -> None:
    path = builtin_model_path()
    assert path is not None
    loaded = load_model(path)
    with safe_open(str(path), framework="pt") as f:
        file_keys = set(f.keys())
    assert isinstance(loaded.module, DIPNet)
    assert set(loaded.module.state_dict()) == file_keys


def test_authors_weights_load_strictly(official_weights_path: Path) -> None:
    sd = torch.load(official_weights_path, map_location="cpu", weights_only=True)
    DIPNet(DIPNetConfig()).load_state_dict(sd, strict=True)
