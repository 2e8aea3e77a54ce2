"""Eager PyTorch backend: channels_last, bf16 (CPU) / fp16 (CUDA) weights, oneDNN-fused convs.

Measured by ``benchmarks/bench_inference.py`` on the 2-core Zen 4 (seconds per
input megapixel; the plain eager fp32 reference at its best tile size: 5.29 s/MP):

* bf16 weights + channels_last through oneDNN: 2.07 s/MP against 5.83 for fp32
  channels_last, for a Set5 PSNR-Y loss of 0.005-0.010 dB (the bar is 0.02). Without
  native bf16 (AVX512-BF16 / AMX) oneDNN emulates it with conversions.
* oneDNN post-ops (conv + LeakyReLU / sigmoid / residual add in one kernel,
  :class:`~..gridnet.FusedGridDIPNet`): 1.81 s/MP, no compile step.
  ``torch.compile`` (opt-in) reached 1.88 s/MP after its compile time.
* Not done by default: zero-padding ragged widths to a multiple of 8 or 16
  (``pad_channels``, :func:`~dipnet_core.prune.pad_dipnet`, exact). On the AVX2 EPYC
  the official 44/38 ran 0.84-0.85x as fast padded to 48/40 and 0.72-0.76x padded
  to 48/48 (``benchmarks/bench_pad_widths.py``, two runs): oneDNN handles the
  ragged widths well there, and padding only adds work. Unmeasured on AVX-512.
* One single-threaded tile per physical core (``Backend.workers``) instead of one
  tile across all cores: 1.81 against 1.98 s/MP. A tile then has no internal
  synchronisation, so a busy desktop stealing a core stalls one tile instead of
  every OpenMP barrier of every layer.

Which of these paths runs on a given machine is measured, not assumed
(:mod:`.autoselect`).
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import Any

import numpy as np
import torch

from ...models import DIPNet, LoadedModel
from ...prune import pad_dipnet
from .. import hardware
from ..gridnet import GRID_ALIGN, FusedGridDIPNet, GridDIPNet, TileGrid, grid_matrices
from .base import Backend, BackendUnavailable

log = logging.getLogger(__name__)


def torch_cuda_available() -> bool:
    """CUDA torch with a visible device (a broken driver counts as none)."""
    try:
        return bool(torch.cuda.is_available())
    except RuntimeError:  # a broken driver raises instead of returning False
        return False


class TorchBackend(Backend):
    """Eager PyTorch; channels_last and bf16 (CPU) / fp16 (CUDA) weights converted once."""

    name = "torch"

    def __init__(self, model: LoadedModel, device: str = "cpu", precision: str = "fp32", *,
                 threads: int | None = None, channels_last: bool = True, compile: bool = False,
                 tile_workers: bool = True, fuse: bool = True, pad_channels: int = 0) -> None:
        """``pad_channels`` > 1: run DIPNet widths zero-padded up to multiples of it on the CPU
        (same output; slower on the AVX2 CPU measured, see the module docstring)."""
        if model.module is None:
            raise BackendUnavailable("ONNX files run on onnxruntime, not torch")
        if precision not in ("fp32", "bf16", "fp16"):
            raise BackendUnavailable(f"torch runs fp32, bf16 or fp16, not {precision} (int8 runs on onnxruntime)")
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
        self.padded_to = 0
        if isinstance(module, DIPNet) and not self.is_cuda:
            block = int(pad_channels)
            padded = pad_dipnet(module, block) if block > 1 else module
            if padded is not module:
                module, self.padded_to = padded.eval(), block
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
        if self.padded_to:
            extras.append(f"widths padded to multiples of {self.padded_to}")
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
