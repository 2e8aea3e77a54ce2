"""How much closer to the true HR the x8 self-ensemble brings the teacher's enhanced-HR targets, and its cost.

Usage: python benchmarks/teacher_ensemble_targets.py [--teacher FILE] [--repeats 5]

``distill.teacher_self_ensemble`` replaces the enhanced-HR target (the
teacher's SR of the student's LR) by the mean of the teacher's SR of the 8
flips/rotations. A student A/B at equal budget costs hours of CPU; this is the
cheap half of the question: how good is the target itself.

Quality: PSNR-Y / SSIM-Y (4 px border) of the teacher's targets against the
true HR, single pass vs x8, on images never trained on: the wallpaper
validation images (centre crops of 256 px HR, the training runs' own
``val_crop``; ``/work/datasets/wallpapers/val`` or ``--val``) and Set5/Set14
whole (``$DIPNET_SHARED_DIR/benchmarks``, default ``../shared`` beside the
repository). LR = MATLAB bicubic rounded to uint8, as the loader makes it.
"float" scores the target exactly as the loss sees it (not clamped, not
rounded); "uint8" rounds it first (the usual SR protocol).

Cost: milliseconds per teacher call on a training batch of each progressive
phase of ``configs/default-model-291.toml`` (16x32x32, 8x48x48, 8x64x64 LR),
single vs x8, interleaved (order alternating) with the median over repeats;
on a shared machine only the ratio is solid.

Writes benchmarks/results/teacher_ensemble_targets.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dipnet_core.engine.hardware import cpu_model
from dipnet_core.image_folder import scan_images
from dipnet_core.metrics import psnr, ssim
from dipnet_core.train.data import load_val_set
from dipnet_core.train.stages.common import resolve_model_path
from dipnet_core.train.stages.teacher import Teacher, load_teacher_file

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIPNET_SHARED_DIR", REPO.parent / "shared"))
WALLPAPERS_VAL = Path("/work/datasets/wallpapers/val")
OUT = REPO / "benchmarks" / "results" / "teacher_ensemble_targets.json"
SCALE = 4
#: (batch, LR patch) of the three distillation phases of configs/default-model-291.toml.
BATCHES = ((16, 32), (8, 48), (8, 64))


def _target(teacher: Teacher, lr: np.ndarray) -> np.ndarray:
    """The enhanced-HR target for one uint8 LR image, in 0..255 floats, as the loss would see it."""
    x = torch.from_numpy(lr.astype(np.float32).transpose(2, 0, 1) / 255.0)[None]
    return teacher(x)[0][0].permute(1, 2, 0).numpy().astype(np.float64) * 255.0


def score(teacher: Teacher, items: list[Any]) -> dict[str, Any]:
    rows = []
    for it in items:
        row: dict[str, Any] = {"image": it.name, "lr": list(it.lr.shape[:2])}
        for kind, on in (("single", False), ("x8", True)):
            teacher.self_ensemble = on
            t = _target(teacher, it.lr)
            row[f"{kind}_psnr_y"] = psnr(t, it.hr, border=SCALE)
            row[f"{kind}_psnr_y_uint8"] = psnr(np.clip(np.round(t), 0, 255), it.hr, border=SCALE)
            row[f"{kind}_ssim_y"] = ssim(np.clip(t, 0, 255), it.hr, border=SCALE)
        row["gain_db"] = row["x8_psnr_y"] - row["single_psnr_y"]
        rows.append(row)
    teacher.self_ensemble = False
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("image", "lr")}
    return {"n_images": len(rows), "mean": mean, "images": rows}


def cost(teacher: Teacher, repeats: int) -> list[dict[str, Any]]:
    out = []
    g = torch.Generator().manual_seed(0)
    for batch, patch in BATCHES:
        x = torch.rand(batch, 3, patch, patch, generator=g)
        times: dict[bool, list[float]] = {False: [], True: []}
        for r in range(repeats + 1):
            for on in ((False, True) if r % 2 else (True, False)):
                teacher.self_ensemble = on
                t0 = time.perf_counter()
                teacher(x)
                if r:  # the first round warms up both
                    times[on].append(time.perf_counter() - t0)
        single, x8 = (1000 * statistics.median(times[k]) for k in (False, True))
        out.append({"batch": batch, "lr_patch": patch, "single_ms": round(single, 1), "x8_ms": round(x8, 1),
                    "ratio": round(x8 / single, 2)})
    teacher.self_ensemble = False
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", default="builtin", help="teacher model file (default: the shipped teacher)")
    ap.add_argument("--val", default=str(WALLPAPERS_VAL), help="validation HR folder (never training data)")
    ap.add_argument("--val-crop", type=int, default=256, help="centre crop of the validation HR (0: whole)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    path = resolve_model_path(args.teacher, "teacher.path")
    teacher = load_teacher_file(path, SCALE)
    result: dict[str, Any] = {
        "teacher": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
        "cpu": cpu_model(), "machine": platform.machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
        "protocol": "x4, MATLAB bicubic LR (uint8), Y channel, 4 px border; "
                    "float = the target as the loss sees it",
        "sets": {}, "cost_ms_per_teacher_call": [],
    }
    sets = {f"wallpapers-val (crop {args.val_crop})": (Path(args.val), args.val_crop),
            "Set5": (SHARED / "benchmarks" / "Set5", 0), "Set14": (SHARED / "benchmarks" / "Set14", 0)}
    print(f"teacher {path.name} on {result['cpu']}, {result['threads']} torch threads")
    print(f"{'set':26} {'n':>3} {'single':>8} {'x8':>8} {'gain dB':>8} {'uint8 single':>13} {'uint8 x8':>9} "
          f"{'SSIM single':>12} {'SSIM x8':>8}")
    for name, (folder, crop) in sets.items():
        paths, _ = scan_images([folder])
        r = score(teacher, load_val_set(paths, SCALE, crop))
        result["sets"][name] = {"folder": str(folder), **r}
        m = r["mean"]
        print(f"{name:26} {r['n_images']:3d} {m['single_psnr_y']:8.3f} {m['x8_psnr_y']:8.3f} "
              f"{m['gain_db']:+8.3f} {m['single_psnr_y_uint8']:13.3f} {m['x8_psnr_y_uint8']:9.3f} "
              f"{m['single_ssim_y']:12.4f} {m['x8_ssim_y']:8.4f}")
    print(f"\n{'batch':>5} {'LR patch':>8} {'single ms':>10} {'x8 ms':>8} {'ratio':>6}")
    for c in cost(teacher, args.repeats):
        result["cost_ms_per_teacher_call"].append(c)
        print(f"{c['batch']:5d} {c['lr_patch']:8d} {c['single_ms']:10.1f} {c['x8_ms']:8.1f} "
              f"{c['ratio']:6.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
