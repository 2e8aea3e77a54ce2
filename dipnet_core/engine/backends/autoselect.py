"""Pick the CPU inference path by measuring it on this machine, once, and remember the choice.

Why measure instead of reading CPU flags: the fastest path depends on more than
the flags. On the AVX-512-bf16 Zen 4 torch bf16 with fused convs won; on an
AVX2-only EPYC onnxruntime fp32 and torch fp32 tied; int8 helps where VNNI exists
and only for models whose int8 twin kept the quality. So the first time a model
runs on a machine, each candidate path (backend x precision, within the quality
bound) runs a few small tiles; the fastest per output pixel is then timed at
larger tiles, every path within :data:`CONTENDER_MARGIN` of it at the tiler's own
tile (512 px), and the fastest (path, tile) pair wins. The small tiles
alone can mislead: on an AVX2 EPYC torch fp32 tied onnxruntime fp32 at 160 and
won at 320 px, but above 384 px its cost per pixel rose by a third while
onnxruntime's kept falling, and the tiler runs 512 px tiles, where onnxruntime
was 1.5-2x faster on real images. Some seconds of timing, once per machine and
model (the 2-core AVX2 EPYC: 13 s for the built-in model, whose int8 twin is clearly
fastest, 20-23 s where torch and onnxruntime are close); :func:`add_measurement_listener`
lets the CLI and the app say so while it runs.

The result is cached in the platformdirs user cache, keyed by the CPU model and
flags, the core count, the model's content hash and the library versions, so a
new CPU, model file or library version measures again. ``EngineChoice.reason``
says what was chosen and why (``dipnet info``, ``dipnet bench``, the app).

Quality bound: float paths are within 0.02 dB by construction (fp32) or by a
measurement that ships with the code (bf16 on the DIPNet family, 0.005-0.010 dB
on Set5); an int8 twin is a candidate only if its file records a measured loss
within :data:`INT8_BOUND_DB` on Set5 and Set14, and this machine computes what that
loss was measured on: :mod:`.int8_guard` reruns the twin on the probe it carries and
rejects it when its deviation from fp32 here would put the loss over the bound (8-bit
twins on CPUs without VNNI). The verdict is part of the cached choice (``int8_check``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import hardware
from ..grid import TileGrid
from .base import Backend, BackendUnavailable

if TYPE_CHECKING:
    from ...models import LoadedModel

log = logging.getLogger(__name__)

INT8_BOUND_DB = 0.05
FLOAT_BOUND_DB = 0.02
#: Tile sides timed: paths are compared at the first, the contenders are timed at the others too.
#: The last is the tiler's CPU tile (``upscaler.CPU_TILE_SIZE``), so a choice of "large tiles"
#: is one that was measured at the size the tiler then runs.
TILE_CANDIDATES = (160, 320, 512)
#: Paths within this factor of the fastest at the first tile are also timed at the larger tiles.
CONTENDER_MARGIN = 1.2
#: A timing batch longer than this is run once after its warm-up instead of twice (large tiles on
#: slow CPUs: one 512 px batch takes ~2 s on a 2-core AVX2 EPYC).
LONG_BATCH_S = 0.75
#: Interleaved rounds of the path comparison (at the first tile); the best of each path counts.
PATH_ROUNDS = 2
#: 3: choices carry the int8 guard's verdict (``int8_check``); older ones trusted the stored loss alone.
#: 4: onnxruntime fp32 runs the blocked-layout graph pass (``cpu_graph``), so older timings undersell it.
#: 5: close paths are compared at every tile up to the tiler's 512 px; older choices extrapolated from 320.
CACHE_VERSION = 5
#: What a process saves by not importing torch (measured 1.7-2.0 s on 2-core EPYCs, Zen 4 and AVX2):
#: a short job may run onnxruntime fp32 instead of a faster torch fp32 when the compute it loses is
#: less than this (see ``engine/onnx_cache.py``).
TORCH_IMPORT_S = 1.5
#: Set to "0" to skip measuring and use the CPU-flag rules (tests, reproducible benchmarks).
ENV_SWITCH = "DIPNET_MEASURE_BACKENDS"


@dataclass(frozen=True)
class Candidate:
    """One way to run the model on the CPU."""

    backend: str  # "torch" | "onnx"
    precision: str  # "fp32" | "bf16" | "int8"
    tile_workers: bool = True  # one single-threaded tile per core, else one tile across all cores

    def path(self) -> str:
        """Backend and precision, e.g. ``onnxruntime int8``."""
        return f"{'onnxruntime' if self.backend == 'onnx' else self.backend} {self.precision}"

    def label(self) -> str:
        threads = "1 thread per tile" if self.tile_workers else "all threads per tile"
        return f"{self.path()} ({threads})"


@dataclass
class EngineChoice:
    """What ``auto`` runs on this machine and why."""

    backend: str
    precision: str
    tile: int | None
    tile_workers: bool
    s_per_mp: float | None  # measured seconds per output-equivalent input megapixel
    reason: str
    key: str = ""
    cached: bool = False
    timings: dict[str, float] = field(default_factory=dict)  # candidate label -> s/MP
    excluded: dict[str, str] = field(default_factory=dict)  # candidate label -> why not timed
    #: The int8 guard's verdict here: {"ok", "reason", "measured"}; empty when no twin was checked.
    int8_check: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EngineChoice:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# ------------------------------------------------------------------------------------------- cache


def cache_file() -> Path:
    """Where measured choices live (one JSON file, a few hundred bytes per model and machine)."""
    override = os.environ.get("DIPNET_CACHE_DIR")
    if override:
        return Path(override) / "engine-choices.json"
    import platformdirs

    return Path(platformdirs.user_cache_dir("dipnet-studio")) / "engine-choices.json"


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for dist in ("torch", "onnxruntime", "numpy", "dipnet-studio"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = ""
    return out


def file_digest(path: Path, extra: Path | None = None) -> str:
    """SHA-256 (24 hex digits) of a file's bytes, and of ``extra``'s when given."""
    h = hashlib.sha256()
    for p in (path, extra):
        if p is None:
            continue
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:24]


def model_hash(model: LoadedModel) -> str:
    """Content hash of the model (its file; an in-memory module hashes its weights).

    A new or removed int8 twin changes the candidates, so the twin's bytes count too.
    """
    from .onnxruntime_backend import model_file

    path = model_file(model)
    twin_path = _int8_twin(model)
    if path is not None and Path(path).is_file():
        return file_digest(Path(path), twin_path)
    h = hashlib.sha256()
    if model.module is not None:
        for name, tensor in model.module.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().float().numpy().tobytes())
    else:
        h.update(model.descriptor.to_json().encode())
    if twin_path is not None:
        h.update(twin_path.read_bytes())
    return h.hexdigest()[:24]


def cache_key(model: LoadedModel) -> str:
    """CPU model + speed-relevant flags + cores + model content + library versions."""
    return _key_of(model_hash(model))


def cache_key_for_file(path: Path, int8_twin: Path | None) -> str:
    """:func:`cache_key` of the model in ``path`` without loading it (no torch import)."""
    return _key_of(file_digest(path, int8_twin))


def _key_of(content_hash: str) -> str:
    parts = {
        "cpu": hardware.cpu_model(), "flags": hardware.simd_flags(), "cores": hardware.physical_cores(),
        "model": content_hash, "libs": _library_versions(), "v": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


_cache_lock = threading.Lock()


def load_cached(key: str) -> EngineChoice | None:
    try:
        data = json.loads(cache_file().read_text())
        entry = data.get(key)
        return EngineChoice.from_json(entry) if isinstance(entry, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def store(choice: EngineChoice) -> None:
    """Add ``choice`` to the cache file (atomically; a failed write only costs a re-measure)."""
    path = cache_file()
    with _cache_lock:
        try:
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict):
                    data = {}
            except (OSError, ValueError):
                data = {}
            entry = choice.to_json()
            entry["cached"] = False
            data[choice.key] = entry
            path.parent.mkdir(parents=True, exist_ok=True)
            from ...io.atomic import atomic_write_bytes

            atomic_write_bytes(path, json.dumps(data, indent=1, sort_keys=True).encode())
        except OSError as exc:
            log.info("could not cache the engine choice in %s (%s)", path, exc)


# ------------------------------------------------------------------------------------ candidates


def _int8_twin(model: LoadedModel) -> Path | None:
    from .onnxruntime_backend import int8_twin_path

    return int8_twin_path(model)


def int8_quality_ok(model: LoadedModel) -> tuple[bool, str]:
    """Whether the model's int8 twin recorded a measured loss within the bound, and what it was."""
    twin = _int8_twin(model)
    if twin is None:
        return False, "no int8 twin (dipnet export --int8 makes one)"
    from ...export.int8 import read_int8_quality

    quality = read_int8_quality(twin.read_bytes())
    if not quality or not quality.get("loss_db"):
        return False, "int8 twin has no measured quality"
    losses = quality["loss_db"]
    worst = max(float(v) for v in losses.values())
    text = ", ".join(f"{k} {float(v):+.3f} dB" for k, v in sorted(losses.items()))
    if worst > INT8_BOUND_DB:
        return False, f"int8 loses {text} (bound {INT8_BOUND_DB} dB)"
    return True, f"int8 loss {text} (bound {INT8_BOUND_DB} dB)"


