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
    p.set_defaults(func=run)


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
    t0 = time.monotonic()
    if suffix == ".onnx":
        export_onnx(loaded, out, opset=args.opset)
    else:
        export_safetensors(loaded, out)
    print(f"wrote {out} in {time.monotonic() - t0:.2f} s")
    if args.check:
        if suffix == ".onnx":
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
