#!/usr/bin/env python3
"""Ablation of the DIPNet training recipe under one fixed step budget, evaluated on Set5/Set14.

Rows (each adds one ingredient to the previous one):

1. plain student: multi-branch student, L1 on the ground-truth HR only;
2. + enhanced-HR target: also L1 to the teacher's SR of the same LR input;
3. + multi-anchor distillation: also L1 between adapted student blocks and teacher blocks;
4. + progressive learning: the same number of steps split over growing patch sizes;
5. after reparameterization: row 4 fused into plain convs (PSNR unchanged, faster);
6. after each pruning round (31.25 % of the channels, then a short fine-tune).

On request (``--rows opt-...``): row 3 with one training option changed (constant LR, no EMA, x8
teacher self-ensemble, frequency-domain L1, other data mixes), each against row 3's run of its seed.

Every training row gets the same teacher, data and number of optimizer steps (default 3,000;
``--steps 0`` calibrates the count to ``--budget-min`` from this machine's speed). Rows 1-4 run
once per seed (default two), so the spread between seeds shows the noise band; rows 5-6
continue the first seed's progressive run. The teacher defaults to the authors' released
DIPNet weights (a trained DIPNet-family model, so anchors work); ``--teacher train`` trains
a wider/deeper one first instead.

Resumable, row by row: each finished row is kept in ``<work-dir>/<row>-s<seed>/row.json``, an
interrupted one continues from its last checkpoint when the same command runs again, and the
work folder refuses rows made with other settings. Rows can be split over processes (one per
core), e.g. ``--rows plain enhanced`` in one and ``--rows anchor progressive post`` in another;
``--report`` then collects every finished row (``--retime`` re-measures all speeds together).

    python benchmarks/ablation.py --threads 1 --rows plain enhanced
    python benchmarks/ablation.py --report

Prints a markdown table (mean over seeds, spread, gap to bicubic) and writes
``benchmarks/results/ablation.json``.
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

from dipnet_core.engine.hardware import cpu_model
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


DEFAULT_DATA = ["/work/datasets/wallpapers/train", str(SHARED / "training-data" / "bsd200"),
                str(SHARED / "training-data" / "t91")]
ROWS = {  # key: (title, alpha, beta, progressive)
    "plain": ("1 plain student (L1 on HR)", 0.0, 0.0, False),
    "enhanced": ("2 + enhanced-HR target", 1.0, 0.0, False),
    "anchor": ("3 + multi-anchor distillation", 1.0, None, False),
    "progressive": ("4 + progressive learning", 1.0, None, True),
}
OUR_TEACHER = "dipnet-studio-x4-teacher.safetensors"  # the shipped teacher, for the teacher A/B
#: A/B rows for the training options (issue 14): row 3 with one setting changed, same teacher, data
#: and budget; each compares with row 3's run of its seed. key: (title, {config section.field: value
#: or a function of the row's config}).
OPTIONS = {
    "opt-ensemble": ("3 + x8 teacher self-ensemble in the enhanced-HR target",
                     {"distill.teacher_self_ensemble": True}),
    "opt-freq": ("3 + frequency-domain L1 (weight 0.05)", {"distill.freq_weight": 0.05}),
    "opt-noema": ("3 without EMA (the raw weights)", {"distill.ema_decay": 0.0}),
    "opt-constant-lr": ("3 with a constant LR after warm-up (no cosine decay)", {"distill.min_lr_ratio": 1.0}),
    "opt-our-teacher": ("3 with our own teacher (run 291's, 48/48 x6, Set5 31.41) instead of the authors' (31.81)",
                        {"teacher.path": lambda c: str(ROOT / "resources" / "models" / OUR_TEACHER)}),
    "opt-wallpapers": ("3 on the wallpapers only (no BSD200/T91)",
                       {"data.train_dirs": lambda c: c.data.train_dirs[:1]}),
    "opt-mix": ("3 with half the crops from the wallpapers (data.train_weights; default ~1/6)",
                {"data.train_weights": lambda c: _half_from_first(len(c.data.train_dirs))}),
}


def _half_from_first(n_folders: int) -> list[float]:
    """Folder weights giving the first folder (the wallpapers) half the crops, the rest the other half."""
    if n_folders < 2:
        sys.exit("error: opt-mix needs at least two --data folders")
    return [1.0] + [1.0 / (n_folders - 1)] * (n_folders - 1)


#: Settings that make two rows comparable; a work folder holds rows of one setting only.
SIGNATURE_KEYS = ("data", "steps", "patch", "batch", "progressive", "student", "teacher", "teacher_steps", "beta",
                  "prune_rounds", "prune_finetune_frac", "lr")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", default=DEFAULT_DATA,
                   help="HR training folders (recursive; default: the wallpapers, BSD200 and T91; missing ones "
                        "are left out)")
    p.add_argument("--fallback-data", default=None,
                   help="used when no --data folder exists or holds images")
    p.add_argument("--budget-min", type=float, default=40.0, help="total wall-clock budget used to size --steps 0")
    p.add_argument("--steps", type=int, default=3000, help="optimizer steps per training row (0 = calibrate)")
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
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of rows 1-4 (the noise band)")
    p.add_argument("--rows", nargs="+", choices=[*ROWS, "post", *OPTIONS], default=[*ROWS, "post"],
                   help="rows to run here (post = reparameterization and pruning of the first seed's "
                        "progressive run; opt-* = row 3 with one training option changed, not run by "
                        "default); split them over processes to use several cores")
    p.add_argument("--option-seeds", type=int, nargs="+", default=[0], help="seeds of the opt-* rows")
    p.add_argument("--work-dir", default=str(ROOT / "runs" / "ablation"))
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "ablation.json"))
    p.add_argument("--set5", default=str(SHARED / "benchmarks" / "Set5"))
    p.add_argument("--set14", default=str(SHARED / "benchmarks" / "Set14"))
    p.add_argument("--latency-size", type=int, default=256, help="input side for the speed measurement")
    p.add_argument("--report", action="store_true",
                   help="train nothing: collect the finished rows of --work-dir into --json and print the table")
    p.add_argument("--retime", action="store_true",
                   help="with the report, re-measure every row's speed back to back (models from --work-dir)")
    return p.parse_args(argv)


def _has_images(d: Path) -> bool:
    return d.is_dir() and any(p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp") for p in d.rglob("*"))


def pick_data(args: argparse.Namespace) -> list[Path]:
    found = [Path(d) for d in args.data if _has_images(Path(d))]
    if found:
        return found
    if args.fallback_data and _has_images(Path(args.fallback_data)):
        return [Path(args.fallback_data)]
    sys.exit(f"error: no training images in {', '.join(args.data)}" +
             (f" or {args.fallback_data}" if args.fallback_data else "") + "; pass --data or --fallback-data")


def base_config(args: argparse.Namespace, data: list[Path], out: Path, teacher_file: Path | None,
                seed: int) -> TrainConfig:
    cfg = preset("quick-cpu")
    feat, mid = (int(v) for v in args.student.split(","))
    cfg.student.feat, cfg.student.mid = feat, mid
    cfg.data.train_dirs = [str(d) for d in data]
    cfg.data.val_fraction, cfg.data.val_max_images, cfg.data.val_crop = 0.02, 2, 128
    cfg.run.out_dir, cfg.run.seed = str(out), seed
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


def signature(args: argparse.Namespace, data: list[Path]) -> dict[str, Any]:
    sig = {k: getattr(args, k) for k in SIGNATURE_KEYS}
    sig["data"] = [str(d) for d in data]
    return sig


def check_work_dir(work: Path, sig: dict[str, Any]) -> None:
    """A work folder holds rows of one setting: resuming or adding rows with other settings would mix them."""
    path = work / "settings.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), v) for k, v in sig.items() if old.get(k) != v}
        if diff:
            sys.exit(f"error: {work} holds rows made with other settings ({diff}); pass another --work-dir")
    else:
        write_json(path, sig)


def row_record(model: torch.nn.Module, args: argparse.Namespace, latency: float | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"params": count_parameters(model), **score(model, args)}
    if isinstance(model, (DIPNet, DIPNetTrain)):
        row["widths"] = model.config.widths_label()
    row["latency_s_per_mp"] = round(latency if latency is not None else time_model(model, args.latency_size), 4)
    return row


def reference_scores(args: argparse.Namespace, work: Path, data: list[Path]) -> tuple[dict[str, Any], Path]:
    """Bicubic and the teacher (trained here once for --teacher train), cached in the work folder."""
    path = work / "reference.json"
    if args.teacher == "official":
        teacher_file = SHARED / "reference" / "dipnet_official_x4.pth"
        if not teacher_file.exists():
            sys.exit(f"error: {teacher_file} not found; use --teacher train")
    else:
        teacher_file = work / "teacher.safetensors"
        if not teacher_file.exists():
            cfg = base_config(args, data, work / "teacher", None, 0)
            cfg.teacher.kind, cfg.teacher.steps = "train", args.teacher_steps or args.steps
            cfg.teacher.lr_patch, cfg.teacher.batch, cfg.teacher.lr = args.patch, args.batch, args.lr
            run_pipeline(cfg, Printer("teacher"), only=["teacher"])
            teacher = stage_model(work / "teacher", "teacher")
            save_model(teacher_file, teacher, dipnet_descriptor(teacher, name="teacher"))
    if path.exists():
        return json.loads(path.read_text()), teacher_file
    teacher_module = load_model(teacher_file).module
    ref = {"bicubic": bicubic_scores(args),
           "teacher": {"file": str(teacher_file), **score(teacher_module, args),
                       "params": count_parameters(teacher_module)}}
    write_json(path, ref)
    return ref, teacher_file


def row_train_seconds(run_dir: Path, names: list[str]) -> dict[str, Any]:
    """The row's optimisation time over all the sessions that trained it (the stages record it)."""
    stages = json.loads((run_dir / "state.json").read_text())["metrics"]
    record: dict[str, Any] = {"train_seconds": round(sum(stages[n]["train_seconds"] for n in names), 1)}
    partial = {n: stages[n]["train_seconds_since_step"] for n in names if "train_seconds_since_step" in stages[n]}
    if partial:  # resumed from checkpoints older than the time record: only the later steps are counted
        record["train_seconds_since_step"] = partial
    return record


