"""Should the teacher see degraded inputs too? ``teacher_sees = "degraded"`` vs ``"clean"``, measured.

Both arms start from the same config (default ``configs/photo-model.toml``: the clean run's teacher
and distilled student as warm starts, degraded student data), same seed, same steps; they differ only
in ``[data.degradation] teacher_sees``:

- ``degraded``: the teacher continues on degraded crops and sees the student's exact (degraded) input;
- ``clean``: the teacher continues on clean crops and, while distilling, sees the clean LR of the
  student's crop.

Each arm runs the teacher stage and one distillation stage (the config's last patch size), then the
distilled student (and, for reference, its teacher) is scored on ``bench_degraded``'s fixed degraded
Set5/Set14 (JPEG 40/60/80, with and without noise) and on clean Set5.

    python benchmarks/degrade_teacher_ab.py --teacher-steps 2000 --distill-steps 3000 [--arms clean degraded]

Prints a markdown table and writes ``benchmarks/results/degrade_teacher_ab.json``. Runs live in
``runs/degrade-teacher-ab/<arm>`` and resume if interrupted. Hours on a CPU; minutes on a GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_degraded as bench

from dipnet_core.eval import make_runner
from dipnet_core.io.atomic import atomic_write_text
from dipnet_core.models.config import DIPNetConfig
from dipnet_core.train.config import ProgressiveStage, load_config
from dipnet_core.train.context import load_stage_model
from dipnet_core.train.pipeline import run_pipeline
from dipnet_core.train.stages.common import resolve_model_path

REPO = Path(__file__).resolve().parents[1]
ARMS = ("degraded", "clean")


def continue_teacher_from_file(cfg: Any) -> None:
    """A config with a frozen teacher file (``kind = "file"``, as the photo configs use) gets a teacher
    stage that continues from that file instead: both arms then train it for the same steps, one on
    degraded crops and one on clean crops, so the only difference between them is what it sees."""
    path = resolve_model_path(str(cfg.teacher.path), "teacher.path")
    _, payload = load_stage_model(path)
    arch = DIPNetConfig.from_dict(payload["arch"]["config"])
    widths = {(b.mid1, b.mid2, b.esa) for b in arch.blocks}
    if len(widths) != 1 or arch.blocks[0].mid1 != arch.blocks[0].mid2:
        raise SystemExit(f"error: {path}: a teacher with uneven block widths cannot be continued here")
    mid, _, esa = widths.pop()
    cfg.teacher.kind, cfg.teacher.init, cfg.teacher.path = "train", str(path), None
    cfg.teacher.feat, cfg.teacher.mid, cfg.teacher.n_blocks, cfg.teacher.esa = arch.feat, mid, len(arch.blocks), esa


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "photo-model.toml")
    ap.add_argument("--teacher-steps", type=int, default=2000)
    ap.add_argument("--teacher-lr", type=float, default=1e-4, help="the teacher continues: a low rate (default 1e-4)")
    ap.add_argument("--teacher-patch", type=int, default=48, help="teacher LR patch, px (default 48)")
    ap.add_argument("--teacher-batch", type=int, default=8)
    ap.add_argument("--distill-steps", type=int, default=3000)
    ap.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "degrade-teacher-ab")
    ap.add_argument("--device", default=None, help="override run.device (auto, cpu, cuda)")
    ap.add_argument("--result", type=Path, default=REPO / "benchmarks" / "results" / "degrade_teacher_ab.json")
    args = ap.parse_args(argv)

    sets = bench.load_sets(bench.SHARED)
    rows: list[dict[str, Any]] = []
    for arm in args.arms:
        cfg = load_config(args.config)
        if cfg.data.degradation is None:
            print(f"error: {args.config} has no [data.degradation] table", file=sys.stderr)
            return 2
        cfg.data.degradation.teacher_sees = arm
        if cfg.teacher.kind == "file":
            continue_teacher_from_file(cfg)
        cfg.teacher.steps, cfg.teacher.lr = args.teacher_steps, args.teacher_lr
        cfg.teacher.lr_patch, cfg.teacher.batch = args.teacher_patch, args.teacher_batch
        last = cfg.distill.stages[-1]
        cfg.distill.stages = [ProgressiveStage(last.lr_patch, args.distill_steps, last.batch, last.lr)]
        cfg.run.out_dir = str(args.out / arm)
        cfg.run.val_every = 0
        if args.device:
            cfg.run.device = args.device
        t0 = time.perf_counter()
        result = run_pipeline(cfg, only=["teacher", "distill_1"])
        if result.status == "cancelled":
            return 1
        minutes = (time.perf_counter() - t0) / 60
        methods: dict[str, Any] = {"bicubic": bench.bicubic_up}
        for stage in ("teacher", "distill_1"):
            model, _ = load_stage_model(Path(cfg.run.out_dir) / "stages" / stage / "model.pt")
            methods[stage] = make_runner(model.eval())[0]
        results, _ = bench.evaluate_methods(methods, sets)
        summary = bench.summarize(results, list(methods))
        row = {"arm": arm, "minutes": round(minutes, 1), "summary": summary}
        rows.append(row)
        s, t = summary["distill_1"], summary["teacher"]
        print(f"{arm}: student degraded {s['degraded_mean_psnr_y']:.3f} dB, clean Set5 {s['clean_set5_psnr_y']:.3f} dB; "
              f"teacher degraded {t['degraded_mean_psnr_y']:.3f} dB ({minutes:.1f} min)", flush=True)

    print("\n| teacher sees | student: degraded PSNR-Y | student: clean Set5 | teacher: degraded PSNR-Y "
          "| teacher: clean Set5 | bicubic: degraded | minutes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s, t, b = r["summary"]["distill_1"], r["summary"]["teacher"], r["summary"]["bicubic"]
        print(f"| {r['arm']} | {s['degraded_mean_psnr_y']:.3f} | {s['clean_set5_psnr_y']:.3f} | "
              f"{t['degraded_mean_psnr_y']:.3f} | {t['clean_set5_psnr_y']:.3f} | {b['degraded_mean_psnr_y']:.3f} | "
              f"{r['minutes']} |")
    if len(rows) == 2:
        d = (rows[0]["summary"]["distill_1"]["degraded_mean_psnr_y"]
             - rows[1]["summary"]["distill_1"]["degraded_mean_psnr_y"])
        print(f"\nstudent, degraded sets: {rows[0]['arm']} - {rows[1]['arm']} = {d:+.3f} dB")
    args.result.parent.mkdir(parents=True, exist_ok=True)
    record = {"config": str(args.config), "teacher_steps": args.teacher_steps, "teacher_lr": args.teacher_lr,
              "teacher_patch": args.teacher_patch, "teacher_batch": args.teacher_batch,
              "distill_steps": args.distill_steps,
              "machine": {"cpu": bench.cpu_model()}, "rows": rows}
    atomic_write_text(args.result, json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.result}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
