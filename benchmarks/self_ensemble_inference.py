"""What the "best quality" option (x8 self-ensemble at inference) buys: PSNR-Y with and without, and its cost.

Usage: python benchmarks/self_ensemble_inference.py [--model FILE] [--sets Set5 Set14]

The standard x4 protocol of ``dipnet_core.eval`` (HR -> modcrop -> MATLAB
bicubic LR rounded to uint8 -> model -> rounded to uint8 -> PSNR/SSIM on Y,
4 px border), run through the app's own path (``TiledUpscaler`` +
``upscale_image``, torch fp32 on the CPU so both columns are deterministic),
once plain and once with ``self_ensemble=True``. Time is the sum over the
images of each, measured in the same run (only the ratio means anything on a
shared machine). Benchmark folders: ``$DIPNET_SHARED_DIR/benchmarks`` (default
``../shared`` beside the repository).

Writes benchmarks/results/self_ensemble_inference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dipnet_core.engine import TiledUpscaler, create_backend, upscale_image
from dipnet_core.engine.hardware import cpu_model
from dipnet_core.image_folder import read_rgb_uint8, scan_images
from dipnet_core.io import ImageData
from dipnet_core.metrics import psnr, ssim
from dipnet_core.models import load_model
from dipnet_core.resize import bicubic_downscale_uint8, modcrop
from dipnet_core.resources import builtin_model_path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DIPNET_SHARED_DIR", REPO.parent / "shared"))
OUT = REPO / "benchmarks" / "results" / "self_ensemble_inference.json"


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def score_set(up: TiledUpscaler, folder: Path, scale: int) -> dict[str, Any]:
    rows = []
    seconds = {"plain": 0.0, "ensemble": 0.0}
    paths, _ = scan_images([folder])
    for p in paths:
        hr = modcrop(read_rgb_uint8(p), scale)
        lr = ImageData(pixels=bicubic_downscale_uint8(hr, scale).astype(np.float32) / 255.0)
        row: dict[str, Any] = {"image": p.name}
        for kind, on in (("plain", False), ("ensemble", True)):
            t0 = time.perf_counter()
            sr = _to_uint8(upscale_image(lr, up, self_ensemble=on).pixels)
            seconds[kind] += time.perf_counter() - t0
            row[f"{kind}_psnr_y"] = psnr(sr, hr, border=scale)
            row[f"{kind}_ssim_y"] = ssim(sr, hr, border=scale)
        row["gain_db"] = row["ensemble_psnr_y"] - row["plain_psnr_y"]
        rows.append(row)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
    return {"n_images": len(rows), "mean": mean, "images": rows,
            "seconds": {k: round(v, 3) for k, v in seconds.items()},
            "time_ratio": round(seconds["ensemble"] / seconds["plain"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model file (default: the built-in model)")
    ap.add_argument("--sets", nargs="+", default=["Set5", "Set14"])
    args = ap.parse_args()
    path = Path(args.model) if args.model else builtin_model_path()
    if path is None:
        raise SystemExit("no model: give --model FILE")
    loaded = load_model(path)
    scale = loaded.descriptor.scale
    up = TiledUpscaler(create_backend(loaded, backend="torch", device="cpu", precision="fp32"))
    result: dict[str, Any] = {
        "model": str(path.relative_to(REPO) if path.is_relative_to(REPO) else path),
        "cpu": cpu_model(), "machine": platform.machine(), "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"), "backend": up.backend.describe(),
        "protocol": "x4, MATLAB bicubic LR (uint8), SR rounded to uint8, Y channel, 4 px border",
        "sets": {},
    }
    print(f"{path.name} on {result['cpu']} ({result['backend']})")
    print(f"{'set':8} {'plain PSNR-Y':>13} {'x8 PSNR-Y':>10} {'gain dB':>8} {'SSIM plain':>11} "
          f"{'SSIM x8':>8} {'time x':>7}")
    for name in args.sets:
        r = score_set(up, SHARED / "benchmarks" / name, scale)
        result["sets"][name] = r
        m = r["mean"]
        print(f"{name:8} {m['plain_psnr_y']:13.3f} {m['ensemble_psnr_y']:10.3f} {m['gain_db']:+8.3f} "
              f"{m['plain_ssim_y']:11.4f} {m['ensemble_ssim_y']:8.4f} {r['time_ratio']:7.2f}")
    up.close()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