def _is_dipnet(model: LoadedModel) -> bool:
    if model.module is None:
        config = model.descriptor.config or {}
        return "blocks" in config
    from ...models import DIPNet

    return isinstance(model.module, DIPNet)


def _torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


INT8_LABEL = "onnxruntime int8"


def candidate_paths(model: LoadedModel, checks: dict[str, Any] | None = None
                    ) -> tuple[list[Candidate], dict[str, str]]:
    """Paths worth timing for ``model`` here, and why the others are left out.

    ``checks``, when given, receives the int8 guard's verdict under ``"int8"``.
    """
    from .onnxruntime_backend import ort_providers

    out: list[Candidate] = []
    excluded: dict[str, str] = {}
    has_torch = model.module is not None and _torch_available()
    if has_torch:
        out.append(Candidate("torch", "fp32"))
        if not _is_dipnet(model):
            excluded["torch bf16"] = "bf16 quality is measured for the DIPNet family only"
        elif not hardware.has_native_bf16():
            excluded["torch bf16"] = "no native bf16 on this CPU (AVX512-BF16/AMX); emulated bf16 is slower"
        else:
            out.append(Candidate("torch", "bf16"))
    else:
        excluded["torch"] = "no torch module (ONNX file or torch not installed)"
    if "CPUExecutionProvider" in ort_providers():
        out.append(Candidate("onnx", "fp32"))
        ok, why = int8_quality_ok(model)
        if ok:
            from .int8_guard import check_model_twin

            verdict = check_model_twin(model, INT8_BOUND_DB)
            if checks is not None:
                checks["int8"] = {"ok": verdict.ok, "reason": verdict.reason, "measured": verdict.measured}
            if verdict.ok:
                out.append(Candidate("onnx", "int8"))
            else:
                excluded[INT8_LABEL] = verdict.reason
        else:
            excluded[INT8_LABEL] = why
    else:
        excluded["onnxruntime"] = "onnxruntime is not installed"
    return out, excluded


