"""Inference backends: eager PyTorch and onnxruntime, behind one small interface.

A :class:`Backend` turns an NCHW float32 batch in [0, 1] into the upscaled
NCHW float32 batch. Everything slow (weight conversion, ONNX export, session
creation, TensorRT engine builds) happens once in the constructor, never per
tile.

CPU strategy, measured by ``benchmarks/bench_inference.py`` on the 2-core Zen 4
(seconds per input megapixel, Set5 + Set14 LR + two larger images; the plain
eager fp32 reference at its best tile size: 5.29 s/MP):

* bf16 weights + channels_last through oneDNN: 2.07 s/MP against 5.83 for fp32
  channels_last, for a Set5 PSNR-Y loss of 0.005-0.010 dB (the bar is 0.02), so
  ``auto`` picks bf16 where the CPU has native bf16 (AVX512-BF16 / AMX). Without
  it oneDNN emulates bf16 with conversions (not measurable on this machine), so
  ``auto`` stays fp32 there.
* oneDNN post-ops (conv + LeakyReLU / sigmoid / residual add in one kernel,
  :class:`~.gridnet.FusedGridDIPNet`): 1.81 s/MP, no compile step.
  ``torch.compile`` (opt-in) reached 1.88 s/MP after its compile time.
* One single-threaded tile per physical core (``Backend.workers``) instead of
  one tile across all cores: 1.81 against 1.98 s/MP. A tile then has no
  internal synchronisation, so a busy desktop stealing a core stalls one tile
  instead of every OpenMP barrier of every layer.
* onnxruntime fp32 (4.09 s/MP) beats torch fp32 (5.31), so ``auto`` uses it on
  CPUs without native bf16. An fp16 graph on onnxruntime's CPU provider is
  slower (5.53), so the CPU provider always runs fp32.
"""

from __future__ import annotations

import copy
import io
import logging
import threading
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..errors import ModelError
from ..models import DIPNet, LoadedModel
from . import hardware
from .gridnet import GRID_ALIGN, FusedGridDIPNet, GridDIPNet, TileGrid, coarse_size, grid_matrices

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

# ESA's stride-2 conv followed by a 7x7 max-pool needs at least 15 px.
ESA_MIN_SIZE = 15

_OOM_MARKERS = (
    "out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate",
    "bad_alloc", "bad allocation", "std::bad_alloc",
)


class BackendUnavailable(ModelError, RuntimeError):
    """The requested backend/device/precision cannot run on this machine or for this model."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for allocation failures of torch (CPU or CUDA) and onnxruntime."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch

        if isinstance(exc, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(exc).lower()
    return any(marker in text for marker in _OOM_MARKERS)


def _model_min_size(model: LoadedModel) -> int:
    d = model.descriptor
    esa_family = d.arch == "dipnet" or bool(d.config and "blocks" in d.config)
    return max(int(d.min_size or 1), ESA_MIN_SIZE if esa_family else 1)


class Backend(ABC):
    """One model ready to run on one device at one precision."""

    name: str = ""
    device: str = "cpu"
    precision: str = "fp32"
    provider: str = ""
    scale: int = 1
    fallback_reason: str | None = None
    #: How many ``run`` calls the tiler should keep in flight (one per core on CPU).
    workers: int = 1
    #: Smallest input side the model accepts; smaller inputs are reflect-padded by the tiler.
    min_size: int = 1
    #: False for models that must see the whole image (the tiler then never splits it).
    tileable: bool = True
    #: Rough peak working memory per input pixel of one ``run`` call, for tile sizing.
    bytes_per_pixel: int = 4096
    #: True when ``run`` follows the whole image's ESA grid given a :class:`TileGrid` (DIPNet family);
    #: tiles must then start on multiples of ``grid_align``.
    grid_aware: bool = False
    grid_align: int = 1

    def __init__(self, model: LoadedModel) -> None:
        d = model.descriptor
        self.scale = int(d.scale)
        self.in_channels = int(d.in_channels)
        self.min_size = _model_min_size(model)
        self.tileable = bool(d.tileable)
        self.model_name = d.name or d.arch

    @abstractmethod
    def run(self, x: np.ndarray, grid: TileGrid | None = None) -> np.ndarray:
        """NCHW float32 in [0, 1] -> NCHW float32 (unclipped), ``scale`` times larger.

        ``grid`` places a tile in its whole image (grid-aware backends only; None
        means ``x`` is the whole image). Safe to call from the tiler's worker
        threads concurrently; the result may be a strided view (channels-last
        memory), not necessarily C-contiguous.
        """

    def init_worker(self) -> None:
        """Called once in each tile worker thread before its first ``run``."""

    def workers_ready(self) -> None:
        """Called in the tiler's thread once every worker ran :meth:`init_worker`."""

    def release_memory(self) -> None:
        """Give cached device memory back after an out-of-memory error."""

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def describe(self) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# --------------------------------------------------------------------------- torch


