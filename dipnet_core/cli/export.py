"""``dipnet export``: a model to ONNX or safetensors, optionally checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import Cancelled
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, err, positive_int


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a model to ONNX or safetensors")
    p.add_argument("model", metavar="MODEL", help="model file to export")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.onnx or OUT.safetensors")
    p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--check", action="store_true", help="verify the export against the PyTorch model")
    p.add_argument("--grid-aware", action="store_true",
                   help="write the engine's tiling graph (extra inputs ry, rx_t): named MODEL.grid.onnx beside "
                        "the model, it lets the upscale-only install tile exactly; other tools cannot run it")
    p.add_argument("--int8", action="store_true",
                   help="write the model's int8 twin (onnxruntime static QDQ); name it MODEL.int8.onnx beside "
                        "the model so the engine finds it")
    p.add_argument("--calibration", nargs="+", metavar="DIR", help="with --int8: folders of training photos")
    p.add_argument("--eval", nargs="+", metavar="DIR",
                   help="with --int8: HR test-image folders (e.g. Set5 Set14); the measured loss is stored and "
                        "the automatic choice uses the twin only within 0.05 dB")
    p.add_argument("--int8-weights", type=int, choices=(7, 8), default=7, metavar="BITS",
                   help="with --int8: 7 (default) or 8-bit weights. 8-bit u8 x s8 products saturate in "
                        "onnxruntime's kernels on CPUs without VNNI (most AVX2 PCs), so such a twin computes "
                        "something else there; 7-bit weights compute the same everywhere")
    p.add_argument("--qat-steps", type=int, default=0, metavar="N",
                   help="with --int8: first fine-tune the weights for N steps so the int8 twin matches fp32 "
                        "(quantization-aware, 7-bit weights; ~1 s per step on a CPU core); 0 = post-training only")
    p.add_argument("--qat-train", nargs="+", metavar="DIR",
                   help="with --qat-steps: folders of HR training photos for the fine-tune (default: --calibration)")
    p.add_argument("--qat-patch", type=positive_int, default=48, metavar="PX",
                   help="with --qat-steps: LR patch size of the fine-tune's crops (default 48)")
    p.add_argument("--qat-lr", type=float, default=3e-5, metavar="LR",
                   help="with --qat-steps: peak learning rate of the weights (default 3e-5, cosine decay)")
    p.set_defaults(func=run)


def _export_int8(loaded: Any, out: Path, args: argparse.Namespace) -> int:
    from ..export.int8 import DEFAULT_RECIPE, QAT_RECIPE, export_int8

    recipe = QAT_RECIPE if args.int8_weights == 7 else DEFAULT_RECIPE
    if out.suffix.lower() != ".onnx":
        raise CliError(f"--int8 writes an ONNX file; {out} must end in .onnx (MODEL.int8.onnx beside the model "
                       "is found automatically)", EXIT_USAGE)
    if not args.calibration:
        raise CliError("--int8 needs --calibration DIR (training photos, never the test images)", EXIT_USAGE)
    for folder in [*args.calibration, *(args.eval or ()), *(args.qat_train or ())]:
        if not Path(folder).is_dir():
            raise CliError(f"no such folder: {folder}", EXIT_USAGE)
    t0 = time.monotonic()
    if args.qat_steps < 0:
        raise CliError(f"--qat-steps must be 0 or more, got {args.qat_steps}", EXIT_USAGE)
    if args.qat_steps > 0:
        record = _export_qat(loaded, out, args)
    elif loaded.module is not None:
        from ..engine import export_onnx_bytes

        fp32 = export_onnx_bytes(loaded, grid_aware=True, opset=args.opset)
        record = export_int8(fp32, out, args.calibration, eval_sets=args.eval or (), recipe=recipe,
                             scale=loaded.descriptor.scale)
    else:
        fp32 = Path(loaded.path).read_bytes()
        record = export_int8(fp32, out, args.calibration, eval_sets=args.eval or (), recipe=recipe,
                             scale=loaded.descriptor.scale)
    print(f"wrote {out} in {time.monotonic() - t0:.1f} s ({record['recipe']})")
    for name, loss in sorted(record["loss_db"].items()):
        ps = record["psnr_y"][name]
        print(f"  {name}: PSNR-Y fp32 {ps['fp32']:.3f} dB, int8 {ps['int8']:.3f} dB, loss {loss:+.3f} dB")
    if not record["loss_db"]:
        print("  quality not measured (no --eval): the automatic choice will not use this twin")
    return EXIT_OK


def _export_qat(loaded: Any, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Quantization-aware fine-tune, then the int8 twin of the tuned weights (loss measured against the original)."""
    from ..cancel import CancelToken
    from ..export.int8 import QAT_RECIPE
    from ..models.dipnet import DIPNet
    from ..train.events import ProgressPrinter
    from ..train.qat import QATConfig, export_qat_int8
    from .common import sigint_cancels

    if not isinstance(loaded.module, DIPNet):
        raise CliError(f"{loaded.path}: --qat-steps fine-tunes DIPNet weights (.safetensors/.pth); this model has "
                       "none to fine-tune", EXIT_USAGE)
    checkpoint = Path(f"{out}.qat-checkpoint.pt")
    cfg = QATConfig(steps=args.qat_steps, train_dirs=[str(d) for d in (args.qat_train or args.calibration)],
                    lr_patch=args.qat_patch, lr=args.qat_lr, log_every=50)
    token = CancelToken()
    try:
        with sigint_cancels(token):
            record = export_qat_int8(loaded.module, out, cfg, args.calibration, args.eval or (), QAT_RECIPE,
                                     descriptor=loaded.descriptor, checkpoint=checkpoint,
                                     callback=ProgressPrinter(), cancel_token=token, opset=args.opset)
    except Cancelled:
        print(f"stopped; {checkpoint} keeps the fine-tune: run the same command again to continue", file=sys.stderr)
        raise
    checkpoint.unlink(missing_ok=True)  # the twin is written: nothing left to resume
    return record