# ------------------------------------------------------------------------------------------ timing

#: (candidate, tile side) -> seconds per useful input megapixel; replaced in tests by fake timings.
Runner = Callable[[Candidate, int], float]


def _probe_input(channels: int, tile: int) -> np.ndarray:
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)
    planes = [0.5 + 0.4 * np.sin(xx / (3 + c) + c) * np.cos(yy / (4 + c)) for c in range(channels)]
    return np.stack(planes)[None].astype(np.float32)


def useful_fraction(tile: int, overlap: int | None = None) -> float:
    """Share of a tile's pixels that reach the output once the tiler's overlap is cut (interior tiles)."""
    if overlap is None:
        from ..upscaler import default_overlap  # the tiler imports this package; import at call time

        overlap = default_overlap(tile)
    core = max(1, tile - 2 * overlap)
    return (core * core) / float(tile * tile)


class BackendRunner:
    """Times real backends: ``workers`` tiles at once, as the tiler runs them; builds each backend once."""

    def __init__(self, model: LoadedModel, build: Callable[[Candidate], Backend], budget_s: float = 2.0) -> None:
        self.model = model
        self.build = build
        self.budget_s = budget_s
        self.backends: dict[Candidate, Backend] = {}

    def backend(self, cand: Candidate) -> Backend:
        if cand not in self.backends:
            self.backends[cand] = self.build(cand)
        return self.backends[cand]

    def __call__(self, cand: Candidate, tile: int) -> float:
        from concurrent.futures import ThreadPoolExecutor

        backend = self.backend(cand)
        x = _probe_input(backend.in_channels, tile)
        grid = TileGrid(0, 0, tile, tile) if backend.grid_aware else None
        workers = max(1, backend.workers)
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda _: backend.init_worker(), range(workers)))
            backend.workers_ready()

            def batch() -> float:
                t0 = time.perf_counter()
                list(pool.map(lambda _: backend.run(x, grid), range(workers)))
                return time.perf_counter() - t0

            warm = batch()  # warm-up: first-call allocations, oneDNN primitive creation
            runs = 1 if warm > LONG_BATCH_S else 2
            best = min(batch() for _ in range(runs))
        pixels = workers * tile * tile * useful_fraction(tile)
        return best / pixels * 1e6