def _torch_cuda_available() -> bool:
    import torch

    try:
        return bool(torch.cuda.is_available())
    except RuntimeError:  # a broken driver raises instead of returning False
        return False


class TorchBackend(Backend):
    """Eager PyTorch; channels_last and bf16 (CPU) / fp16 (CUDA) weights converted once."""

    name = "torch"

    def __init__(self, model: LoadedModel, device: str = "cpu", precision: str = "fp32", *,
                 threads: int | None = None, channels_last: bool = True, compile: bool = False,
                 tile_workers: bool = True, fuse: bool = True) -> None:
        import torch

        if model.module is None:
            raise BackendUnavailable("ONNX files run on onnxruntime, not torch")
        super().__init__(model)
        self.device = "cuda:0" if device in ("cuda", "cuda:0") else device
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = compile
        self._torch = torch
        self._dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self._memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.cores = hardware.physical_cores()
        self.threads = max(1, int(threads or self.cores))
        if self.is_cuda:
            # Tiles of a plan share one shape, so cuDNN's per-shape algorithm search pays off.
            torch.backends.cudnn.benchmark = True
        else:
            # Global in torch; the app runs one inference job at a time, sized to the physical cores.
            torch.set_num_threads(self.threads)
        self.workers = self.threads if (tile_workers and not self.is_cuda) else 1
        # Our own copy: the caller's module stays fp32 on the CPU for other backends and exports.
        module = copy.deepcopy(model.module).eval().requires_grad_(False)
        if isinstance(module, DIPNet):
            module = GridDIPNet(module).eval()
            self.grid_aware, self.grid_align = True, GRID_ALIGN
        module = module.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format)
        self.fused = False
        if fuse and self.grid_aware and channels_last and not compile and not self.is_cuda:
            fused = FusedGridDIPNet(module)
            if self._fusion_works(fused, module):
                module, self.fused = fused, True
        if compile:
            # dynamic=None: the first tile shape compiles statically, a second shape recompiles
            # dynamically once; tiles of a plan share one shape, so that rarely happens.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # raised by torch's own imports
                module = torch.compile(module)
        self.module = module
        itemsize = 2 if precision in ("bf16", "fp16") else 4
        # Per input pixel at the peak: ~6 live 44-channel feature maps, the upsampler output and its
        # pixel shuffle (scale^2 x 3 values each), the float32 result, and the float32 input.
        out_values = self.scale * self.scale * 3
        self.bytes_per_pixel = itemsize * (6 * 44 + 2 * out_values) + 4 * out_values + 12

    def _fusion_works(self, fused: Any, eager: Any) -> bool:
        """The oneDNN fused ops are private torch API: use them only if they exist and agree with eager."""
        torch = self._torch
        h, w = 30, 42
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        x = np.stack([0.5 + 0.4 * np.sin(xx / 3 + c) * np.cos(yy / 4) for c in range(self.in_channels)])[None]
        try:
            with torch.inference_mode():
                t = torch.from_numpy(x).to(dtype=self._dtype, memory_format=self._memory_format)
                ry, rx_t = (torch.from_numpy(a).to(self._dtype) for a in grid_matrices(TileGrid(0, 0, h, w), h, w))
                diff = (fused(t, ry, rx_t).float() - eager(t, ry, rx_t).float()).abs()
        except (RuntimeError, AttributeError, TypeError, NotImplementedError) as exc:
            log.info("oneDNN fused convolutions unavailable (%s); using eager modules", exc)
            return False
        # bf16 rounds at different points in the two paths; a wrong fusion is off by far more.
        ok = float(diff.mean()) < (1e-5 if self.precision == "fp32" else 2e-3) and float(diff.max()) < 0.05
        if not ok:
            log.warning("oneDNN fused path disagrees with eager (max %.4f); using eager", float(diff.max()))
        return ok

    def init_worker(self) -> None:
        if self.is_cuda:
            return
        torch = self._torch
        # Tile workers run single-threaded kernels. torch.set_num_threads stores a process-wide
        # default *and* the calling thread's OpenMP setting; touching get_num_threads first marks
        # this thread initialised, so it keeps 1 after the caller restores the global default.
        torch.get_num_threads()
        torch.set_num_threads(1)

    def workers_ready(self) -> None:
        # Re-apply the process default that init_worker changed; workers keep their 1 thread.
        if not self.is_cuda:
            self._torch.set_num_threads(self.threads)

    def run(self, x: np.ndarray, grid: TileGrid | None = None) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            # One conversion: device, dtype and layout together (a no-op for fp32 NCHW on the CPU).
            t = t.to(device=self.device, dtype=self._dtype, memory_format=self._memory_format)
            if self.grid_aware:
                h, w = x.shape[2], x.shape[3]
                ry, rx_t = grid_matrices(grid or TileGrid(0, 0, h, w), h, w)
                y = self.module(t, torch.from_numpy(ry).to(self.device, self._dtype),
                                torch.from_numpy(rx_t).to(self.device, self._dtype))
            else:
                y = self.module(t)
            if y.dtype != torch.float32:
                y = y.float()
            return y.cpu().numpy()

    def release_memory(self) -> None:
        if self.is_cuda:
            self._torch.cuda.empty_cache()

    def describe(self) -> str:
        extras = []
        if self.channels_last:
            extras.append("channels_last")
        if self.fused:
            extras.append("oneDNN-fused")
        if self.compiled:
            extras.append("compiled")
        if self.is_cuda:
            where = f"CUDA ({self._torch.cuda.get_device_name(0)})"
        else:
            where = "CPU"
            if self.workers > 1:
                extras.append(f"{self.threads} threads, 1 per tile")
            else:
                extras.append(f"{self.threads} threads")
        return f"torch {where} {self.precision} ({', '.join(extras)})"


