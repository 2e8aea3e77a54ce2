"""onnxruntime backend: TensorRT -> CUDA -> CPU provider fallback, fp32 graphs and int8 twins.

onnxruntime fp32 (4.09 s/MP) beat torch fp32 (5.31) on the 2-core Zen 4; an fp16
graph on the CPU provider is slower (5.53), so the CPU provider runs fp32, or the
model's int8 twin (``<stem>.int8.onnx`` beside the model, written by ``dipnet export
--int8``) when asked for ``int8``. Importing this module never imports torch: a
torch model is exported through :mod:`dipnet_core.export.onnx_export` only when one
is given, and ``.onnx`` files need no torch at all.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import hardware
from ..grid import GRID_ALIGN, TileGrid, coarse_size, grid_matrices
from .base import Backend, BackendUnavailable

if TYPE_CHECKING:
    from ...models import LoadedModel

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
INT8_SUFFIX = ".int8.onnx"
#: The engine's tiling graph of a model (inputs ``input``, ``ry``, ``rx_t``; ``dipnet export --grid-aware``),
#: shipped beside a built-in model so the upscale-only install tiles it exactly. Other tools cannot run it.
GRID_SUFFIX = ".grid.onnx"
#: Set to 0 to run fp32 graphs on the CPU provider as exported (A/B in benchmarks/bench_cpu_graph.py).
CPU_GRAPH_PASS_ENV = "DIPNET_CPU_GRAPH_PASS"


#: Whether a session that runs one window on several threads lets them spin between operators
#: (onnxruntime's default) instead of sleeping. Set5/Set14-sized images, run whole on 2 threads,
#: took 4.76 s/MP spinning against 5.50 without (AVX2 EPYC, 3 interleaved rounds). The app turns it
#: off (:func:`set_thread_spinning`): there a waiting thread should leave the core to the GUI.
_spinning = True


def set_thread_spinning(allowed: bool) -> None:
    """Let multi-threaded onnxruntime CPU sessions created from now on spin between operators, or not."""
    global _spinning
    _spinning = bool(allowed)


def cpu_graph_pass_enabled() -> bool:
    return os.environ.get(CPU_GRAPH_PASS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def ort_providers() -> list[str]:
    """onnxruntime's execution providers here; empty when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def export_onnx_bytes(model: LoadedModel, grid_aware: bool = False, opset: int = 17) -> bytes:
    """fp32 ONNX of a torch model in memory (see :func:`dipnet_core.export.onnx_export.onnx_to_bytes`).

    ``grid_aware`` exports :class:`~..gridnet.GridDIPNet` (inputs ``input``, ``ry``,
    ``rx_t``) for exact tiling; the default is the plain one-input graph.
    """
    if model.module is None:
        raise BackendUnavailable("model has no torch module to export")
    from ...export.onnx_export import ExportError, onnx_to_bytes

    try:
        return onnx_to_bytes(model, opset=opset, grid_aware=grid_aware)
    except ExportError as exc:
        raise BackendUnavailable(str(exc)) from exc


def graph_inputs_and_metadata(data: bytes) -> tuple[list[str], dict[str, str]]:
    """Input names (initializers excluded) and metadata of an ONNX graph.

    Uses the ``onnx`` package when present (a parse, no session); the upscale-only
    edition ships without it, so onnxruntime (an unoptimized session) answers there.
    """
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            proto = onnx.load_from_string(data)
        except Exception as exc:  # protobuf raises DecodeError and others for garbage
            raise BackendUnavailable(f"not a readable ONNX model ({exc})") from exc
        initializers = {i.name for i in proto.graph.initializer}
        return ([i.name for i in proto.graph.input if i.name not in initializers],
                {p.key: p.value for p in proto.metadata_props})
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind exception family
        raise BackendUnavailable(f"not a readable ONNX model ({exc})") from exc
    return [i.name for i in session.get_inputs()], dict(session.get_modelmeta().custom_metadata_map)


def model_file(model: LoadedModel) -> Path | None:
    """The file a model stands for (``source_file``), or ``path`` for objects that only carry a path.

    Duck-typed on purpose: the engine also runs module-less stand-ins and small model-like objects.
    """
    path = getattr(model, "source_file", None) or getattr(model, "path", None)
    return Path(path) if path is not None else None


def int8_twin_path(model: LoadedModel) -> Path | None:
    """The int8 graph for ``model``: the file itself if it is one, else ``<stem>.int8.onnx`` beside it."""
    path = model_file(model)
    if path is None:
        return None
    return int8_twin_of(Path(path))


