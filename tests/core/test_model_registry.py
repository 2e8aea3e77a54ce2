"""Architecture detection goes through the registry; the descriptor carries the size contract."""

from __future__ import annotations

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
    proto = helper.make_model(graph)
    assert detect(ModelFile(tmp_path / "dipnet.onnx", onnx=proto)).name == "onnx"
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