# ----------------------------------------------------------------------- onnxruntime

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def export_onnx_bytes(model: LoadedModel, grid_aware: bool = False, opset: int = 17) -> bytes:
    """Export a torch model to ONNX in memory, fp32, with dynamic height and width.

    ``grid_aware`` exports :class:`GridDIPNet` (inputs ``input``, ``ry``, ``rx_t``)
    for exact tiling; the default is the plain one-input graph other tools expect.
    """
    import torch

    if model.module is None:
        raise BackendUnavailable("model has no torch module to export")
    module = copy.deepcopy(model.module).float().cpu().eval()
    size = max(64, _model_min_size(model))
    dummy = torch.rand(1, model.descriptor.in_channels, size, size)
    if grid_aware:
        if not isinstance(module, DIPNet):
            raise BackendUnavailable("only DIPNet-family models have a grid-aware export")
        module = GridDIPNet(module).eval()
        ry, rx_t = grid_matrices(TileGrid(0, 0, size, size), size, size)
        args: tuple[Any, ...] = (dummy, torch.from_numpy(ry.copy()), torch.from_numpy(rx_t.copy()))
        names = ["input", "ry", "rx_t"]
        axes = {"input": {2: "height", 3: "width"}, "ry": {0: "height", 1: "coarse_height"},
                "rx_t": {0: "coarse_width", 1: "width"}, "output": {2: "out_height", 3: "out_width"}}
    else:
        args, names = (dummy,), ["input"]
        axes = {"input": {2: "height", 3: "width"}, "output": {2: "out_height", 3: "out_width"}}
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs the
        # optional onnxscript package; the legacy path exports this plain CNN exactly.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module, args, buf, input_names=names, output_names=["output"], dynamic_axes=axes,
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
        except Exception as exc:  # the exporter raises many types for unsupported ops
            raise BackendUnavailable(f"ONNX export of {model.descriptor.arch} failed: {exc}") from exc
    return buf.getvalue()


def _onnx_bytes(model: LoadedModel) -> bytes:
    if model.module is None:
        if model.path is None:
            raise BackendUnavailable("ONNX model has neither a file nor a module")
        return model.path.read_bytes()
    return export_onnx_bytes(model, grid_aware=isinstance(model.module, DIPNet))


