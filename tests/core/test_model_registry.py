"""Architecture detection goes through the registry; the descriptor carries the size contract."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from onnx import TensorProto, helper

from dipnet_core.models import (
    Architecture,
    DIPNet,
    DIPNetConfig,
    ModelFile,
    dipnet_descriptor,
    min_input_size,
    register,
    registered_architectures,
)
from dipnet_core.models.architectures import spandrel_available
from dipnet_core.models.probe import open_onnx_session
from dipnet_core.models.registry import detect

TINY = DIPNetConfig.uniform(8, 8, n_blocks=1, esa=4)


def test_registered_architectures_in_detection_order() -> None:
    assert [a.name for a in registered_architectures()] == ["dipnet", "onnx", "spandrel"]
    with pytest.raises(ValueError, match="already registered"):
        register(Architecture("dipnet", detect=lambda f: False, load=registered_architectures()[0].load))


def test_detection_by_content_not_by_name(tmp_path: Path) -> None:
    sd = DIPNet(TINY).state_dict()
    assert detect(ModelFile(tmp_path / "anything.bin", state_dict=sd)).name == "dipnet"
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    session = open_onnx_session(tmp_path / "dipnet.onnx", helper.make_model(graph).SerializeToString())
    assert detect(ModelFile(tmp_path / "dipnet.onnx", onnx=session)).name == "onnx"
    foreign = ModelFile(tmp_path / "other.pth", state_dict={"encoder.weight": torch.zeros(2, 2)})
    found = detect(foreign)
    assert (found.name if found else None) == ("spandrel" if spandrel_available() else None)


def test_min_input_size_is_what_esa_really_needs() -> None:
    model = DIPNet(TINY).eval()
    n = min_input_size()
    assert dipnet_descriptor(model).min_size == n == 15
    with torch.no_grad():
        assert model(torch.rand(1, 3, n, n)).shape == (1, 3, 4 * n, 4 * n)
        with pytest.raises(RuntimeError):
            model(torch.rand(1, 3, n - 1, n))


def test_onnx_models_and_descriptors_load_without_torch_or_onnx(tmp_path: Path) -> None:
    # The upscale-only install has neither torch nor the onnx package: a stray top-level import of
    # either in models/ must fail here.
    repo = Path(__file__).resolve().parents[2]
    models = repo / "resources" / "models"
    code = f"""
import sys
for name in ("torch", "torchvision", "spandrel", "onnx"):
    sys.modules[name] = None
from dipnet_core.models import load_model, read_descriptor
loaded = load_model({str(models / "dipnet-studio-x4.onnx")!r})
listed = read_descriptor({str(models / "dipnet-studio-x4.safetensors")!r})
print(loaded.descriptor.arch, loaded.descriptor.scale, listed.arch, listed.min_size)
"""
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["onnx", "4", "dipnet", "15"]