def train_row(args: argparse.Namespace, key: str, seed: int, data: list[Path], teacher_file: Path,
              work: Path) -> dict[str, Any]:
    """One of rows 1-4 or an opt-* row for one seed: trained (or resumed), scored, recorded in
    ``<key>-s<seed>/row.json``."""
    run_dir = work / f"{key}-s{seed}"
    done = run_dir / "row.json"
    if done.exists():
        return json.loads(done.read_text())
    title, alpha, beta, progressive = ROWS[key] if key in ROWS else ROWS["anchor"]
    beta = args.beta if beta is None else beta
    cfg = base_config(args, data, run_dir, teacher_file if alpha or beta else None, seed)
    cfg.distill.alpha, cfg.distill.beta = alpha, beta
    if key in OPTIONS:
        title, changes = OPTIONS[key]
        for dotted, value in changes.items():
            section, field = dotted.split(".")
            setattr(getattr(cfg, section), field, value(cfg) if callable(value) else value)
    if progressive:
        cfg.distill.stages = progressive_stages(args)
    names = [f"distill_{k}" for k in range(1, len(cfg.distill.stages) + 1)]
    result = run_pipeline(cfg, Printer(f"{key} s{seed}"), only=names)  # resumes an interrupted row
    if result.status == "cancelled":
        sys.exit(f"{key} seed {seed}: cancelled; run the same command again to resume")
    model = stage_model(run_dir, names[-1])
    model.set_fuse_in_forward(False)  # score and time the real multi-branch form
    row = {"row": title, "key": key, "seed": seed,
           "note": f"{args.steps} steps, patches {'->'.join(str(s.lr_patch) for s in cfg.distill.stages)}",
           **row_record(model, args), **row_train_seconds(run_dir, names), "steps": args.steps,
           "model_ref": {"run": run_dir.name, "stage": names[-1]}}
    write_json(done, row)
    print(f"== {title}, seed {seed}: Set5 {row['set5_psnr_y']:.3f} dB, Set14 {row['set14_psnr_y']:.3f} dB", flush=True)
    return row


