"""``dipnet``: the command-line front end of the headless core.

Subcommands: upscale, batch, export, info, bench, and train/eval when the training
module imports. Expected problems (missing or unreadable files, bad models, bad
arguments) print one ``error: ...`` line naming the file and return non-zero;
tracebacks are kept for real bugs (set ``DIPNET_DEBUG=1`` to see them for
expected errors too).

Exit codes: 0 success, 1 something failed, 2 usage error, 130 cancelled (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
FORMAT_CHOICES = ("png", "jpg", "webp", "tiff")
BACKEND_CHOICES = ("auto", "torch", "onnx")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")


class CliError(Exception):
    """An expected problem: printed as one ``error:`` line, exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- helpers


def _quality(text: str) -> int:
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality must be an integer 1-100, not '{text}'") from None
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"quality must be 1-100, not {q}")
    return q


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not '{text}'") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {n}")
    return n


def _positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, not '{text}'") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text}")
    return x


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _resolve_model_path(model: str | None) -> Path:
    if model:
        return Path(model)
    from .resources import NO_BUILTIN_MODEL, builtin_model_path

    builtin = builtin_model_path()
    if builtin is None:
        raise CliError(NO_BUILTIN_MODEL, EXIT_USAGE)
    return builtin


def _load(model: str | None) -> Any:
    from .models import load_model

    return load_model(_resolve_model_path(model))


def _make_upscaler(loaded: Any, args: argparse.Namespace) -> Any:
    from .engine import TiledUpscaler, create_backend

    backend = create_backend(loaded, backend=args.backend, device=args.device, precision=args.precision)
    try:
        return TiledUpscaler(backend, tile_size=args.tile)
    except ValueError as exc:  # e.g. --tile below the model's minimum: a usage error
        raise CliError(str(exc), EXIT_USAGE) from exc


def _describe_backend(upscaler: Any) -> str:
    backend = getattr(upscaler, "backend", None)
    if backend is None:
        return "?"
    try:
        return str(backend.describe())
    except Exception:  # describe() is cosmetic; never let it break a run
        return f"{getattr(backend, 'name', '?')} on {getattr(backend, 'device', '?')}"