def _grid_parity(loaded: Any, out: Path) -> float:
    """Max abs difference between the engine's tiled output through the written graph and through torch."""
    import numpy as np

    from ..engine import TiledUpscaler, create_backend
    from ..models import load_model

    yy, xx = np.mgrid[0:70, 0:90].astype(np.float32)
    image = np.stack([0.5 + 0.4 * np.sin(xx / (3 + c) + yy / 7) for c in range(loaded.descriptor.in_channels)], -1)
    outputs = [TiledUpscaler(create_backend(m, b, "cpu", "fp32"), tile_size=48).upscale(image)
               for m, b in ((loaded, "torch"), (load_model(out), "onnx"))]
    return float(np.abs(outputs[0] - outputs[1]).max())


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".onnx", ".safetensors"):
        raise CliError(f"output {out} must end in .onnx or .safetensors", EXIT_USAGE)
    from ..export import (  # torch: imported only when exporting
        PARITY_TOLERANCE,
        check_onnx_parity,
        check_safetensors_roundtrip,
        export_onnx,
        export_safetensors,
    )
    from ..models import load_model

    loaded = load_model(args.model)
    if args.int8:
        return _export_int8(loaded, out, args)
    t0 = time.monotonic()
    if args.grid_aware:
        if suffix != ".onnx":
            raise CliError(f"--grid-aware writes an ONNX file; {out} must end in .onnx", EXIT_USAGE)
        export_onnx(loaded, out, opset=args.opset, grid_aware=True)
    elif suffix == ".onnx":
        export_onnx(loaded, out, opset=args.opset)
    else:
        export_safetensors(loaded, out)
    print(f"wrote {out} in {time.monotonic() - t0:.2f} s")
    if args.check:
        if args.grid_aware:
            diff = _grid_parity(loaded, out)
            tol = PARITY_TOLERANCE
        elif suffix == ".onnx":
            diff = check_onnx_parity(loaded, out)
            tol = PARITY_TOLERANCE
        else:
            diff = check_safetensors_roundtrip(loaded, out)
            tol = 1e-6
        ok = diff <= tol
        verdict = "ok" if ok else "FAILED"
        print(f"check: max abs difference {diff:.3g} vs PyTorch ({verdict}, tolerance {tol:g})")
        if not ok:
            err(f"{out}: exported model does not match the original (max abs diff {diff:.3g})")
            return EXIT_FAILED
    return EXIT_OK
