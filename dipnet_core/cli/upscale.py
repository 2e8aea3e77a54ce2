"""``dipnet upscale``: upscale image files, by default to ``{stem}_x{scale}.{ext}`` beside each input."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    EXIT_CANCELLED,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_engine_args,
    add_model_arg,
    add_output_args,
    add_quality_arg,
    describe_backend,
    err,
    input_megapixels,
    load,
    make_upscaler,
    sigint_cancels,
    warn,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("upscale", help="upscale image files",
                       description="Upscale images; the default output is {stem}_x{scale}.{ext} "
                                   "next to the input.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="input image file(s)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (one input) or folder (several)")
    add_model_arg(p)
    add_quality_arg(p)
    add_output_args(p)
    add_engine_args(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (inputs are never replaced)")
    p.set_defaults(func=run)


def plan_items(args: argparse.Namespace, scale: int) -> list[Any]:
    """One batch item per input; a FIFO, device or symlink loop becomes a failed item, never opened."""
    from ..batch import BatchItem, image_pixels, normalize_format, output_suffix, validate_items

    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if p.is_dir():
            raise CliError(f"{p} is a folder; use 'dipnet batch {p} -o OUT_DIR'", EXIT_USAGE)
        if not os.path.lexists(p):  # a symlink loop or dangling link exists: it fails as an item
            raise CliError(f"input not found: {p}", EXIT_USAGE)
    fmt = normalize_format(args.format)
    out = Path(args.output) if args.output else None
    # One input and -o that is not an existing folder (nor ends in a separator) names the output file.
    out_is_file = (out is not None and len(inputs) == 1 and not out.is_dir()
                   and not str(args.output).endswith(("/", os.sep)))
    items = []
    for i, inp in enumerate(inputs):
        if out_is_file:
            assert out is not None
            if out.suffix:
                if fmt is not None and normalize_format(out.suffix) != fmt:
                    raise CliError(f"--format {args.format} does not match the output name {out}", EXIT_USAGE)
                target = out
            else:
                target = out.with_name(out.name + output_suffix(inp, fmt))
        else:
            folder = out if out is not None else inp.parent
            target = folder / f"{inp.stem}_x{scale}{output_suffix(inp, fmt)}"
        error = None
        if target.exists() and not args.overwrite:
            error = f"{target} already exists (pass --overwrite to replace it)"
        items.append(BatchItem(index=i, input=inp, output=target, pixels=image_pixels(inp), error=error))
    return validate_items(items)


def run(args: argparse.Namespace) -> int:
    from ..batch import ItemDone, ItemFailed, run_batch
    from ..cancel import CancelToken

    megapixels = input_megapixels([Path(p) for p in args.inputs])
    if megapixels is not None and args.self_ensemble:
        megapixels *= 8  # eight passes: the compute a torch-free run may lose grows eightfold too
    loaded = load(args.model, args, megapixels)
    items = plan_items(args, loaded.descriptor.scale)
    upscaler = make_upscaler(loaded, args)
    print(f"model: {loaded.descriptor.summary()}  [{loaded.source_file}]")
    print(f"backend: {describe_backend(upscaler)}")
    choice = getattr(getattr(upscaler, "backend", None), "choice", None)
    if choice is not None:
        print(f"why: {choice.reason}")
    if args.self_ensemble:
        print("best quality: x8 self-ensemble (8 passes per image, 8x slower)")

    def on_event(event: Any) -> None:
        if isinstance(event, ItemDone):
            if event.warning:
                warn(event.warning)
            print(f"wrote {event.output} in {event.seconds:.2f} s")
        elif isinstance(event, ItemFailed):
            err(event.error)

    token = CancelToken()
    t0 = time.monotonic()
    with sigint_cancels(token), upscaler:
        report = run_batch(items, upscaler, quality=args.quality, cancel=token, on_event=on_event,
                           model=str(loaded.source_file), backend=describe_backend(upscaler),
                           png_compression=args.png_compression, self_ensemble=args.self_ensemble)
    if report.cancelled:
        print("cancelled; no partial files were written", file=sys.stderr)
        return EXIT_CANCELLED
    if len(items) > 1:
        print(f"{len(report.done)} of {len(items)} images upscaled in {time.monotonic() - t0:.2f} s")
    return EXIT_OK if report.ok else EXIT_FAILED