def measure(model: LoadedModel, runner: Runner, candidates: Sequence[Candidate] | None = None,
            excluded: dict[str, str] | None = None, tiles: Sequence[int] | None = None) -> EngineChoice:
    """Time ``candidates`` with ``runner`` and return the fastest (path, threading, tile).

    Paths are compared at the smallest tile (cheap); the winner is then timed at
    the larger tiles and every path within :data:`CONTENDER_MARGIN` of it at the
    largest (the tiler's own), the fastest (path, tile) pair wins, and its other
    threading is timed at that tile. Cost is per *useful* pixel (the
    overlap cut away), so a larger tile wins unless its per-pixel cost grows
    (cache effects, which differ between the libraries). When the largest
    measured tile wins, ``tile`` is None: the tiler then uses its own CPU tile
    (the largest measured) or less where memory is short.
    """
    tiles = TILE_CANDIDATES if tiles is None else tiles  # read at call time: tests may shorten it
    checks: dict[str, Any] = {}
    if candidates is None:
        candidates, excluded = candidate_paths(model, checks)
    excluded = dict(excluded or {})
    timings: dict[str, float] = {}
    first = tiles[0]

    def timed(cand: Candidate, tile: int) -> float | None:
        key = f"{cand.label()} @{tile}"
        if key in excluded:
            return None
        try:
            s = runner(cand, tile)
        except (BackendUnavailable, RuntimeError, MemoryError, ValueError) as exc:
            excluded[key] = f"failed: {exc}"
            return None
        s = min(s, timings.get(key, s))  # a repeated timing keeps its best
        timings[key] = s
        return s

    # The paths are timed in interleaved rounds, each keeping its best: a burst of other work on
    # the machine then slows one round of one path, not the whole comparison.
    for _ in range(PATH_ROUNDS):
        for cand in candidates:
            timed(cand, first)
    scored = [(timings[k], cand) for cand in candidates if (k := f"{cand.label()} @{first}") in timings]
    if not scored:
        why = "; ".join(f"{k}: {v}" for k, v in excluded.items())
        raise BackendUnavailable(f"no CPU inference path could run: {why}")
    best_s, best = min(scored, key=lambda t: t[0])
    path_times = sorted(((s, c) for s, c in scored), key=lambda t: t[0])
    # Cache effects differ between libraries, so a path that ties at small tiles can win or lose
    # by 1.5x at the tiler's size: the close ones are timed there too.
    contenders = [best] + [c for s, c in path_times
                           if (c.backend, c.precision) != (best.backend, best.precision)
                           and s <= best_s * CONTENDER_MARGIN]
    # The middle tiles only for the first tile's winner (a path whose cost per pixel rises past
    # them still shows as slow at the last): large tiles take seconds each on a slow CPU.
    best_tile = first
    for tile in tiles[1:]:
        for cand in contenders if tile == tiles[-1] else contenders[:1]:
            s = timed(cand, tile)
            if s is not None and s < best_s:
                best_s, best, best_tile = s, cand, tile
    # Threading is decided at the chosen tile, where the tiler will run it, not at the first.
    if hardware.physical_cores() > 1:
        alt = dataclasses.replace(best, tile_workers=not best.tile_workers)
        s = timed(alt, best_tile)
        if s is not None and s < best_s:
            best_s, best = s, alt
    light = _light_alternative(best)
    if (light is not None and best_tile != first and any(c == light for _, c in scored)
            and f"{light.label()} @{best_tile}" not in timings):
        timed(light, best_tile)  # what a torch-free short run would cost: see light_extra_s_per_mp
    others = ", ".join(f"{c.path()} {s:.2f}" for s, c in path_times
                       if (c.backend, c.precision) != (best.backend, best.precision))
    quality = ""
    if best.precision == "int8":
        quality = "; " + int8_quality_ok(model)[1]
        if "int8" in checks:
            quality += "; " + checks["int8"]["reason"]
    elif best.precision == "bf16":
        quality = f"; bf16 within {FLOAT_BOUND_DB} dB (measured 0.005-0.010 dB on Set5)"
    tile_text = (f"{best_tile} px tiles" if best_tile != max(tiles)
                 else f"large tiles (>= {best_tile} px measured best)")
    close = ""
    if len(contenders) > 1 and len(tiles) > 1:
        at_large = ", ".join(f"{c.path()} {timings[k]:.2f}" for c in contenders
                             if (k := f"{c.label()} @{max(tiles)}") in timings)
        close = f"; close at {first} px, so also timed at larger tiles (at {max(tiles)} px: {at_large})"
    reason = (f"measured on {hardware.cpu_model()} ({hardware.physical_cores()} cores): {best.label()} with "
              f"{tile_text} was fastest, {best_s:.2f} s per useful MP"
              + (f"; others at {first} px tiles, s per useful MP: {others}" if others else "")
              + close + quality)
    rejected = excluded.get(INT8_LABEL, "")
    if rejected.startswith(("int8 twin rejected", "int8 loses")):
        reason += "; " + rejected  # a twin exists but may not run here: say why (dipnet info, the app)
    return EngineChoice(backend=best.backend, precision=best.precision,
                        tile=None if best_tile == max(tiles) else best_tile, tile_workers=best.tile_workers,
                        s_per_mp=best_s, reason=reason, timings=timings, excluded=excluded,
                        int8_check=checks.get("int8", {}))


