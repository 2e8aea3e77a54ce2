"""The CPU blocked-layout graph pass: exact, selective, and doing what it is for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from dipnet_core.engine import hardware
from dipnet_core.engine.backends import cpu_graph
from dipnet_core.engine.backends.cpu_graph import nchwc_block, optimize_for_cpu
from dipnet_core.engine.grid import TileGrid, grid_matrices
from dipnet_core.export import onnx_to_bytes
from dipnet_core.models import BlockWidths, DIPNet, DIPNetConfig


def _odd_dipnet() -> DIPNet:
    """A real DIPNet with widths no SIMD block divides (13 features, 11/7 mids, ESA 5)."""
    torch.manual_seed(0)
    config = DIPNetConfig(feat=13, blocks=(BlockWidths(11, 7, 5), BlockWidths(9, 11, 5)))
    model = DIPNet(config).eval()
    with torch.no_grad():  # non-zero biases, so a wrongly padded bias would show
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _run(data: bytes, x: np.ndarray, grid: bool, optimized_path: Path | None = None) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    feeds = {sess.get_inputs()[0].name: x}
    if grid:
        h, w = x.shape[2:]
        ry, rx_t = grid_matrices(TileGrid(6, 12, h + 30, w + 42), h, w)
        feeds["ry"], feeds["rx_t"] = ry.astype(np.float32), rx_t.astype(np.float32)
    return sess.run(None, feeds)[0]


def _conv_weight_shapes(data: bytes) -> dict[str, tuple[int, ...]]:
    model = onnx.load_from_string(data)
    inits = {i.name: i for i in model.graph.initializer}
    return {n.name: tuple(inits[n.input[1]].dims) for n in model.graph.node if n.op_type == "Conv"}


@pytest.mark.parametrize("grid", [True, False], ids=["tiling-graph", "plain-graph"])
@pytest.mark.parametrize("block", [8, 16])
def test_pass_is_exact_and_pads_to_the_block(grid: bool, block: int) -> None:
    data = onnx_to_bytes(_odd_dipnet(), grid_aware=grid)
    out, why = optimize_for_cpu(data, block)
    assert "convs padded" in why, why
    x = np.random.default_rng(1).random((1, 3, 30, 42), dtype=np.float32)
    np.testing.assert_allclose(_run(out, x, grid), _run(data, x, grid), atol=2e-5, rtol=0)
    before, after = _conv_weight_shapes(data), _conv_weight_shapes(out)
    padded = {k for k in before if before[k] != after[k]}
    assert padded, "nothing was padded"
    for name in padded:
        o, i = after[name][:2]
        assert o % block == 0 or o == before[name][0]
        assert i % block == 0 or i == before[name][1]
    # The tail conv feeds PixelShuffle (a channel shuffle), so its 48 outputs must stay as they are.
    tail = [k for k in after if "upsampler" in k]
    assert tail and after[tail[0]][0] == before[tail[0]][0] == 48
    if grid:  # every conv of the tiling graph is padded (no op there reads the channel count)
        assert all(after[k][1] % block == 0 for k in after if "conv_1" not in k)


def test_channels_read_by_a_shape_op_or_an_output_stay_unpadded() -> None:
    # conv(3->5) -> Relu -> output, and conv(3->6) -> Flatten -> output: padding either would change an output.
    rng = np.random.default_rng(0)
    w1, w2 = rng.standard_normal((5, 3, 3, 3)).astype(np.float32), rng.standard_normal((6, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["y1"]),
         helper.make_node("Conv", ["x", "w2"], ["b"]), helper.make_node("Flatten", ["b"], ["y2"])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y1", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("y2", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    data = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    out, why = optimize_for_cpu(data, 8)
    assert why.startswith("0 convs padded"), why
    assert _conv_weight_shapes(out) == _conv_weight_shapes(data)


def test_quantized_graphs_are_left_alone(builtin_weights_path: Path) -> None:
    twin = builtin_weights_path.with_name(builtin_weights_path.stem + ".int8.onnx")
    data = twin.read_bytes()
    out, why = optimize_for_cpu(data, 8)
    assert out is data and "not a plain fp32 graph" in why


@pytest.mark.parametrize(("flags", "block"), [
    ({"avx2", "fma", "avx512f", "avx512bw"}, 16), ({"avx2", "fma"}, 8), ({"sse4_2"}, 0), (set(), 0)])
def test_block_follows_the_cpu(monkeypatch: pytest.MonkeyPatch, flags: set[str], block: int) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))
    assert nchwc_block() == block
    data = onnx_to_bytes(_odd_dipnet(), grid_aware=True)
    out, why = optimize_for_cpu(data)
    if block:
        assert f"multiples of {block} channels" in why
    else:
        assert out is data and "no blocked" in why


def test_without_onnx_the_graph_runs_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_onnx(name: str, *args, **kwargs):
        if name == "onnx" or name.startswith("onnx."):
            raise ImportError("no onnx in the upscale-only edition")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    data = b"not even parsed"
    out, why = cpu_graph.optimize_for_cpu(data, 8)
    assert out is data and "onnx package is not installed" in why


@pytest.mark.skipif(nchwc_block() == 0, reason="this CPU has no NCHWc layout in onnxruntime (needs AVX2)")
def test_pass_removes_layout_conversions(official_model, tmp_path: Path) -> None:
    """What the pass is for: onnxruntime's optimized graph of the authors' 44/38 net has far fewer reorders."""
    data = onnx_to_bytes(official_model, grid_aware=True)
    out, _ = optimize_for_cpu(data)
    x = np.random.default_rng(2).random((1, 3, 36, 48), dtype=np.float32)
    before, after = (_layout_ops(graph, x, tmp_path / f"{name}.onnx")
                     for name, graph in (("before", _without_named_shapes(data)), ("after", out)))
    assert "FusedConv" not in after, "a conv still runs outside the blocked layout"
    assert _reorders(after) <= _reorders(before) // 2, (_reorders(before), _reorders(after))


def _without_named_shapes(data: bytes) -> bytes:
    """The graph as torch writes it (before the export names the spatial dims)."""
    model = onnx.load_from_string(data)
    del model.graph.value_info[:]
    return model.SerializeToString()


def _layout_ops(data: bytes, x: np.ndarray, path: Path) -> list[str]:
    """The op types of onnxruntime's optimized graph."""
    _run(data, x, True, optimized_path=path)
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _reorders(ops: list[str]) -> int:
    return ops.count("ReorderInput") + ops.count("ReorderOutput")


