"""Inference speed, quality and memory of every engine setting against a plain PyTorch reference.

    python benchmarks/bench_inference.py                 # ~10-15 min on 2 cores
    python benchmarks/bench_inference.py --compile       # also torch.compile (~20 s compile per shape set)
    python benchmarks/bench_inference.py --tiling-sweep  # re-measure the tiling error table (~20 min)
    python benchmarks/bench_inference.py --quick         # one round, no 12 MP run (smoke test)

One process, torch threads = 2 (the spec machine: 2 Zen 4 cores), the same inputs for every
setting: Set5 + Set14 LR images (MATLAB bicubic x1/4 of the HR), a synthetic 512x512 and a
1200x900 mosaic of Set14 photos (large enough that every tile size really tiles it).

The reference is the plain eager PyTorch fp32 forward pass of the official architecture
(NCHW, the module exactly as loaded), whole-image and tiled with the engine's plan at each
tile size of a sweep; the best tile size is the baseline for every ratio. The machine is
shared and noisy, so settings are interleaved round by round (rotating the order) and
each ratio is the median of per-round ratios; seconds are the best round.

Quality: max abs difference (uint8 levels) and PSNR-Y between each setting's output and the
reference whole-image output on every input, and PSNR-Y against HR on Set5 (border 4).
Peak memory: VmHWM of a child process per setting upscaling a synthetic 4000x3000 (12 MP) input
to 16000x12000 (192 MP, 2.2 GB as float32), plus the end-to-end ``dipnet upscale`` run on the same
image saved as PNG.

Every result records the CPU (model name, speed-relevant flags, the full ``lscpu`` flag line) so
tables from different machines never mix. ``ours onnxruntime CPU int8`` runs the authors' network's
int8 twin, quantized at the start of the run on training-photo crops (never Set5/Set14) with its
PSNR-Y loss measured on Set5 and Set14; ``ours default (auto, measured)`` is what ``create_backend``
picks after timing the candidate paths on this machine (its reason is printed).

Prints a markdown table and writes ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dipnet_core.engine import (
    DEFAULT_OVERLAP,
    TiledUpscaler,
    create_backend,
    default_overlap,
    hardware,
    plan_tiles,
)
from dipnet_core.engine.backends.onnxruntime_backend import CPU_GRAPH_PASS_ENV
from dipnet_core.metrics import psnr
from dipnet_core.models import LoadedModel, load_model
from dipnet_core.resize import bicubic_downscale_uint8, modcrop

# DIPNET_SHARED_DIR: run from a copy of the tree (so edits cannot leak into a running benchmark).
SHARED = Path(os.environ.get("DIPNET_SHARED_DIR", REPO.parent / "shared"))
WEIGHTS = SHARED / "reference" / "dipnet_official_x4.pth"
OUT_JSON = REPO / "benchmarks" / "results" / "inference.json"


def out_json_for(kind: str) -> Path:
    """One results file per CPU kind, so a run on another kind of CPU keeps the others' results.

    The AVX-512 + bf16 results keep the original name (the README cites it since 2026-11-25).
    """
    if kind == "AVX-512 + bf16":
        return OUT_JSON
    slug = "".join(c if c.isalnum() else "_" for c in kind.lower()).strip("_")
    return OUT_JSON.with_name(f"inference_{slug}.json")
THREADS = 2
SCALE = 4
TILE_SWEEP = (128, 192, 256, 320, 384, 512)  # reference
# The reference tiles with a typical upscaler-GUI overlap: it cannot match the whole image anyway
# (see dipnet_core/engine/upscaler.py), and a small overlap makes it the strongest baseline.
REF_OVERLAP = 16
OUR_TILES = (256, 384, 512, 640, 768, 1280)  # our default path; 1280 runs the mosaic whole
FMA_BOUND_S_PER_MP = 2.3  # fp32 FMA peak of the 2 cores for 227k MACs per input pixel (the brief's figure)

Runner = Callable[[np.ndarray], np.ndarray]


# ------------------------------------------------------------------------------------------ inputs


def _to_float(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.astype(np.float32) / 255.0)


def synthetic(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Deterministic photo-like test pattern: smooth shading, oriented waves, hard-edged shapes, grain."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    img = np.empty((h, w, 3), np.float32)
    for c in range(3):
        f1, f2, ph = rng.uniform(8, 40), rng.uniform(8, 40), rng.uniform(0, 6.28)
        img[:, :, c] = 0.45 + 0.25 * np.sin(f1 * xx * 6.28 + ph) * np.cos(f2 * yy * 6.28) + 0.15 * (xx - yy)
    for _ in range(max(4, h * w // 40000)):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = y0 + int(rng.integers(4, max(5, h // 6))), x0 + int(rng.integers(4, max(5, w // 6)))
        img[y0:y1, x0:x1] = rng.uniform(0, 1, 3).astype(np.float32)
    img += rng.normal(0, 0.015, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def load_inputs() -> dict[str, list[tuple[str, np.ndarray, np.ndarray | None]]]:
    """Groups of (name, LR float32 HxWx3, HR uint8 or None)."""
    groups: dict[str, list[tuple[str, np.ndarray, np.ndarray | None]]] = {}
    for set_name in ("Set5", "Set14"):
        items = []
        for path in sorted(glob.glob(str(SHARED / "benchmarks" / set_name / "*.png"))):
            with Image.open(path) as im:
                hr = modcrop(np.asarray(im.convert("RGB")), SCALE)
            items.append((Path(path).stem, _to_float(bicubic_downscale_uint8(hr, SCALE)), hr))
        groups[set_name] = items
    groups["synthetic512"] = [("synthetic512", synthetic(512, 512), None)]
    # Real photo content at a size every tile size has to split: Set14 HR images side by side.
    tiles = []
    for path in sorted(glob.glob(str(SHARED / "benchmarks" / "Set14" / "*.png")))[:6]:
        with Image.open(path) as im:
            tiles.append(np.asarray(im.convert("RGB").resize((400, 450), Image.Resampling.LANCZOS)))
    mosaic = np.concatenate([np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:6], axis=1)], axis=0)
    groups["mosaic1200x900"] = [("mosaic1200x900", _to_float(mosaic), None)]
    return groups


# --------------------------------------------------------------------------------------- reference


class Reference:
    """Plain eager PyTorch fp32 forward of the official architecture: no engine code in the loop."""

    def __init__(self, model: LoadedModel) -> None:
        assert model.module is not None
        self.module = model.module.eval()

    def whole(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
            return np.clip(self.module(t)[0].numpy().transpose(1, 2, 0), 0.0, 1.0)

    def tiled(self, x: np.ndarray, tile: int) -> np.ndarray:
        """Naive tiling (the engine's window layout, ``REF_OVERLAP``), each window run as a whole image."""
        h, w = x.shape[:2]
        if max(h, w) <= tile:
            return self.whole(x)
        out = np.empty((SCALE * h, SCALE * w, 3), np.float32)
        for b in plan_tiles(h, w, tile, REF_OVERLAP):
            y = self.whole(x[b.y0:b.y1, b.x0:b.x1])
            cx0, cy0, cx1, cy1 = b.core_in_window()
            out[SCALE * b.core_y0:SCALE * b.core_y1, SCALE * b.core_x0:SCALE * b.core_x1] = \
                y[SCALE * cy0:SCALE * cy1, SCALE * cx0:SCALE * cx1]
        return out


# ----------------------------------------------------------------------------------------- settings


def fp16_onnx_model(model: LoadedModel, tmp: Path) -> LoadedModel:
    """Our grid-aware ONNX graph with every float tensor in fp16 (to test fp16 on onnxruntime CPU)."""
    import onnx
    from onnx import TensorProto, numpy_helper

    from dipnet_core.engine import export_onnx_bytes

    proto = onnx.load_from_string(export_onnx_bytes(model, grid_aware=True))
    graph = proto.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name)
            graph.initializer[i].CopyFrom(half)
    for vi in list(graph.input) + list(graph.output):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float16)))
    del graph.value_info[:]
    path = tmp / "dipnet_fp16.onnx"
    onnx.save(proto, str(path))
    d = model.descriptor
    from dataclasses import replace

    return LoadedModel(descriptor=replace(d, arch="onnx"), module=None, path=path)