def _trt_cache_dir() -> str | None:
    try:
        from pathlib import Path

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
        import onnx
        import onnxruntime as ort

        super().__init__(model)
        self._ort = ort
        self._bytes = _onnx_bytes(model)
        try:
            graph = onnx.load_from_string(self._bytes).graph
        except Exception as exc:  # protobuf raises DecodeError and others for garbage
            raise BackendUnavailable(f"not a readable ONNX model ({exc})") from exc
        initializers = {i.name for i in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in initializers]
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
            candidates = [p for p in _GPU_PROVIDERS if p in ort.get_available_providers()]
            if device == "cuda" and not candidates:
                raise BackendUnavailable(
                    "onnxruntime has no CUDA or TensorRT provider here (install onnxruntime-gpu)")
            candidates.append("CPUExecutionProvider")
        reasons: list[str] = []
        self._session: Any = None
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
        if self.provider != "TensorrtExecutionProvider" and self.precision != "fp32":
            # onnxruntime's CPU provider has no fast fp16/bf16 convolution on x86 and the CUDA
            # provider would need a converted fp16 graph; both run our fp32 graph instead.
            reasons.append(f"{self.precision} needs the TensorRT provider; running fp32 on {self.provider}")
            self.precision = "fp32"
        self.fallback_reason = "; ".join(reasons) or None
        on_gpu = self.provider in _GPU_PROVIDERS
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
        if intra_threads > 1:
            # Spinning threads steal cycles from the other tile workers and from the GUI.
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
            providers = ["CPUExecutionProvider"]
        return ort.InferenceSession(self._bytes, self._options(intra_threads), providers=providers)

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
                    self._worker_session = self._create("CPUExecutionProvider", "fp32", intra_threads=1)
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
            return f"onnxruntime {short} {self.precision} ({threads})"
        return f"onnxruntime {short} {self.precision}"


_thread_state = threading.local()


# --------------------------------------------------------------------------- factory


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def available_backends() -> list[dict[str, Any]]:
    """Every backend/device pair and whether it can run here, for settings and ``dipnet info``."""
    import torch

    out: list[dict[str, Any]] = []
    cores = hardware.physical_cores()
    bf16 = hardware.has_native_bf16()
    cpu_precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    out.append({
        "backend": "torch", "device": "cpu", "provider": "", "available": True,
        "precisions": cpu_precisions, "default_precision": "bf16" if bf16 else "fp32",
        "detail": f"torch {torch.__version__}, {cores} physical cores, "
                  f"{'native bf16' if bf16 else 'no native bf16'}",
    })
    if _torch_cuda_available():
        name = torch.cuda.get_device_name(0)
        out.append({"backend": "torch", "device": "cuda", "provider": "", "available": True,
                    "precisions": ["fp16", "fp32", "bf16"], "default_precision": "fp16", "detail": name})
    else:
        why = "torch built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        out.append({"backend": "torch", "device": "cuda", "provider": "", "available": False,
                    "precisions": [], "default_precision": "", "detail": why})
    providers = _ort_providers()
    try:
        import onnxruntime as ort

        ort_version = ort.__version__
    except ImportError:
        ort_version = ""
    for provider, device, precisions in (
        ("CPUExecutionProvider", "cpu", ["fp32"]),
        ("CUDAExecutionProvider", "cuda", ["fp32"]),
        ("TensorrtExecutionProvider", "cuda", ["fp16", "fp32"]),
    ):
        ok = provider in providers
        detail = f"onnxruntime {ort_version}" if ort_version else "onnxruntime not installed"
        if not ok and ort_version:
            detail += " (install onnxruntime-gpu)" if device == "cuda" else ""
        out.append({"backend": "onnx", "device": device, "provider": provider, "available": ok,
                    "precisions": precisions if ok else [], "default_precision": precisions[0] if ok else "",
                    "detail": detail})
    return out


def _resolve_device(device: str, backend: str) -> str:
    if device in ("cpu", "cuda"):
        return device
    if device == "cuda:0":
        return "cuda"
    if backend == "torch":
        return "cuda" if _torch_cuda_available() else "cpu"
    if backend == "onnx":
        return "cuda" if any(p in _ort_providers() for p in _GPU_PROVIDERS) else "cpu"
    return "cuda" if _torch_cuda_available() else "cpu"