def test_export_names_the_spatial_dims(builtin_model, tmp_path: Path) -> None:
    """Saved graphs carry the named shapes, so the upscale-only edition (no onnx, no pass) keeps ESA's
    multiply in the blocked layout too; the pass itself then finds nothing more to name."""
    data = onnx_to_bytes(builtin_model, grid_aware=True)
    model = onnx.load_from_string(data)
    image_dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim[2:]]
    named = [[d.dim_param for d in v.type.tensor_type.shape.dim[2:]] for v in model.graph.value_info]
    assert len(named) >= 20 and all(dims == image_dims for dims in named), named[:3]
    x = np.random.default_rng(4).random((1, 3, 36, 48), dtype=np.float32)
    np.testing.assert_allclose(_run(data, x, True), _run(_without_named_shapes(data), x, True), atol=1e-6, rtol=0)
    if nchwc_block():
        as_traced = _layout_ops(_without_named_shapes(data), x, tmp_path / "traced.onnx")
        as_saved = _layout_ops(data, x, tmp_path / "saved.onnx")
        assert _reorders(as_saved) < _reorders(as_traced), (_reorders(as_traced), _reorders(as_saved))


def test_backend_runs_the_pass_on_the_cpu(official_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """The onnxruntime backend tiles through the rewritten graph: same pixels, and it says so."""
    from dipnet_core.engine.backends.onnxruntime_backend import CPU_GRAPH_PASS_ENV, OnnxRuntimeBackend
    from dipnet_core.engine.upscaler import TiledUpscaler

    if nchwc_block() == 0:
        pytest.skip("this CPU has no NCHWc layout in onnxruntime (needs AVX2)")
    image = np.random.default_rng(3).random((40, 52, 3), dtype=np.float32)
    rewritten = OnnxRuntimeBackend(official_model, device="cpu", threads=1)
    assert rewritten.graph_pass and "convs padded" in rewritten.graph_pass
    assert "blocked layout" in rewritten.describe()
    monkeypatch.setenv(CPU_GRAPH_PASS_ENV, "0")
    plain = OnnxRuntimeBackend(official_model, device="cpu", threads=1)
    assert plain.graph_pass == f"unchanged: {CPU_GRAPH_PASS_ENV}=0" and "blocked" not in plain.describe()
    a = TiledUpscaler(rewritten, tile_size=24).upscale(image)
    b = TiledUpscaler(plain, tile_size=24).upscale(image)
    assert a.shape == b.shape == (160, 208, 3)
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=0)
