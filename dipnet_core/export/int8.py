"""Static int8 quantization (onnxruntime QDQ) of an fp32 ONNX graph, calibrated on photo crops.

Why a recipe and not onnxruntime's defaults: naive post-training quantization of
every op breaks DIPNet (Set5 31.8 -> 24.4 dB). The network's first conv sees raw
pixels and its last convs write them, the LeakyReLU / sigmoid / residual adds
between the convs carry most of the rounding, and u8 x s8 products saturate on
CPUs without VNNI. :class:`Int8Recipe` names those choices so a benchmark can
measure each one; :data:`DEFAULT_RECIPE` is the best measured (see
``benchmarks/int8_ptq.py`` and its results file for the numbers).

Works on our grid-aware graphs (inputs ``input``, ``ry``, ``rx_t``) and on plain
one-input graphs; no torch needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import random
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.grid import TileGrid, grid_matrices

log = logging.getLogger(__name__)

#: ONNX metadata key marking a graph as our int8 twin (value: the recipe as text).
INT8_KEY = "dipnet_int8_recipe"
#: ONNX metadata key holding the measured quality of the twin against its fp32 graph.
QUALITY_KEY = "dipnet_int8_quality"
#: ONNX metadata key holding the parity reference: a small probe image embedded in the twin and how far
#: the twin's output was from fp32 on it where ``loss_db`` was measured (see :func:`parity_record`).
PARITY_KEY = "dipnet_int8_parity"
#: Side of the embedded probe crop (LR pixels): 64x64 -> 256x256x3 outputs, ~0.05 s per graph on one core.
PROBE_SIZE = 64
CALIBRATION_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class Int8Recipe:
    """What to quantize and how to calibrate it."""

    #: Conv nodes whose name contains one of these stay in float (first conv, tail convs).
    float_convs: tuple[str, ...] = ("/conv_1/", "/conv_2/", "/upsampler/")
    #: When set, only conv nodes whose name contains one of these are quantized (sensitivity probes).
    only_convs: tuple[str, ...] = ()
    #: Only these op types get Q/DQ pairs; everything else runs in float between them.
    op_types: tuple[str, ...] = ("Conv",)
    per_channel: bool = True
    #: 7-bit weights: avoids u8 x s8 saturation on CPUs without VNNI, at some precision.
    reduce_range: bool = False
    activations: str = "quint8"  # or "qint8"
    method: str = "percentile"  # minmax | percentile | entropy
    percentile: float = 99.999
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        parts = [self.method + (f"{self.percentile:g}" if self.method == "percentile" else ""),
                 self.activations, "pc" if self.per_channel else "pt"]
        if self.reduce_range:
            parts.append("rr")
        parts.append("float:" + ("+".join(s.strip("/") for s in self.float_convs) or "none"))
        if self.only_convs:
            parts.append("only:" + "+".join(s.strip("/") for s in self.only_convs))
        parts.append("ops:" + "+".join(self.op_types))
        return " ".join(parts)


DEFAULT_RECIPE = Int8Recipe()
#: The recipe of quantization-aware fine-tuning (:mod:`dipnet_core.train.qat`): the default one with
#: 7-bit weights. On CPUs without VNNI onnxruntime's u8 x s8 kernels add pairs of products in int16
#: with saturation; measured on an AVX2 EPYC, the built-in model's twin then differed from its own
#: QDQ arithmetic by up to 21/255 (mean 0.43/255), with 7-bit weights by 2.2/255 (mean 0.24/255).
#: A fine-tune can only learn the rounding it simulates, so it uses weights that cannot saturate.
QAT_RECIPE = replace(DEFAULT_RECIPE, reduce_range=True)


def calibration_crops(folders: Sequence[str | Path], count: int = 24, size: int = 96, seed: int = 0
                      ) -> list[np.ndarray]:
    """``count`` random ``size`` px RGB crops (HWC float32 in [0, 1]) from the photos in ``folders``.

    Calibrate on training photos only; benchmark images would leak into the scores.
    """
    from PIL import Image

    files = sorted(p for folder in folders for p in Path(folder).rglob("*")
                   if p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no calibration images in {', '.join(map(str, folders))}")
    rng = random.Random(seed)
    picks = [files[rng.randrange(len(files))] for _ in range(count)]
    crops = []
    for path in picks:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        h, w = rgb.shape[:2]
        s = min(size, h, w)
        y, x = rng.randrange(h - s + 1), rng.randrange(w - s + 1)
        crops.append(rgb[y:y + s, x:x + s])
    return crops


def graph_feeds(input_names: Sequence[str], image: np.ndarray) -> dict[str, np.ndarray]:
    """Feeds for one whole HWC image; grid-aware graphs get their ESA matrices too."""
    x = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
    feeds = {input_names[0]: x}
    if list(input_names[1:3]) == ["ry", "rx_t"]:
        h, w = x.shape[2:]
        feeds["ry"], feeds["rx_t"] = grid_matrices(TileGrid(0, 0, h, w), h, w)
    return feeds


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _graph_inputs(proto: Any) -> list[str]:
    initializers = {i.name for i in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in initializers]


@dataclass(frozen=True)
class ConvNode:
    """One Conv of an fp32 graph: its node name, weight initializer and input / output tensors."""

    name: str
    weight: str
    input: str
    output: str


def conv_nodes(proto: Any) -> list[ConvNode]:
    """The Conv nodes of an ONNX model proto, in graph order."""
    return [ConvNode(n.name, n.input[1], n.input[0], n.output[0]) for n in proto.graph.node if n.op_type == "Conv"]


def float_conv_names(proto: Any, recipe: Int8Recipe) -> list[str]:
    """Names of the Conv nodes ``recipe`` keeps in float (the one rule; QAT simulates the same choice)."""
    return [c.name for c in conv_nodes(proto) if (
        any(part in c.name for part in recipe.float_convs)
        or (recipe.only_convs and not any(part in c.name for part in recipe.only_convs)))]


def quantize_int8(fp32_onnx: bytes, crops: Iterable[np.ndarray], recipe: Int8Recipe = DEFAULT_RECIPE,
                  tensor_ranges: Mapping[str, tuple[float, float]] | None = None) -> bytes:
    """The QDQ int8 twin of ``fp32_onnx``, calibrated on ``crops`` (HWC float32 in [0, 1]).

    ``tensor_ranges``: fixed ``(rmin, rmax)`` of activation tensors (by graph tensor
    name), which replace the calibrated ones; quantization-aware fine-tuning
    (:mod:`dipnet_core.train.qat`) hands over the ranges it trained with this way, so
    the twin rounds exactly as the fine-tune simulated.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    types = {"quint8": QuantType.QUInt8, "qint8": QuantType.QInt8}
    if recipe.method not in methods or recipe.activations not in types:
        raise ValueError(f"unknown calibration method or activation type in {recipe}")
    proto = onnx.load_from_string(fp32_onnx)
    names = _graph_inputs(proto)
    feeds = [graph_feeds(names, c) for c in crops]
    if not feeds:
        raise ValueError("int8 calibration needs at least one crop")
    excluded = float_conv_names(proto, recipe)
    extra: dict[str, Any] = {"CalibMovingAverage": False}
    # With every quantized tensor's range given, calibration only has to run; min-max is the cheap one.
    method = "minmax" if tensor_ranges else recipe.method
    if method == "percentile":
        extra["CalibPercentile"] = recipe.percentile
    if recipe.activations == "qint8":
        extra["ActivationSymmetric"] = True
    extra.update(recipe.extra)
    if tensor_ranges:
        known = {t for n in proto.graph.node for t in (*n.input, *n.output)}
        unknown = sorted(set(tensor_ranges) - known)
        if unknown:
            raise ValueError(f"tensor_ranges names tensors the graph does not have: {', '.join(unknown[:5])}")
        extra["TensorQuantOverrides"] = {
            name: [{"rmin": np.array(lo, dtype=np.float32), "rmax": np.array(hi, dtype=np.float32)}]
            for name, (lo, hi) in tensor_ranges.items()}
    with tempfile.TemporaryDirectory(prefix="dipnet-int8-") as tmp:
        src, pre, dst = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32_onnx)
        quant_pre_process(str(src), str(pre), skip_optimization=False, skip_symbolic_shape=True)
        # onnxruntime's calibrator prints its progress to stdout; keep the CLI's output ours.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(pre), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(recipe.op_types) or None, per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range, activation_type=types[recipe.activations],
                weight_type=QuantType.QInt8, nodes_to_exclude=excluded, calibrate_method=methods[method],
                extra_options=extra,
            )
        out = onnx.load(str(dst))
    kept = {p.key for p in out.metadata_props}
    for prop in proto.metadata_props:  # the descriptor travels with the twin
        if prop.key not in kept:
            out.metadata_props.add(key=prop.key, value=prop.value)
    _set_meta(out, INT8_KEY, json.dumps(asdict(recipe), sort_keys=True))
    return out.SerializeToString()


