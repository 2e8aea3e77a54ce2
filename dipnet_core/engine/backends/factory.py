"""``create_backend``: the user's explicit choice, or the path measured fastest on this machine.

On the CPU, ``auto`` (backend and precision both ``auto``) times the candidate
paths once per machine and model and caches the winner (:mod:`.autoselect`).
Without measuring (``DIPNET_MEASURE_BACKENDS=0``, or when the measurement cannot
run) the CPU-flag rules measured on the development machines apply: torch bf16
where the CPU has native bf16 (DIPNet family), else onnxruntime fp32, else torch
fp32. GPUs: torch fp16 with CUDA torch, else onnxruntime's TensorRT/CUDA
providers. Every explicit argument overrides the automatic choice.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .. import hardware
from . import autoselect
from .autoselect import Candidate, EngineChoice
from .base import BACKENDS, DEVICES, PRECISIONS, Backend, BackendUnavailable
from .onnxruntime_backend import GPU_PROVIDERS, OnnxRuntimeBackend, int8_twin_path, ort_providers

if TYPE_CHECKING:
    from ...models import LoadedModel

log = logging.getLogger(__name__)


def _torch_cuda_available() -> bool:
    try:
        from .torch_backend import torch_cuda_available
    except ImportError:  # the slim edition has no torch
        return False
    return torch_cuda_available()


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


def available_backends() -> list[dict[str, Any]]:
    """Every backend/device pair and whether it can run here, for settings and ``dipnet info``."""
    out: list[dict[str, Any]] = []
    cores = hardware.physical_cores()
    bf16 = hardware.has_native_bf16()
    torch_version = _torch_version()
    if torch_version is None:
        for device in ("cpu", "cuda"):
            out.append({"backend": "torch", "device": device, "provider": "", "available": False,
                        "precisions": [], "default_precision": "",
                        "detail": "torch is not installed (upscale-only edition: onnxruntime runs the models)"})
    else:
        import torch

        cpu_precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
        out.append({
            "backend": "torch", "device": "cpu", "provider": "", "available": True,
            "precisions": cpu_precisions, "default_precision": "bf16" if bf16 else "fp32",
            "detail": f"torch {torch_version}, {cores} physical cores, "
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
    providers = ort_providers()
    try:
        import onnxruntime as ort

        ort_version = ort.__version__
    except ImportError:
        ort_version = ""
    for provider, device, precisions in (
        ("CPUExecutionProvider", "cpu", ["fp32", "int8"]),
        ("CUDAExecutionProvider", "cuda", ["fp32"]),
        ("TensorrtExecutionProvider", "cuda", ["fp16", "fp32"]),
    ):
        ok = provider in providers
        detail = f"onnxruntime {ort_version}" if ort_version else "onnxruntime not installed"
        if not ok and ort_version:
            detail += " (install onnxruntime-gpu)" if device == "cuda" else ""
        if ok and device == "cpu":
            detail += ", int8 with the model's int8 twin" + ("" if hardware.has_vnni() else " (no VNNI here)")
        out.append({"backend": "onnx", "device": device, "provider": provider, "available": ok,
                    "precisions": precisions if ok else [], "default_precision": precisions[0] if ok else "",
                    "detail": detail})
    return out


def _resolve_device(device: str, backend: str) -> str:
    if device in ("cpu", "cuda"):
        return device
    if device == "cuda:0":
        return "cuda"
    if backend == "onnx":
        return "cuda" if any(p in ort_providers() for p in GPU_PROVIDERS) else "cpu"
    return "cuda" if _torch_cuda_available() else "cpu"


def _is_dipnet_module(model: LoadedModel) -> bool:
    if model.module is None:
        return False
    from ...models import DIPNet

    return isinstance(model.module, DIPNet)


def _build_cpu(model: LoadedModel, cand: Candidate, threads: int | None, channels_last: bool, fuse: bool
               ) -> Backend:
    if cand.backend == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(model, "cpu", cand.precision, threads=threads, channels_last=channels_last,
                            tile_workers=cand.tile_workers, fuse=fuse)
    return OnnxRuntimeBackend(model, "cpu", cand.precision, threads=threads, tile_workers=cand.tile_workers)


def rule_choice(model: LoadedModel) -> EngineChoice:
    """The CPU-flag rules, for when nothing was measured."""
    if model.module is not None and _is_dipnet_module(model) and hardware.has_native_bf16():
        return EngineChoice("torch", "bf16", None, True, None,
                            "rules (not measured): this CPU has native bf16, torch bf16 with fused convs "
                            "measured fastest on such CPUs (within 0.02 dB)")
    if "CPUExecutionProvider" in ort_providers() and (model.module is None or _is_dipnet_module(model)):
        return EngineChoice("onnx", "fp32", None, True, None,
                            "rules (not measured): no native bf16; onnxruntime fp32 measured ~5% faster "
                            "than torch fp32 on such CPUs")
    return EngineChoice("torch", "fp32", None, True, None, "rules (not measured): torch fp32")


def _auto_cpu(model: LoadedModel, threads: int | None, channels_last: bool, fuse: bool,
              measure: bool | None) -> Backend:
    build = lambda cand: _build_cpu(model, cand, threads, channels_last, fuse)  # noqa: E731
    runner: autoselect.BackendRunner | None = None
    choice: EngineChoice | None = None
    if measure if measure is not None else autoselect.measuring_enabled():
        def make_runner() -> autoselect.BackendRunner:
            nonlocal runner
            runner = autoselect.BackendRunner(model, build)
            return runner

        try:
            choice = autoselect.choose(model, make_runner)
        except (BackendUnavailable, OSError, RuntimeError, ValueError) as exc:
            log.warning("could not measure the CPU paths (%s); using the CPU-flag rules", exc)
    if choice is None:
        choice = rule_choice(model)
    if model.module is None and choice.backend == "torch":
        # A torch-free stand-in for a short job (engine/onnx_cache.py): the file's measured choice was
        # torch fp32, with onnxruntime fp32 close enough that skipping the torch import wins here.
        choice = dataclasses.replace(
            choice, backend="onnx", precision="fp32",
            reason=choice.reason + "; this short run takes onnxruntime fp32 instead, without importing torch")
    cand = Candidate(choice.backend, choice.precision, choice.tile_workers)
    try:
        backend = runner.backends.pop(cand) if runner and cand in runner.backends else build(cand)
    except BackendUnavailable as exc:
        if choice.s_per_mp is None and cand.backend == "onnx" and model.module is not None:
            log.info("onnxruntime unavailable for auto (%s); using torch", exc)
            choice = EngineChoice("torch", "fp32", None, True, None, f"rules: onnxruntime failed ({exc}); torch fp32")
            cand = Candidate("torch", "fp32")
            backend = build(cand)
        else:
            raise
    backend.choice = choice
    backend.preferred_tile = choice.tile
    return backend


def create_backend(model: LoadedModel, backend: str = "auto", device: str = "auto", precision: str = "auto",
                   *, threads: int | None = None, channels_last: bool = True, compile: bool = False,
                   tile_workers: bool = True, fuse: bool = True, measure: bool | None = None) -> Backend:
    """Build the backend for ``model``; ``auto`` values pick the fastest path measured here.

    On a CPU, ``backend="auto", precision="auto"`` measures the candidate paths
    once per machine and model (cached; ``measure=False`` or the environment
    variable ``DIPNET_MEASURE_BACKENDS=0`` uses the CPU-flag rules instead) and
    sets ``backend.choice`` (with ``choice.reason``) and ``backend.preferred_tile``.
    On a GPU, ``auto`` is torch fp16 + channels_last with CUDA torch (fp32 if the
    model does not support half), else onnxruntime (TensorRT, then CUDA). ONNX
    files always run on onnxruntime; ``precision="int8"`` runs the model's int8 twin
    (``<stem>.int8.onnx``) on onnxruntime's CPU provider. Unavailable choices raise
    :class:`BackendUnavailable`; partial fallbacks (a provider that failed, fp16 on a
    model without half support) run and say why in ``fallback_reason``.

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
    if precision == "int8":
        if backend == "torch":
            raise BackendUnavailable("int8 runs on onnxruntime (the model's int8 twin); choose the onnx backend")
        if device == "cuda":
            raise BackendUnavailable("the int8 twin runs on the CPU only")
        backend, device = "onnx", "cpu"
    if model.module is None:
        if backend == "torch":
            raise BackendUnavailable("ONNX files run on onnxruntime; choose the onnx backend")
        backend = "onnx"
        if precision == "auto" and int8_twin_path(model) == model.path and model.path is not None:
            precision = "int8"  # the file itself is an int8 twin
    auto_backend = backend == "auto"
    if auto_backend:
        backend = "torch"
        # A GPU through onnxruntime beats any CPU path: use it when torch itself has no CUDA.
        if device != "cpu" and not _torch_cuda_available() and any(p in ort_providers() for p in GPU_PROVIDERS):
            backend = "onnx"
    dev = _resolve_device(device, backend)
    if dev == "cpu" and precision == "auto" and not compile and (auto_backend or model.module is None):
        result = _auto_cpu(model, threads, channels_last, fuse, measure)
        log.info("backend: %s (%s)", result.describe(), result.choice.reason if result.choice else "")
        return result

    notes: list[str] = []
    if backend == "torch":
        from .torch_backend import TorchBackend

        if dev == "cuda" and not _torch_cuda_available():
            raise BackendUnavailable("torch has no CUDA device here (CPU-only build or no GPU)")
        if precision == "auto":
            if dev == "cuda":
                prec = "fp16" if d.supports_half else "fp32"
            else:
                prec = "bf16" if hardware.has_native_bf16() and _is_dipnet_module(model) else "fp32"
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