def int8_twin_model(tmp: Path) -> tuple[LoadedModel, dict[str, Any]]:
    """The authors' weights plus their int8 twin beside them (quantized now, quality measured now)."""
    from dipnet_core.engine import export_onnx_bytes
    from dipnet_core.export.int8 import export_int8

    local = tmp / "authors.pth"
    local.write_bytes(WEIGHTS.read_bytes())
    model = load_model(local)
    t0 = time.perf_counter()
    record = export_int8(export_onnx_bytes(model, grid_aware=True), tmp / "authors.int8.onnx",
                         [SHARED / "training-data", Path("/work/datasets/wallpapers/train")],
                         eval_sets=[SHARED / "benchmarks" / "Set5", SHARED / "benchmarks" / "Set14"])
    record["quantize_and_eval_s"] = time.perf_counter() - t0
    print(f"  int8 twin: {record['recipe']}, loss {record['loss_db']}", flush=True)
    return load_model(local), record


def cpu_record() -> dict[str, Any]:
    """What decides speed here: CPU model, flags, cores, library versions (stored with every result)."""
    lscpu = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        lscpu = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Flags")), "")
    except (OSError, subprocess.SubprocessError):
        pass
    import onnxruntime

    simd = hardware.simd_flags()
    kind = "AVX-512 + bf16" if "avx512_bf16" in simd else "AVX-512" if "avx512f" in simd else \
        "AVX2" if "avx2" in simd else "other"
    return {"cpu": hardware.cpu_model(), "kind": kind, "simd_flags": simd, "vnni": hardware.has_vnni(),
            "native_bf16": hardware.has_native_bf16(), "physical_cores": hardware.physical_cores(),
            "lscpu_flags": lscpu or " ".join(sorted(hardware.cpu_flags())), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "torch_threads": THREADS}