@contextmanager
def _sigint_cancels(token: Any) -> Iterator[None]:
    """First Ctrl-C sets ``token`` (the job stops cleanly between tiles); a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print("\ncancelling after the current tile (Ctrl-C again to abort now)...", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProgressPrinter:
    """Plain-text batch progress on ``stream``: one redrawn line on a TTY, periodic lines otherwise."""

    def __init__(self, stream: IO[str], tty: bool | None = None, interval_s: float = 5.0,
                 redraw_s: float = 0.1) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval_s = interval_s if not self.tty else redraw_s
        self._last = 0.0
        self._width = 0
        self._name = ""

    def _line(self, progress: Any) -> str:
        pct = int(progress.fraction * 100)
        bar_w = 24
        filled = int(progress.fraction * bar_w)
        bar = "#" * filled + "-" * (bar_w - filled)
        return (f"{pct:3d}% [{bar}] {progress.finished}/{progress.total} files  "
                f"elapsed {_fmt_duration(progress.elapsed_s)}  ETA {_fmt_duration(progress.eta_s)}"
                + (f"  {self._name}" if self._name else ""))

    def show(self, progress: Any, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval_s:
            return
        self._last = now
        line = self._line(progress)
        if self.tty:
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A permanent line (failures, summaries) that does not garble the redrawn bar."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def __call__(self, event: Any) -> None:
        from .batch import ItemDone, ItemFailed, ItemProgress, ItemSkipped, ItemStarted

        if isinstance(event, ItemStarted):
            self._name = event.path.name
            self.show(event.progress)
        elif isinstance(event, ItemProgress):
            self.show(event.progress)
        elif isinstance(event, ItemFailed):
            self.message(f"failed: {event.error}")
            self.show(event.progress, force=self.tty)
        elif isinstance(event, (ItemDone, ItemSkipped)):
            last = event.progress.finished == event.progress.total
            self.show(event.progress, force=last or self.tty)


# ---------------------------------------------------------------------------------------------- upscale


def _upscale_items(args: argparse.Namespace, scale: int) -> list[Any]:
    from .batch import BatchItem, image_pixels, normalize_format, output_suffix, validate_items

    inputs = [Path(p) for p in args.inputs]
    for p in inputs:
        if p.is_dir():
            raise CliError(f"{p} is a folder; use 'dipnet batch {p} -o OUT_DIR'", EXIT_USAGE)
        if not p.exists():
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


def cmd_upscale(args: argparse.Namespace) -> int:
    from .batch import ItemDone, ItemFailed, run_batch
    from .cancel import CancelToken

    loaded = _load(args.model)
    items = _upscale_items(args, loaded.descriptor.scale)
    upscaler = _make_upscaler(loaded, args)
    print(f"model: {loaded.descriptor.summary()}  [{loaded.path}]")
    print(f"backend: {_describe_backend(upscaler)}")
    choice = getattr(upscaler.backend, "choice", None)
    if choice is not None:
        print(f"why: {choice.reason}")

    def on_event(event: Any) -> None:
        if isinstance(event, ItemDone):
            print(f"wrote {event.output} in {event.seconds:.2f} s")
        elif isinstance(event, ItemFailed):
            _err(event.error)

    token = CancelToken()
    t0 = time.monotonic()
    with _sigint_cancels(token), upscaler:
        report = run_batch(items, upscaler, quality=args.quality, cancel=token, on_event=on_event,
                           model=str(loaded.path), backend=_describe_backend(upscaler))
    if report.cancelled:
        print("cancelled; no partial files were written", file=sys.stderr)
        return EXIT_CANCELLED
    if len(items) > 1:
        print(f"{len(report.done)} of {len(items)} images upscaled in {time.monotonic() - t0:.2f} s")
    return EXIT_OK if report.ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------------- batch


def cmd_batch(args: argparse.Namespace) -> int:
    from .batch import REPORT_NAME, BatchReport, plan_batch, run_batch
    from .cancel import CancelToken

    previous = None
    if args.retry_failed:
        if args.inputs:
            raise CliError("--retry-failed takes its inputs from the report; give no IN_DIR", EXIT_USAGE)
        previous = BatchReport.load(args.retry_failed)
        model = args.model or (previous.model if previous.model and Path(previous.model).is_file() else None)
        loaded = _load(model)
        items = previous.failed_items()
        report_path = Path(args.report or args.retry_failed)
    else:
        if not args.inputs:
            raise CliError("give an input folder (or --retry-failed REPORT)", EXIT_USAGE)
        if not args.output:
            raise CliError("give an output folder with -o OUT_DIR", EXIT_USAGE)
        for p in map(Path, args.inputs):
            if not p.exists():
                raise CliError(f"input not found: {p}", EXIT_USAGE)
        out_dir = Path(args.output)
        if out_dir.exists() and not out_dir.is_dir():
            raise CliError(f"output {out_dir} exists and is not a folder", EXIT_USAGE)
        loaded = _load(args.model)
        try:
            items = plan_batch([Path(p) for p in args.inputs], out_dir, recursive=args.recursive,
                               name_template=args.name, format=args.format, skip_existing=args.skip_existing,
                               scale=loaded.descriptor.scale, model=loaded.path.stem if loaded.path else "")
        except ValueError as exc:
            raise CliError(str(exc), EXIT_USAGE) from exc
        report_path = Path(args.report) if args.report else out_dir / REPORT_NAME

    if not items:
        print("nothing to do: no image files found" if previous is None else "nothing to retry: no failures",
              file=sys.stderr)
        return EXIT_OK
    todo = sum(it.skip_reason is None for it in items)
    print(f"model: {loaded.descriptor.summary()}  [{loaded.path}]", file=sys.stderr)

    def factory() -> Any:
        return _make_upscaler(loaded, args)

    # Built up front to print which backend runs; an all-skipped batch builds none.
    upscaler = factory() if todo else None
    backend_text = _describe_backend(upscaler) if upscaler is not None else ""
    if backend_text:
        print(f"backend: {backend_text}", file=sys.stderr)
    print(f"{len(items)} images ({len(items) - todo} to skip)", file=sys.stderr)

    printer = ProgressPrinter(sys.stderr)
    token = CancelToken()
    with _sigint_cancels(token):
        try:
            report = run_batch(items, upscaler or factory, quality=args.quality, cancel=token,
                               on_event=printer, model=str(loaded.path), backend=backend_text)
        finally:
            printer.close()
            if upscaler is not None:
                upscaler.close()
    if previous is not None:
        report = previous.merged_retry(report)
    report.save(report_path)
    print(f"done {len(report.done)}, skipped {len(report.skipped)}, failed {len(report.failed)} "
          f"in {report.elapsed_s:.1f} s; report: {report_path}", file=sys.stderr)
    if report.cancelled:
        print("cancelled; finished files are kept, no partial files were written", file=sys.stderr)
        return EXIT_CANCELLED
    return EXIT_OK if report.ok else EXIT_FAILED


# ---------------------------------------------------------------------------------------------- export / info


def cmd_export(args: argparse.Namespace) -> int:
    from .export import (
        PARITY_TOLERANCE,
        check_onnx_parity,
        check_safetensors_roundtrip,
        export_onnx,
        export_safetensors,
    )
    from .models import load_model

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in (".onnx", ".safetensors"):
        raise CliError(f"output {out} must end in .onnx or .safetensors", EXIT_USAGE)
    loaded = load_model(args.model)
    t0 = time.monotonic()
    if args.int8:
        return _export_int8(loaded, out, args)
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
            _err(f"{out}: exported model does not match the original (max abs diff {diff:.3g})")
            return EXIT_FAILED
    return EXIT_OK


def _export_int8(loaded: Any, out: Path, args: argparse.Namespace) -> int:
    from .export.int8 import export_int8

    if out.suffix.lower() != ".onnx":
        raise CliError(f"--int8 writes an ONNX file; {out} must end in .onnx (MODEL.int8.onnx beside the model "
                       "is found automatically)", EXIT_USAGE)
    if not args.calibration:
        raise CliError("--int8 needs --calibration DIR (training photos, never the test images)", EXIT_USAGE)
    if loaded.module is not None:
        from .engine import export_onnx_bytes

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


def _info_dict(loaded: Any) -> dict[str, Any]:
    import dataclasses

    from .engine import available_backends
    from .models import DIPNetConfig

    d = loaded.descriptor
    info: dict[str, Any] = {"path": str(loaded.path) if loaded.path else None,
                            "descriptor": json.loads(d.to_json())}
    if d.config:
        cfg = DIPNetConfig.from_dict(d.config)
        info["widths"] = {"feat": cfg.feat, "label": cfg.widths_label(),
                          "blocks": [dataclasses.asdict(b) for b in cfg.blocks]}
        info["macs_per_input_pixel"] = cfg.macs_per_input_pixel()
    info["params"] = d.params
    info["backends"] = available_backends()
    from .engine.backends.autoselect import cache_key, load_cached

    choice = load_cached(cache_key(loaded))
    info["auto_choice"] = choice.to_json() if choice else None
    return info


def cmd_info(args: argparse.Namespace) -> int:
    loaded = _load(args.model)
    info = _info_dict(loaded)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    d = loaded.descriptor
    rows = [("model", d.name or "(unnamed)"), ("file", info["path"] or "-"), ("architecture", d.arch),
            ("scale", f"x{d.scale}"), ("channels", f"{d.in_channels} -> {d.out_channels}"),
            ("parameters", f"{d.params:,}")]
    if "widths" in info:
        w = info["widths"]
        blocks = ", ".join(f"{b['mid1']}/{b['mid2']}/esa{b['esa']}" for b in w["blocks"])
        rows.append(("widths", f"features {w['feat']}; blocks {blocks}"))
        macs = info["macs_per_input_pixel"]
        rows.append(("MACs", f"{macs:,} per input pixel ({macs / 1e3:.0f} GMAC per input megapixel)"))
    rows += [("input range", f"{d.input_range[0]:g}..{d.input_range[1]:g}"), ("min size", f"{d.min_size} px"),
             ("tileable", "yes" if d.tileable else "no"),
             ("half precision", "yes" if d.supports_half else "no")]
    if d.source:
        rows.append(("source", d.source))
    if d.license:
        rows.append(("license", d.license))
    usable = [f"{b['backend']} {b['device']} ({'/'.join(b['precisions'])})" for b in info["backends"]
              if b["available"]]
    # dict.fromkeys: onnxruntime's CUDA and TensorRT providers give the same line.
    missing = list(dict.fromkeys(f"{b['backend']} {b['device']}: {b['detail']}" for b in info["backends"]
                                 if not b["available"]))
    rows.append(("backends", ", ".join(usable) or "none"))
    choice = info.get("auto_choice")
    rows.append(("auto choice", choice["reason"] if choice else "not measured yet (the first upscale measures it)"))
    if missing:
        rows.append(("unavailable", "; ".join(missing)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    import numpy as np

    from .engine import TiledUpscaler, available_backends, create_backend

    loaded = _load(args.model)
    entries = [e for e in available_backends() if e["available"]
               and args.backend in ("auto", e["backend"]) and args.device in ("auto", e["device"])]
    # onnxruntime's CUDA and TensorRT providers share (backend, device, precision); create_backend picks one.
    configs = list(dict.fromkeys((e["backend"], e["device"], p) for e in entries for p in e["precisions"]
                                 if args.precision in ("auto", p)))
    if not configs:
        raise CliError(f"no usable backend here for --backend {args.backend} --device {args.device} "
                       f"--precision {args.precision}", EXIT_USAGE)
    pixels = np.random.default_rng(0).random((args.size, args.size, loaded.descriptor.in_channels),
                                             dtype=np.float32)
    megapixels = args.size * args.size / 1e6
    print(f"model: {loaded.descriptor.summary()}")
    print(f"input {args.size}x{args.size} ({megapixels:.3f} MP), about {args.seconds:g} s per configuration")
    if args.backend == "auto" and args.precision == "auto" and args.device in ("auto", "cpu"):
        auto = create_backend(loaded, device=args.device)
        print(f"auto: {auto.describe()}: {auto.choice.reason if auto.choice else 'explicit'}")
    print(f"{'backend':<60} {'s/MP':>8} {'MP/s':>8} {'runs':>5}")
    for name, device, precision in configs:
        try:
            backend = create_backend(loaded, backend=name, device=device, precision=precision)
        except (ValueError, RuntimeError) as exc:  # BackendUnavailable is a RuntimeError
            print(f"{f'{name} {device} {precision}':<60} unavailable: {exc}")
            continue
        with TiledUpscaler(backend, tile_size=args.tile) as up:
            up.upscale(pixels)  # warm-up: lazy init, kernel selection, allocator growth
            times: list[float] = []
            deadline = time.monotonic() + args.seconds
            while not times or time.monotonic() < deadline:
                t0 = time.perf_counter()
                up.upscale(pixels)
                times.append(time.perf_counter() - t0)
        s_per_mp = float(np.median(times)) / megapixels
        print(f"{backend.describe()[:60]:<60} {s_per_mp:8.3f} {1 / s_per_mp:8.2f} {len(times):5d}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------- train / eval


def _run_training_command(name: str, argv: Sequence[str]) -> int:
    """Mount ``dipnet train`` / ``dipnet eval`` lazily: a broken trainer must not break the other commands."""
    try:
        from .train import cli as train_cli

        add: Callable[[argparse.ArgumentParser], Any] = getattr(train_cli, f"add_{name}_arguments")
        run: Callable[[argparse.Namespace], Any] = getattr(train_cli, f"{name}_main")
    except Exception as exc:  # ImportError, or any error raised while importing the trainer
        _err(f"'dipnet {name}' is not available in this install ({type(exc).__name__}: {exc})")
        return EXIT_FAILED
    parser = argparse.ArgumentParser(prog=f"dipnet {name}")
    add(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return _exit_code(exc)
    return _guarded(lambda: int(run(args) or 0))


# ---------------------------------------------------------------------------------------------- parser


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", metavar="FILE",
                   help="model file (.safetensors, .pth, .onnx); default: the built-in model")


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile", type=_positive_int, metavar="N",
                   help="tile size in input pixels (default: automatic)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="inference backend (default: auto)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="device (default: auto)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="compute precision (default: auto, the fastest accurate one for the device)")


def _add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMAT_CHOICES, help="output format (default: the input's, else png)")
    p.add_argument("--quality", type=_quality, default=95, metavar="Q",
                   help="JPEG/WebP quality 1-100 (default 95)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dipnet", description="Fast 4x image super-resolution with DIPNet.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("upscale", help="upscale image files",
                       description="Upscale images; the default output is {stem}_x{scale}.{ext} "
                                   "next to the input.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="input image file(s)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file (one input) or folder (several)")
    _add_model_arg(p)
    _add_output_args(p)
    _add_engine_args(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (inputs are never replaced)")
    p.set_defaults(func=cmd_upscale)

    p = sub.add_parser("batch", help="upscale every image in a folder",
                       description="Upscale a folder of images, continuing past bad files, "
                                   "with a JSON report.")
    p.add_argument("inputs", nargs="*", metavar="IN_DIR", help="input folder(s) or files")
    p.add_argument("-o", "--output", metavar="OUT_DIR", help="output folder (mirrors the input tree)")
    p.add_argument("--recursive", "-r", action="store_true", help="include subfolders")
    p.add_argument("--skip-existing", action="store_true", help="skip images whose output already exists")
    p.add_argument("--name", default="{stem}_x{scale}", metavar="TEMPLATE",
                   help="output name without extension; fields {stem} {scale} {ext} {model} "
                        "(default %(default)s)")
    _add_model_arg(p)
    _add_output_args(p)
    _add_engine_args(p)
    p.add_argument("--report", metavar="PATH",
                   help="JSON report path (default OUT_DIR/dipnet-batch-report.json; "
                        "with --retry-failed, that report)")
    p.add_argument("--retry-failed", metavar="REPORT",
                   help="re-run only the failures listed in a report, to the outputs it planned")
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("export", help="export a model to ONNX or safetensors")
    p.add_argument("model", metavar="MODEL", help="model file to export")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="OUT.onnx or OUT.safetensors")
    p.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--check", action="store_true", help="verify the export against the PyTorch model")
    p.add_argument("--int8", action="store_true",
                   help="write the model's int8 twin (onnxruntime static QDQ); name it MODEL.int8.onnx beside "
                        "the model so the engine finds it")
    p.add_argument("--calibration", nargs="+", metavar="DIR", help="with --int8: folders of training photos")
    p.add_argument("--eval", nargs="+", metavar="DIR",
                   help="with --int8: HR test-image folders (e.g. Set5 Set14); the measured loss is stored and "
                        "the automatic choice uses the twin only within 0.05 dB")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model", nargs="?", metavar="MODEL", help="model file (default: the built-in model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="measure upscaling speed on this machine")
    _add_model_arg(p)
    p.add_argument("--size", type=_positive_int, default=256, help="input side in pixels (default 256)")
    p.add_argument("--seconds", type=_positive_float, default=5.0, help="time per configuration (default 5)")
    _add_engine_args(p)
    p.set_defaults(func=cmd_bench)

    # Placeholders for the help listing; main() hands these to the training module before parsing.
    sub.add_parser("train", add_help=False,
                   help="train or fine-tune a DIPNet model (see 'dipnet train --help')")
    sub.add_parser("eval", add_help=False,
                   help="evaluate a model on benchmark images (see 'dipnet eval --help')")
    return parser


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _expected_errors() -> tuple[type[BaseException], ...]:
    from .batch import ReportError
    from .export import ExportError
    from .io import ImageReadError, ImageWriteError
    from .models import ModelLoadError

    return (ModelLoadError, ImageReadError, ImageWriteError, ReportError, ExportError, OSError, ValueError,
            RuntimeError)


def _guarded(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except CliError as exc:
        _err(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except _expected_errors() as exc:
        if os.environ.get("DIPNET_DEBUG"):
            raise
        _err(str(exc) or type(exc).__name__)
        return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval"):
        return _run_training_command(argv[0], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return _exit_code(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
