#!/usr/bin/env python3
"""Write one stage's output of a training run as a model file the app and `--teacher` can load.

    python scripts/export_stage_model.py runs/default-model-291 teacher \\
        resources/models/dipnet-studio-x4-teacher.safetensors --name dipnet-studio-x4-teacher

The stage's ``model.pt`` holds the EMA weights and the architecture; a multi-branch
(distill) output is fused first. The file gets a descriptor (name, source run and
stage, the stage's recorded metrics) and is reloaded before this script reports success.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dipnet_core.models import DIPNet, load_model, save_model
from dipnet_core.models.loader import dipnet_descriptor
from dipnet_core.train.checkpoint import read_json
from dipnet_core.train.context import load_stage_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder (holds stages/STAGE/model.pt)")
    ap.add_argument("stage", help="stage name, e.g. teacher or distill_3")
    ap.add_argument("out", type=Path, help="output .safetensors file (must not exist)")
    ap.add_argument("--name", help="model name in the descriptor (default: the output file's stem)")
    ap.add_argument("--checkpoint", action="store_true",
                    help="take the EMA weights of the stage's last checkpoint (a stage still in progress); "
                         "the descriptor records the step it was taken at")
    args = ap.parse_args(argv)
    src = args.run / "stages" / args.stage / ("checkpoint.pt" if args.checkpoint else "model.pt")
    if not src.is_file():
        hint = "has the stage checkpointed yet?" if args.checkpoint else "is the stage finished? see --checkpoint"
        print(f"error: '{src}' does not exist ({hint})", file=sys.stderr)
        return 1
    if args.out.exists():
        print(f"error: '{args.out}' exists; refusing to overwrite it", file=sys.stderr)
        return 1
    model, payload = load_stage_model(src, weights="ema" if args.checkpoint else "model")
    if not isinstance(model, DIPNet):
        model = model.reparameterize()
    metrics = read_json(args.run / "stages" / args.stage / "metrics.json", default={}) or {}
    training = {"run": str(args.run), "stage": args.stage,
                **({"unfinished_at_step": int(payload["step"])} if args.checkpoint else {}),
                "stage_metrics": {k: v for k, v in metrics.items() if k not in ("val_history", "config", "notes")}}
    descriptor = dipnet_descriptor(model.eval(), name=args.name or args.out.stem,
                                   source=f"DIPNet Studio trainer, {args.run.name}/{args.stage}", training=training)
    save_model(args.out, model, descriptor)
    load_model(args.out)
    print(f"wrote {args.out} ({model.config.widths_label()}, {len(model.config.blocks)} blocks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