def post_rows(args: argparse.Namespace, data: list[Path], teacher_file: Path, work: Path) -> list[dict[str, Any]]:
    """Rows 5 and 6: the first seed's progressive run reparameterized, then pruned round by round."""
    seed = args.seeds[0]
    run_dir = work / f"progressive-s{seed}"
    done = run_dir / "post.json"
    if done.exists():
        return json.loads(done.read_text())
    train_row(args, "progressive", seed, data, teacher_file, work)
    cfg = base_config(args, data, run_dir, teacher_file, seed)
    cfg.distill.alpha, cfg.distill.beta = 1.0, args.beta
    cfg.distill.stages = progressive_stages(args)
    run_pipeline(cfg, Printer("reparam"), only=["reparam"])
    metrics = json.loads((run_dir / "state.json").read_text())["metrics"]
    deploy = stage_model(run_dir, "reparam")
    rows = [{"row": "5 after reparameterization", "key": "reparam", "seed": seed,
             "note": f"max |diff| vs multi-branch {metrics['reparam']['max_abs_diff']:.2e}",
             "max_abs_diff": metrics["reparam"]["max_abs_diff"],
             **row_record(deploy, args, measure_latency(deploy.config, (args.latency_size,) * 2)),
             "model_ref": {"run": run_dir.name, "stage": "reparam"}}]
    if args.prune_rounds > 0:
        run_pipeline(cfg, Printer("prune"), only=[f"prune_{i}" for i in range(1, args.prune_rounds + 1)])
        metrics = json.loads((run_dir / "state.json").read_text())["metrics"]
        for i in range(1, args.prune_rounds + 1):
            m = metrics.get(f"prune_{i}")
            if m is None:
                break
            pruned = stage_model(run_dir, f"prune_{i}")
            rows.append({"row": f"6.{i} after pruning round {i}", "key": f"prune_{i}", "seed": seed,
                         "note": f"{m['widths']}, {cfg.prune.finetune_steps} fine-tune steps",
                         "val_psnr_y_before_finetune": m.get("psnr_y_before_finetune"),
                         **row_record(pruned, args, measure_latency(pruned.config, (args.latency_size,) * 2)),
                         "model_ref": {"run": run_dir.name, "stage": f"prune_{i}"}})
    write_json(done, rows)
    return rows