def _add_variants(add: Callable[..., None], cpu: dict[str, str], model: LoadedModel, tmp: Path,
                  info: dict[str, Any]) -> None:
    """Layout, fusion, threading and tile-size variants (left out by ``--focus``)."""
    add("ours torch fp32 NCHW", None, backend="torch", precision="fp32", channels_last=False, **cpu)
    add("ours torch fp32 channels_last", None, backend="torch", precision="fp32", fuse=False, **cpu)
    add("ours torch bf16 NCHW", None, backend="torch", precision="bf16", channels_last=False, **cpu)
    add("ours torch bf16 channels_last", None, backend="torch", precision="bf16", fuse=False, **cpu)
    add("ours torch bf16 channels_last fused, 2-thread tiles", None, backend="torch", precision="bf16",
        tile_workers=False, **cpu)
    add("ours onnxruntime CPU fp32, 2-thread tiles", None, backend="onnx", tile_workers=False, **cpu)
    try:
        add("ours onnxruntime CPU fp16 graph", None, fp16_onnx_model(model, tmp), backend="onnx", **cpu)
    except Exception as exc:  # noqa: BLE001 - the fp16 conversion is an experiment; record why it did not run
        info["ours onnxruntime CPU fp16 graph"] = {"error": f"{type(exc).__name__}: {exc}"}
    for t in OUR_TILES:
        add(f"ours default @ tile {t}", t)


