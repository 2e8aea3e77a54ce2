"""Does adaptation pay off? ``--preset adapt`` on a domain unlike photos, within 15 minutes of this CPU.

Usage::

    python benchmarks/bench_adapt.py                 # the real measurement (needs the built-in teacher)
    python benchmarks/bench_adapt.py --teacher FILE  # any x4 model as the teacher
    python benchmarks/bench_adapt.py --smoke         # a few steps: checks the wiring, numbers mean nothing

Domain: rendered UI screenshots and text (``scripts/build_adapt_domain.py``, fonts from
/usr/share/fonts): 50 images to adapt on, 20 other images to evaluate on. The run is
exactly what a user gets from ``dipnet train --preset adapt --data DOMAIN/train``
(validation split held out of the 50, comparison at the end); its wall time includes
loading, the time estimate, every stage, export and the run's own comparison.

Then, with the standard x4 protocol (``dipnet_core.eval``), the adapted model, the
built-in model it started from and bicubic are scored on the 20 held-out domain
images and on Set5 (``../shared/benchmarks/Set5``; skipped with the reason when
absent). Targets (issue 16): adapting takes <= 15 min, beats the built-in model on
the held-out domain images by >= 0.5 dB PSNR-Y, and stays within 0.5 dB of it on Set5.

Prints a table and writes ``benchmarks/results/adapt.json`` (``--json``), with the CPU model.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import build_adapt_domain

from dipnet_core.engine.hardware import cpu_model
from dipnet_core.eval import evaluate
from dipnet_core.io.atomic import atomic_write_text
from dipnet_core.models import DIPNet, DIPNetConfig, save_model
from dipnet_core.models.loader import dipnet_descriptor
from dipnet_core.resources import NO_BUILTIN_MODEL, builtin_model_path
from dipnet_core.train import events as ev
from dipnet_core.train import preset, run_pipeline
from dipnet_core.train.config import ProgressiveStage

SET5 = REPO.parent / "shared" / "benchmarks" / "Set5"
TARGET_MINUTES, TARGET_GAIN_DB, TARGET_SET5_DROP_DB = 15.0, 0.5, 0.5


def _tiny_teacher(folder: Path) -> Path:
    torch.manual_seed(0)
    model = DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=4, esa=8))
    return save_model(folder / "smoke-teacher.safetensors", model, dipnet_descriptor(model, name="smoke-teacher"))


def scores(model: Path, folder: Path) -> dict[str, float]:
    mean = evaluate(model, folder, scale=4)["mean"]
    return {"psnr_y": mean["psnr_y"], "ssim_y": mean["ssim_y"],
            "bicubic_psnr_y": mean["bicubic_psnr_y"], "bicubic_ssim_y": mean["bicubic_ssim_y"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--domain", type=Path, help="domain folder with train/ and test/ (built if missing)")
    ap.add_argument("--run", type=Path, help="run folder (default: a temporary folder)")
    ap.add_argument("--teacher", help="teacher model file (default: the adapt preset's, the built-in teacher)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every distillation phase's steps")
    ap.add_argument("--smoke", action="store_true", help="a few steps only (and a tiny random teacher if none)")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "adapt.json")
    args = ap.parse_args(argv)

    builtin = builtin_model_path()
    if builtin is None:
        print(f"error: {NO_BUILTIN_MODEL}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-adapt-"))
    domain = args.domain or work / "domain"
    if not (domain / "train").is_dir() or not (domain / "test").is_dir():
        t0 = time.monotonic()
        build_adapt_domain.build(domain, 50, 20)
        print(f"built the domain in {time.monotonic() - t0:.1f} s: {domain}")

    cfg = preset("adapt")
    cfg.data.train_dirs = [str(domain / "train")]
    cfg.run.out_dir = str(args.run or work / "run")
    cfg.export.name = "adapted-ui"
    if args.teacher:
        cfg.teacher.kind, cfg.teacher.path = "file", args.teacher
    if args.smoke:
        cfg.distill.stages = [ProgressiveStage(16, 3, 2), ProgressiveStage(20, 2, 2)]
        cfg.distill.warmup_steps = cfg.distill.phase_warmup_steps = 2
        cfg.run.log_every, cfg.run.val_every = 1, 0
        if not args.teacher:
            try:
                from dipnet_core.train.stages.common import resolve_model_path

                resolve_model_path(str(cfg.teacher.path), "teacher.path")
            except ValueError:
                cfg.teacher.path = str(_tiny_teacher(work))
                print("smoke: no built-in teacher yet, using a tiny random one")
    for stage in cfg.distill.stages:
        stage.steps = max(1, round(stage.steps * args.steps_scale))
    cfg.distill.warmup_steps = round(cfg.distill.warmup_steps * args.steps_scale)
    cfg.distill.phase_warmup_steps = round(cfg.distill.phase_warmup_steps * args.steps_scale)

    printer = ev.ProgressPrinter()
    t0 = time.monotonic()
    result = run_pipeline(cfg, printer, resume=False)
    minutes = (time.monotonic() - t0) / 60
    if result.status != "done" or result.model_path is None:
        print(f"error: the run ended as {result.status}", file=sys.stderr)
        return 1

    rows: dict[str, Any] = {}
    for name, folder in (("domain test (20 held out)", domain / "test"), ("Set5", SET5)):
        if not folder.is_dir():
            rows[name] = {"skipped": f"no images at {folder}"}
            continue
        new, old = scores(result.model_path, folder), scores(builtin, folder)
        rows[name] = {"adapted": new["psnr_y"], "builtin": old["psnr_y"], "bicubic": old["bicubic_psnr_y"],
                      "adapted_ssim": new["ssim_y"], "builtin_ssim": old["ssim_y"],
                      "gain_db": new["psnr_y"] - old["psnr_y"]}

    domain_gain = rows["domain test (20 held out)"]["gain_db"]
    set5 = rows["Set5"]
    targets = {"time_ok": minutes <= TARGET_MINUTES, "domain_gain_ok": domain_gain >= TARGET_GAIN_DB,
               "set5_ok": None if "skipped" in set5 else set5["gain_db"] >= -TARGET_SET5_DROP_DB}
    print()
    print(f"CPU: {cpu_model()}, torch threads {torch.get_num_threads()}; adapt run {minutes:.1f} min"
          + (" (SMOKE: a few steps, numbers mean nothing)" if args.smoke else ""))
    print("| images | bicubic | built-in | adapted | adapted - built-in |")
    print("|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        if "skipped" in r:
            print(f"| {name} | skipped: {r['skipped']} | | | |")
        else:
            print(f"| {name} | {r['bicubic']:.2f} | {r['builtin']:.2f} | {r['adapted']:.2f} | {r['gain_db']:+.2f} dB |")
    print(f"targets: time <= {TARGET_MINUTES:.0f} min {targets['time_ok']}, domain gain >= {TARGET_GAIN_DB} dB "
          f"{targets['domain_gain_ok']}, Set5 within {TARGET_SET5_DROP_DB} dB {targets['set5_ok']}")

    record = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "smoke": args.smoke,
              "teacher": cfg.teacher.path, "steps": [[s.lr_patch, s.steps, s.batch] for s in cfg.distill.stages],
              "minutes": round(minutes, 2), "results": rows, "targets": targets,
              "run_comparison": result.metrics.get("comparison"), "model": str(result.model_path),
              "date": time.strftime("%Y-%m-%d %H:%M")}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.json, json.dumps(record, indent=2, default=str))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
