"""Planning a batch: which files to upscale, and the output path of each.

Planning never opens a file that is not a regular file (a FIFO would block for
ever), never lets one bad path (a symlink loop) stop the others, never maps an
output onto an input, and never takes the outputs of this batch's own name
template (``a_x4.png`` beside ``a.png``) as new inputs.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..io import SUPPORTED_WRITE_EXTENSIONS, SUPPORTED_WRITE_FORMATS, default_extension, is_image_path
from ..io.formats import DECODER_FORMATS
from ..io.formats import normalize_format as _io_normalize_format
from ..io.reader import file_problem, frame_count

DEFAULT_NAME_TEMPLATE = "{stem}_x{scale}"
TEMPLATE_FIELDS = ("stem", "scale", "ext", "model")


def normalize_format(fmt: str | None) -> str | None:
    """``"JPG"`` -> ``"jpeg"``, ``".tif"`` -> ``"tiff"``; None stays None (keep the input's format)."""
    if fmt is None:
        return None
    name = _io_normalize_format(fmt)
    if name not in SUPPORTED_WRITE_FORMATS:
        choices = ", ".join(sorted(SUPPORTED_WRITE_FORMATS))
        raise ValueError(f"unsupported output format '{fmt}' (choose from {choices})")
    return name


def output_suffix(input_path: Path, fmt: str | None) -> str:
    """Suffix for an output: the chosen format's, else the input's when writable, else ``.png``."""
    name = normalize_format(fmt)
    if name is not None:
        return default_extension(name)
    return input_path.suffix if input_path.suffix.lower() in SUPPORTED_WRITE_EXTENSIONS else ".png"


def check_name_template(template: str) -> None:
    """Raise ValueError for unknown fields or a malformed template (usage error, before any work)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
    except ValueError as exc:
        raise ValueError(f"bad name template '{template}': {exc}") from exc
    for f in fields:
        if f not in TEMPLATE_FIELDS:
            raise ValueError(
                f"unknown field '{{{f}}}' in name template '{template}' "
                f"(use {' '.join('{' + x + '}' for x in TEMPLATE_FIELDS)})"
            )
    render_name(template, stem="a", scale=4, ext="png", model="m")


def render_name(template: str, *, stem: str, scale: int, ext: str, model: str = "") -> str:
    """The output file name without suffix; refuses names that would leave the output folder."""
    name = template.format(stem=stem, scale=scale, ext=ext, model=model)
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise ValueError(f"name template '{template}' gives an invalid file name '{name}'")
    return name


@dataclass(frozen=True)
class BatchItem:
    index: int
    input: Path
    output: Path
    pixels: int = 0  # input width * height * frames from the file header; 0 if unknown (weights the ETA)
    skip_reason: str | None = None  # decided at plan time (e.g. --skip-existing)
    error: str | None = None  # a plan-time failure (collision, would overwrite an input)
    # An earlier output of this batch's name template found among the inputs: skipped, and free
    # to be replaced by the output it is again.
    is_own_output: bool = False


def image_pixels(path: Path) -> int:
    """Width * height (times the frames of an animation) from the headers; 0 when unreadable, which run
    time will report.

    Only regular files are opened (a FIFO would block here), and only with the decoders
    of the supported formats.
    """
    from PIL import Image

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return 0
        with warnings.catch_warnings():
            # Huge images warn (decompression-bomb guard) on open; the real read applies the limits.
            warnings.simplefilter("ignore")
            with Image.open(path, formats=DECODER_FORMATS) as im:
                # Every frame of an animation is upscaled: a 40-frame GIF is 40 images' work.
                return int(im.width * im.height) * frame_count(im)
    except Exception:  # any decode failure: the real read reports it as the item's failure
        return 0


def resolved(path: Path) -> Path:
    """``path.resolve()`` that never raises: a symlink loop gives the absolute, normalised path."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # "Symlink loop from ..." (RuntimeError before Python 3.13)
        return Path(os.path.abspath(path))


def _scan(root: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    """Image files under ``root`` in a stable order, skipping hidden files and the output tree."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Hidden entries are OS clutter (.DS_Store, macOS ._* forks that look like images but are not).
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and (exclude is None or resolved(here / d) != exclude)
        )
        if not recursive:
            dirnames[:] = []
        found.extend(here / f for f in sorted(filenames) if not f.startswith(".") and is_image_path(here / f))
    return found


def validate_items(items: Sequence[BatchItem]) -> list[BatchItem]:
    """Mark items whose output would overwrite an input or collide with an earlier item's output.

    Paths are compared resolved; a path that cannot be resolved (a symlink loop) is
    compared as written and fails on its own when run, without stopping the others.
    """
    inputs = {resolved(it.input) for it in items if not it.is_own_output}
    claimed: dict[Path, Path] = {}
    result = []
    for it in items:
        if it.skip_reason is not None and it.is_own_output:
            result.append(it)
            continue
        out = resolved(it.output)
        error = it.error
        if error is None:
            reason = file_problem(it.input)
            if reason is not None:
                error = f"{it.input}: {reason}"
        if error is None and out in inputs:
            error = f"{it.input}: output {it.output} would overwrite an input file"
        elif error is None and out in claimed:
            error = (f"{it.input}: output {it.output} is also the output of {claimed[out]}; "
                     "use a name template with {ext} to tell them apart")
        if error is None:
            claimed[out] = it.input
        result.append(dataclasses.replace(it, error=error))
    return result


def plan_batch(inputs: Sequence[Path], out_dir: Path, recursive: bool = False,
               name_template: str = DEFAULT_NAME_TEMPLATE, format: str | None = None,
               skip_existing: bool = False, scale: int = 4, model: str = "") -> list[BatchItem]:
    """Map input files/folders to outputs under ``out_dir`` (folder trees mirrored when recursive).

    Non-image files (by extension) are ignored; image-named files are planned even if
    they turn out unreadable, so they show up as failures. Files that are outputs of
    this very plan (a rerun with the output folder equal to the input folder finds
    ``a_x4.png`` beside ``a.png``) are not inputs: they are listed as skipped, with
    that reason. Raises FileNotFoundError for a missing input and ValueError for a bad
    template or format.
    """
    check_name_template(name_template)
    normalize_format(format)
    out_dir = Path(out_dir)
    out_resolved = resolved(out_dir)
    sources: list[tuple[Path, Path]] = []  # (file, path relative to out_dir)
    for inp in map(Path, inputs):
        if inp.is_dir():
            # Exclude the output folder when it sits inside an input folder, so a rerun
            # never picks up its own earlier outputs as new inputs.
            sources.extend((f, f.relative_to(inp)) for f in _scan(inp, recursive, out_resolved))
        elif inp.is_file() or os.path.lexists(inp):  # a FIFO or a bad link fails as an item
            sources.append((inp, Path(inp.name)))
        else:
            raise FileNotFoundError(f"input not found: {inp}")
    planned: list[tuple[Path, Path]] = []
    for src, rel in sources:
        stem, ext = src.stem, src.suffix.lstrip(".").lower()
        name = render_name(name_template, stem=stem, scale=scale, ext=ext, model=model)
        planned.append((src, out_dir / rel.parent / (name + output_suffix(src, format))))
    # The outputs of the other inputs, by normalised path: an input among them is an old output.
    producer = {os.path.normcase(os.path.abspath(out)): src for src, out in planned}
    items = []
    for i, (src, out) in enumerate(planned):
        made_by = producer.get(os.path.normcase(os.path.abspath(src)))
        if made_by is not None and made_by != src:
            items.append(BatchItem(index=i, input=src, output=out, is_own_output=True,
                                   skip_reason=f"is an output of this batch's name template (from "
                                               f"{made_by.name}), not an input"))
            continue
        skip = f"output exists: {out}" if skip_existing and out.exists() else None
        items.append(BatchItem(index=i, input=src, output=out, pixels=image_pixels(src), skip_reason=skip))
    return validate_items(items)
