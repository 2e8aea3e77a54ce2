"""``dipnet train`` and ``dipnet eval``: mounted from :mod:`dipnet_core.train.cli` when it imports."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from .common import EXIT_FAILED, err, exit_code, guarded

COMMANDS = ("train", "eval")


def add_placeholders(sub: Any) -> None:
    """Entries for the help listing; :func:`run` hands the arguments over before parsing."""
    sub.add_parser("train", add_help=False,
                   help="train or fine-tune a DIPNet model (see 'dipnet train --help')")
    sub.add_parser("eval", add_help=False,
                   help="evaluate a model on benchmark images (see 'dipnet eval --help')")


def run(name: str, argv: Sequence[str]) -> int:
    """Mount ``dipnet train`` / ``dipnet eval`` lazily: a broken trainer must not break the other commands."""
    try:
        from ..train import cli as train_cli

        add: Callable[[argparse.ArgumentParser], Any] = getattr(train_cli, f"add_{name}_arguments")
        main: Callable[[argparse.Namespace], Any] = getattr(train_cli, f"{name}_main")
    except Exception as exc:  # ImportError, or any error raised while importing the trainer
        err(f"'dipnet {name}' is not available in this install ({type(exc).__name__}: {exc})")
        return EXIT_FAILED
    parser = argparse.ArgumentParser(prog=f"dipnet {name}")
    add(parser)
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:
        return exit_code(exc)
    return guarded(lambda: int(main(args) or 0))
