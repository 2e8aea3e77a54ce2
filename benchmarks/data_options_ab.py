"""Do the crop options help on Set5/Set14? The same teacher trained from scratch with each setting.

The built-in model's weak spot is the domain gap: trained on smooth wallpapers, it is 0.3 dB
behind the authors' weights on held-out wallpapers but 0.9 dB behind them on Set5. This
benchmark trains the built-in model's teacher (``configs/default-model-long.toml``: 48/48 x 6,
LR patch 32, batch 16) for the same number of steps, same seed, once per variant of the data
options of ``dipnet_core.train.data``:

- ``baseline``: ``hr_scales = [1.0]``, ``texture_tries = 1`` (the long run's setting);
- ``multiscale``: ``hr_scales = [1.0, 0.75, 0.5]``;
- ``texture``: ``texture_tries = 4``;
- ``both`` (the follow-up runs' setting, which the shipped model finished with).

and scores each on Set5, Set14 and the run's own validation images (PSNR-Y, standard protocol).

    python benchmarks/data_options_ab.py --steps 800 [--variants baseline both]

Prints a markdown table and writes ``benchmarks/results/data_options_ab.json``. Runs live in
``runs/data-options-ab/<variant>`` and resume if interrupted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from dipnet_core.eval import evaluate
from dipnet_core.train.checkpoint import read_json
from dipnet_core.train.config import load_config
from dipnet_core.train.context import load_stage_model
from dipnet_core.train.pipeline import run_pipeline

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {"hr_scales": [1.0], "texture_tries": 1},
    "multiscale": {"hr_scales": [1.0, 0.75, 0.5], "texture_tries": 1},
    "texture": {"hr_scales": [1.0], "texture_tries": 4},
    "both": {"hr_scales": [1.0, 0.75, 0.5], "texture_tries": 4},
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "default-model-long.toml")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "data-options-ab")
    args = ap.parse_args(argv)

    rows: list[dict[str, Any]] = []
    for name in args.variants:
        cfg = load_config(args.config)
        cfg.teacher.steps = args.steps
        cfg.run.out_dir = str(args.out / name)
        cfg.run.val_every = args.steps
        for key, value in VARIANTS[name].items():
            setattr(cfg.data, key, value)
        t0 = time.perf_counter()
        result = run_pipeline(cfg, only=["teacher"])
        if result.status == "cancelled":
            return 1
        minutes = (time.perf_counter() - t0) / 60
        model, _ = load_stage_model(Path(cfg.run.out_dir) / "stages" / "teacher" / "model.pt")
        model.eval()
        metrics = read_json(Path(cfg.run.out_dir) / "stages" / "teacher" / "metrics.json", default={}) or {}
        row: dict[str, Any] = {"variant": name, **VARIANTS[name], "steps": args.steps, "minutes": round(minutes, 1),
                               "val_psnr_y": metrics.get("psnr_y")}
        for s in ("Set5", "Set14"):
            r = evaluate(model, SHARED / "benchmarks" / s, scale=4)
            row[s] = r["mean"]["psnr_y"]
            row[f"{s}_bicubic"] = r["mean"]["bicubic_psnr_y"]
        rows.append(row)
        print(f"{name}: Set5 {row['Set5']:.3f}  Set14 {row['Set14']:.3f}  ({minutes:.1f} min)", flush=True)

    base = next((r for r in rows if r["variant"] == "baseline"), None)
    print("\n| variant | hr_scales | texture_tries | Set5 PSNR-Y | Set14 PSNR-Y | wallpaper val | minutes |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        delta = "" if base is None or r is base else f" ({r['Set5'] - base['Set5']:+.3f})"
        delta14 = "" if base is None or r is base else f" ({r['Set14'] - base['Set14']:+.3f})"
        val = f"{r['val_psnr_y']:.2f}" if isinstance(r["val_psnr_y"], (int, float)) else "–"
        print(f"| {r['variant']} | {r['hr_scales']} | {r['texture_tries']} | {r['Set5']:.3f}{delta} | "
              f"{r['Set14']:.3f}{delta14} | {val} | {r['minutes']} |")
    out = REPO / "benchmarks" / "results" / "data_options_ab.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"config": str(args.config), "steps": args.steps, "rows": rows}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