def _light_alternative(choice: Candidate | EngineChoice) -> Candidate | None:
    """onnxruntime fp32 with the same threading, when ``choice`` is torch fp32 (else None)."""
    if (choice.backend, choice.precision) != ("torch", "fp32"):
        return None
    return Candidate("onnx", "fp32", choice.tile_workers)


def light_extra_s_per_mp(choice: EngineChoice) -> float | None:
    """Seconds per useful MP that onnxruntime fp32 costs over ``choice`` (torch fp32), at its tile size.

    None when ``choice`` is not torch fp32 or the two were not timed at the same tile.
    """
    light = _light_alternative(choice)
    if light is None or choice.s_per_mp is None:
        return None
    tiles = [int(k.rsplit("@", 1)[1]) for k in choice.timings if k.startswith(choice_label(choice) + " @")]
    tile = choice.tile or (max(tiles) if tiles else None)
    other = choice.timings.get(f"{light.label()} @{tile}")
    return None if other is None else max(0.0, other - choice.s_per_mp)


def choice_label(choice: EngineChoice) -> str:
    return Candidate(choice.backend, choice.precision, choice.tile_workers).label()


#: Said when a fresh measurement starts: it takes seconds the user would otherwise not understand.
MEASURING_MESSAGE = ("Measuring the fastest engine for this computer: once per model, "
                     "up to ~20 s on a 2-core CPU…")
#: Starts the line said when it is done ("Engine measured in 13 s: onnxruntime int8 ...").
MEASURED_PREFIX = "Engine measured in"
_listeners: list[Callable[[str, bool], None]] = []
_listeners_lock = threading.Lock()


def add_measurement_listener(listener: Callable[[str, bool], None]) -> Callable[[], None]:
    """Call ``listener(message, done)`` (on the measuring thread) when a fresh measurement starts and ends.

    Returns the function that removes it. The CLI prints the message; the app shows it in the
    status bar.
    """
    with _listeners_lock:
        _listeners.append(listener)

    def remove() -> None:
        with _listeners_lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return remove


def _announce(message: str, done: bool) -> None:
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(message, done)
        except Exception:  # a listener is cosmetic; the measurement goes on
            log.exception("measurement listener failed")


def choose(model: LoadedModel, runner_factory: Callable[[], Runner], *, use_cache: bool = True) -> EngineChoice:
    """The cached choice for this machine and model, or a fresh measurement (then cached)."""
    key = cache_key(model)
    if use_cache:
        cached = load_cached(key)
        if cached is not None:
            cached.cached, cached.key = True, key
            if not cached.reason.startswith("cached"):
                cached.reason = "cached: " + cached.reason
            return cached
    _announce(MEASURING_MESSAGE, False)
    t0 = time.perf_counter()
    choice = measure(model, runner_factory())
    choice.key = key
    seconds = time.perf_counter() - t0
    log.info("engine choice measured in %.1f s: %s", seconds, choice.reason)
    _announce(f"{MEASURED_PREFIX} {seconds:.0f} s: {choice_label(choice)}"
              + (f", {choice.tile} px tiles" if choice.tile else ", large tiles"), True)
    if use_cache:
        store(choice)
    return choice


def measuring_enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")