def build_settings(model: LoadedModel, ref: Reference, args: argparse.Namespace, tmp: Path
                   ) -> tuple[dict[str, Runner], dict[str, Any], list[Any]]:
    runners: dict[str, Runner] = {"reference whole-image fp32": ref.whole}
    for t in TILE_SWEEP:
        runners[f"reference tiled {t}"] = lambda x, t=t: ref.tiled(x, t)
    info: dict[str, Any] = {}
    keep: list[Any] = []

    def add(label: str, tile: int | None, other_model: LoadedModel | None = None, **kw: Any) -> None:
        try:
            backend = create_backend(other_model or model, **kw)
        except Exception as exc:  # noqa: BLE001 - report and go on: one unavailable setting must not end the run
            info[label] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {label}: unavailable ({exc})", flush=True)
            return
        up = TiledUpscaler(backend, tile_size=tile)
        keep.append(up)
        runners[label] = up.upscale
        info[label] = {"backend": backend.describe(), "tile": tile or "auto", "overlap": up.overlap or "auto",
                       "fallback": backend.fallback_reason}

    cpu = {"device": "cpu"}
    if args.focus:  # the reference's best tiles and the paths the automatic choice picks between
        for t in TILE_SWEEP:
            if t not in (256, 320, 384):
                del runners[f"reference tiled {t}"]
    else:
        _add_variants(add, cpu, model, tmp, info)
    add("ours torch fp32 channels_last fused", None, backend="torch", precision="fp32", **cpu)
    add("ours torch bf16 channels_last fused", None, backend="torch", precision="bf16", **cpu)
    add("ours onnxruntime CPU fp32", None, backend="onnx", **cpu)
    # The same path without the blocked-layout graph pass (engine/backends/cpu_graph.py), for its A/B.
    saved = os.environ.get(CPU_GRAPH_PASS_ENV)
    os.environ[CPU_GRAPH_PASS_ENV] = "0"
    add("ours onnxruntime CPU fp32, graph as exported", None, backend="onnx", **cpu)
    if saved is None:
        del os.environ[CPU_GRAPH_PASS_ENV]
    else:
        os.environ[CPU_GRAPH_PASS_ENV] = saved
    try:
        twin_model, record = int8_twin_model(tmp)
        info["int8 twin"] = record
        add("ours onnxruntime CPU int8", None, twin_model, backend="onnx", precision="int8", **cpu)
        if "ours onnxruntime CPU int8" in info and "error" not in info["ours onnxruntime CPU int8"]:
            info["ours onnxruntime CPU int8"]["int8_loss_db"] = record["loss_db"]
    except Exception as exc:  # noqa: BLE001 - calibration data may be absent on another machine
        info["ours onnxruntime CPU int8"] = {"error": f"{type(exc).__name__}: {exc}"}
        twin_model = model
    add("ours default (auto, rules)", None, measure=False)
    # The measured choice, in a fresh cache so this run measures (the twin is a candidate if within 0.05 dB).
    os.environ["DIPNET_CACHE_DIR"] = str(tmp / "choice-cache")
    add("ours default (auto, measured)", None, twin_model, measure=True)
    label = "ours default (auto, measured)"
    if label in info and "error" not in info[label]:
        backend = runners[label].__self__.backend  # type: ignore[attr-defined]
        info[label]["choice"] = backend.choice.to_json() if backend.choice else None
        print(f"  auto choice: {backend.choice.reason if backend.choice else '-'}", flush=True)
    if args.compile:
        add("ours torch bf16 compiled", None, backend="torch", precision="bf16", compile=True, **cpu)
    return runners, info, keep


# ------------------------------------------------------------------------------------------- timing


def _levels(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0)


def measure(runners: dict[str, Runner], items: list[tuple[str, str, np.ndarray, np.ndarray | None]],
            ref_out: dict[str, np.ndarray], rounds: int, failed: dict[str, str]
            ) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """Interleaved timing rounds (the order rotates each round); quality from the first round's outputs."""
    names = []
    for name in list(runners):  # warm-up: oneDNN primitives, onnxruntime plans, compiled graphs
        try:
            for _g, _n, x, _hr in items[:2]:
                runners[name](x)
            names.append(name)
        except Exception as exc:  # noqa: BLE001 - e.g. torch.compile without a working compiler
            print(f"  {name}: failed in warm-up ({type(exc).__name__}: {exc})", flush=True)
            failed[name] = f"{type(exc).__name__}: {exc}"
    times: dict[str, list[float]] = {n: [0.0] * rounds for n in names}
    acc: dict[str, dict[str, Any]] = {n: {"max_diff": 0.0, "vs_ref": [], "set5": []} for n in names}
    for r in range(rounds):
        for i, (group, item, x, hr) in enumerate(items):
            # Every setting runs each input back to back (order rotating), so a load spike on the
            # shared machine hits all settings of that input alike.
            k = (r * len(items) + i) % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                y = runners[name](x)
                times[name][r] += time.perf_counter() - t0
                if r == 0:  # metrics outside the timed region
                    yl, a = _levels(y), acc[name]
                    a["max_diff"] = max(a["max_diff"], float(np.abs(yl - ref_out[item]).max()))
                    a["vs_ref"].append(min(psnr(yl, ref_out[item], border=SCALE), 99.0))
                    if group == "Set5" and hr is not None:
                        a["set5"].append(psnr(yl, hr.astype(np.float64), border=SCALE))
        print(f"  round {r + 1}/{rounds} done ({time.strftime('%X')}, load {os.getloadavg()[0]:.1f})", flush=True)
    quality = {n: {"max_abs_diff_levels": a["max_diff"], "min_psnr_y_vs_ref_db": min(a["vs_ref"]),
                   "set5_psnr_y_db": float(np.mean(a["set5"]))} for n, a in acc.items()}
    return times, quality


