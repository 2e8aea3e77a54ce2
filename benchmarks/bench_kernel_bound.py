"""How fast could any tiler be with this CPU's convolution kernels? (issue 19's compute target)

    python benchmarks/bench_kernel_bound.py               # ~5 min on 2 cores
    python benchmarks/bench_kernel_bound.py --rounds 5

The compute target of issue 19 is a ratio: the authors' network through ``dipnet upscale``'s engine
against the authors' plain PyTorch code at its best tile. Our engine pays for things the bare
kernels do not: overlap between tiles (32-48 px a side, for results within 1/255 of the whole
image), the grid-aware ESA resize, copying windows in and cores out, and small images that cannot
keep both cores busy. This benchmark measures the *kernel bound*: the same fp32 graph the engine
runs on this CPU (blocked-layout pass included, the plain one-input graph), fed the same pixels
cut into non-overlapping windows of one size, one window per core (a single-window image is cut
in two), nothing assembled. No tiler built on these kernels can beat it, so ``reference / bound``
is the most the engine could reach here. Its output is *not* a valid upscale (seams); it is a
timing bound only.

Settings, interleaved input by input with the order rotating (the machine is shared and noisy):
the reference at tiles 256/320/384 (the best one per round is the baseline), the engine's
measured automatic choice (``create_backend`` defaults), and the kernel bound at windows of
192/256/384 px. Ratios are medians of per-round ratios. Every result records the CPU
(``bench_inference.cpu_record``). Prints a markdown table and writes
``benchmarks/results/kernel_bound.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import FMA_BOUND_S_PER_MP, THREADS, WEIGHTS, Reference, cpu_record, load_inputs

from dipnet_core.engine import TiledUpscaler, create_backend, export_onnx_bytes
from dipnet_core.engine.backends.cpu_graph import optimize_for_cpu
from dipnet_core.engine.tiling import plan_tiles
from dipnet_core.io.atomic import atomic_write_text
from dipnet_core.models import load_model

REF_TILES = (256, 320, 384)
BOUND_WINDOWS = (192, 256, 384)


def windows(h: int, w: int, size: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping windows (x0, y0, x1, y1) of at most ``size`` px; one window is cut in two."""
    boxes = [b.window for b in plan_tiles(h, w, size, 0)]
    if len(boxes) == 1:
        if w >= h:
            boxes = [(0, 0, w // 2, h), (w // 2, 0, w, h)]
        else:
            boxes = [(0, 0, w, h // 2), (0, h // 2, w, h)]
    return boxes


class KernelBound:
    """The engine's CPU graph on non-overlapping windows, one session thread per core, nothing assembled."""

    def __init__(self, graph: bytes, workers: int) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.session = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.pool = ThreadPoolExecutor(workers)

    def _run(self, x: np.ndarray, box: tuple[int, int, int, int]) -> None:
        x0, y0, x1, y1 = box
        window = np.ascontiguousarray(x[y0:y1, x0:x1].transpose(2, 0, 1)[None])
        self.session.run(None, {self.input: window})

    def runner(self, size: int) -> Any:
        def run(x: np.ndarray) -> None:
            list(self.pool.map(lambda b: self._run(x, b), windows(x.shape[0], x.shape[1], size)))
        return run


def measure(runners: dict[str, Any], items: list[np.ndarray], rounds: int) -> dict[str, list[float]]:
    names = list(runners)
    for name in names:  # warm-up: session plans, oneDNN primitives, the automatic choice's cache
        for x in items[:2]:
            runners[name](x)
    times = {n: [0.0] * rounds for n in names}
    for r in range(rounds):
        for i, x in enumerate(items):
            k = (r * len(items) + i) % len(names)
            for name in names[k:] + names[:k]:
                t0 = time.perf_counter()
                runners[name](x)
                times[name][r] += time.perf_counter() - t0
        print(f"  round {r + 1}/{rounds} done ({time.strftime('%X')}, load {os.getloadavg()[0]:.1f})", flush=True)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "kernel_bound.json")
    args = ap.parse_args(argv)
    if not WEIGHTS.is_file():
        print(f"error: the authors' weights are missing: {WEIGHTS}", file=sys.stderr)
        return 2
    torch.set_num_threads(THREADS)
    model = load_model(WEIGHTS)
    ref = Reference(model)
    backend = create_backend(model)  # the measured automatic choice, as `dipnet upscale` makes it
    engine = TiledUpscaler(backend)
    graph, graph_pass = optimize_for_cpu(export_onnx_bytes(model, grid_aware=False))
    bound = KernelBound(graph, workers=THREADS)

    runners: dict[str, Any] = {f"reference tiled {t}": (lambda x, t=t: ref.tiled(x, t)) for t in REF_TILES}
    runners["ours (dipnet upscale's engine)"] = engine.upscale
    for size in BOUND_WINDOWS:
        runners[f"kernel bound, {size} px windows"] = bound.runner(size)
    items = [x for group in load_inputs().values() for _name, x, _hr in group]
    mp = sum(x.shape[0] * x.shape[1] for x in items) / 1e6
    print(f"CPU: {cpu_record()['cpu']}; engine: {backend.describe()}; graph pass: {graph_pass}; "
          f"{len(items)} inputs, {mp:.2f} MP per round", flush=True)
    times = measure(runners, items, args.rounds)

    best_ref = [min(times[f"reference tiled {t}"][r] for t in REF_TILES) for r in range(args.rounds)]
    rows: dict[str, Any] = {}
    for name, ts in times.items():
        rows[name] = {"s_per_mp": min(ts) / mp,
                      "ratio_vs_best_ref": statistics.median(b / t for b, t in zip(best_ref, ts, strict=True))}
    bounds = {n: r for n, r in rows.items() if n.startswith("kernel bound")}
    best_bound = max(bounds, key=lambda n: bounds[n]["ratio_vs_best_ref"])
    ours = rows["ours (dipnet upscale's engine)"]
    ref_s = min(best_ref) / mp
    summary = {
        "reference_best_s_per_mp": ref_s,
        "ours_ratio": ours["ratio_vs_best_ref"],
        "kernel_bound_ratio": bounds[best_bound]["ratio_vs_best_ref"],
        "kernel_bound_setting": best_bound,
        "engine_share_of_bound": ours["ratio_vs_best_ref"] / bounds[best_bound]["ratio_vs_best_ref"],
        "fma_bound_ratio": ref_s / FMA_BOUND_S_PER_MP,
        "target_ratio": 2.5 if "avx512_bf16" not in cpu_record()["simd_flags"] else 3.5,
    }
    print("\n| setting | s/MP (best round) | vs reference's best tile (median of rounds) |")
    print("|---|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['s_per_mp']:.2f} | {r['ratio_vs_best_ref']:.2f}x |")
    print(f"| fp32 FMA peak of {THREADS} cores ({FMA_BOUND_S_PER_MP} s/MP) | {FMA_BOUND_S_PER_MP:.2f} | "
          f"{summary['fma_bound_ratio']:.2f}x |")
    print(f"\nours {summary['ours_ratio']:.2f}x; kernel bound {summary['kernel_bound_ratio']:.2f}x "
          f"({best_bound}); the engine reaches {summary['engine_share_of_bound']:.0%} of the bound; "
          f"target {summary['target_ratio']}x")
    reason = backend.choice.reason if backend.choice else None
    record = {"cpu": cpu_record(), "engine": backend.describe(), "engine_reason": reason,
              "graph_pass": graph_pass, "rounds": args.rounds, "megapixels_per_round": mp,
              "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg()[0],
              "rows": rows, "seconds_per_round": times, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
