"""What the ``dipnet`` commands share: exit codes, argument types, model loading, Ctrl-C, errors.

Nothing here imports torch at module import time: ``dipnet upscale`` on the
onnxruntime backend must run in an install without it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import Cancelled, DipnetError, describe_os_error

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130
FORMAT_CHOICES = ("png", "jpg", "webp", "tiff")
BACKEND_CHOICES = ("auto", "torch", "onnx")
DEVICE_CHOICES = ("auto", "cpu", "cuda")
PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")


class CliError(DipnetError):
    """An expected problem found by the CLI itself: printed as one ``error:`` line, exit with ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- arguments


def quality(text: str) -> int:
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"quality must be an integer 1-100, not '{text}'") from None
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"quality must be 1-100, not {q}")
    return q


def positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not '{text}'") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {n}")
    return n


def positive_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, not '{text}'") from None
    if not x > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, not {text}")
    return x


def add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", metavar="MODEL",
                   help="FILE, or a built-in: clean | photo (default: the built-in clean model)")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile", type=positive_int, metavar="N",
                   help="tile size in input pixels (default: automatic)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="inference backend (default: auto)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="device (default: auto)")
    p.add_argument("--precision", choices=PRECISION_CHOICES, default="auto",
                   help="compute precision (default: auto, the fastest accurate one for the device)")


def add_quality_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--self-ensemble", action="store_true",
                   help="best quality: average the upscales of the 8 flips/rotations of each image "
                        "(x8 self-ensemble; about +0.1 dB PSNR, 8x slower)")


def add_output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMAT_CHOICES, help="output format (default: the input's, else png)")
    p.add_argument("--quality", type=quality, default=95, metavar="Q",
                   help="JPEG/WebP quality 1-100 (default 95)")
    p.add_argument("--png-compression", type=int, choices=range(10), default=None, metavar="0-9",
                   help="PNG compression: 1 (default) is fast at about Pillow's level-6 size; "
                        "4-8 smaller, ~3x slower; 9 smallest, very slow; 0 stores raw")


# ---------------------------------------------------------------------------------------------- output


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- models


def resolve_model_path(model: str | None) -> Path:
    """A ``--model`` value (a file, ``clean``/``photo``, or None for the default) -> the model file.

    A built-in this build lacks, or no built-in at all, is a usage error (exit 2).
    """
    from ..resources import NO_BUILTIN_MODEL, resolve_model_arg

    try:
        path = resolve_model_arg(model or None)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    if path is None:
        raise CliError(NO_BUILTIN_MODEL, EXIT_USAGE)
    return path


def input_megapixels(paths: list[Path]) -> float | None:
    """Total input size of a job's image files from their headers, or None if any is not a readable image.

    Only regular files are opened: a FIFO or device would block or be consumed here (the job itself
    refuses them by file type, with its own message).
    """
    import stat

    from PIL import Image

    total = 0
    for p in paths:
        try:
            if not stat.S_ISREG(os.stat(p).st_mode):
                return None
            with Image.open(p) as im:
                total += im.width * im.height
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
    return total / 1e6


def load(model: str | None, args: argparse.Namespace | None = None, megapixels: float | None = None) -> Any:
    """Load ``--model``; with the run's ``args``, a cached torch-free stand-in when the run allows one.

    ``megapixels`` (the job's input size, when known) lets a short job take the stand-in even where
    torch computes slightly faster: see :func:`dipnet_core.engine.onnx_cache.stand_in`.
    """
    path = resolve_model_path(model)
    if args is not None:
        from ..engine.onnx_cache import stand_in

        loaded = stand_in(path, getattr(args, "backend", "auto"), getattr(args, "device", "auto"),
                          getattr(args, "precision", "auto"), megapixels)
        if loaded is not None:
            return loaded
    from ..models import load_model  # imported here: the model loader may pull in torch

    return load_model(path)


@contextmanager
def measurement_notice() -> Iterator[None]:
    """While inside, a fresh engine measurement (seconds, the first run of a model here) is said on stderr."""
    from ..engine.backends.autoselect import add_measurement_listener

    remove = add_measurement_listener(lambda message, _done: print(message, file=sys.stderr, flush=True))
    try:
        yield
    finally:
        remove()


def make_upscaler(loaded: Any, args: argparse.Namespace) -> Any:
    from ..engine import TiledUpscaler, create_backend

    with measurement_notice():
        backend = create_backend(loaded, backend=args.backend, device=args.device, precision=args.precision)
    try:
        return TiledUpscaler(backend, tile_size=args.tile)
    except ValueError as exc:  # e.g. --tile below the model's minimum: a usage error
        raise CliError(str(exc), EXIT_USAGE) from exc


def describe_backend(upscaler: Any) -> str:
    backend = getattr(upscaler, "backend", None)
    if backend is None:
        return "?"
    try:
        return str(backend.describe())
    except Exception:  # describe() is cosmetic; never let it break a run
        return f"{getattr(backend, 'name', '?')} on {getattr(backend, 'device', '?')}"


# ---------------------------------------------------------------------------------------------- control


@contextmanager
def sigint_cancels(token: Any) -> Iterator[None]:
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


def exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return EXIT_OK
    return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def expected_error_text(exc: BaseException) -> str:
    """One line for an expected error; file-system errors in words, without ``[Errno N]``."""
    if isinstance(exc, OSError) and not isinstance(exc, DipnetError):
        return describe_os_error(exc)
    if isinstance(exc, MemoryError):
        return "not enough memory; try a smaller --tile, or a smaller image"
    return str(exc) or type(exc).__name__


def guarded(fn: Callable[[], int]) -> int:
    """Run a command: expected errors become one ``error:`` line, anything else keeps its traceback.

    Expected are the core's :class:`~dipnet_core.errors.DipnetError` family, file-system
    errors (``OSError``) and running out of memory. A ``RuntimeError`` or ``ValueError``
    that is not a ``DipnetError`` is a bug: it propagates with its traceback.
    Set ``DIPNET_DEBUG=1`` to see tracebacks for the expected ones too.
    """
    try:
        return fn()
    except CliError as exc:
        err(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print("\ncancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except (DipnetError, OSError, MemoryError) as exc:
        if os.environ.get("DIPNET_DEBUG"):
            raise
        if isinstance(exc, Cancelled):
            print("cancelled", file=sys.stderr)
            return EXIT_CANCELLED
        err(expected_error_text(exc))
        return EXIT_FAILED