def collect(work: Path) -> list[dict[str, Any]]:
    """Every finished row in the work folder: rows 1-4 per seed, then 5 and 6, then the option A/Bs."""
    rows = [json.loads(p.read_text()) for p in sorted(work.glob("*-s*/row.json"))]
    order = [*ROWS, *OPTIONS]
    rows.sort(key=lambda r: (order.index(r["key"]), r["seed"]))
    post = [r for p in sorted(work.glob("*-s*/post.json")) for r in json.loads(p.read_text())]
    return [r for r in rows if r["key"] in ROWS] + post + [r for r in rows if r["key"] in OPTIONS]


def summarize(rows: list[dict[str, Any]], bicubic: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row: mean over seeds, the spread (max - min) that is the noise band, and the gap to bicubic."""
    out = []
    for key in dict.fromkeys(r["key"] for r in rows):
        group = [r for r in rows if r["key"] == key]
        entry: dict[str, Any] = {"row": group[0]["row"], "key": key, "seeds": [r["seed"] for r in group]}
        for metric in ("set5_psnr_y", "set14_psnr_y"):
            values = [r[metric] for r in group]
            entry[metric] = round(statistics.mean(values), 3)
            entry[metric + "_spread"] = round(max(values) - min(values), 3)
            entry[metric + "_over_bicubic"] = round(statistics.mean(values) - bicubic[metric], 3)
        entry["per_seed"] = {str(r["seed"]): {m: r[m] for m in ("set5_psnr_y", "set14_psnr_y")} for r in group}
        entry["params"] = group[0]["params"]
        entry["latency_s_per_mp"] = round(min(r["latency_s_per_mp"] for r in group), 4)
        out.append(entry)
    return out


#: What each row is measured against: the row it adds one ingredient to.
BASELINE = {"enhanced": "plain", "anchor": "enhanced", "progressive": "anchor", "reparam": "progressive",
            "prune_1": "reparam", **{f"prune_{i}": f"prune_{i - 1}" for i in range(2, 10)},
            **dict.fromkeys(OPTIONS, "anchor")}


def judge(summary: list[dict[str, Any]]) -> None:
    """Add to each row its gain over its baseline row and whether that gain is beyond the noise.

    Rows with several seeds compare means. A single-seed row (options, 5, 6) compares with its
    baseline's run of the same seed: same initialization and crops, so only the change differs
    (row 5 is row 4's own seed-0 network fused, so it must read 0). The noise band is the larger
    seed spread (max - min over seeds) of the two rows compared, and never less than the largest
    spread among the seeded rows: a single-seed row has no spread of its own, and two seeds give a
    crude band, so the widest one measured is the honest floor.
    """
    by_key = {r["key"]: r for r in summary}
    floor = {m: max((r[m + "_spread"] for r in summary if len(r["seeds"]) > 1), default=0.0)
             for m in ("set5_psnr_y", "set14_psnr_y")}
    for r in summary:
        base = by_key.get(BASELINE.get(r["key"], ""))
        if base is None:
            continue
        r["baseline"] = base["key"]
        paired = base["per_seed"].get(str(r["seeds"][0])) if len(r["seeds"]) == 1 else None
        if paired is not None:
            r["compared_with_seed"] = r["seeds"][0]
        for m, name in (("set5_psnr_y", "set5"), ("set14_psnr_y", "set14")):
            gain = round(r[m] - (paired[m] if paired is not None else base[m]), 3)
            band = round(max(r[m + "_spread"], base[m + "_spread"], floor[m]), 3)
            r[f"{name}_gain_db"], r[f"{name}_noise_band_db"] = gain, band
            r[f"{name}_beyond_noise"] = abs(gain) > band
        if r["key"] == "reparam" or r["key"].startswith("prune_"):  # rows 1-4 and options share one network
            r["speed_ratio_vs_baseline"] = round(base["latency_s_per_mp"] / r["latency_s_per_mp"], 3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.monotonic()
    data = pick_data(args)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if args.steps <= 0 and not args.report:
        teacher_module = load_model(SHARED / "reference" / "dipnet_official_x4.pth").module \
            if args.teacher == "official" else DIPNet(DIPNetConfig.uniform(48, 48, 8))
        sec = calibrate(args, teacher_module)
        rows = 4 * len(args.seeds) + args.prune_rounds * args.prune_finetune_frac
        args.steps = max(20, int(0.7 * args.budget_min * 60 / (rows * sec)))
        print(f"calibration: {sec:.2f} s/step -> {args.steps} steps per row", flush=True)
    if not args.report:
        check_work_dir(work, signature(args, data))
    print(f"data: {', '.join(map(str, data))}; work dir: {work}; torch threads: {torch.get_num_threads()}",
          flush=True)
    reference, teacher_file = reference_scores(args, work, data)
    if not args.report:
        for key in (k for k in ROWS if k in args.rows):
            for seed in args.seeds:
                train_row(args, key, seed, data, teacher_file, work)
        if "post" in args.rows:
            post_rows(args, data, teacher_file, work)
        for key in (k for k in OPTIONS if k in args.rows):
            for seed in args.option_seeds:
                train_row(args, key, seed, data, teacher_file, work)
    rows = collect(work)
    results: dict[str, Any] = {"settings": json.loads((work / "settings.json").read_text())
                               if (work / "settings.json").exists() else {}, "reference": reference, "rows": rows}
    results["machine"] = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
                          "date": time.strftime("%Y-%m-%d %H:%M")}
    if args.retime:
        retime(results, work, args.latency_size)
    results["summary"] = summarize(rows, reference["bicubic"])
    judge(results["summary"])
    results["seconds_this_invocation"] = round(time.monotonic() - t_start, 1)
    write_json(args.json, results)
    print_table(results)
    return 0


def _row_model(row: dict[str, Any], work: Path) -> torch.nn.Module | None:
    ref = row["model_ref"]
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
    models = [(r, _row_model(r, work)) for r in results["rows"]]
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


def print_table(results: dict[str, Any]) -> None:
    ref = results["reference"]
    b, t = ref["bicubic"], ref["teacher"]
    print("\n| row | seeds | Set5 PSNR-Y (spread) | over bicubic | Set14 PSNR-Y (spread) | over bicubic | params "
          "| s/MP (CPU) | gain over (Set5 / Set14, noise band) | speed vs it |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
    print(f"| bicubic | - | {b['set5_psnr_y']:.3f} | - | {b['set14_psnr_y']:.3f} | - | - | - | - | - |")
    print(f"| teacher ({Path(t['file']).name}) | - | {t['set5_psnr_y']:.3f} | - | {t['set14_psnr_y']:.3f} | - "
          f"| {t['params']} | - | - | - |")
    for r in results["summary"]:
        seeds = ",".join(map(str, r["seeds"]))
        gain = speed = "-"
        if "baseline" in r:
            marks = ["**" if r[f"{n}_beyond_noise"] else "" for n in ("set5", "set14")]
            seed = f" s{r['compared_with_seed']}" if "compared_with_seed" in r else ""
            gain = (f"{r['baseline']}{seed}: {marks[0]}{r['set5_gain_db']:+.3f}{marks[0]} / "
                    f"{marks[1]}{r['set14_gain_db']:+.3f}{marks[1]} (±{r['set5_noise_band_db']:.3f} / "
                    f"±{r['set14_noise_band_db']:.3f})")
            speed = f"{r['speed_ratio_vs_baseline']:.2f}x" if "speed_ratio_vs_baseline" in r else "same network"
        print(f"| {r['row']} | {seeds} | {r['set5_psnr_y']:.3f} ({r['set5_psnr_y_spread']:.3f}) | "
              f"{r['set5_psnr_y_over_bicubic']:+.3f} | {r['set14_psnr_y']:.3f} ({r['set14_psnr_y_spread']:.3f}) | "
              f"{r['set14_psnr_y_over_bicubic']:+.3f} | {r['params']} | {r['latency_s_per_mp']:.3f} | {gain} | "
              f"{speed} |")
    print("gain: over the row it adds one thing to (a single-seed row: over that row's run of the same seed); "
          "bold where larger than the noise band (the larger seed spread of the two rows, at least the widest "
          "spread measured)")
    if "latency_method" in results:
        print(f"speed: {results['latency_method']}, {results['machine']['cpu']}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
