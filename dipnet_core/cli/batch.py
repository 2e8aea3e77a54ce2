"""``dipnet batch``: upscale every image in a folder, continuing past bad files, with a JSON report."""

from __future__ import annotations

import argparse
import os
import sys
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
    load,
    make_upscaler,
    sigint_cancels,
)
from .progress import ProgressPrinter


def add_parser(sub: Any) -> None:
    p = sub.add_parser("batch", help="upscale every image in a folder",
                       description="Upscale a folder of images, continuing past bad files, "
                                   "with a JSON report. When the output folder is the input folder, "
                                   "earlier outputs of the name template are not taken as inputs.")
    p.add_argument("inputs", nargs="*", metavar="IN_DIR", help="input folder(s) or files")
    p.add_argument("-o", "--output", metavar="OUT_DIR", help="output folder (mirrors the input tree)")
    p.add_argument("--recursive", "-r", action="store_true", help="include subfolders")
    p.add_argument("--skip-existing", action="store_true", help="skip images whose output already exists")
    p.add_argument("--name", default="{stem}_x{scale}", metavar="TEMPLATE",
                   help="output name without extension; fields {stem} {scale} {ext} {model} "
                        "(default %(default)s)")
    add_model_arg(p)
    add_quality_arg(p)
    add_output_args(p)
    add_engine_args(p)
    p.add_argument("--report", metavar="PATH",
                   help="JSON report path (default OUT_DIR/dipnet-batch-report.json; "
                        "with --retry-failed, that report)")
    p.add_argument("--retry-failed", metavar="REPORT",
                   help="re-run only the failures listed in a report, to the outputs it planned "
                        "(with --self-ensemble if that batch had it)")
    p.set_defaults(func=run)


def _check_output_folder(out_dir: Path) -> None:
    """A usage error, before any work, when the output folder cannot exist."""
    from ..io.atomic import file_blocking_folder

    if out_dir.exists() and not out_dir.is_dir():
        raise CliError(f"output {out_dir} exists and is not a folder", EXIT_USAGE)
    blocker = file_blocking_folder(out_dir)
    if blocker is not None:
        raise CliError(f"output folder {out_dir} cannot be created: '{blocker}' is a file, not a folder",
                       EXIT_USAGE)


def run(args: argparse.Namespace) -> int:
    from ..batch import REPORT_NAME, BatchReport, ReportWriteError, plan_batch, run_batch
    from ..cancel import CancelToken

    previous = None
    if args.retry_failed:
        if args.inputs:
            raise CliError("--retry-failed takes its inputs from the report; give no IN_DIR", EXIT_USAGE)
        previous = BatchReport.load(args.retry_failed)
        model = args.model or (previous.model if previous.model and Path(previous.model).is_file() else None)
        loaded = load(model, args)
        items = previous.failed_items()
        report_path = Path(args.report or args.retry_failed)
        # The retried files should match the ones that succeeded the first time.
        args.self_ensemble = args.self_ensemble or previous.self_ensemble
    else:
        if not args.inputs:
            raise CliError("give an input folder (or --retry-failed REPORT)", EXIT_USAGE)
        if not args.output:
            raise CliError("give an output folder with -o OUT_DIR", EXIT_USAGE)
        for p in map(Path, args.inputs):
            if not os.path.lexists(p):
                raise CliError(f"input not found: {p}", EXIT_USAGE)
        out_dir = Path(args.output)
        _check_output_folder(out_dir)
        loaded = load(args.model, args)
        try:
            items = plan_batch([Path(p) for p in args.inputs], out_dir, recursive=args.recursive,
                               name_template=args.name, format=args.format, skip_existing=args.skip_existing,
                               scale=loaded.descriptor.scale, model=loaded.source_file.stem if loaded.source_file else "")
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        report_path = Path(args.report) if args.report else out_dir / REPORT_NAME

    if not items:
        print("nothing to do: no image files found" if previous is None else "nothing to retry: no failures",
              file=sys.stderr)
        return EXIT_OK
    todo = sum(it.skip_reason is None for it in items)
    own_outputs = sum(it.is_own_output for it in items)
    print(f"model: {loaded.descriptor.summary()}  [{loaded.source_file}]", file=sys.stderr)

    def factory() -> Any:
        return make_upscaler(loaded, args)

    # Built up front to print which backend runs; an all-skipped batch builds none.
    upscaler = factory() if todo else None
    backend_text = describe_backend(upscaler) if upscaler is not None else ""
    if backend_text:
        print(f"backend: {backend_text}", file=sys.stderr)
    if args.self_ensemble:
        print("best quality: x8 self-ensemble (8 passes per image, 8x slower)", file=sys.stderr)
    print(f"{len(items)} images ({len(items) - todo} to skip)", file=sys.stderr)
    if own_outputs:
        print(f"{own_outputs} of them are earlier outputs of this batch's name template, not inputs: skipped",
              file=sys.stderr)

    printer = ProgressPrinter(sys.stderr)
    token = CancelToken()
    with sigint_cancels(token):
        try:
            report = run_batch(items, upscaler or factory, quality=args.quality, cancel=token,
                               on_event=printer, model=str(loaded.source_file), backend=backend_text,
                               png_compression=args.png_compression, self_ensemble=args.self_ensemble)
        finally:
            printer.close()
            if upscaler is not None:
                upscaler.close()
    if previous is not None:
        report = previous.merged_retry(report)
    report_error: ReportWriteError | None = None
    try:
        report.save(report_path)
    except ReportWriteError as exc:
        report_error = exc
    summary = (f"done {len(report.done)}, skipped {len(report.skipped)}, failed {len(report.failed)} "
               f"in {report.elapsed_s:.1f} s")
    if report.warnings:
        summary += f", {len(report.warnings)} with warnings"
    print(summary + ("" if report_error else f"; report: {report_path}"), file=sys.stderr)
    if report_error is not None:
        # The images are written; only the record of them is missing.
        err(f"{report_error}; the upscaled images were written, only the report is missing")
    if report.cancelled:
        print("cancelled; finished files are kept, no partial files were written", file=sys.stderr)
        return EXIT_CANCELLED
    return EXIT_OK if report.ok and report_error is None else EXIT_FAILED
