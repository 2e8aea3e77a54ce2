"""The built-in model against bicubic and the authors' released weights, measured in one run.

Usage: python benchmarks/bench_default_model.py [--model FILE] [--rounds 5]

Quality: the standard x4 protocol of ``dipnet_core.eval`` (MATLAB bicubic
LR, PSNR/SSIM on Y with a 4 px border) on Set5 and Set14 from ``../shared``,
for bicubic, the built-in model (torch fp32, and its ONNX twin on
onnxruntime) and the official DIPNet weights.

Speed: both fused models run interleaved, round by round (order rotated), so a
busy shared machine slows them alike. Two paths are timed: the bare fp32
module on a 256x256 input (architecture cost alone) and the app's default
engine (``create_backend`` auto + ``TiledUpscaler``) on the Set14 LR images
(what a user waits for). The minimum over rounds is the trustworthy column;
ratios are ours / official (below 1 = ours is faster).

Writes benchmarks/results/default_model.json and prints the tables the model
card quotes (``resources/models/README.md``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dipnet_core.engine import TiledUpscaler, create_backend
from dipnet_core.eval import evaluate
from dipnet_core.image_folder import read_rgb_uint8, scan_images
from dipnet_core.models import load_model
from dipnet_core.models.dipnet import count_parameters
from dipnet_core.resize import bicubic_downscale_uint8, modcrop
from dipnet_core.resources import NO_BUILTIN_MODEL, builtin_model_path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
OFFICIAL = SHARED / "reference" / "dipnet_official_x4.pth"
SETS = ("Set5", "Set14")


def quality(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in SETS:
        r = evaluate(path, SHARED / "benchmarks" / name, scale=4)
        out[name] = {"mean": r["mean"], "images": r["images"]}
    return out


def _interleaved(runs: dict[str, Any], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each runner, one call of each per round, order rotated each round."""
    names = list(runs)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t0 = time.perf_counter()
            runs[n]()
            if r >= warmup:
                times[n].append(time.perf_counter() - t0)
    return times


def speed(models: dict[str, Path], rounds: int, size: int) -> dict[str, Any]:
    loaded = {k: load_model(p) for k, p in models.items()}
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))

    def bare(module: torch.nn.Module) -> Any:
        def run() -> None:
            with torch.inference_mode():
                module(x)
        return run

    bare_times = _interleaved({k: bare(m.module.eval()) for k, m in loaded.items()}, rounds)
    mp_bare = size * size / 1e6

    lr_images = []
    for p in scan_images([SHARED / "benchmarks" / "Set14"], min_side=64)[0]:
        hr = modcrop(read_rgb_uint8(p), 4)
        lr_images.append(bicubic_downscale_uint8(hr, 4).astype(np.float32) / 255.0)
    mp_engine = sum(im.shape[0] * im.shape[1] for im in lr_images) / 1e6
    backends = {k: create_backend(m) for k, m in loaded.items()}
    upscalers = {k: TiledUpscaler(b) for k, b in backends.items()}

    def engine(up: TiledUpscaler) -> Any:
        def run() -> None:
            for im in lr_images:
                up.upscale(im)
        return run

    engine_times = _interleaved({k: engine(u) for k, u in upscalers.items()}, rounds)

    def summary(times: dict[str, list[float]], mp: float) -> dict[str, Any]:
        rows = {k: {"min_s_per_mp": min(v) / mp, "median_s_per_mp": statistics.median(v) / mp,
                    "samples_s": v} for k, v in times.items()}
        base = rows["official"]
        for k, row in rows.items():
            row["ratio_min_vs_official"] = row["min_s_per_mp"] / base["min_s_per_mp"]
            row["ratio_median_vs_official"] = row["median_s_per_mp"] / base["median_s_per_mp"]
        return rows

    return {
        "bare_fp32_module": {"input": f"{size}x{size}", "threads": torch.get_num_threads(),
                             **summary(bare_times, mp_bare)},
        "default_engine": {"input": f"Set14 LR ({len(lr_images)} images, {mp_engine:.3f} MP)",
                           "backend": {k: b.describe() for k, b in backends.items()},
                           **summary(engine_times, mp_engine)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the built-in model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=256, help="bare-module input size")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "default_model.json")
    args = ap.parse_args(argv)
    ours = args.model or builtin_model_path()
    if ours is None:
        print(f"error: {NO_BUILTIN_MODEL}", file=sys.stderr)
        return 2
    if not OFFICIAL.exists():
        print(f"error: the official weights are missing at '{OFFICIAL}'", file=sys.stderr)
        return 2
    ours = Path(ours)
    twin = ours.with_suffix(".onnx")

    result: dict[str, Any] = {"model": str(ours.relative_to(REPO) if ours.is_relative_to(REPO) else ours),
                              "machine": platform.processor() or platform.machine(),
                              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    info = {}
    for key, path in (("ours", ours), ("official", OFFICIAL)):
        m = load_model(path)
        info[key] = {"widths": m.module.config.widths_label(), "config": m.descriptor.config,
                     "params": count_parameters(m.module),
                     "macs_per_input_pixel": m.module.config.macs_per_input_pixel()}
    result["models"] = info

    q = {"ours": quality(ours), "official": quality(OFFICIAL)}
    if twin.exists():
        q["ours_onnx"] = quality(twin)
    result["quality"] = q

    print(f"{'':>18} | " + " | ".join(f"{s} PSNR-Y  SSIM-Y" for s in SETS))
    rows = [("bicubic", {s: (q['ours'][s]['mean']['bicubic_psnr_y'], q['ours'][s]['mean']['bicubic_ssim_y'])
                         for s in SETS})]
    for key in q:
        rows.append((key, {s: (q[key][s]['mean']['psnr_y'], q[key][s]['mean']['ssim_y']) for s in SETS}))
    for label, vals in rows:
        print(f"{label:>18} | " + " | ".join(f"{vals[s][0]:>11.3f} {vals[s][1]:>7.4f}" for s in SETS))
    margin = {s: q["ours"][s]["mean"]["psnr_y"] - q["ours"][s]["mean"]["bicubic_psnr_y"] for s in SETS}
    gap = {s: q["official"][s]["mean"]["psnr_y"] - q["ours"][s]["mean"]["psnr_y"] for s in SETS}
    result["margin_over_bicubic_db"] = margin
    result["gap_to_official_db"] = gap
    print("margin over bicubic: " + ", ".join(f"{s} {margin[s]:+.3f} dB" for s in SETS)
          + " | below official: " + ", ".join(f"{s} {gap[s]:.3f} dB" for s in SETS))

    result["speed"] = speed({"ours": ours, "official": OFFICIAL}, args.rounds, args.size)
    for path_name, rows_ in result["speed"].items():
        print(f"{path_name}: {rows_['input']}")
        for key in ("ours", "official"):
            r = rows_[key]
            print(f"  {key:>9}: min {r['min_s_per_mp']:.3f} s/MP (x{r['ratio_min_vs_official']:.2f}), "
                  f"median {r['median_s_per_mp']:.3f} s/MP (x{r['ratio_median_vs_official']:.2f})")
    for key, m in info.items():
        print(f"{key}: widths {m['widths']}, {m['params']} params, {m['macs_per_input_pixel']} MACs/px")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
