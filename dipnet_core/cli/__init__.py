"""``dipnet``: the command-line front end of the headless core.

Subcommands, one module each: upscale, batch, export, info, bench, and train/eval
when the training module imports. Expected problems (missing or unreadable
files, bad models, bad arguments: :class:`~dipnet_core.errors.DipnetError` and
file-system errors) print one ``error: ...`` line naming the file and return
non-zero; anything else is a bug and keeps its traceback (set ``DIPNET_DEBUG=1``
to see tracebacks for expected errors too).

Exit codes: 0 success, 1 something failed, 2 usage error, 130 cancelled (Ctrl-C).
"""

from .common import EXIT_CANCELLED, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError
from .parser import build_parser, main
from .progress import ProgressPrinter

__all__ = ["EXIT_CANCELLED", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "CliError", "ProgressPrinter",
           "build_parser", "main"]
