"""The ``dipnet`` parser and its entry point :func:`main`: one subcommand per module of this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import batch, bench, export, info, train, upscale
from .common import EXIT_USAGE, exit_code, guarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dipnet", description="Fast 4x image super-resolution with DIPNet.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (upscale, batch, export, info, bench):
        command.add_parser(sub)
    train.add_placeholders(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in train.COMMANDS:
        return train.run(argv[0], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exit_code(exc)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return guarded(lambda: int(args.func(args)))


if __name__ == "__main__":
    sys.exit(main())