def grid_twin_of(path: Path) -> Path | None:
    """``<stem>.grid.onnx`` beside ``path`` if one exists (the exact-tiling fp32 graph)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    twin = path.with_name(stem + GRID_SUFFIX)
    return twin if twin.is_file() else None


def int8_twin_of(path: Path) -> Path | None:
    """``path`` itself if it is an int8 graph, else its ``<stem>.int8.onnx`` twin if one exists."""
    if path.name.endswith(INT8_SUFFIX):
        return path
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    twin = path.with_name(stem + INT8_SUFFIX)
    return twin if twin.is_file() else None


def _is_dipnet_module(model: LoadedModel) -> bool:
    if model.module is None:
        return False
    from ...models import DIPNet

    return isinstance(model.module, DIPNet)


def _onnx_bytes(model: LoadedModel, precision: str) -> bytes:
    if precision == "int8":
        twin = int8_twin_path(model)
        if twin is None:
            where = f" beside '{model.path}'" if getattr(model, "path", None) else ""
            raise BackendUnavailable(
                f"no int8 twin{where}: make one with `dipnet export --int8` (int8 needs calibration photos)")
        return twin.read_bytes()
    if model.module is None:
        if model.path is None:
            raise BackendUnavailable("ONNX model has neither a file nor a module")
        return Path(model.path).read_bytes()
    from .. import onnx_cache

    data = onnx_cache.load_export(model)
    if data is None:
        data = export_onnx_bytes(model, grid_aware=_is_dipnet_module(model))
        onnx_cache.store_export(model, data)
    return data


def _trt_cache_dir() -> str | None:
    try:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("dipnet-studio")) / "tensorrt"
        path.mkdir(parents=True, exist_ok=True)
        return str(path)
    except (ImportError, OSError):
        return None


class OnnxRuntimeBackend(Backend):
    """onnxruntime with TensorRT -> CUDA -> CPU provider fallback; sessions built once."""

    name = "onnxruntime"

    def __init__(self, model: LoadedModel, device: str = "auto", precision: str = "auto", *,
                 threads: int | None = None, tile_workers: bool = True) -> None:
        import onnxruntime as ort

        super().__init__(model)
        self._ort = ort
        self._bytes = _onnx_bytes(model, precision)
        inputs, meta = graph_inputs_and_metadata(self._bytes)
        from ...export.int8 import INT8_KEY

        self.int8 = INT8_KEY in meta
        if self.int8:
            # The twin is a CPU graph: QDQ convs have no fast path on the GPU providers here.
            device, precision = "cpu", "int8"
        self._input_name = inputs[0]
        # Our own grid-aware export takes the ESA interpolation matrices as extra inputs.
        self.grid_aware = inputs[1:3] == ["ry", "rx_t"]
        self.grid_align = GRID_ALIGN if self.grid_aware else 1
        self.cores = hardware.physical_cores()
        self.threads = max(1, int(threads or self.cores))
        supports_half = bool(model.descriptor.supports_half)
        if device == "cpu":
            candidates = ["CPUExecutionProvider"]
        else:
            candidates = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
            if device == "cuda" and not candidates:
                raise BackendUnavailable(
                    "onnxruntime has no CUDA or TensorRT provider here (install onnxruntime-gpu)")
            candidates.append("CPUExecutionProvider")
        reasons: list[str] = []
        self._session: Any = None
        self._cpu_bytes: bytes | None = None
        #: What the CPU layout pass did to the graph (see :mod:`.cpu_graph`); None until a CPU session exists.
        self.graph_pass: str | None = None
        for provider in candidates:
            prec = precision
            if prec == "auto":
                # Only TensorRT lowers the fp32 graph to fp16 by itself.
                prec = "fp16" if provider == "TensorrtExecutionProvider" and supports_half else "fp32"
            try:
                session = self._create(provider, prec, intra_threads=self.threads)
                if provider != "CPUExecutionProvider":
                    # Engine builds and cuDNN failures surface on the first run, not at creation.
                    self._warm_up(session)
            except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind exception family
                reasons.append(f"{provider} failed: {exc}".strip())
                log.warning("onnxruntime: %s", reasons[-1])
                continue
            if session.get_providers()[0] != provider:
                reasons.append(f"{provider} was not enabled (missing CUDA/TensorRT libraries?)")
                continue
            self._session, self.provider, self.precision = session, provider, prec
            break
        if self._session is None:
            raise BackendUnavailable("onnxruntime could not create a session: " + "; ".join(reasons))
        if self.provider != "TensorrtExecutionProvider" and self.precision not in ("fp32", "int8"):
            # onnxruntime's CPU provider has no fast fp16/bf16 convolution on x86 and the CUDA
            # provider would need a converted fp16 graph; both run our fp32 graph instead.
            reasons.append(f"{self.precision} needs the TensorRT provider; running fp32 on {self.provider}")
            self.precision = "fp32"
        self.fallback_reason = "; ".join(reasons) or None
        on_gpu = self.provider in GPU_PROVIDERS
        self.device = "cuda:0" if on_gpu else "cpu"
        self._half_io = "float16" in self._session.get_inputs()[0].type
        if self._half_io:
            self.precision = "fp16"  # an fp16 graph (e.g. a user's file) computes in fp16 whatever was asked
        self.workers = self.threads if (tile_workers and not on_gpu and self.threads > 1) else 1
        # Tile workers share one extra single-threaded session (Run is thread-safe); the
        # multi-threaded one serves whole images and direct calls.
        self._worker_session: Any = None
        self._worker_lock = threading.Lock()
        self.bytes_per_pixel = 4 * 300 + 12 * self.scale * self.scale

    def _options(self, intra_threads: int) -> Any:
        ort = self._ort
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = intra_threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # provider fallbacks are reported through fallback_reason instead
        if intra_threads > 1 and not _spinning:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so

    def _create(self, provider: str, precision: str, intra_threads: int) -> Any:
        ort = self._ort
        providers: list[Any]
        if provider == "TensorrtExecutionProvider":
            opts: dict[str, Any] = {
                "trt_fp16_enable": precision == "fp16",
                # One engine for every tile and image size up to 2048 px instead of a rebuild per shape.
                "trt_profile_min_shapes": self._trt_shapes(self.min_size),
                "trt_profile_opt_shapes": self._trt_shapes(384),
                "trt_profile_max_shapes": self._trt_shapes(2048),
            }
            cache = _trt_cache_dir()
            if cache:
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache)
            providers = [(provider, opts), "CUDAExecutionProvider", "CPUExecutionProvider"]
        elif provider == "CUDAExecutionProvider":
            providers = [(provider, {"cudnn_conv_algo_search": "HEURISTIC"}), "CPUExecutionProvider"]
        else:
            return ort.InferenceSession(self._cpu_graph(), self._options(intra_threads),
                                        providers=["CPUExecutionProvider"])
        return ort.InferenceSession(self._bytes, self._options(intra_threads), providers=providers)

    def _cpu_graph(self) -> bytes:
        """The graph the CPU provider runs: fp32 graphs get the blocked-layout pass once per backend."""
        if self._cpu_bytes is None:
            if cpu_graph_pass_enabled():
                from .cpu_graph import optimize_for_cpu

                self._cpu_bytes, self.graph_pass = optimize_for_cpu(self._bytes)
            else:
                self._cpu_bytes, self.graph_pass = self._bytes, f"unchanged: {CPU_GRAPH_PASS_ENV}=0"
        return self._cpu_bytes

    def _trt_shapes(self, n: int) -> str:
        shapes = f"{self._input_name}:1x{self.in_channels}x{n}x{n}"
        if self.grid_aware:
            c = coarse_size(n)
            shapes += f",ry:{n}x{c},rx_t:{c}x{n}"
        return shapes

    def _feeds(self, x: np.ndarray, grid: TileGrid | None) -> dict[str, np.ndarray]:
        feeds = {self._input_name: x}
        if self.grid_aware:
            h, w = x.shape[2], x.shape[3]
            ry, rx_t = grid_matrices(grid or TileGrid(0, 0, h, w), h, w)
            feeds["ry"], feeds["rx_t"] = ry.astype(x.dtype, copy=False), rx_t.astype(x.dtype, copy=False)
        return feeds

    def _warm_up(self, session: Any) -> None:
        n = max(32, self.min_size)
        x = np.zeros((1, self.in_channels, n, n), np.float32)
        if "float16" in session.get_inputs()[0].type:
            x = x.astype(np.float16)
        session.run(None, self._feeds(x, None))

    def _session_for_thread(self) -> Any:
        if self.workers > 1 and getattr(_thread_state, "ort_worker", False):
            with self._worker_lock:
                if self._worker_session is None:
                    self._worker_session = self._create("CPUExecutionProvider", self.precision, intra_threads=1)
            return self._worker_session
        return self._session

    def init_worker(self) -> None:
        _thread_state.ort_worker = True

    def run(self, x: np.ndarray, grid: TileGrid | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float16 if self._half_io else np.float32)
        y = self._session_for_thread().run(None, self._feeds(x, grid))[0]
        return y.astype(np.float32, copy=False)

    def describe(self) -> str:
        short = self.provider.replace("ExecutionProvider", "")
        if self.device == "cpu":
            threads = f"{self.threads} threads, 1 per tile" if self.workers > 1 else f"{self.threads} threads"
            if self.graph_pass and not self.graph_pass.startswith("unchanged"):
                threads += ", blocked layout"
            return f"onnxruntime {short} {self.precision} ({threads})"
        return f"onnxruntime {short} {self.precision}"


_thread_state = threading.local()
