#!/usr/bin/env python3
"""Ablation of the DIPNet training recipe under one fixed step budget, evaluated on Set5/Set14.

Rows (each adds one ingredient to the previous one):

1. plain student: multi-branch student, L1 on the ground-truth HR only;
2. + enhanced-HR target: also L1 to the teacher's SR of the same LR input;
3. + multi-anchor distillation: also L1 between adapted student blocks and teacher blocks;
4. + progressive learning: the same number of steps split over growing patch sizes;
5. after reparameterization: row 4 fused into plain convs (PSNR unchanged, faster);
6. after each pruning round (31.25 % of the channels, then a short fine-tune).

Every training row gets the same number of optimizer steps. By default the step count
is calibrated once from the measured speed of this machine so the whole benchmark fits
``--budget-min`` minutes; pass ``--steps`` to fix it explicitly. The teacher defaults to
the authors' released DIPNet weights (a trained DIPNet-family model, so anchors work);
``--teacher train`` trains a wider/deeper one first instead.

    python benchmarks/ablation.py --budget-min 40 --data /work/datasets/wallpapers/train

Prints a markdown table and writes ``benchmarks/results/ablation.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dipnet_core.eval import evaluate
from dipnet_core.models import DIPNet, DIPNetConfig, count_parameters, load_model, save_model
from dipnet_core.models.loader import dipnet_descriptor
from dipnet_core.models.train_blocks import DIPNetTrain
from dipnet_core.prune import measure_latency
from dipnet_core.train import events as ev
from dipnet_core.train.checkpoint import load_checkpoint, write_json
from dipnet_core.train.config import ProgressiveStage, TrainConfig, preset
from dipnet_core.train.context import build_model
from dipnet_core.train.pipeline import run_pipeline


def _find_shared() -> Path:
    for parent in [ROOT, *ROOT.parents]:
        if (parent / "shared" / "benchmarks").is_dir():
            return parent / "shared"
    return Path("/work/shared")


SHARED = _find_shared()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/work/datasets/wallpapers/train", help="HR training images (recursive)")
    p.add_argument("--fallback-data", default=None,
                   help="used when --data does not exist or holds no images")
    p.add_argument("--budget-min", type=float, default=40.0, help="total wall-clock budget used to size --steps")
    p.add_argument("--steps", type=int, default=0, help="optimizer steps per training row (0 = calibrate)")
    p.add_argument("--patch", type=int, default=32, help="LR patch of the fixed-patch rows")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--progressive", default="24,32,40", help="LR patches of the progressive row")
    p.add_argument("--student", default="32,32", help="student feat,mid at the start")
    p.add_argument("--teacher", choices=("official", "train"), default="official")
    p.add_argument("--teacher-steps", type=int, default=0, help="for --teacher train (0 = same as --steps)")
    p.add_argument("--beta", type=float, default=0.5, help="multi-anchor loss weight")
    p.add_argument("--prune-rounds", type=int, default=2)
    p.add_argument("--prune-finetune-frac", type=float, default=0.3,
                   help="fine-tune steps per pruning round, as a fraction of --steps")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=str(ROOT / "runs" / "ablation"))
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ablation.json"))
    p.add_argument("--set5", default=str(SHARED / "benchmarks" / "Set5"))
    p.add_argument("--set14", default=str(SHARED / "benchmarks" / "Set14"))
    p.add_argument("--latency-size", type=int, default=256, help="input side for the speed measurement")
    p.add_argument("--retime", action="store_true",
                   help="only re-measure the speed of the rows in --json (models from --work-dir)")
    return p.parse_args(argv)


def _has_images(d: Path) -> bool:
    return d.is_dir() and any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp") for p in d.rglob("*"))


def pick_data(args: argparse.Namespace) -> Path:
    for cand in (args.data, args.fallback_data):
        if cand and _has_images(Path(cand)):
            return Path(cand)
    sys.exit(f"error: no training images in {args.data}" + (f" or {args.fallback_data}" if args.fallback_data else "")
             + "; pass --data or --fallback-data")


def base_config(args: argparse.Namespace, data: Path, out: Path, teacher_file: Path | None) -> TrainConfig:
    cfg = preset("quick-cpu")
    feat, mid = (int(v) for v in args.student.split(","))
    cfg.student.feat, cfg.student.mid = feat, mid
    cfg.data.train_dirs = [str(data)]
    cfg.data.val_fraction, cfg.data.val_max_images, cfg.data.val_crop = 0.02, 2, 128
    cfg.run.out_dir, cfg.run.seed = str(out), args.seed
    cfg.run.threads = args.threads
    cfg.run.val_every, cfg.run.ckpt_every, cfg.run.log_every = 0, 50, 25
    cfg.distill.lr, cfg.distill.ema_decay = args.lr, 0.99
    cfg.distill.stages = [ProgressiveStage(args.patch, args.steps, args.batch)]
    if teacher_file is not None:
        cfg.teacher.kind, cfg.teacher.path = "file", str(teacher_file)
    else:
        cfg.teacher.kind = "none"
    cfg.prune.rounds = args.prune_rounds
    cfg.prune.finetune_steps = max(1, int(args.steps * args.prune_finetune_frac))
    cfg.prune.finetune_lr_patch, cfg.prune.finetune_batch = args.patch, args.batch
    cfg.prune.latency_size = [args.latency_size, args.latency_size]
    cfg.finetune.steps = 0
    cfg.export.onnx = False
    return cfg


def progressive_stages(args: argparse.Namespace) -> list[ProgressiveStage]:
    """Same step count as the fixed-patch rows; batches keep the pixels per step roughly equal."""
    patches = [int(v) for v in args.progressive.split(",")]
    n = len(patches)
    steps = [args.steps // n + (1 if i < args.steps % n else 0) for i in range(n)]
    px = args.patch * args.patch * args.batch
    return [ProgressiveStage(p, s, max(1, round(px / (p * p)))) for p, s in zip(patches, steps)]


def calibrate(args: argparse.Namespace, teacher: torch.nn.Module | None) -> float:
    """Seconds per training step of the student at the fixed patch (with a teacher forward)."""
    feat, mid = (int(v) for v in args.student.split(","))
    torch.manual_seed(0)
    model = DIPNetTrain(DIPNetConfig.uniform(feat, mid), fuse_in_forward=True)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    x = torch.rand(args.batch, 3, args.patch, args.patch)
    times = []
    for _ in range(4):
        t0 = time.perf_counter()
        if teacher is not None:
            with torch.no_grad():
                teacher(x)
        loss = model(x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def time_model(model: torch.nn.Module, size: int, repeats: int = 5) -> float:
    """Median seconds per input megapixel of this exact module (CPU, inference mode)."""
    model = model.cpu().eval()
    x = torch.rand(1, 3, size, size)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            model(x)
            if i:
                times.append(time.perf_counter() - t0)
    return statistics.median(times) / (size * size / 1e6)


def score(model: torch.nn.Module, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, d in (("set5", args.set5), ("set14", args.set14)):
        r = evaluate(copy.deepcopy(model), d, scale=4, bicubic=False)
        out[f"{name}_psnr_y"] = round(r["mean"]["psnr_y"], 3)
        out[f"{name}_ssim_y"] = round(r["mean"]["ssim_y"], 4)
    return out


def bicubic_scores(args: argparse.Namespace) -> dict[str, Any]:
    class _Nothing(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")

    out: dict[str, Any] = {}
    for name, d in (("set5", args.set5), ("set14", args.set14)):
        r = evaluate(_Nothing(), d, scale=4, bicubic=True)
        out[f"{name}_psnr_y"] = round(r["mean"]["bicubic_psnr_y"], 3)
        out[f"{name}_ssim_y"] = round(r["mean"]["bicubic_ssim_y"], 4)
    return out


def stage_model(run_dir: Path, stage: str) -> torch.nn.Module:
    payload = load_checkpoint(run_dir / "stages" / stage / "model.pt")
    model = build_model(payload["arch"])
    model.load_state_dict(payload["model"])
    return model.eval()


class Printer:
    def __init__(self, row: str) -> None:
        self.row = row

    def __call__(self, e: ev.Event) -> None:
        if isinstance(e, ev.Step):
            losses = " ".join(f"{k}={v:.4f}" for k, v in e.losses.items())
            print(f"  [{self.row}] {e.stage} {e.step}/{e.total} {losses} eta {e.eta_s:.0f}s", flush=True)
        elif isinstance(e, (ev.Log, ev.Error)):
            print(f"  [{self.row}] {getattr(e, 'message', '')}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.retime:
        return retime_main(args)
    t_start = time.monotonic()
    data = pick_data(args)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"data: {data}; work dir: {work}; torch threads: {torch.get_num_threads()}", flush=True)

    teacher_file: Path | None = None
    teacher_module: torch.nn.Module | None = None
    if args.teacher == "official":
        teacher_file = SHARED / "reference" / "dipnet_official_x4.pth"
        if not teacher_file.exists():
            sys.exit(f"error: {teacher_file} not found; use --teacher train")
        teacher_module = load_model(teacher_file).module

    if args.steps <= 0:
        sec = calibrate(args, teacher_module or DIPNet(DIPNetConfig.uniform(48, 48, 8)))
        # 4 training rows + pruning fine-tunes (+ a teacher row when training our own);
        # ~30 % of the budget is kept for data decoding, evaluation and latency measurements.
        rows = 4 + args.prune_rounds * args.prune_finetune_frac + (1.0 if args.teacher == "train" else 0.0)
        args.steps = max(20, int(0.7 * args.budget_min * 60 / (rows * sec)))
        print(f"calibration: {sec:.2f} s/step -> {args.steps} steps per row", flush=True)

    results: dict[str, Any] = {"args": vars(args) | {"data_used": str(data)}, "rows": []}

    def add_row(name: str, model: torch.nn.Module, note: str, extra: dict[str, Any] | None = None,
                latency: float | None = None, ref: tuple[str, str] | None = None) -> None:
        t0 = time.monotonic()
        row = {"row": name, "note": note, "params": count_parameters(model), **score(model, args)}
        if ref is not None:
            row["model_ref"] = {"run": ref[0], "stage": ref[1]}
        if isinstance(model, (DIPNet, DIPNetTrain)):
            row["widths"] = model.config.widths_label()
        row["latency_s_per_mp"] = round(latency if latency is not None else time_model(model, args.latency_size), 4)
        row.update(extra or {})
        row["eval_seconds"] = round(time.monotonic() - t0, 1)
        results["rows"].append(row)
        print(f"== {name}: Set5 {row['set5_psnr_y']:.2f} dB, Set14 {row['set14_psnr_y']:.2f} dB, "
              f"{row['latency_s_per_mp']:.3f} s/MP, {row['params']} params", flush=True)
        write_json(args.json, results)

    results["reference"] = {"bicubic": bicubic_scores(args)}

    if args.teacher == "train":
        cfg = base_config(args, data, work / "teacher", None)
        cfg.teacher.kind, cfg.teacher.steps = "train", args.teacher_steps or args.steps
        cfg.teacher.lr_patch, cfg.teacher.batch, cfg.teacher.lr = args.patch, args.batch, args.lr
        run_pipeline(cfg, Printer("teacher"), only=["teacher"], resume=False)
        teacher = stage_model(work / "teacher", "teacher")
        teacher_file = save_model(work / "teacher.safetensors", teacher, dipnet_descriptor(teacher, name="teacher"))
        teacher_module = teacher
    assert teacher_module is not None
    results["reference"]["teacher"] = {"file": str(teacher_file), **score(teacher_module, args),
                                       "params": count_parameters(teacher_module)}

    variants = [
        ("1 plain student (L1 on HR)", "plain", {"alpha": 0.0, "beta": 0.0}, False),
        ("2 + enhanced-HR target", "enhanced", {"alpha": 1.0, "beta": 0.0}, False),
        ("3 + multi-anchor distillation", "anchor", {"alpha": 1.0, "beta": args.beta}, False),
        ("4 + progressive learning", "progressive", {"alpha": 1.0, "beta": args.beta}, True),
    ]
    for title, key, weights, progressive in variants:
        cfg = base_config(args, data, work / key, teacher_file if weights["alpha"] or weights["beta"] else None)
        cfg.distill.alpha, cfg.distill.beta = weights["alpha"], weights["beta"]
        if progressive:
            cfg.distill.stages = progressive_stages(args)
        t0 = time.monotonic()
        names = [f"distill_{k}" for k in range(1, len(cfg.distill.stages) + 1)]
        run_pipeline(cfg, Printer(key), only=names, resume=False)  # a fresh row every invocation
        model = stage_model(work / key, names[-1])
        model.set_fuse_in_forward(False)  # score and time the real multi-branch form
        add_row(title, model, f"{args.steps} steps, patches "
                f"{'->'.join(str(s.lr_patch) for s in cfg.distill.stages)}",
                {"train_seconds": round(time.monotonic() - t0, 1), "steps": args.steps}, ref=(key, names[-1]))

    # 5/6: continue the progressive run: reparameterize, then prune round by round.
    cfg = base_config(args, data, work / "progressive", teacher_file)
    cfg.distill.alpha, cfg.distill.beta = 1.0, args.beta
    cfg.distill.stages = progressive_stages(args)
    run_pipeline(cfg, Printer("reparam"), only=["reparam"])
    rep = json.loads((work / "progressive" / "state.json").read_text())["metrics"]["reparam"]
    deploy = stage_model(work / "progressive", "reparam")
    add_row("5 after reparameterization", deploy, f"max |diff| vs multi-branch {rep['max_abs_diff']:.2e}",
            {"max_abs_diff": rep["max_abs_diff"]}, latency=measure_latency(deploy.config, (args.latency_size,) * 2),
            ref=("progressive", "reparam"))
    if args.prune_rounds > 0:
        run_pipeline(cfg, Printer("prune"), only=[f"prune_{i}" for i in range(1, args.prune_rounds + 1)])
        metrics = json.loads((work / "progressive" / "state.json").read_text())["metrics"]
        for i in range(1, args.prune_rounds + 1):
            if f"prune_{i}" not in metrics:
                break
            m = metrics[f"prune_{i}"]
            pruned = stage_model(work / "progressive", f"prune_{i}")
            add_row(f"6.{i} after pruning round {i}", pruned,
                    f"{m['widths']}, {cfg.prune.finetune_steps} fine-tune steps",
                    {"val_psnr_y_before_finetune": m.get("psnr_y_before_finetune")},
                    latency=measure_latency(pruned.config, (args.latency_size,) * 2),
                    ref=("progressive", f"prune_{i}"))

    retime(results, work, args.latency_size)
    results["total_seconds"] = round(time.monotonic() - t_start, 1)
    write_json(args.json, results)
    print_table(results)
    return 0


_DEFAULT_REFS = [("plain", "distill_1"), ("enhanced", "distill_1"), ("anchor", "distill_1"),
                 ("progressive", None), ("progressive", "reparam")]


def _row_model(row: dict[str, Any], index: int, work: Path) -> torch.nn.Module | None:
    ref = row.get("model_ref")
    if ref is None:  # JSON from before model_ref existed: rows are in a fixed order
        run, stage = _DEFAULT_REFS[index] if index < len(_DEFAULT_REFS) else (
            "progressive", f"prune_{row['row'].split('round ')[-1]}")
        if stage is None:
            stage = max(p.name for p in (work / run / "stages").glob("distill_*"))
        ref = {"run": run, "stage": stage}
    path = work / ref["run"] / "stages" / ref["stage"] / "model.pt"
    if not path.exists():
        return None
    model = stage_model(work / ref["run"], ref["stage"])
    if isinstance(model, DIPNetTrain):
        model.set_fuse_in_forward(False)  # the real multi-branch cost
    return model


def retime(results: dict[str, Any], work: Path, size: int, rounds: int = 7) -> None:
    """Re-measure every row's speed back to back, interleaved, keeping each model's fastest run.

    On a shared machine other processes inflate single measurements by large factors;
    interleaving exposes all rows to the same conditions, and the minimum over rounds
    is the least disturbed estimate.
    """
    models = [(r, _row_model(r, i, work)) for i, r in enumerate(results["rows"])]
    models = [(r, m.cpu().eval()) for r, m in models if m is not None]
    x = torch.rand(1, 3, size, size)
    best = [float("inf")] * len(models)
    with torch.inference_mode():
        for _, m in models:
            m(x)  # warm-up
        for _ in range(rounds):
            for k, (_, m) in enumerate(models):
                t0 = time.perf_counter()
                m(x)
                best[k] = min(best[k], time.perf_counter() - t0)
    for (row, _), t in zip(models, best, strict=True):
        row["latency_first_measure_s_per_mp"] = row.get("latency_s_per_mp")
        row["latency_s_per_mp"] = round(t / (size * size / 1e6), 4)
    results["latency_method"] = (f"min of {rounds} interleaved runs, {size}x{size} input, "
                                 f"{torch.get_num_threads()} torch threads")


def retime_main(args: argparse.Namespace) -> int:
    results = json.loads(Path(args.json).read_text())
    retime(results, Path(args.work_dir), args.latency_size)
    write_json(args.json, results)
    print_table(results)
    return 0


def print_table(results: dict[str, Any]) -> None:
    ref = results["reference"]
    print("\n| row | Set5 PSNR-Y | Set5 SSIM-Y | Set14 PSNR-Y | Set14 SSIM-Y | params | s/MP (CPU) | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    b = ref["bicubic"]
    print(f"| bicubic | {b['set5_psnr_y']:.2f} | {b['set5_ssim_y']:.4f} | {b['set14_psnr_y']:.2f} | "
          f"{b['set14_ssim_y']:.4f} | - | - | reference |")
    t = ref["teacher"]
    print(f"| teacher | {t['set5_psnr_y']:.2f} | {t['set5_ssim_y']:.4f} | {t['set14_psnr_y']:.2f} | "
          f"{t['set14_ssim_y']:.4f} | {t['params']} | - | {Path(t['file']).name} |")
    for r in results["rows"]:
        print(f"| {r['row']} | {r['set5_psnr_y']:.2f} | {r['set5_ssim_y']:.4f} | {r['set14_psnr_y']:.2f} | "
              f"{r['set14_ssim_y']:.4f} | {r['params']} | {r['latency_s_per_mp']:.3f} | {r['note']} |")
    if "total_seconds" in results:
        print(f"\ntotal {results['total_seconds'] / 60:.1f} min", flush=True)
    if "latency_method" in results:
        print(f"speed: {results['latency_method']}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
