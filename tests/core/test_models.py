"""Model loading against the real official weights: quality anchor, state-dict detection, safety."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dipnet_core.metrics import psnr
from dipnet_core.models import (
    BlockWidths,
    DIPNet,
    DIPNetConfig,
    ModelLoadError,
    detect_dipnet_config,
    dipnet_descriptor,
    load_model,
    save_model,
)
from dipnet_core.resize import bicubic_downscale_uint8, modcrop

PRUNED = DIPNetConfig(
    feat=24,
    blocks=(BlockWidths(20, 16), BlockWidths(12, 12, 8), BlockWidths(24, 8), BlockWidths(16, 16)),
)


def _probe() -> torch.Tensor:
    return torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))


def _out(module: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return module(_probe())


@pytest.fixture(scope="module")
def official_sd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """A state dict in the authors' layout and widths (44/38, plain ``torch.save`` of the state dict).

    Seeded random weights: detection reads only key names and shapes; the real file is loaded by
    the PSNR anchor below.
    """
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("authors") / "dipnet_x4.pth"
    torch.save(DIPNet(DIPNetConfig()).state_dict(), path)
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def official_out(official_sd: dict[str, torch.Tensor]) -> torch.Tensor:
    module = DIPNet(DIPNetConfig()).eval()
    module.load_state_dict(official_sd)
    return _out(module)


def _random_dipnet(config: DIPNetConfig, seed: int = 0) -> DIPNet:
    torch.manual_seed(seed)
    return DIPNet(config).eval()


# ---------------------------------------------------------------------------------------------- quality


@pytest.mark.slow
def test_set5_psnr_anchor(official_model, set5_dir: Path) -> None:
    """Pins model + MATLAB bicubic + metric together: the official weights measure 31.807 dB."""
    d = official_model.descriptor
    assert (d.arch, d.scale, d.params, official_model.module.config) == ("dipnet", 4, 243_252, DIPNetConfig())
    model = official_model.module
    scores = []
    for path in sorted(set5_dir.glob("*.png")):
        with Image.open(path) as im:
            hr = modcrop(np.asarray(im.convert("RGB")), 4)
        lr = bicubic_downscale_uint8(hr, 4)
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            sr = model(x)[0].permute(1, 2, 0).numpy()
        sr_u8 = np.clip(np.round(sr * 255.0), 0, 255).astype(np.uint8)
        scores.append(psnr(sr_u8, hr, border=4))
    assert len(scores) == 5
    assert float(np.mean(scores)) == pytest.approx(31.81, abs=0.03)


# ---------------------------------------------------------------------------------------------- detection


def test_official_state_dict_detected(official_sd, tmp_path: Path) -> None:
    assert detect_dipnet_config(official_sd) == DIPNetConfig()
    path = tmp_path / "authors.pth"
    torch.save(official_sd, path)
    d = load_model(path).descriptor
    assert (d.arch, d.scale, d.params) == ("dipnet", 4, 243_252)


def test_pruned_widths_detected(tmp_path: Path) -> None:
    model = _random_dipnet(PRUNED)
    path = tmp_path / "pruned.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert isinstance(loaded.module, DIPNet)
    assert loaded.module.config == PRUNED
    assert torch.equal(_out(loaded.module), _out(model))


@pytest.mark.parametrize("wrap", ["module_prefix", "params_ema", "state_dict_model_prefix"])
def test_renamed_keys_detected(tmp_path: Path, official_sd, official_out, wrap: str) -> None:
    if wrap == "module_prefix":
        obj: object = {f"module.{k}": v for k, v in official_sd.items()}
    elif wrap == "params_ema":
        obj = {"params_ema": official_sd}
    else:
        obj = {"state_dict": {f"model.{k}": v for k, v in official_sd.items()}, "epoch": 7}
    path = tmp_path / f"{wrap}.pth"
    torch.save(obj, path)
    loaded = load_model(path)
    assert loaded.module.config == DIPNetConfig()
    assert torch.equal(_out(loaded.module), official_out)


def test_rlfn_style_biases(tmp_path: Path) -> None:
    config = dataclasses.replace(DIPNetConfig.uniform(16, 12, n_blocks=2, esa=8), bias=True)
    model = _random_dipnet(config)
    assert "conv_1.bias" in model.state_dict()
    path = tmp_path / "rlfn_like.pth"
    torch.save(model.state_dict(), path)
    loaded = load_model(path)
    assert loaded.module.config.bias is True
    assert len(loaded.module.config.blocks) == 2
    assert torch.equal(_out(loaded.module), _out(model))


def test_safetensors_round_trip(tmp_path: Path) -> None:
    model = _random_dipnet(PRUNED, seed=3)
    desc = dipnet_descriptor(model, name="tiny pruned", source="unit test", license="MIT",
                             training={"steps": 5})
    path = save_model(tmp_path / "tiny.safetensors", model, desc)
    loaded = load_model(path)
    assert loaded.descriptor.name == "tiny pruned"
    assert loaded.descriptor.license == "MIT"
    assert loaded.descriptor.training == {"steps": 5}
    assert loaded.descriptor.config == PRUNED.to_dict()
    assert loaded.descriptor.scale == 4
    assert torch.equal(_out(loaded.module), _out(model))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.safetensors"]  # no temp file left behind


# ---------------------------------------------------------------------------------------------- safety


class _PlantsMarker:
    """Unpickling this calls ``open(marker, "w")``: proof that pickled code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (open, (str(self.marker), "w"))


def test_pickled_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _PlantsMarker(marker)}, path)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert not marker.exists()
    assert "evil.pth" in str(info.value)
    assert "pickle" in str(info.value)


def test_whole_pickled_module_refused(tmp_path: Path) -> None:
    path = tmp_path / "whole_module.pth"
    # A whole-module pickle, as some old tools save; loading it would import and run our classes.
    torch.save(_random_dipnet(DIPNetConfig.uniform(8, 8, n_blocks=1, esa=4)), path)
    with pytest.raises(ModelLoadError, match="whole_module.pth"):
        load_model(path)


@pytest.mark.parametrize(
    "name, content",
    [("garbage.pth", b"\x00\x01not a checkpoint at all" * 10), ("text.pth", b"this is not a checkpoint"),
     ("empty.pth", b""),
     ("garbage.safetensors", b"\xff" * 64), ("garbage.onnx", b"definitely not protobuf" * 4)],
)
def test_bad_model_files(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert name in str(info.value)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="nope.pth"):
        load_model(tmp_path / "nope.pth")
    folder = tmp_path / "weights.pth"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match="weights.pth"):
        load_model(folder)


def test_state_dict_of_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ModelLoadError, match="other.pth"):
        load_model(path)
