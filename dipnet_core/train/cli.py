"""``dipnet train`` / ``dipnet eval``: argument definitions and entry points.

The main CLI (``dipnet_core.cli``) mounts these as subcommands; ``python -m
dipnet_core.train.cli train|eval ...`` runs them directly.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from ..cancel import CancelToken

__all__ = ["add_eval_arguments", "add_train_arguments", "config_from_args", "eval_main", "main", "train_main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CANCELLED = 0, 1, 2, 130


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .config import preset_names

    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", metavar="FILE", help="run config (.toml or .yaml)")
    src.add_argument("--preset", metavar="NAME", choices=preset_names(),
                     help=f"built-in config: {', '.join(preset_names())} (default: quick-cpu)")
    src.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR with its saved config")
    parser.add_argument("--data", metavar="DIR", action="append", default=[],
                        help="folder of HR training images, searched recursively (repeatable)")
    parser.add_argument("--val", metavar="DIR", help="folder of HR validation images (default: a split of --data)")
    parser.add_argument("--teacher", metavar="FILE", help="use this model file as the teacher instead of training one")
    parser.add_argument("--no-teacher", action="store_true", help="train without a teacher (plain L1 on HR)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (checkpoints, logs, exported model)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override run.device")
    parser.add_argument("--name", help="name of the exported model (file name and descriptor)")
    parser.add_argument("--fresh", action="store_true",
                        help="start over in --out instead of resuming what is already there")


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", "-m", metavar="MODEL",
                        help="FILE, or a built-in: clean | photo (default: the built-in clean model)")
    parser.add_argument("--data", required=True, metavar="DIR", help="folder of HR images (e.g. Set5)")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", metavar="OUT", help="also write the full result as JSON")


def config_from_args(args: argparse.Namespace) -> Any:
    """The run config described by parsed ``train`` arguments."""
    from .config import load_config, preset
    from .pipeline import resume_config

    if getattr(args, "resume", None):
        cfg = resume_config(args.resume)
    elif getattr(args, "config", None):
        cfg = load_config(args.config)
    else:
        cfg = preset(getattr(args, "preset", None) or "quick-cpu")
    if args.data:
        cfg.data.train_dirs = [str(Path(d)) for d in args.data]
    if args.val:
        cfg.data.val_dir = str(Path(args.val))
    if args.teacher:
        cfg.teacher.kind, cfg.teacher.path = "file", str(Path(args.teacher))
    if getattr(args, "no_teacher", False):
        cfg.teacher.kind = "none"
    if args.out and not getattr(args, "resume", None):
        cfg.run.out_dir = str(Path(args.out))
    if args.device:
        cfg.run.device = args.device
    if getattr(args, "name", None):
        cfg.export.name = args.name
    cfg.validate()
    return cfg


def _install_sigint(token: CancelToken) -> Any:
    """First Ctrl-C: finish the current step, checkpoint and stop; second: the default (abort)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if token.cancelled:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr, flush=True)
        token.cancel()

    return signal.signal(signal.SIGINT, handler)


def train_main(args: argparse.Namespace) -> int:
    from .config import ConfigError
    from .events import ProgressPrinter
    from .pipeline import run_pipeline
    from .stages.common import check_model_files

    try:
        cfg = config_from_args(args)
        check_model_files(cfg)  # a missing teacher or starting model: say so before anything starts
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if not cfg.data.train_dirs:
        print("error: no training data: give --data DIR (or data.train_dirs in the config)", file=sys.stderr)
        return EXIT_FAILED
    token = CancelToken()
    previous = _install_sigint(token)
    try:
        result = run_pipeline(cfg, ProgressPrinter(), token, resume=not getattr(args, "fresh", False))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if result.status == "cancelled":
        print(f"cancelled; continue with: --resume {result.run_dir}", file=sys.stderr)
        return EXIT_CANCELLED
    if result.skipped_images:
        print(f"note: {len(result.skipped_images)} image(s) were skipped, see "
              f"{result.run_dir / 'skipped_images.json'}", file=sys.stderr)
    print(f"model: {result.model_path}" + (f"\nonnx:  {result.onnx_path}" if result.onnx_path else ""))
    return EXIT_OK


def eval_main(args: argparse.Namespace) -> int:
    from ..eval import evaluate
    from ..resources import NO_BUILTIN_MODEL, resolve_model_arg

    try:
        model = resolve_model_arg(args.model)  # a file, or a built-in's short name (clean | photo)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if model is None:
        print(f"error: {NO_BUILTIN_MODEL}", file=sys.stderr)
        return EXIT_USAGE
    result = evaluate(model, args.data, scale=args.scale, device=args.device)
    print("| image | PSNR-Y | SSIM-Y | PSNR-RGB | bicubic PSNR-Y | bicubic SSIM-Y |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in result["images"] + [{"image": "**mean**", **result["mean"]}]:
        print(f"| {r['image']} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['psnr_rgb']:.2f} | "
              f"{r['bicubic_psnr_y']:.2f} | {r['bicubic_ssim_y']:.4f} |")
    if args.json:
        from .checkpoint import write_json

        write_json(args.json, result)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dipnet_core.train.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train", help="train a DIPNet model"))
    add_eval_arguments(sub.add_parser("eval", help="PSNR/SSIM of a model on HR images"))
    args = parser.parse_args(argv)
    return train_main(args) if args.command == "train" else eval_main(args)


if __name__ == "__main__":
    sys.exit(main())