def _auto_cpu_precision(model: LoadedModel) -> str:
    # bf16 is measured for the DIPNet family only (< 0.01 dB on Set5); other architectures stay fp32.
    return "bf16" if hardware.has_native_bf16() and isinstance(model.module, DIPNet) else "fp32"


def create_backend(model: LoadedModel, backend: str = "auto", device: str = "auto", precision: str = "auto",
                   *, threads: int | None = None, channels_last: bool = True, compile: bool = False,
                   tile_workers: bool = True, fuse: bool = True) -> Backend:
    """Build the backend for ``model``; ``auto`` values pick the fastest measured path here.

    ``auto`` with CUDA torch is torch fp16 + channels_last on the GPU (fp32 if
    the model does not support half); with only onnxruntime-gpu it is
    onnxruntime (TensorRT, then CUDA, then CPU). On a CPU it is torch with bf16
    weights, channels_last and oneDNN-fused convolutions where the CPU has
    native bf16 (DIPNet family; other architectures stay fp32), and
    onnxruntime fp32 otherwise (it beat torch fp32 by ~5%). ONNX files always
    run on onnxruntime. Unavailable choices raise :class:`BackendUnavailable`;
    partial fallbacks (a provider that failed, fp16 on a model without half
    support) run and say why in ``fallback_reason``.

    Extra keywords: ``threads`` (default: physical cores), ``channels_last``,
    ``fuse`` (oneDNN conv+activation fusion on the CPU), ``compile`` (one-time
    ``torch.compile``: ~20 s per new shape set, for long batches only) and
    ``tile_workers`` (one single-threaded tile per core instead of one tile
    across all cores).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device not in DEVICES and device != "cuda:0":
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    d = model.descriptor
    if model.module is None:
        if backend == "torch":
            raise BackendUnavailable("ONNX files run on onnxruntime; choose the onnx backend")
        backend = "onnx"
    auto_backend = backend == "auto"
    if auto_backend:
        backend = "torch"
        # A GPU through onnxruntime beats any CPU path: use it when torch itself has no CUDA.
        if device != "cpu" and not _torch_cuda_available() and any(p in _ort_providers() for p in _GPU_PROVIDERS):
            backend = "onnx"
    dev = _resolve_device(device, backend)
    cpu_precision = precision if precision != "auto" else _auto_cpu_precision(model)
    if (auto_backend and backend == "torch" and dev == "cpu" and cpu_precision == "fp32" and not compile
            and isinstance(model.module, DIPNet) and _ort_providers()):
        # Without native bf16 both backends run fp32, and onnxruntime measured ~5% faster than
        # torch's fused fp32 path; fall back to torch if the export or session fails.
        try:
            return OnnxRuntimeBackend(model, "cpu", "fp32", threads=threads, tile_workers=tile_workers)
        except BackendUnavailable as exc:
            log.info("onnxruntime unavailable for auto (%s); using torch", exc)

    notes: list[str] = []
    if backend == "torch":
        if dev == "cuda" and not _torch_cuda_available():
            raise BackendUnavailable("torch has no CUDA device here (CPU-only build or no GPU)")
        if precision == "auto":
            if dev == "cuda":
                prec = "fp16" if d.supports_half else "fp32"
            else:
                prec = _auto_cpu_precision(model)
        else:
            prec = precision
        if prec == "fp16" and not d.supports_half:
            notes.append("this model does not support fp16; running fp32")
            prec = "fp32"
        if prec == "bf16" and dev == "cuda":
            import torch

            if not torch.cuda.is_bf16_supported():
                notes.append("this GPU has no bf16; running fp16" if d.supports_half else
                             "this GPU has no bf16; running fp32")
                prec = "fp16" if d.supports_half else "fp32"
        result: Backend = TorchBackend(model, dev, prec, threads=threads, channels_last=channels_last,
                                       compile=compile, tile_workers=tile_workers, fuse=fuse)
    else:
        if precision == "fp16" and not d.supports_half:
            notes.append("this model does not support fp16; running fp32")
            precision = "fp32"
        result = OnnxRuntimeBackend(model, dev, precision, threads=threads, tile_workers=tile_workers)
    if notes:
        joined = "; ".join(notes)
        result.fallback_reason = f"{joined}; {result.fallback_reason}" if result.fallback_reason else joined
    log.info("backend: %s%s", result.describe(),
             f" (fallback: {result.fallback_reason})" if result.fallback_reason else "")
    return result
