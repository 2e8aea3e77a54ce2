"""Run a loaded model once on a tiny input to check what its file claims.

A model file can lie or be broken in ways only running it shows: NaN weights
give a black image, a descriptor saying x2 on x4 weights crops the result to a
quarter, a wrong channel count fails later with an error that blames the image.
The probe measures the real scale and channel counts and refuses non-finite
output; :func:`reconcile` then corrects the descriptor (with a warning) or the
loader refuses the file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .descriptor import ModelDescriptor
from .registry import ModelLoadError

if TYPE_CHECKING:  # torch is optional: ONNX files are probed without it
    import torch
    from torch import nn

# Small enough to cost nothing, large enough for ESA (15 px); a descriptor's larger min_size wins.
PROBE_SIZE = 16
# The size the loader has always probed descriptor-less ONNX files with.
ONNX_PROBE_SIZE = 32


@dataclass(frozen=True)
class ProbeResult:
    """What one run showed: the real upscale factor and channel counts."""

    scale: int
    in_channels: int
    out_channels: int


def non_finite_tensors(state_dict: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or infinity."""
    import torch

    return [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def refuse_non_finite_weights(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    bad = non_finite_tensors(state_dict)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise ModelLoadError(path, f"the weights hold NaN or infinite values ({shown}); the file is broken")


def probe_input(channels: int, size: int, input_range: tuple[float, float]) -> np.ndarray:
    """A fixed pseudo-random NCHW float32 batch of one ``size`` x ``size`` image in ``input_range``."""
    lo, hi = input_range
    rng = np.random.default_rng(0)
    return (lo + (hi - lo) * rng.random((1, channels, size, size))).astype(np.float32)


def measure_output(path: Path, output: Any, channels: int, size: int) -> ProbeResult:
    """Check one probe output (shape and finiteness) and return what it shows."""
    shape = tuple(int(s) for s in getattr(output, "shape", ()))
    if len(shape) != 4 or shape[0] != 1:
        raise ModelLoadError(
            path, f"a 1x{channels}x{size}x{size} probe gave an output of shape {shape}, not one NCHW image"
        )
    _, out_ch, h, w = shape
    scale = h // size
    if scale < 1 or h != size * scale or w != size * scale:
        raise ModelLoadError(
            path, f"a {size}x{size} probe gave a {h}x{w} output, not one integer upscale in both directions"
        )
    values = output.detach().cpu().numpy() if hasattr(output, "detach") else np.asarray(output)
    if not bool(np.isfinite(values).all()):
        raise ModelLoadError(path, "the model computes NaN or infinite values on a probe input; "
                                   "the file is broken")
    return ProbeResult(scale=scale, in_channels=channels, out_channels=out_ch)


def probe_module(path: Path, module: nn.Module, descriptor: ModelDescriptor) -> ProbeResult:
    """Run ``module`` (on the CPU, float32) once with the descriptor's input channels and range."""
    import torch

    size = max(PROBE_SIZE, descriptor.min_size)
    channels = descriptor.in_channels
    x = torch.from_numpy(probe_input(channels, size, descriptor.input_range))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y = module(x)
    except Exception as exc:  # any layer can reject a wrong shape, with any exception type
        raise ModelLoadError(
            path, f"the model does not run on a 1x{channels}x{size}x{size} probe input "
                  f"({type(exc).__name__}: {str(exc)[:200]}); is its in_channels={channels} right?"
        ) from exc
    finally:
        module.train(was_training)
    return measure_output(path, y, channels, size)


def open_onnx_session(path: Path, model_bytes: bytes | None = None) -> Any:
    """An onnxruntime CPU session for the file at ``path`` (or ``model_bytes``).

    Everything the loader needs from an ONNX file (metadata, inputs, a probe run)
    comes from onnxruntime, so the ``onnx`` package is not needed to load one.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime's own warnings would duplicate our error
    try:
        return ort.InferenceSession(model_bytes if model_bytes is not None else str(path), options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception family, also for garbage
        raise ModelLoadError(path, f"not a valid ONNX model ({exc})") from exc


def onnx_metadata(session: Any) -> dict[str, str]:
    """The model's custom metadata (where our exporter stores the descriptor)."""
    return dict(session.get_modelmeta().custom_metadata_map)


def onnx_input_names(session: Any) -> list[str]:
    """Names of the inputs a caller must feed (initializers are not among them)."""
    return [i.name for i in session.get_inputs()]


def onnx_static_input_channels(session: Any) -> int | None:
    """The channel dimension of the first input, when the graph fixes it."""
    inputs = session.get_inputs()
    shape = inputs[0].shape if inputs else []
    if len(shape) == 4 and isinstance(shape[1], int) and shape[1] > 0:
        return int(shape[1])
    return None


def probe_onnx(path: Path, model_bytes: bytes | None = None, channels: int | None = None,
               size: int = ONNX_PROBE_SIZE, input_range: tuple[float, float] = (0.0, 1.0),
               session: Any = None) -> ProbeResult:
    """Run an ONNX model (``session``, or the file at ``path``, or ``model_bytes``) once on the CPU.

    Usable by any caller holding an ONNX model (the loader, the engine's
    backends); errors are :class:`ModelLoadError` naming ``path``.
    """
    sess = session if session is not None else open_onnx_session(path, model_bytes)
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelLoadError(path, f"the ONNX model takes {len(inputs)} inputs ({names}); expected one image")
    channels = channels or onnx_static_input_channels(sess) or 3
    x = probe_input(channels, size, input_range)
    try:
        outputs = sess.run(None, {inputs[0].name: x})
    except Exception as exc:  # onnxruntime raises its own exception family
        raise ModelLoadError(
            path, f"the ONNX model does not run on a 1x{channels}x{size}x{size} float32 input ({exc})"
        ) from exc
    if not outputs:
        raise ModelLoadError(path, "the ONNX model has no output")
    return measure_output(path, np.asarray(outputs[0]), channels, size)


def reconcile(path: Path, descriptor: ModelDescriptor, measured: ProbeResult,
              notes: list[str]) -> ModelDescriptor:
    """The descriptor with scale and channels corrected to what the probe measured.

    Each correction is appended to ``notes`` (issued as a :class:`ModelWarning` by
    the loader): the weights decide what the model computes, so trusting them over the
    metadata gives the right image instead of a cropped or failing one.
    """
    fixes = {}
    for field_name in ("scale", "in_channels", "out_channels"):
        claimed, real = getattr(descriptor, field_name), getattr(measured, field_name)
        if claimed != real:
            fixes[field_name] = real
            note_correction(path, f"its descriptor says {field_name}={claimed} but the model itself has "
                                  f"{field_name}={real}; using {real}", notes)
    return replace(descriptor, **fixes) if fixes else descriptor


def note_correction(path: Path, text: str, notes: list[str]) -> None:
    """Record one correction; :func:`~.loader.load_model` issues each as a :class:`ModelWarning`."""
    notes.append(f"model '{path}': {text}")
