"""Make (or remake) a model's int8 twin, MODEL.int8.onnx, with 7-bit weights, and keep it only if it holds.

    PYTHONPATH=. python scripts/make_int8_twin.py resources/models/dipnet-studio-x4.safetensors

Writes the twin to a temporary file beside the model, measured on Set5 and Set14 against
the model's fp32 graph on this machine; it replaces ``<stem>.int8.onnx`` only when the loss
is within the bound (0.05 dB) on every test set, else the old twin stays and the script
exits 1. Then times int8 against fp32 on one 256x256 input (rough: a ratio in one run).
Rerun it after replacing the built-in model. ``--qat-steps N`` fine-tunes first
(``dipnet export --int8 --qat-steps``) when post-training quantization is not within the bound.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"  # the read-only data folder beside the checkout
DEFAULT_CALIBRATION = [str(SHARED / "training-data"),
                       os.environ.get("DIPNET_WALLPAPERS_DIR", "/work/datasets/wallpapers/train")]
DEFAULT_EVAL = [str(SHARED / "benchmarks" / "Set5"), str(SHARED / "benchmarks" / "Set14")]


def _time_ratio(fp32: bytes, twin: bytes, threads: int = 1, rounds: int = 5) -> tuple[float, float]:
    """Best seconds of fp32 and of the twin on one 256x256 input, by the int8 benchmarks' interleaved protocol."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from int8_protocol import ort_session, speed_ratio

    _, t_fp32, t_int8 = speed_ratio(ort_session(fp32, threads), ort_session(twin, threads), rounds)
    return t_fp32, t_int8


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="the fp32 model (.safetensors, .pth or .onnx)")
    p.add_argument("--calibration", nargs="+", default=DEFAULT_CALIBRATION, help="folders of training photos")
    p.add_argument("--eval", nargs="+", default=DEFAULT_EVAL, help="HR test-image folders")
    p.add_argument("--bound", type=float, default=0.05, help="largest PSNR-Y loss kept, dB (default 0.05)")
    p.add_argument("--qat-steps", type=int, default=0, help="fine-tune first (see dipnet export --qat-steps)")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1: a shared machine)")
    p.add_argument("--float-also", nargs="+", default=[], metavar="PATTERN",
                   help="keep these convs in float too (node-name parts, e.g. /esa/ /c5/) when the default "
                        "recipe loses more than the bound")
    args = p.parse_args(argv)

    from dipnet_core.engine import export_onnx_bytes, hardware
    from dipnet_core.engine.backends.int8_guard import check_twin
    from dipnet_core.export.int8 import QAT_RECIPE, export_int8, read_int8_parity
    from dipnet_core.models import load_model

    model = args.model
    recipe = replace(QAT_RECIPE, float_convs=QAT_RECIPE.float_convs + tuple(args.float_also))
    stem = model.name[: -len(model.suffix)]
    target = model.with_name(stem + ".int8.onnx")
    tmp = model.with_name(f".{stem}.int8.onnx.new")
    loaded = load_model(model)
    fp32 = (export_onnx_bytes(loaded, grid_aware=True) if loaded.module is not None else model.read_bytes())
    print(f"CPU: {hardware.cpu_model()} ({', '.join(hardware.simd_flags())}; VNNI {hardware.has_vnni()})")
    t0 = time.monotonic()
    if args.qat_steps > 0:
        from dipnet_core.train.qat import QATConfig, export_qat_int8

        cfg = QATConfig(steps=args.qat_steps, train_dirs=list(args.calibration), log_every=50)
        record = export_qat_int8(loaded.module, tmp, cfg, args.calibration, args.eval, recipe,
                                 descriptor=loaded.descriptor)
    else:
        record = export_int8(fp32, tmp, args.calibration, eval_sets=args.eval, recipe=recipe,
                             scale=loaded.descriptor.scale, threads=args.threads)
    print(f"quantized in {time.monotonic() - t0:.0f} s ({record['recipe']})")
    for name, loss in sorted(record["loss_db"].items()):
        ps = record["psnr_y"][name]
        print(f"  {name}: PSNR-Y fp32 {ps['fp32']:.3f} dB, int8 {ps['int8']:.3f} dB, loss {loss:+.4f} dB")
    twin = tmp.read_bytes()
    parity = read_int8_parity(twin) or {}
    print(f"  parity probe: {parity.get('vs_fp32')} from fp32, {parity.get('vs_qdq')} from its QDQ arithmetic")
    verdict = check_twin(twin, fp32, args.bound)
    print(f"  guard here: {verdict.reason}")
    t_fp32, t_int8 = _time_ratio(fp32, twin, threads=args.threads)
    print(f"  256x256, {args.threads} thread(s): fp32 {t_fp32:.3f} s, int8 {t_int8:.3f} s, "
          f"int8 {t_fp32 / t_int8:.2f}x as fast (rough, busy machine)")
    worst = max(record["loss_db"].values()) if record["loss_db"] else None
    if worst is None or worst > args.bound:
        print(f"NOT installed: loss {worst} dB is not within {args.bound} dB; {target} unchanged; "
              f"the candidate stays in {tmp}", file=sys.stderr)
        return 1
    tmp.replace(target)
    print(f"installed {target}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
