"""Small ONNX exporter for trained DIPNet models (dynamic batch, height and width).

Uses the TorchScript-based ``torch.onnx.export(dynamo=False)``: the
``torch.export`` path needs the optional ``onnxscript`` package, and DIPNet's
ops (conv, leaky ReLU, max-pool, bilinear resize to the input size, sigmoid,
pixel shuffle) all have stable legacy symbolics. The model descriptor is stored
in the ONNX metadata under the same key the loader reads.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models.descriptor import DESCRIPTOR_KEY, ModelDescriptor

__all__ = ["check_onnx", "export_onnx"]


def export_onnx(model: nn.Module, path: str | Path, descriptor: ModelDescriptor | None = None,
                opset: int = 17, in_ch: int = 3) -> Path:
    """Write ``model`` (on CPU, eval, float32) to ``path`` atomically; input ``input`` NCHW in [0, 1]."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().float().eval()
    x = torch.rand(1, in_ch, 32, 32)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with warnings.catch_warnings():
            # The legacy exporter announces its own deprecation; we choose it on purpose (see above).
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (x,), str(tmp), dynamo=False, opset_version=opset,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                              "output": {0: "batch", 2: "out_height", 3: "out_width"}},
            )
        proto = onnx.load(str(tmp))
        if descriptor is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = DESCRIPTOR_KEY, descriptor.to_json()
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def check_onnx(path: str | Path, model: nn.Module, sizes: tuple[tuple[int, int], ...] = ((24, 40), (33, 17)),
               in_ch: int = 3) -> float:
    """Max abs difference between onnxruntime and PyTorch on random inputs of ``sizes``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = model.cpu().float().eval()
    gen = torch.Generator().manual_seed(0)
    worst = 0.0
    with torch.no_grad():
        for h, w in sizes:
            x = torch.rand(1, in_ch, h, w, generator=gen)
            ref = model(x).numpy()
            out = sess.run(None, {"input": x.numpy()})[0]
            worst = max(worst, float(np.abs(out - ref).max()))
    return worst
