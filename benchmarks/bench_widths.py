"""CPU latency of DIPNet width configs, relative to the official 44/38.

Usage: python benchmarks/bench_widths.py [--size 256] [--threads 2] [--rounds 8]

All models are built once and run interleaved (one forward of each config per
round), so background load hits every config alike. Reported per config: the
minimum and median wall time and the median process CPU time (all threads),
each in seconds per input megapixel. On a shared machine the minimum wall time
and the CPU time are the trustworthy columns. Writes benchmarks/results/widths.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from dipnet_core.models.dipnet import DIPNet, DIPNetConfig, count_parameters

WIDTHS = [(44, 38), (48, 32), (48, 48), (32, 32), (64, 64), (56, 40)]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "widths.json")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    configs = {f"{f}/{m}": DIPNetConfig.uniform(f, m) for f, m in WIDTHS}
    models = {k: DIPNet(c).eval() for k, c in configs.items()}
    x = torch.rand(1, 3, args.size, args.size)
    mp = args.size * args.size / 1e6
    wall: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    with torch.inference_mode():
        for r in range(args.warmup + args.rounds):
            for label, model in models.items():
                w0, c0 = time.perf_counter(), time.process_time()
                model(x)
                w1, c1 = time.perf_counter(), time.process_time()
                if r >= args.warmup:
                    wall[label].append((w1 - w0) / mp)
                    cpu[label].append((c1 - c0) / mp)

    def stats(label: str) -> dict[str, float]:
        return {"wall_min": min(wall[label]), "wall_median": statistics.median(wall[label]),
                "cpu_median": statistics.median(cpu[label])}

    base = stats("44/38")
    base_macs = configs["44/38"].macs_per_input_pixel()
    print(f"{args.size}x{args.size}, {args.threads} threads, {args.rounds} rounds, torch {torch.__version__}")
    print(f"{'widths':>7} {'params':>7} {'MACs/px':>8} {'MACs x':>6} | {'min s/MP':>8} {'x':>5} | "
          f"{'med s/MP':>8} {'x':>5} | {'cpu s/MP':>8} {'x':>5}")
    rows = []
    for label, cfg in configs.items():
        s = stats(label)
        params = count_parameters(models[label])
        macs = cfg.macs_per_input_pixel()
        ratios = {k: s[k] / base[k] for k in s}
        rows.append({"widths": label, "config": cfg.to_dict(), "params": params, "macs_per_pixel": macs,
                     "s_per_mp": s, "ratio_to_official": ratios,
                     "wall_samples_s_per_mp": wall[label], "cpu_samples_s_per_mp": cpu[label]})
        print(f"{label:>7} {params:>7} {macs:>8} {macs / base_macs:>6.2f} | {s['wall_min']:>8.3f} "
              f"{ratios['wall_min']:>5.2f} | {s['wall_median']:>8.3f} {ratios['wall_median']:>5.2f} | "
              f"{s['cpu_median']:>8.3f} {ratios['cpu_median']:>5.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "size": args.size, "threads": args.threads, "rounds": args.rounds, "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(), "cpu_count": torch.get_num_threads(),
        "results": rows,
    }, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