# ------------------------------------------------------------------------------------- 12 MP memory


def _child_memory(mode: str) -> None:
    """Run in a child process: upscale a synthetic 4000x3000 input, print peak RSS as JSON."""
    torch.set_num_threads(THREADS)
    model = load_model(WEIGHTS)
    x = synthetic(3000, 4000, seed=1)
    base = _rss()
    t0 = time.perf_counter()
    if mode == "reference":
        Reference(model).tiled(x, int(os.environ.get("BENCH_REF_TILE", "256")))
        label = f"reference tiled {os.environ.get('BENCH_REF_TILE', '256')}"
    else:
        backend = create_backend(model)
        up = TiledUpscaler(backend)
        up.upscale(x)
        label = backend.describe() + f", tile {up.tile_size_for(3000, 4000)}"
    seconds = time.perf_counter() - t0
    print(json.dumps({"mode": label, "seconds": seconds, "peak_rss_mb": (hardware.peak_rss_bytes() or 0) / 2**20,
                      "rss_before_mb": base / 2**20,
                      "output_float32_mb": 3000 * 4000 * SCALE * SCALE * 3 * 4 / 2**20}))


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure_memory(ref_tile: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    env = dict(os.environ, BENCH_REF_TILE=str(ref_tile))
    for mode in ("reference", "default"):
        proc = subprocess.run([sys.executable, __file__, "--child-memory", mode], capture_output=True, text=True,
                              env=env, check=False)
        try:
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            results[mode] = {"error": proc.stderr[-2000:]}
        print(f"  12 MP {mode}: {results[mode]}", flush=True)
    results["cli"] = measure_cli()
    return results


def measure_cli() -> dict[str, Any]:
    try:
        import dipnet_core.cli  # noqa: F401
    except ImportError as exc:
        print(f"  dipnet CLI not available ({exc}); skipping the end-to-end run", flush=True)
        return {"skipped": str(exc)}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in12mp.png", Path(tmp) / "out.png"
        Image.fromarray((synthetic(3000, 4000, seed=1) * 255 + 0.5).astype(np.uint8)).save(src, compress_level=1)
        cmd = [sys.executable, "-m", "dipnet_core", "upscale", str(src), "-o", str(dst), "--model", str(WEIGHTS),
               "--overwrite"]
        log_path = Path(tmp) / "cli.log"
        with log_path.open("w") as log_file:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
            # wait4 gives this child's own peak RSS (getrusage(RUSAGE_CHILDREN) would mix in the others).
            _pid, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)
        ok = proc.returncode == 0 and dst.exists()
        result = {"command": "dipnet upscale in12mp.png -o out.png --model dipnet_official_x4.pth",
                  "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "ok": ok,
                  "output_bytes": dst.stat().st_size if dst.exists() else 0}
        if not ok:
            result["log"] = log_path.read_text()[-2000:]
        print(f"  dipnet upscale 12 MP: {result}", flush=True)
        return result


# ------------------------------------------------------------------------------------- tiling error


def tiling_sweep(model: LoadedModel, configs: list[tuple[int, int]]) -> dict[str, Any]:
    """Worst tiled-vs-whole difference over all Set5+Set14 HR images used as inputs, fp32, per (tile, overlap)."""
    backend = create_backend(model, backend="torch", device="cpu", precision="fp32")
    whole_up = TiledUpscaler(backend, tile_size=4096)
    worst: dict[str, dict[str, Any]] = {}
    for path in sorted(glob.glob(str(SHARED / "benchmarks" / "Set*" / "*.png"))):
        with Image.open(path) as im:
            x = _to_float(np.asarray(im.convert("RGB")))
        whole = whole_up.upscale(x)
        for tile, ov in configs:
            y = TiledUpscaler(backend, tile_size=tile, overlap=ov).upscale(x)
            d = float(np.abs(y - whole).max() * 255)
            dq = float(np.abs(_levels(y) - _levels(whole)).max())
            w = worst.setdefault(f"tile {tile} overlap {ov}", {"float_levels": 0.0, "uint8_levels": 0.0, "at": ""})
            if d > w["float_levels"]:
                w.update(float_levels=d, at=Path(path).name)
            w["uint8_levels"] = max(w["uint8_levels"], dq)
        print(f"  tiling sweep: {Path(path).name} ({time.strftime('%X')})", flush=True)
    return {"inputs": "Set5+Set14 HR images as model inputs (228-768 px)", "precision": "fp32", "worst": worst}


