"""The one error hierarchy of the core, shared by the CLI and the app.

A :class:`DipnetError` is an *expected* problem: a bad input file, a model that
does not load, an output that cannot be written, an invalid setting, a job the
user cancelled. Its message is meant for users as it is (it names the file and
says what is wrong), so front ends print it as one line and no traceback.
Anything that is not a ``DipnetError`` (or a plain ``OSError`` from the file
system) is a bug and keeps its traceback.

The older, more specific classes (``ImageReadError``, ``ModelLoadError``,
``ConfigError`` of the trainer, ...) subclass these, and stay importable where
they always were. Several of them also keep their historic builtin base
(``ValueError``, ``RuntimeError``) so existing ``except`` clauses still match.
"""

from __future__ import annotations

import errno
import os


class DipnetError(Exception):
    """An expected problem whose message can be shown to users as it is."""


class InputError(DipnetError):
    """An input (image, folder, report, data set) is missing, unreadable or unusable."""


class OutputError(DipnetError):
    """An output (image, report, model file) cannot be written."""


class ModelError(DipnetError):
    """A model cannot be loaded, run on this machine, or exported."""


class ConfigError(DipnetError, ValueError):
    """A setting, argument or config file is invalid; the message names the offending value."""


class Cancelled(DipnetError):
    """The user cancelled the work (not a failure)."""


# Plain words for the errnos users meet in practice; others fall back to strerror.
_ERRNO_WORDS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop)",
    errno.ENAMETOOLONG: "the name is too long",
}


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device: 'x'`` -> ``"'x': the disk is full"``.

    The errno number is left out: users want the cause in words and the file it is about.
    """
    words = _ERRNO_WORDS.get(exc.errno or -1) or exc.strerror or str(exc) or type(exc).__name__
    name = exc.filename if exc.filename is not None else None
    if name is None:
        return words
    return f"'{os.fsdecode(name)}': {words}"
