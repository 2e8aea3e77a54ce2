"""Quantization-aware fine-tuning (QAT) for int8: PSNR-Y loss on Set5/Set14 and speed against fp32.

    python benchmarks/int8_qat.py authors --steps 1000          # the authors' weights
    python benchmarks/int8_qat.py builtin --steps 600 --all-convs

For one model: fine-tune with :func:`dipnet_core.train.qat.export_qat_int8` (crops of
the training photos; checkpoint in ``out/qat-<model>.ckpt``, so a stopped run resumes),
write its int8 twin to ``out/<model>.qat.int8.onnx`` and score it whole-image on
Set5 and Set14 (x4, MATLAB bicubic LR, Y, border 4) against the ORIGINAL model's
fp32 graph; the post-training twin of the same recipe is scored beside it. Speed:
one 256x256 input, onnxruntime CPU, fp32 and int8 sessions interleaved, median of the
per-round ratios (``benchmarks/int8_ptq.py``'s protocol). Prints a table and merges
the result into ``benchmarks/results/int8_qat.json`` with the CPU and its flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from int8_protocol import BOUND_DB, CALIBRATION, SHARED, ort_session, score, speed_ratio, test_sets

from dipnet_core.engine import hardware
from dipnet_core.export.int8 import DEFAULT_RECIPE, export_int8, read_int8_quality

OUT_JSON = REPO / "benchmarks" / "results" / "int8_qat.json"
MODELS = {"builtin": REPO / "resources" / "models" / "dipnet-studio-x4.safetensors",
          "authors": SHARED / "reference" / "dipnet_official_x4.pth"}
TRAIN_DIRS = [str(SHARED / "training-data"), os.environ.get("DIPNET_WALLPAPERS_DIR", "/work/datasets/wallpapers/train")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--range-lr", type=float, default=5e-4)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads while fine-tuning")
    parser.add_argument("--all-convs", action="store_true", help="quantize the first conv and the tail too")
    parser.add_argument("--also-float", nargs="+", default=[], metavar="PART",
                        help="conv node names containing PART stay float too (mixed precision), e.g. /c5/")
    parser.add_argument("--no-reduce-range", action="store_true", help="8-bit weights (saturate on non-VNNI CPUs)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "out")
    args = parser.parse_args()

    import torch

    from dipnet_core.export.onnx_export import onnx_to_bytes
    from dipnet_core.models import load_model
    from dipnet_core.train import events as ev
    from dipnet_core.train.qat import QATConfig, export_qat_int8

    torch.set_num_threads(args.threads)
    recipe = dataclasses.replace(DEFAULT_RECIPE, reduce_range=not args.no_reduce_range,
                                 float_convs=(() if args.all_convs else DEFAULT_RECIPE.float_convs)
                                 + tuple(args.also_float))
    tag = (args.model + ("-all" if args.all_convs else "") + ("-mixed" if args.also_float else "")
           + ("-8bit" if args.no_reduce_range else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    twin = args.out / f"{tag}.qat.int8.onnx"
    loaded = load_model(MODELS[args.model])
    cfg = QATConfig(steps=args.steps, lr=args.lr, range_lr=args.range_lr, lr_patch=args.patch, batch=args.batch,
                    train_dirs=TRAIN_DIRS, threads=args.threads, log_every=50)
    printer = ev.ProgressPrinter()
    t0 = time.perf_counter()
    eval_sets = [SHARED / "benchmarks" / "Set5", SHARED / "benchmarks" / "Set14"]
    record = export_qat_int8(loaded.module, twin, cfg, [Path(d) for d in CALIBRATION], eval_sets, recipe,
                             descriptor=loaded.descriptor, checkpoint=args.out / f"qat-{tag}.ckpt", callback=printer)
    qat_s = time.perf_counter() - t0
    assert read_int8_quality(twin.read_bytes()) == record

    threads = hardware.physical_cores()
    fp32_bytes = onnx_to_bytes(loaded.module, grid_aware=True)
    ptq = args.out / f"{tag}.ptq.int8.onnx"
    ptq_record = export_int8(fp32_bytes, ptq, CALIBRATION, eval_sets, recipe, scale=4)
    fp32 = ort_session(fp32_bytes, threads)
    sets = test_sets()
    base = score(fp32, sets)
    rows = {}
    for name, path, rec in (("PTQ", ptq, ptq_record), ("QAT", twin, record)):
        session = ort_session(path.read_bytes(), threads)
        ratio, s32, s8 = speed_ratio(fp32, session, args.rounds)
        rows[name] = {"loss_db": rec["loss_db"], "psnr_y": rec["psnr_y"], "speed_ratio": ratio, "fp32_s": s32,
                      "int8_s": s8, "ok": all(v <= BOUND_DB for v in rec["loss_db"].values())}
    print(f"\nCPU: {hardware.cpu_model()} ({' '.join(hardware.simd_flags())}), {threads} threads")
    print(f"{args.model}: fp32 Set5 {base['Set5']:.3f} dB, Set14 {base['Set14']:.3f} dB; recipe {recipe.label()}\n")
    print("| twin | Set5 loss dB | Set14 loss dB | speed vs fp32 @256 | within 0.05 dB |")
    print("|---|---:|---:|---:|:-:|")
    for name, r in rows.items():
        print(f"| {name} | {r['loss_db']['Set5']:.3f} | {r['loss_db']['Set14']:.3f} | {r['speed_ratio']:.2f}x "
              f"| {'yes' if r['ok'] else 'no'} |")
    results: dict[str, Any] = json.loads(OUT_JSON.read_text()) if OUT_JSON.exists() else {}
    results[tag] = {
        "cpu": hardware.cpu_model(), "cpu_flags": hardware.simd_flags(), "threads": threads,
        "date": time.strftime("%Y-%m-%d %H:%M"), "model": str(MODELS[args.model]), "recipe": recipe.label(),
        "qat": {**dataclasses.asdict(cfg), "seconds": round(qat_s, 1), "record": record["qat"]},
        "fp32_psnr_y": base, "twins": rows, "twin_path": str(twin), "twin_bytes": twin.stat().st_size,
    }
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {twin} and {OUT_JSON}")


if __name__ == "__main__":
    main()
