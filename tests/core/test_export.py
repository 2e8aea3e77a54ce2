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


# ------------------------------------------------------------------------- one export path, int8 twin


class _Warns(torch.nn.Module):
    """A module whose forward raises a warning of its own while it is traced."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import warnings

        warnings.warn("model-specific trouble", UserWarning, stacklevel=1)
        return self.conv(x)


def test_export_keeps_warnings_that_are_not_torchs_exporter_notices() -> None:
    from dipnet_core.models import ModelDescriptor

    with pytest.warns(UserWarning, match="model-specific trouble"):
        onnx_to_bytes(_Warns(), descriptor=ModelDescriptor(arch="custom", scale=1))


def test_grid_aware_export_is_the_engines_graph(builtin_model) -> None:
    """The engine's onnxruntime backend and `dipnet export` share one exporter; the grid form adds ry/rx_t."""
    from dipnet_core.engine import create_backend
    from dipnet_core.engine.grid import TileGrid, grid_matrices

    data = onnx_to_bytes(builtin_model, grid_aware=True)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", "ry", "rx_t"]
    x = np.random.default_rng(0).random((1, 3, 36, 42), dtype=np.float32)
    ry, rx_t = grid_matrices(TileGrid(0, 0, 36, 42), 36, 42)
    got = session.run(None, {"input": x, "ry": ry, "rx_t": rx_t})[0]
    backend = create_backend(builtin_model, backend="onnx", device="cpu", precision="fp32")
    assert backend.grid_aware
    np.testing.assert_allclose(got, backend.run(x), atol=1e-5)
    with torch.no_grad():
        expected = builtin_model.module(torch.from_numpy(x)).numpy()
    assert float(np.abs(got - expected).max()) < 1e-4


def test_int8_twin_records_its_measured_quality(official_model, tmp_path: Path, set5_dir: Path) -> None:
    """export_int8 on the authors' weights: calibrated on photos outside the test set, loss measured and stored."""
    from PIL import Image

    from dipnet_core.engine import create_backend
    from dipnet_core.export.int8 import export_int8, is_int8_graph, read_int8_quality

    calib, evals = tmp_path / "calib", tmp_path / "eval"
    calib.mkdir()
    evals.mkdir()
    with Image.open(set5_dir / "baby.png") as im:  # calibration and evaluation crops do not overlap
        im.crop((0, 0, 200, 200)).save(calib / "a.png")
        im.crop((300, 300, 460, 460)).save(evals / "b.png")
    twin = tmp_path / "authors.int8.onnx"
    record = export_int8(onnx_to_bytes(official_model, grid_aware=True), twin, [calib], eval_sets=[evals], crops=4)
    data = twin.read_bytes()
    assert is_int8_graph(data) and read_int8_quality(data) == record
    from dipnet_core.export.int8 import read_int8_parity

    parity = read_int8_parity(data)  # the guard's reference, measured beside the loss
    assert parity is not None and parity["vs_fp32"]["rms"] > 0 and parity["machine"]["cpu"]
    assert set(record["loss_db"]) == {"eval"} and abs(record["loss_db"]["eval"]) < 0.5
    ps = record["psnr_y"]["eval"]
    assert ps["fp32"] > 25 and ps["fp32"] - ps["int8"] == pytest.approx(record["loss_db"]["eval"], abs=1e-3)
    twin_model = load_model(twin)
    backend = create_backend(twin_model)
    assert backend.precision == "int8" and backend.grid_aware