def _set_meta(proto: Any, key: str, value: str) -> None:
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    proto.metadata_props.add(key=key, value=value)


def read_int8_quality(onnx_bytes: bytes) -> dict[str, Any] | None:
    """The quality record :func:`export_int8` wrote (``loss_db`` per test set), or None."""
    from ..engine.backends.onnxruntime_backend import graph_inputs_and_metadata

    text = graph_inputs_and_metadata(onnx_bytes)[1].get(QUALITY_KEY)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _load_pairs(folder: Path, scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    from ..resize import bicubic_downscale_uint8, modcrop

    pairs = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in CALIBRATION_SUFFIXES):
        with Image.open(path) as im:
            hr = modcrop(np.asarray(im.convert("RGB")), scale)
        pairs.append((bicubic_downscale_uint8(hr, scale), hr))
    return pairs


def session_psnr_y(onnx_bytes: bytes, pairs: Sequence[tuple[np.ndarray, np.ndarray]], scale: int,
                   threads: int | None = None) -> float:
    """Mean PSNR-Y (border = scale) of a graph over whole-image (LR, HR) pairs, onnxruntime CPU."""
    import onnx
    import onnxruntime as ort

    from ..metrics import psnr

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    names = _graph_inputs(onnx.load_from_string(onnx_bytes))
    scores = []
    for lr, hr in pairs:
        y = session.run(None, graph_feeds(names, lr.astype(np.float32) / 255.0))[0][0]
        sr = np.clip(np.rint(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
        scores.append(psnr(sr, hr, border=scale))
    return float(np.mean(scores))


def export_int8(fp32_onnx: bytes, path: str | Path, calibration: Sequence[str | Path],
                eval_sets: Sequence[str | Path] = (), recipe: Int8Recipe = DEFAULT_RECIPE, scale: int = 4,
                crops: int = 24, reference_onnx: bytes | None = None,
                tensor_ranges: Mapping[str, tuple[float, float]] | None = None,
                extra_record: Mapping[str, Any] | None = None, threads: int | None = None) -> dict[str, Any]:
    """Write the int8 twin of ``fp32_onnx`` to ``path`` (atomically) and return its quality record.

    ``calibration``: folders of training photos (never the test sets). ``eval_sets``:
    folders of HR test images; the PSNR-Y loss against fp32 on each is measured and
    stored in the file, and the engine's automatic choice only uses twins whose
    recorded loss is within the bound. Without ``eval_sets`` the twin runs only when
    asked for explicitly (``precision="int8"``).

    ``reference_onnx``: the fp32 graph the loss is measured against, when ``fp32_onnx``
    is not the user's model itself (after quantization-aware fine-tuning it holds the
    fine-tuned weights; the loss that matters is against the original).
    ``tensor_ranges`` goes to :func:`quantize_int8`; ``extra_record`` is merged into
    the stored record; ``threads``: onnxruntime threads of the evaluation (default: all).

    The twin also records a parity reference (:data:`PARITY_KEY`): a probe crop from the
    calibration photos and the twin's deviation from fp32 on it, measured here, beside the
    loss, so another machine can check that it computes the same (the engine's int8 guard).
    """
    import onnx

    from ..io import atomic_write_bytes

    crop_list = calibration_crops(calibration, count=crops)
    data = quantize_int8(fp32_onnx, crop_list, recipe, tensor_ranges)
    record: dict[str, Any] = {"recipe": recipe.label(), "calibration": [Path(c).name for c in calibration],
                              "loss_db": {}, "psnr_y": {}, **(extra_record or {})}
    for folder in map(Path, eval_sets):
        pairs = _load_pairs(folder, scale)
        if not pairs:
            raise FileNotFoundError(f"no test images in {folder}")
        ref = session_psnr_y(reference_onnx or fp32_onnx, pairs, scale, threads)
        got = session_psnr_y(data, pairs, scale, threads)
        record["psnr_y"][folder.name] = {"fp32": round(ref, 4), "int8": round(got, 4)}
        record["loss_db"][folder.name] = round(ref - got, 4)
    record["machine"] = machine_record()
    # Measured here, beside the loss: the guard compares another machine's deviation with this one.
    parity = parity_record(data, reference_onnx or fp32_onnx, pick_probe(crop_list))
    proto = onnx.load_from_string(data)
    _set_meta(proto, QUALITY_KEY, json.dumps(record, sort_keys=True))
    _set_meta(proto, PARITY_KEY, json.dumps(parity, sort_keys=True))
    atomic_write_bytes(Path(path), proto.SerializeToString())
    return record


# ---------------------------------------------------------------------------------------- parity
#
# The loss stored in a twin was measured on one machine; onnxruntime's int8 kernels do not compute
# the same thing everywhere (u8 x s8 pairs saturate in int16 on x86 CPUs without VNNI). So the twin
# also carries a probe image and the deviation from fp32 measured on it beside the loss; any machine
# can rerun both graphs on the probe and see whether it computes what was measured
# (:mod:`dipnet_core.engine.backends.int8_guard`).


def pick_probe(crops: Sequence[np.ndarray], size: int = PROBE_SIZE) -> np.ndarray:
    """The busiest ``size`` px centre crop of ``crops`` (HWC in [0, 1]) as uint8: edges stress the kernels."""
    best, best_energy = None, -1.0
    for crop in crops:
        h, w = crop.shape[:2]
        if h < size or w < size:
            continue
        y, x = (h - size) // 2, (w - size) // 2
        c = np.clip(np.rint(crop[y:y + size, x:x + size] * 255.0), 0, 255).astype(np.uint8)
        f = c.astype(np.float32)
        energy = float(np.abs(np.diff(f, axis=0)).mean() + np.abs(np.diff(f, axis=1)).mean())
        if energy > best_energy:
            best, best_energy = c, energy
    if best is None:
        raise ValueError(f"no calibration crop of at least {size} px for the parity probe")
    return best


def encode_probe(image: np.ndarray) -> dict[str, Any]:
    """uint8 HWC image -> JSON-able dict (zlib + base64; a 64x64 RGB photo crop is ~15 kB)."""
    import base64
    import hashlib
    import zlib

    raw = np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    return {"shape": list(image.shape), "u8_zlib_b64": base64.b64encode(zlib.compress(raw, 9)).decode("ascii"),
            "sha256": hashlib.sha256(raw).hexdigest()[:16]}


def decode_probe(record: Mapping[str, Any]) -> np.ndarray:
    """Inverse of :func:`encode_probe`; ValueError when the record is damaged."""
    import base64
    import binascii
    import hashlib
    import zlib

    try:
        shape = tuple(int(v) for v in record["shape"])
        raw = zlib.decompress(base64.b64decode(record["u8_zlib_b64"]))
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as exc:
        raise ValueError(f"damaged parity probe ({exc})") from exc
    if len(shape) != 3 or int(np.prod(shape)) != len(raw) or hashlib.sha256(raw).hexdigest()[:16] != record.get(
            "sha256"):
        raise ValueError("damaged parity probe (size or checksum)")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()


def run_graph_levels(onnx_bytes: bytes, image_u8: np.ndarray, *, optimized: bool = True) -> np.ndarray:
    """Output (CHW, 0..255 levels, unrounded) of a graph on one whole uint8 HWC image, onnxruntime CPU, 1 thread.

    ``optimized=False`` runs a QDQ graph node by node (DequantizeLinear -> float Conv ->
    QuantizeLinear): its int8 arithmetic in float, the same on every CPU; optimized, onnxruntime
    fuses it into its integer kernels, which is what a user runs.
    """
    import onnxruntime as ort

    from ..engine.backends.onnxruntime_backend import graph_inputs_and_metadata

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not optimized:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    names = graph_inputs_and_metadata(onnx_bytes)[0]
    y = session.run(None, graph_feeds(names, image_u8.astype(np.float32) / 255.0))[0][0]
    return y.astype(np.float64) * 255.0


def deviation_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """|a - b| in 0..255 levels: mean, root mean square, 99.9th percentile, max."""
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()
    return {"mean": round(float(d.mean()), 4), "rms": round(float(np.sqrt(np.mean(d * d))), 4),
            "p999": round(float(np.percentile(d, 99.9)), 4), "max": round(float(d.max()), 4)}


def probe_deviations(twin: bytes, reference: bytes | None, probe: np.ndarray) -> dict[str, dict[str, float]]:
    """Deviations of the twin's optimized output on ``probe``: from fp32 (``vs_fp32``, when a reference
    graph is given) and from its own QDQ arithmetic run in float (``vs_qdq``)."""
    out = run_graph_levels(twin, probe)
    result = {"vs_qdq": deviation_stats(out, run_graph_levels(twin, probe, optimized=False))}
    if reference is not None:
        result["vs_fp32"] = deviation_stats(out, run_graph_levels(reference, probe))
    return result


def machine_record() -> dict[str, Any]:
    """Where a measurement ran: CPU model, SIMD flags, VNNI, onnxruntime version."""
    import onnxruntime as ort

    from ..engine import hardware

    return {"cpu": hardware.cpu_model(), "flags": hardware.simd_flags(), "vnni": hardware.has_vnni(),
            "onnxruntime": ort.__version__}


def parity_record(twin: bytes, reference: bytes, probe: np.ndarray) -> dict[str, Any]:
    """The :data:`PARITY_KEY` record: the probe, the twin's deviations on it, and this machine."""
    return {"probe": encode_probe(probe), **probe_deviations(twin, reference, probe), "machine": machine_record()}


def read_int8_parity(onnx_bytes: bytes) -> dict[str, Any] | None:
    """The :data:`PARITY_KEY` record of a twin, or None (twins exported before it existed)."""
    from ..engine.backends.onnxruntime_backend import graph_inputs_and_metadata

    text = graph_inputs_and_metadata(onnx_bytes)[1].get(PARITY_KEY)
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_int8_graph(onnx_bytes: bytes) -> bool:
    """True for graphs :func:`quantize_int8` wrote (they carry :data:`INT8_KEY`)."""
    from ..engine.backends.onnxruntime_backend import graph_inputs_and_metadata

    return INT8_KEY in graph_inputs_and_metadata(onnx_bytes)[1]
