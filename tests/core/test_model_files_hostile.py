"""Hostile model files (issue 13, cases 4 and 5): each gives a load error naming the file and the
problem, or loads with its lie corrected and a warning that says what and why.

Every model here is real: a tiny DIPNet saved to disk, or an ONNX graph built with onnx.helper.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from safetensors.torch import save_file

from dipnet_core.models import (
    DIPNet,
    DIPNetConfig,
    ModelLoadError,
    ModelWarning,
    dipnet_descriptor,
    load_model,
    read_descriptor,
    save_model,
)
from dipnet_core.models.descriptor import DESCRIPTOR_KEY
from dipnet_core.resources import builtin_model_path

TINY = DIPNetConfig.uniform(8, 8, n_blocks=1, esa=4)


def _tiny(seed: int = 0) -> DIPNet:
    torch.manual_seed(seed)
    return DIPNet(TINY).eval()


def _save_with_metadata(path: Path, text: str) -> Path:
    tensors = {k: v.contiguous() for k, v in _tiny().state_dict().items()}
    save_file(tensors, str(path), metadata={DESCRIPTOR_KEY: text})
    return path


def _onnx_file(path: Path, nodes: list, output_shape: list | None, descriptor: str | None = None,
               initializers: list | None = None) -> Path:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, output_shape)
    graph = helper.make_graph(nodes, "hostile", [x], [y], initializer=initializers or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime the project supports
    if descriptor is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = DESCRIPTOR_KEY, descriptor
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _resize_x2_nodes(output: str = "output") -> tuple[list, list]:
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["input", "", "scales"], [output], mode="nearest")
    return [node], [scales]


# --------------------------------------------------------------------------- case 4: malformed descriptors


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [("{}", "required field"), ("[1, 2]", "JSON object"), ("not json {", "not JSON"),
     ('{"arch": "dipnet", "scale": "4"}', "'scale'"), ('{"arch": "dipnet", "scale": 4, "input_range": 7}',
                                                      "'input_range'"),
     ('{"arch": "dipnet", "scale": 4, "min_size": 100000}', "'min_size' must be a whole number from 1 to")],
)
def test_malformed_descriptor_names_file_and_problem(tmp_path: Path, metadata: str, problem: str) -> None:
    path = _save_with_metadata(tmp_path / "weird.safetensors", metadata)
    for load in (load_model, read_descriptor):  # the full load and the models list's cheap read
        with pytest.raises(ModelLoadError) as info:
            load(path)
        message = str(info.value)
        assert "weird.safetensors" in message and "descriptor" in message and problem in message


def test_onnx_with_scalar_output_is_a_load_error(tmp_path: Path) -> None:
    node = helper.make_node("ReduceMean", ["input"], ["output"], keepdims=0)
    path = _onnx_file(tmp_path / "scalar.onnx", [node], [])
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert "scalar.onnx" in str(info.value) and "shape ()" in str(info.value)


def test_onnx_with_malformed_descriptor_is_a_load_error(tmp_path: Path) -> None:
    nodes, inits = _resize_x2_nodes()
    path = _onnx_file(tmp_path / "meta.onnx", nodes, [1, 3, "H", "W"], descriptor="[1, 2]",
                      initializers=inits)
    for load in (load_model, read_descriptor):
        with pytest.raises(ModelLoadError, match=r"meta\.onnx.*JSON object"):
            load(path)


def test_onnx_without_descriptor_gets_its_scale_from_the_probe(tmp_path: Path) -> None:
    nodes, inits = _resize_x2_nodes()
    path = _onnx_file(tmp_path / "x2.onnx", nodes, [1, 3, "H", "W"], initializers=inits)
    d = load_model(path).descriptor
    assert (d.arch, d.scale, d.in_channels, d.out_channels) == ("onnx", 2, 3, 3)


# --------------------------------------------------------------------------- case 5: lying or broken models


def test_nan_weights_are_refused(tmp_path: Path) -> None:
    model = _tiny()
    with torch.no_grad():
        model.block_1.c2_r.weight[0, 0, 1, 1] = float("nan")
    path = tmp_path / "nan.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"nan\.pth.*NaN or infinite.*block_1\.c2_r\.weight"):
        load_model(path)


def test_weights_that_overflow_to_infinity_are_refused(tmp_path: Path) -> None:
    model = _tiny()
    with torch.no_grad():
        model.upsampler[0].weight.fill_(3e38)  # finite weights, infinite output
    path = tmp_path / "overflow.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ModelLoadError, match=r"overflow\.pth.*computes NaN or infinite"):
        load_model(path)


def test_descriptor_scale_lie_is_corrected_with_a_warning(tmp_path: Path) -> None:
    model = _tiny()
    lie = dataclasses.replace(dipnet_descriptor(model, name="liar"), scale=2)
    path = save_model(tmp_path / "liar.safetensors", model, lie)
    with pytest.warns(ModelWarning, match=r"liar\.safetensors.*scale=2.*scale=4"):
        loaded = load_model(path)
    assert loaded.descriptor.scale == 4 and loaded.descriptor.name == "liar"
    assert len(loaded.warnings) == 1 and "scale" in loaded.warnings[0]
    with torch.no_grad():
        assert loaded.module(torch.rand(1, 3, 16, 20)).shape == (1, 3, 64, 80)


def test_descriptor_config_with_wrong_scale_is_corrected(tmp_path: Path) -> None:
    model = _tiny()
    descriptor = dipnet_descriptor(model)
    lie = dataclasses.replace(descriptor, scale=2, config={**descriptor.config, "scale": 2})
    path = save_model(tmp_path / "config_lie.safetensors", model, lie)
    with pytest.warns(ModelWarning, match=r"config_lie\.safetensors"):
        loaded = load_model(path)
    assert loaded.descriptor.scale == 4 and loaded.descriptor.config["scale"] == 4
    assert loaded.module.config == TINY


def test_descriptor_in_channels_lie_is_corrected_not_blamed_on_the_image(tmp_path: Path) -> None:
    model = _tiny()
    lie = dataclasses.replace(dipnet_descriptor(model), in_channels=1)
    path = save_model(tmp_path / "gray_lie.safetensors", model, lie)
    with pytest.warns(ModelWarning, match=r"gray_lie\.safetensors.*in_channels=1.*in_channels=3"):
        loaded = load_model(path)
    assert loaded.descriptor.in_channels == 3


def test_honest_files_load_without_warnings(tmp_path: Path) -> None:
    # pytest turns any warning into an error, so a clean load here means no false correction.
    model = _tiny()
    loaded = load_model(save_model(tmp_path / "honest.safetensors", model, dipnet_descriptor(model)))
    assert loaded.warnings == [] and loaded.descriptor.scale == 4
    shipped_onnx = builtin_model_path().with_suffix(".onnx")
    loaded = load_model(shipped_onnx)
    assert loaded.warnings == [] and (loaded.descriptor.arch, loaded.descriptor.scale) == ("onnx", 4)


def test_onnx_descriptor_scale_lie_is_corrected(tmp_path: Path) -> None:
    nodes, inits = _resize_x2_nodes()
    lie = '{"arch": "onnx", "scale": 4, "name": "onnx liar"}'
    path = _onnx_file(tmp_path / "onnx_liar.onnx", nodes, [1, 3, "H", "W"], descriptor=lie,
                      initializers=inits)
    with pytest.warns(ModelWarning, match=r"onnx_liar\.onnx.*scale=4.*scale=2"):
        loaded = load_model(path)
    assert loaded.descriptor.scale == 2 and loaded.descriptor.name == "onnx liar"


def test_onnx_computing_nan_is_refused(tmp_path: Path) -> None:
    nodes, inits = _resize_x2_nodes("up")
    nodes += [helper.make_node("Sub", ["up", "up"], ["zero"]),
              helper.make_node("Div", ["zero", "zero"], ["output"])]  # 0 / 0 everywhere
    path = _onnx_file(tmp_path / "nan.onnx", nodes, [1, 3, "H", "W"], initializers=inits)
    with pytest.raises(ModelLoadError, match=r"nan\.onnx.*NaN or infinite"):
        load_model(path)


def test_probe_onnx_is_callable_on_bytes_for_the_engine(tmp_path: Path) -> None:
    from dipnet_core.models import probe_onnx

    nodes, inits = _resize_x2_nodes()
    path = _onnx_file(tmp_path / "x2.onnx", nodes, [1, 3, "H", "W"], initializers=inits)
    result = probe_onnx(path, model_bytes=path.read_bytes())
    assert (result.scale, result.out_channels) == (2, 3)
