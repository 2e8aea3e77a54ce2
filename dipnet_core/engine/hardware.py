"""What this machine offers: physical cores, free memory, CPU features, CUDA.

No psutil dependency: Linux values come from ``/proc`` and cgroup files (so a
container's limits are respected), Windows from ``GlobalMemoryStatusEx``, other
systems from ``os.sysconf`` where it exists. Every probe returns ``None`` or a
safe default instead of raising, because a wrong guess only costs speed.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from pathlib import Path


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


#: The flags that decide which kernels run fast here (benchmarks record them with every result).
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
              "amx_int8", "neon", "asimd", "asimddp", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo`` model name, else ``platform.processor()``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model Name", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def simd_flags() -> list[str]:
    """The speed-relevant subset of :func:`cpu_flags`, in a fixed order."""
    flags = cpu_flags()
    return [f for f in SIMD_FLAGS if f in flags]


def has_vnni() -> bool:
    """int8 dot-product instructions: without them u8 x s8 products can saturate in onnxruntime."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"} & cpu_flags())


def has_native_bf16() -> bool:
    """True when the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX).

    Without it oneDNN emulates bf16 and is slower than fp32, so ``auto`` must not
    pick bf16. Off Linux we cannot read the flags and stay with fp32.
    """
    flags = cpu_flags()
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _cgroup_cpu_limit() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


@functools.lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores this process may use (SMT siblings counted once, affinity and cgroup quota applied).

    Convolution kernels saturate a core's FMA units with one thread, so a second
    hyper-thread per core only adds contention.
    """
    cpus = _allowed_cpus()
    cores: set[str] = set()
    if cpus:
        for cpu in cpus:
            base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            try:
                pkg = (base / "physical_package_id").read_text().strip()
                core = (base / "core_id").read_text().strip()
            except OSError:
                cores = set()
                break
            cores.add(f"{pkg}:{core}")
    n = len(cores) or (len(cpus) if cpus else 0) or (os.cpu_count() or 1)
    limit = _cgroup_cpu_limit()
    if limit is not None:
        n = min(n, max(1, math.ceil(limit)))
    return max(1, n)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_memory_headroom() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        return max(0, int(limit) - int(used))
    except (OSError, ValueError):
        return None


def _windows_available() -> int | None:
    import ctypes

    class _MemStatus(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong), ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = _MemStatus()
    status.dwLength = ctypes.sizeof(_MemStatus)
    try:
        if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return int(status.ullAvailPhys)
    except (AttributeError, OSError):
        return None
    return None


def available_memory_bytes() -> int | None:
    """RAM this process can still use without swapping, or None when unknown."""
    if sys.platform == "win32":
        return _windows_available()
    candidates = [v for v in (_meminfo_available(), _cgroup_memory_headroom()) if v is not None]
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(candidates)


def cuda_free_memory_bytes(device: str = "cuda:0") -> int | None:
    """Free memory on a CUDA device as the driver reports it, or None without CUDA torch."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    except (RuntimeError, AssertionError, ValueError):
        return None


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size (``VmHWM``), for benchmarks."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(kb) * (1 if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return None