# --------------------------------------------------------------------------------------------- main


def run_speed(model: LoadedModel, args: argparse.Namespace, all_items: list[Any], mp: float, macs: int
              ) -> dict[str, Any]:
    ref = Reference(model)
    with tempfile.TemporaryDirectory() as tmp:
        runners, info, keep = build_settings(model, ref, args, Path(tmp))
        rounds = 1 if args.quick else args.rounds
        print(f"timing {len(runners)} settings x {rounds} rounds", flush=True)
        ref_out = {n: _levels(ref.whole(x)) for _g, n, x, _hr in all_items}
        failed: dict[str, str] = {}
        times, quality = measure(runners, all_items, ref_out, rounds, failed)
        for name, err in failed.items():
            info[name] = {"error": err}
        for up in keep:
            up.close()
    ref_tiled = {n: min(v) for n, v in times.items() if n.startswith("reference tiled")}
    best_ref = min(ref_tiled, key=ref_tiled.__getitem__)
    ref_set5 = quality["reference whole-image fp32"]["set5_psnr_y_db"]
    rows = []
    for name, ts in times.items():
        ratios = [times[best_ref][i] / ts[i] for i in range(len(ts))]
        s_per_mp = min(ts) / mp
        rows.append({
            "setting": name, "s_per_mp": s_per_mp, "ratio_vs_best_tiled_ref": statistics.median(ratios),
            "useful_gmac_per_s": macs * 1e6 / s_per_mp / 1e9, "fraction_of_fp32_fma_bound": FMA_BOUND_S_PER_MP / s_per_mp,
            **quality[name], "set5_psnr_loss_db": ref_set5 - quality[name]["set5_psnr_y_db"],
            "all_round_seconds": ts, **info.get(name, {}),
        })
    return {"baseline": best_ref, "settings": rows, "int8_twin": info.get("int8 twin"),
            "errors": {k: v["error"] for k, v in info.items() if "error" in v}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="include torch.compile (slow to compile)")
    ap.add_argument("--quick", action="store_true", help="one round, no 12 MP and no sweep")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--focus", action="store_true",
                    help="only the reference at tiles 256/320/384 and the paths the automatic choice picks "
                         "between, on Set5 + Set14 + the mosaic (for a loaded machine)")
    ap.add_argument("--skip-speed", action="store_true", help="keep the speed table of the previous JSON")
    ap.add_argument("--tiling-sweep", action="store_true", help="re-measure the tiling error table")
    ap.add_argument("--tiling-configs", default="",
                    help="tile/overlap pairs for --tiling-sweep, e.g. 128/40,256/32 (default: each tile size "
                         "128..384 at its default overlap and 4 px less, and 512, 640 at theirs)")
    ap.add_argument("--child-memory", choices=("reference", "default"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_memory:
        _child_memory(args.child_memory)
        return
    torch.set_num_threads(THREADS)
    model = load_model(WEIGHTS)
    macs = model.module.config.macs_per_input_pixel()  # type: ignore[union-attr]
    groups = load_inputs()
    if args.focus:
        groups.pop("synthetic512", None)
    all_items = [(g, n, x, hr) for g, items in groups.items() for n, x, hr in items]
    inputs = [x for _g, _n, x, _hr in all_items]
    mp = sum(x.shape[0] * x.shape[1] for x in inputs) / 1e6
    print(f"{len(inputs)} inputs, {mp:.3f} input MP per pass; torch {torch.__version__}, threads {THREADS}, "
          f"native bf16 {hardware.has_native_bf16()}", flush=True)

    machine = {**cpu_record(), "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out_json = out_json_for(machine["kind"])
    previous = json.loads(out_json.read_text()) if out_json.exists() else {}
    print(f"CPU: {machine['cpu']} ({machine['kind']}; {' '.join(machine['simd_flags'])}), "
          f"{machine['physical_cores']} cores", flush=True)
    result: dict[str, Any] = {
        "machine": machine,
        "inputs": {g: [n for n, _x, _h in items] for g, items in groups.items()},
        "input_megapixels_per_pass": mp, "macs_per_input_pixel": macs, "default_overlap": DEFAULT_OVERLAP,
        "reference_overlap": REF_OVERLAP,
    }
    if args.skip_speed and "settings" in previous:
        for key in ("baseline", "settings", "errors"):
            result[key] = previous.get(key)
    else:
        result.update(run_speed(model, args, all_items, mp, macs))
        for row in result["settings"]:  # each row names its CPU, so rows copied elsewhere stay attributable
            row["cpu"], row["cpu_kind"], row["simd_flags"] = machine["cpu"], machine["kind"], machine["simd_flags"]

    if args.tiling_sweep:
        print("tiling sweep", flush=True)
        if args.tiling_configs:
            configs = [(int(t), int(o)) for t, o in (c.split("/") for c in args.tiling_configs.split(","))]
        else:
            configs = [(t, default_overlap(t) - d) for t in (128, 192, 256, 320, 384) for d in (0, 4)]
            configs += [(t, default_overlap(t)) for t in (512, 640)]  # the CPU default sizes
        result["tiling_error"] = tiling_sweep(model, configs)
    elif "tiling_error" in previous:
        result["tiling_error"] = previous["tiling_error"]
    if not (args.quick or args.skip_memory):
        print("12 MP memory runs", flush=True)
        result["memory_12mp"] = measure_memory(int(result["baseline"].rsplit(" ", 1)[1]))
    elif "memory_12mp" in previous:
        result["memory_12mp"] = previous["memory_12mp"]

    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1))
    print_table(result)


def print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"\nCPU: {m.get('cpu')} ({m.get('kind', '?')}: {' '.join(m.get('simd_flags', []))}), "
          f"{m.get('physical_cores')} physical cores, {m.get('date')}")
    print(f"baseline: {result['baseline']}  ({result['input_megapixels_per_pass']:.3f} input MP per pass, "
          f"torch threads {result['machine']['torch_threads']})\n")
    print("| setting | s/MP | x vs best-tiled ref | max diff (levels) | min PSNR-Y vs ref (dB) "
          "| Set5 PSNR-Y (dB) | loss (dB) | % of fp32 FMA bound |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in result["settings"]:
        print(f"| {r['setting']} | {r['s_per_mp']:.2f} | {r['ratio_vs_best_tiled_ref']:.2f} | "
              f"{r['max_abs_diff_levels']:.0f} | {r['min_psnr_y_vs_ref_db']:.1f} | {r['set5_psnr_y_db']:.3f} | "
              f"{r['set5_psnr_loss_db']:.3f} | {100 * r['fraction_of_fp32_fma_bound']:.0f}% |")
    for name, err in result.get("errors", {}).items():
        print(f"- {name}: not run ({err[:200]})")
    twin = result.get("int8_twin")
    if twin:
        print(f"\nint8 twin ({twin['recipe']}): PSNR-Y {json.dumps(twin['psnr_y'])}, loss {json.dumps(twin['loss_db'])}")
    for r in result["settings"]:
        if r.get("choice"):
            print(f"auto choice: {r['choice']['reason']}")
    te = result.get("tiling_error")
    if te:
        print("\ntiling error, worst over", te["inputs"])
        print("| tile, overlap | worst float diff (levels) | worst uint8 diff (levels) | where |")
        print("|---|---:|---:|---|")
        for k, v in te["worst"].items():
            print(f"| {k} | {v['float_levels']:.3f} | {v['uint8_levels']:.0f} | {v['at']} |")
    mem = result.get("memory_12mp")
    if mem:
        print("\n12 MP input (4000x3000 -> 16000x12000), separate processes:")
        for k, v in mem.items():
            print(f"- {k}: {json.dumps(v)}")


if __name__ == "__main__":
    main()
