"""``dipnet export``: a model to ONNX or safetensors, optionally checked against PyTorch."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

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
    p.set_defaults(func=run)


def _export_int8(loaded: Any, out: Path, args: argparse.Namespace) -> int:
    from ..export.int8 import export_int8

    if out.suffix.lower() != ".onnx":
        raise CliError(f"--int8 writes an ONNX file; {out} must end in .onnx (MODEL.int8.onnx beside the model "
                       "is found automatically)", EXIT_USAGE)
    if not args.calibration:
        raise CliError("--int8 needs --calibration DIR (training photos, never the test images)", EXIT_USAGE)
    if loaded.module is not None:
        from ..engine import export_onnx_bytes

        fp32 = export_onnx_bytes(loaded, grid_aware=True, opset=args.opset)
    else:
        fp32 = Path(loaded.path).read_bytes()
    t0 = time.monotonic()
    record = export_int8(fp32, out, args.calibration, eval_sets=args.eval or (), scale=loaded.descriptor.scale)
    print(f"wrote {out} in {time.monotonic() - t0:.1f} s ({record['recipe']})")
    for name, loss in sorted(record["loss_db"].items()):
        ps = record["psnr_y"][name]
        print(f"  {name}: PSNR-Y fp32 {ps['fp32']:.3f} dB, int8 {ps['int8']:.3f} dB, loss {loss:+.3f} dB")
    if not record["loss_db"]:
        print("  quality not measured (no --eval): the automatic choice will not use this twin")
    return EXIT_OK


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
