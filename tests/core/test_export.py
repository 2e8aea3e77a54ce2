"""ONNX and safetensors export of real models (pytest turns any exporter warning into a failure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from dipnet_core.export import (
    PARITY_TOLERANCE,
    ExportError,
    check_onnx_parity,
    check_safetensors_roundtrip,
    export_onnx,
    export_safetensors,
    onnx_to_bytes,
)
from dipnet_core.models import BlockWidths, DIPNet, DIPNetConfig, load_model


@pytest.fixture(scope="module")
def builtin_onnx(builtin_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_onnx(builtin_model, tmp_path_factory.mktemp("onnx") / "builtin.onnx")


def test_onnx_parity_two_sizes_one_export(builtin_model, builtin_onnx: Path) -> None:
    diff = check_onnx_parity(builtin_model, builtin_onnx, sizes=[(17, 23), (48, 64)])
    assert diff <= PARITY_TOLERANCE


def test_onnx_dynamic_shapes_and_batch(builtin_onnx: Path) -> None:
    sess = ort.InferenceSession(str(builtin_onnx), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    assert [d if isinstance(d, int) else "dyn" for d in inp.shape] == ["dyn", 3, "dyn", "dyn"]
    out = sess.run(None, {inp.name: np.random.default_rng(0).random((2, 3, 15, 31), dtype=np.float32)})[0]
    assert out.shape == (2, 3, 60, 124)


def test_onnx_descriptor_survives(builtin_model, builtin_onnx: Path) -> None:
    loaded = load_model(builtin_onnx)
    assert loaded.module is None
    d = loaded.descriptor
    assert d.arch == "onnx"
    assert d.scale == 4
    assert d.name == builtin_model.descriptor.name
    assert d.config == builtin_model.descriptor.config
    assert d.params == builtin_model.descriptor.params
    assert sorted(p.name for p in builtin_onnx.parent.iterdir()) == ["builtin.onnx"]  # atomic: no temp left


def test_onnx_in_memory_pruned_model() -> None:
    torch.manual_seed(0)
    config = DIPNetConfig(feat=16, blocks=(BlockWidths(12, 8, 8), BlockWidths(8, 16, 4)), scale=2)
    model = DIPNet(config).eval()
    data = onnx_to_bytes(model)
    assert check_onnx_parity(model, data, sizes=[(15, 15), (20, 33)]) <= PARITY_TOLERANCE
    assert model.training is False and next(model.parameters()).dtype == torch.float32


def test_onnx_model_cannot_be_reexported(builtin_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="builtin.onnx"):
        export_onnx(load_model(builtin_onnx), tmp_path / "again.onnx")


def test_safetensors_export(builtin_model, tmp_path: Path) -> None:
    path = export_safetensors(builtin_model, tmp_path / "builtin.safetensors")
    assert check_safetensors_roundtrip(builtin_model, path) == 0.0
    assert load_model(path).descriptor.config == builtin_model.descriptor.config
