"""Post-training int8 quantization recipes: PSNR-Y loss on Set5/Set14 and speed against fp32.

    python benchmarks/int8_ptq.py            # both models, every recipe (~10 min on 2 cores)
    python benchmarks/int8_ptq.py --quick    # built-in model, three recipes

For each model (the built-in one and the authors' weights) the grid-aware fp32 graph
the engine runs is quantized with each :class:`~dipnet_core.export.int8.Int8Recipe`,
calibrated on crops of training photos (``../shared/training-data`` and the wallpaper
training set; never Set5/Set14), and scored whole-image on Set5 and Set14 (x4, MATLAB
bicubic LR, Y channel, border 4) against the same graph in fp32. Speed: one 256x256
input, onnxruntime CPU with as many threads as physical cores, fp32 and int8 sessions
interleaved, median of the per-round ratios. The bound for shipping int8 is 0.05 dB.
Prints a table and writes ``benchmarks/results/int8_ptq.json`` with the CPU recorded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "benchmarks"))

from int8_protocol import BOUND_DB, CALIBRATION, SHARED, ort_session, score, speed_ratio, test_sets

from dipnet_core.engine import hardware
from dipnet_core.export.int8 import Int8Recipe, calibration_crops, quantize_int8

OUT_JSON = REPO / "benchmarks" / "results" / "int8_ptq.json"

BODY = ("/conv_1/", "/conv_2/", "/upsampler/")
RECIPES = {
    "naive (all ops, minmax)": Int8Recipe(float_convs=(), op_types=(), method="minmax"),
    "convs, all quantized": Int8Recipe(float_convs=()),
    "convs, first+tail float": Int8Recipe(),
    "  + minmax": Int8Recipe(method="minmax"),
    "  + entropy": Int8Recipe(method="entropy"),
    "  + percentile 99.99": Int8Recipe(percentile=99.99),
    "  + qint8 activations": Int8Recipe(activations="qint8"),
    "  + reduce_range": Int8Recipe(reduce_range=True),
    "  + per-tensor weights": Int8Recipe(per_channel=False),
    "  + ESA float": Int8Recipe(float_convs=BODY + ("/esa/",)),
    "  + ESA, c5 float": Int8Recipe(float_convs=BODY + ("/esa/", "/c5/")),
    "only c1_r/c2_r float-rest": Int8Recipe(float_convs=BODY + ("/esa/", "/c5/", "/c3_r/")),
    "only block_1 float": Int8Recipe(float_convs=BODY + ("/blocks.0/",)),
}
QUICK = ("convs, first+tail float", "  + ESA, c5 float", "  + qint8 activations")


def _grid_onnx(model: Any) -> bytes:
    from dipnet_core.export.onnx_export import onnx_to_bytes

    return onnx_to_bytes(model, grid_aware=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--crops", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from dipnet_core.models import load_model

    models = {"built-in": REPO / "resources" / "models" / "dipnet-studio-x4.safetensors",
              "authors": SHARED / "reference" / "dipnet_official_x4.pth"}
    if args.quick:
        models = {"built-in": models["built-in"]}
    recipes = {k: v for k, v in RECIPES.items() if not args.quick or k in QUICK}
    threads = hardware.physical_cores()
    crops = calibration_crops(CALIBRATION, count=args.crops)
    sets = test_sets()
    results: dict[str, Any] = {
        "cpu": hardware.cpu_model(), "cpu_flags": hardware.simd_flags(), "threads": threads,
        "calibration": {"folders": [str(p) for p in CALIBRATION], "crops": args.crops, "size": 96},
        "bound_db": BOUND_DB, "models": {},
    }
    print(f"CPU: {results['cpu']} ({' '.join(results['cpu_flags'])}), {threads} threads")
    for mname, mpath in models.items():
        fp32_bytes = _grid_onnx(load_model(mpath))
        fp32 = ort_session(fp32_bytes, threads)
        base = score(fp32, sets)
        rows = []
        print(f"\n## {mname}: fp32 Set5 {base['Set5']:.3f} dB, Set14 {base['Set14']:.3f} dB\n")
        print("| recipe | Set5 loss dB | Set14 loss dB | speed vs fp32 @256 | within bound |")
        print("|---|---:|---:|---:|:-:|")
        for rname, recipe in recipes.items():
            t0 = time.perf_counter()
            try:
                int8 = ort_session(quantize_int8(fp32_bytes, crops, recipe), threads)
            except Exception as exc:  # noqa: BLE001 - record a recipe onnxruntime rejects and go on
                rows.append({"recipe": rname, "error": str(exc)})
                print(f"| {rname} | error: {exc} | | | |")
                continue
            qtime = time.perf_counter() - t0
            scores = score(int8, sets)
            ratio, s32, s8 = speed_ratio(fp32, int8, args.rounds)
            loss = {k: base[k] - scores[k] for k in base}
            ok = all(v <= BOUND_DB for v in loss.values())
            rows.append({"recipe": rname, "spec": dataclasses.asdict(recipe), "psnr_y": scores, "loss_db": loss,
                         "speed_ratio": ratio, "fp32_s": s32, "int8_s": s8, "quantize_s": qtime, "ok": ok})
            print(f"| {rname} | {loss['Set5']:.3f} | {loss['Set14']:.3f} | {ratio:.2f}x | {'yes' if ok else 'no'} |",
                  flush=True)
        results["models"][mname] = {"path": str(mpath), "fp32_psnr_y": base, "recipes": rows}
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {OUT_JSON}")


if __name__ == "__main__":
    main()
