"""Crash-safe file output: write a temporary sibling, then rename it over the target.

The temporary file lives in the target's folder so that the final ``os.replace``
is a rename within one filesystem, which is atomic: readers see either the old
file or the complete new one, never a half-written file.

Temporary names embed the writer's process id (``.NAME.dipnet-PID-RANDOM.tmpSUFFIX``):
a process killed mid-write (``kill -9``, power loss) leaves its temporary file
behind, and :func:`remove_stale_temp_files` lets the next run into that folder
remove exactly those, never a file of another program nor one a live process
is still writing.

This is the one atomic write of the project: images, reports, checkpoints,
configs, settings and model files all go through :func:`atomic_output`.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

logger = logging.getLogger(__name__)

# Room left in a 255-byte file name for the random part and the suffixes.
_MAX_PREFIX_NAME = 120
# Our temporary names: "." + target name + ".dipnet-<pid>-" + mkstemp's random part + ".tmp" + suffix.
_TEMP_MARK = ".dipnet-"
_TEMP_NAME = re.compile(r"^\..+\.dipnet-(?P<pid>[0-9]+)-[A-Za-z0-9_]+\.tmp(\.[A-Za-z0-9]+)?$")


def _read_umask() -> int:
    # os.umask() can only be read by setting it, which races with other threads;
    # Linux publishes it in /proc, so prefer that.
    with suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _final_mode(target: Path) -> int:
    # mkstemp creates 0600 files; give the output the mode an ordinary open()
    # would have produced, or keep the mode of the file being replaced.
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


def _fsync_file(path: Path) -> None:
    # Without this, a crash shortly after the rename can leave a renamed but
    # empty file on filesystems with delayed allocation.
    fd = os.open(path, os.O_RDWR)  # Windows needs write access to flush
    try:
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
                raise
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Persists the rename itself; not possible on Windows, optional elsewhere.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _publish_no_clobber(tmp: Path, target: Path) -> None:
    # link() fails if the target exists, so unlike exists()+replace() it cannot
    # overwrite a file that appeared in the meantime.
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links (FAT, some network shares): best effort.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "file already exists", str(target)) from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextmanager
def atomic_output(
    path: str | os.PathLike[str], suffix: str | None = None, *, overwrite: bool = True, mode: int | None = None
) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``path``.

    ``suffix`` is the extension the temporary file gets (default: that of
    ``path``) for writers that pick their format from the name. Parent folders
    are created. If the ``with`` body raises, the temporary file is deleted and
    ``path`` is left untouched. With ``overwrite=False`` an existing ``path``
    raises :class:`FileExistsError`, also if it appears while writing. ``mode`` sets
    the permission bits of the result (default: those of the file it replaces, else
    what ``open()`` would give). The data is fsynced before the rename, and the
    folder after it.
    """
    target = Path(path)
    if suffix is None:
        suffix = target.suffix
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory", str(target))
    if not overwrite and os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "file already exists", str(target))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name[:_MAX_PREFIX_NAME]}{_TEMP_MARK}{os.getpid()}-", suffix=f".tmp{suffix}", dir=parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.chmod(tmp, _final_mode(target) if mode is None else mode)
        if overwrite:
            os.replace(tmp, target)
        else:
            _publish_no_clobber(tmp, target)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True,
                       mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    target = Path(path)
    with atomic_output(target, overwrite=overwrite, mode=mode) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_output`); returns the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def file_blocking_folder(folder: str | os.PathLike[str]) -> Path | None:
    """The existing *file* that stands where ``folder`` or one of its parents must be a folder.

    ``c.png/out/`` with ``c.png`` a regular file gives ``c.png``: creating the folder
    would fail with a bare ``[Errno 17] File exists`` or ``[Errno 20] Not a directory``.
    """
    here = Path(folder)
    for part in (here, *here.parents):
        if os.path.lexists(part):
            return None if part.is_dir() else part
    return None


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name != "posix":
        return True  # on Windows os.kill(pid, 0) would terminate the process: never probe there
    try:
        os.kill(pid, 0)  # signal 0 only checks that the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but belongs to another user, or cannot tell: keep the file
    return True


def is_stale_temp_file(path: str | os.PathLike[str]) -> bool:
    """True for a temporary file of :func:`atomic_output` whose writing process is gone."""
    match = _TEMP_NAME.match(Path(path).name)
    return match is not None and not _process_alive(int(match.group("pid")))


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete our temporary files in ``folder`` left by processes that no longer run.

    Only names of our own pattern whose process id is not alive are touched, and
    only regular files; anything that cannot be listed or removed is left alone.
    Returns the removed paths.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if _TEMP_MARK not in entry.name or not is_stale_temp_file(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError as exc:
            logger.info("could not remove stale temporary file %s: %s", entry.path, exc)
            continue
        removed.append(Path(entry.path))
    if removed:
        logger.info("removed %d stale temporary file(s) in %s", len(removed), folder)
    return removed
