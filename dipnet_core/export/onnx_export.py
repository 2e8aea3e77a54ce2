"""ONNX export with dynamic batch/height/width and the model descriptor in the metadata.

We use torch's TorchScript-based exporter (``dynamo=False``): the torch.export-based
one needs the extra ``onnxscript`` package, while the TorchScript tracer already
records ESA's ``interpolate(size=input size)`` as a ``Shape -> Resize`` subgraph, so
one export serves every H/W the network accepts. Torch flags that exporter as
deprecated; those two notices are silenced for the export call only, because they
are addressed to torch's own API choice, not to our users.
"""

from __future__ import annotations

import copy
import inspect
import io
import logging
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models import DIPNet, LoadedModel, ModelDescriptor, dipnet_descriptor
from ..models.descriptor import DESCRIPTOR_KEY
from .errors import ExportError

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 17
PARITY_TOLERANCE = 1e-4
log = logging.getLogger(__name__)

# Big enough that ESA's stride-2 conv + 7x7/3 max-pool see a realistic shape while tracing.
_TRACE_SIZE = 64
# torch's notices about its own exporter choice (see the module docstring); matched by message so any
# other warning raised during export still reaches the caller.
_EXPORTER_NOTICES = (r".*legacy TorchScript-based ONNX export", r"The feature will be removed")


def _split(loaded_or_module: LoadedModel | nn.Module, descriptor: ModelDescriptor | None
           ) -> tuple[nn.Module, ModelDescriptor | None]:
    if isinstance(loaded_or_module, LoadedModel):
        if loaded_or_module.module is None:
            raise ExportError(
                f"'{loaded_or_module.path}' is already an ONNX model; it has no PyTorch weights to export"
            )
        return loaded_or_module.module, descriptor or loaded_or_module.descriptor
    if descriptor is None and isinstance(loaded_or_module, DIPNet):
        descriptor = dipnet_descriptor(loaded_or_module)
    return loaded_or_module, descriptor


def _cpu_fp32_eval_copy(module: nn.Module) -> nn.Module:
    # A copy, so exporting never moves the caller's (maybe GPU, maybe half) model or flips its train mode.
    return copy.deepcopy(module).to(device="cpu", dtype=torch.float32).eval()


def _trace_inputs(model: nn.Module, in_ch: int, size: int, grid_aware: bool
                  ) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], dict[str, dict[int, str]]]:
    dummy = torch.rand(1, in_ch, size, size)
    axes = {INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
            OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}}
    if not grid_aware:
        return model, (dummy,), [INPUT_NAME], axes
    if not isinstance(model, DIPNet):
        raise ExportError("only DIPNet-family models have a grid-aware export")
    from ..engine.gridnet import GridDIPNet, TileGrid, grid_matrices

    ry, rx_t = grid_matrices(TileGrid(0, 0, size, size), size, size)
    axes.update({"ry": {0: "height", 1: "coarse_height"}, "rx_t": {0: "coarse_width", 1: "width"}})
    return (GridDIPNet(model).eval(), (dummy, torch.from_numpy(ry), torch.from_numpy(rx_t)),
            [INPUT_NAME, "ry", "rx_t"], axes)


def onnx_to_bytes(module: LoadedModel | nn.Module, opset: int = DEFAULT_OPSET, dynamic: bool = True,
                  descriptor: ModelDescriptor | None = None, grid_aware: bool = False) -> bytes:
    """Serialized fp32 ONNX model (for an in-memory onnxruntime session or for writing to disk).

    ``grid_aware`` exports :class:`~dipnet_core.engine.gridnet.GridDIPNet` (inputs
    ``input``, ``ry``, ``rx_t``), which the engine runs for exact tiling; the default is
    the plain one-input graph other tools expect. This is the only ONNX export in the
    project: the onnxruntime backend calls it too.
    """
    import onnx

    torch_module, descriptor = _split(module, descriptor)
    in_ch = descriptor.in_channels if descriptor else 3
    size = max(_TRACE_SIZE, descriptor.min_size if descriptor else 1)
    model, args, input_names, axes = _trace_inputs(_cpu_fp32_eval_copy(torch_module), in_ch, size, grid_aware)
    kwargs: dict[str, object] = {
        "input_names": input_names, "output_names": [OUTPUT_NAME], "opset_version": opset,
        "do_constant_folding": True,
    }
    if dynamic:
        kwargs["dynamic_axes"] = axes
    # torch < 2.5 has no `dynamo` argument and always uses the TorchScript exporter.
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    buf = io.BytesIO()
    with warnings.catch_warnings():
        for message in _EXPORTER_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=DeprecationWarning)
        try:
            with torch.no_grad():
                torch.onnx.export(model, args, buf, **kwargs)
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:
            arch = descriptor.arch if descriptor else type(torch_module).__name__
            raise ExportError(f"ONNX export of {arch} failed: {exc}") from exc
    proto = onnx.load_from_string(buf.getvalue())
    if descriptor is not None:
        meta = {p.key: p for p in proto.metadata_props}
        text = descriptor.to_json()
        if DESCRIPTOR_KEY in meta:
            meta[DESCRIPTOR_KEY].value = text
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = DESCRIPTOR_KEY, text
    proto.producer_name = "dipnet-studio"
    if dynamic:
        from ..engine.backends.cpu_graph import name_spatial_dims

        try:
            name_spatial_dims(proto)  # onnxruntime's CPU layout needs them (see cpu_graph)
        except Exception as exc:  # noqa: BLE001 - an optional hint: an exotic graph is saved without it
            log.info("ONNX export: tensor shapes not named (%s)", exc)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def export_onnx(loaded_or_module: LoadedModel | nn.Module, path: str | Path, opset: int = DEFAULT_OPSET,
                dynamic: bool = True, descriptor: ModelDescriptor | None = None, grid_aware: bool = False) -> Path:
    """Export to ``path`` (written atomically); ``load_model(path)`` recovers the descriptor.

    ``grid_aware`` writes the engine's tiling graph (see :func:`onnx_to_bytes`).
    """
    from ..io import atomic_write_bytes

    path = Path(path)
    data = onnx_to_bytes(loaded_or_module, opset=opset, dynamic=dynamic, descriptor=descriptor,
                         grid_aware=grid_aware)
    atomic_write_bytes(path, data)
    return path


def check_onnx_parity(module: LoadedModel | nn.Module, onnx_path: str | Path | bytes,
                      sizes: Iterable[tuple[int, int]] = ((17, 23), (48, 64)), seed: int = 0) -> float:
    """Max abs difference between PyTorch and onnxruntime (CPU) outputs over random inputs of ``sizes``."""
    import onnxruntime as ort

    torch_module, descriptor = _split(module, None)
    model = _cpu_fp32_eval_copy(torch_module)
    in_ch = descriptor.in_channels if descriptor else 3
    source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for h, w in sizes:
        x = torch.rand(1, in_ch, h, w, generator=gen)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {input_name: x.numpy()})[0]
        if got.shape != expected.shape:
            raise ExportError(
                f"ONNX output shape {got.shape} != PyTorch {expected.shape} for a {h}x{w} input"
            )
        worst = max(worst, float(np.max(np.abs(got - expected))))
    return worst
