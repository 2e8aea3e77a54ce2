"""Where a training run gains and loses quality: every stage's output scored on Set5 (and Set14).

Usage: python benchmarks/stage_quality.py RUN_DIR [--sets Set5 Set14] [--json OUT]

Reads ``RUN_DIR/stages/*/model.pt`` (each stage's EMA output, in pipeline order) and,
for the stage still in progress, the EMA weights of its latest ``checkpoint.pt``, so a
run can be checked mid-schedule without stopping it. Same protocol as ``dipnet eval``
(MATLAB bicubic LR, PSNR/SSIM on Y, 4 px border), bicubic alongside. Prints a table and
writes JSON (default ``benchmarks/results/stage_quality_<run name>.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dipnet_core.eval import evaluate
from dipnet_core.train.checkpoint import read_json
from dipnet_core.train.context import load_stage_model

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def stage_models(run_dir: Path) -> list[tuple[str, nn.Module, str]]:
    """(stage name, model with its EMA weights, where it came from) in the order the stages ran."""
    state = read_json(run_dir / "state.json", default=None) or {"done": []}
    names = [n for n in state.get("done", []) if (run_dir / "stages" / n / "model.pt").exists()]
    out: list[tuple[str, nn.Module, str]] = []
    for name in names:
        model, _ = load_stage_model(run_dir / "stages" / name / "model.pt")
        out.append((name, model, "model.pt"))
    current = state.get("current")
    ckpt = run_dir / "stages" / str(current) / "checkpoint.pt"
    if current and current not in names and ckpt.exists():
        model, payload = load_stage_model(ckpt, weights="ema")
        out.append((str(current), model, f"checkpoint.pt, step {payload['step']} (EMA)"))
    return out


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--sets", nargs="+", default=["Set5"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    run_dir: Path = args.run_dir
    if not (run_dir / "state.json").exists():
        print(f"'{run_dir}' is not a training run folder (no state.json)", file=sys.stderr)
        return 2
    torch.set_grad_enabled(False)
    models = stage_models(run_dir)
    if not models:
        print(f"'{run_dir}' has no stage output or checkpoint yet", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    bicubic: dict[str, float] = {}
    for name, model, source in models:
        row: dict[str, Any] = {"stage": name, "source": source, "params": params(model)}
        for s in args.sets:
            r = evaluate(model.eval(), SHARED / "benchmarks" / s, scale=4)
            row[s] = {"psnr_y": r["mean"]["psnr_y"], "ssim_y": r["mean"]["ssim_y"]}
            bicubic[s] = r["mean"]["bicubic_psnr_y"]
        rows.append(row)

    head = "| stage | from | params | " + " | ".join(f"{s} PSNR-Y / SSIM-Y" for s in args.sets) + " |"
    print(head)
    print("|" + "---|" * (3 + len(args.sets)))
    for row in rows:
        cells = " | ".join(f"{row[s]['psnr_y']:.3f} / {row[s]['ssim_y']:.4f}" for s in args.sets)
        print(f"| {row['stage']} | {row['source']} | {row['params']:,} | {cells} |")
    print("| bicubic | | | " + " | ".join(f"{bicubic[s]:.3f}" for s in args.sets) + " |")

    out = args.json or REPO / "benchmarks" / "results" / f"stage_quality_{run_dir.resolve().name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"run_dir": str(run_dir), "stages": rows, "bicubic_psnr_y": bicubic}, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
