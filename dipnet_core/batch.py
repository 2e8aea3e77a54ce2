"""The batch job shared by the CLI and the GUI.

:func:`plan_batch` maps input files to output paths (mirroring folder trees, never
onto an input); :func:`run_batch` upscales them one by one, reporting typed events
through a callback, continuing past files that fail, and returning a
:class:`BatchReport` that can be saved as JSON and fed back with
:func:`failed_inputs` / :meth:`BatchReport.failed_items` to retry only the failures.

Outputs are written atomically (``engine.upscale_image_to_file``: PNG streamed to a temporary
file as tile rows finish, other formats written whole) and appear only once complete, so a
cancelled or failed item never leaves a partial file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .cancel import CancelToken, Cancelled
from .io import (
    SUPPORTED_WRITE_EXTENSIONS,
    SUPPORTED_WRITE_FORMATS,
    ImageReadError,
    ImageWriteError,
    atomic_write_bytes,
    default_extension,
    is_image_path,
    read_image,
)
from .io.formats import normalize_format as _io_normalize_format

if TYPE_CHECKING:
    from .engine import TileProgress, TiledUpscaler

DEFAULT_NAME_TEMPLATE = "{stem}_x{scale}"
REPORT_NAME = "dipnet-batch-report.json"
TEMPLATE_FIELDS = ("stem", "scale", "ext", "model")
_REPORT_VERSION = 1
# How often a paused batch re-checks its pause and cancel flags.
_PAUSE_POLL_S = 0.05


class ReportError(ValueError):
    """A batch report file is missing or malformed."""


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
    pixels: int = 0  # input width * height from the file header; 0 if unknown (weights the ETA)
    skip_reason: str | None = None  # decided at plan time (e.g. --skip-existing)
    error: str | None = None  # a plan-time failure (collision, would overwrite an input)


def image_pixels(path: Path) -> int:
    """Width * height from the header only (cheap); 0 when unreadable, which run time will report."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Huge images warn (decompression-bomb guard) on open; the real read applies the limits.
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return int(im.width * im.height)
    except Exception:  # any decode failure: the real read reports it as the item's failure
        return 0


def _scan(root: Path, recursive: bool, exclude: Path | None) -> list[Path]:
    """Image files under ``root`` in a stable order, skipping hidden files and the output tree."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        # Hidden entries are OS clutter (.DS_Store, macOS ._* forks that look like images but are not).
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and (exclude is None or (here / d).resolve() != exclude)
        )
        if not recursive:
            dirnames[:] = []
        found.extend(here / f for f in sorted(filenames) if not f.startswith(".") and is_image_path(here / f))
    return found


def validate_items(items: Sequence[BatchItem]) -> list[BatchItem]:
    """Mark items whose output would overwrite an input or collide with an earlier item's output."""
    inputs = {it.input.resolve() for it in items}
    claimed: dict[Path, Path] = {}
    result = []
    for it in items:
        out = it.output.resolve()
        error = it.error
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
    they turn out unreadable, so they show up as failures. Raises FileNotFoundError for
    a missing input and ValueError for a bad template or format.
    """
    check_name_template(name_template)
    normalize_format(format)
    out_dir = Path(out_dir)
    out_resolved = out_dir.resolve()
    sources: list[tuple[Path, Path]] = []  # (file, path relative to out_dir)
    for inp in map(Path, inputs):
        if inp.is_dir():
            # Exclude the output folder when it sits inside an input folder, so a rerun
            # never picks up its own earlier outputs as new inputs.
            sources.extend((f, f.relative_to(inp)) for f in _scan(inp, recursive, out_resolved))
        elif inp.is_file():
            sources.append((inp, Path(inp.name)))
        else:
            raise FileNotFoundError(f"input not found: {inp}")
    items = []
    for i, (src, rel) in enumerate(sources):
        stem, ext = src.stem, src.suffix.lstrip(".").lower()
        name = render_name(name_template, stem=stem, scale=scale, ext=ext, model=model)
        out = out_dir / rel.parent / (name + output_suffix(src, format))
        skip = f"output exists: {out}" if skip_existing and out.exists() else None
        items.append(BatchItem(index=i, input=src, output=out, pixels=image_pixels(src), skip_reason=skip))
    return validate_items(items)


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class BatchProgress:
    """Overall progress: ``fraction`` and ``eta_s`` are weighted by pixel count, not file count."""

    finished: int  # items done + skipped + failed
    total: int
    fraction: float
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class ItemStarted:
    index: int
    path: Path
    progress: BatchProgress


@dataclass(frozen=True)
class ItemProgress:
    index: int
    tile: TileProgress
    progress: BatchProgress


@dataclass(frozen=True)
class ItemDone:
    index: int
    output: Path
    seconds: float
    progress: BatchProgress


@dataclass(frozen=True)
class ItemSkipped:
    index: int
    reason: str
    progress: BatchProgress


@dataclass(frozen=True)
class ItemFailed:
    index: int
    error: str  # always names the input file
    progress: BatchProgress


@dataclass(frozen=True)
class BatchFinished:
    report: BatchReport


BatchEvent = ItemStarted | ItemProgress | ItemDone | ItemSkipped | ItemFailed | BatchFinished


# ---------------------------------------------------------------------------------------------- report


@dataclass
class ReportEntry:
    input: Path
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"input": str(self.input), "output": str(self.output) if self.output else None,
                "reason": self.reason, "seconds": round(self.seconds, 4)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportEntry:
        return cls(input=Path(d["input"]), output=Path(d["output"]) if d.get("output") else None,
                   reason=str(d.get("reason", "")), seconds=float(d.get("seconds", 0.0)))


@dataclass
class BatchReport:
    done: list[ReportEntry] = field(default_factory=list)
    skipped: list[ReportEntry] = field(default_factory=list)
    failed: list[ReportEntry] = field(default_factory=list)
    cancelled: bool = False
    model: str = ""
    backend: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _REPORT_VERSION, "created": self.created, "model": self.model, "backend": self.backend,
            "cancelled": self.cancelled, "elapsed_s": round(self.elapsed_s, 3),
            "counts": {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed)},
            "done": [e.to_dict() for e in self.done],
            "skipped": [e.to_dict() for e in self.skipped],
            "failed": [e.to_dict() for e in self.failed],
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8"))
        return path

    @classmethod
    def load(cls, path: str | Path) -> BatchReport:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                done=[ReportEntry.from_dict(e) for e in d.get("done", [])],
                skipped=[ReportEntry.from_dict(e) for e in d.get("skipped", [])],
                failed=[ReportEntry.from_dict(e) for e in d.get("failed", [])],
                cancelled=bool(d.get("cancelled", False)), model=str(d.get("model", "")),
                backend=str(d.get("backend", "")), created=str(d.get("created", "")),
                elapsed_s=float(d.get("elapsed_s", 0.0)),
            )
        except FileNotFoundError as exc:
            raise ReportError(f"batch report not found: {path}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError,
                ValueError) as exc:
            raise ReportError(f"not a valid batch report: {path} ({exc})") from exc

    def failed_items(self) -> list[BatchItem]:
        """Items that retry the failures with the outputs originally planned for them."""
        items = []
        for i, e in enumerate(self.failed):
            if e.output is None:
                continue
            items.append(BatchItem(index=i, input=e.input, output=e.output, pixels=image_pixels(e.input)))
        return validate_items(items)

    def merged_retry(self, retry: BatchReport) -> BatchReport:
        """This report with its failures replaced by the outcome of retrying them."""
        return BatchReport(
            done=self.done + retry.done, skipped=self.skipped + retry.skipped, failed=retry.failed,
            cancelled=retry.cancelled, model=retry.model or self.model, backend=retry.backend or self.backend,
            elapsed_s=self.elapsed_s + retry.elapsed_s,
        )


def failed_inputs(report_path: str | Path) -> list[Path]:
    """Input files that failed in a saved report (for ``--retry-failed``)."""
    return [e.input for e in BatchReport.load(report_path).failed]


# ---------------------------------------------------------------------------------------------- running


class _Eta:
    """Pixel-weighted progress and ETA; time spent paused is excluded from the rate."""

    def __init__(self, items: Sequence[BatchItem]) -> None:
        known = [it.pixels for it in items if it.pixels > 0]
        fallback = (sum(known) // len(known)) if known else 1
        self.weights = [it.pixels if it.pixels > 0 else fallback for it in items]
        planned = (w for it, w in zip(items, self.weights, strict=True) if it.skip_reason is None)
        self.total_weight = float(sum(planned)) or 1.0
        self.total = len(items)
        self.finished = 0
        self.finished_weight = 0.0  # includes failed items: their share of the work is over
        self.worked_weight = 0.0  # items actually upscaled: the base of the speed estimate
        self.worked_s = 0.0
        self.start = time.monotonic()
        self.paused_s = 0.0

    def active_time(self) -> float:
        return time.monotonic() - self.start - self.paused_s

    def snapshot(self, pos: int | None = None, item_fraction: float = 0.0, item_s: float = 0.0
                 ) -> BatchProgress:
        current = self.weights[pos] * item_fraction if pos is not None else 0.0
        fraction = min(1.0, (self.finished_weight + current) / self.total_weight)
        seen_w, seen_s = self.worked_weight + current, self.worked_s + (item_s if current else 0.0)
        eta = None
        if seen_w > 0 and seen_s > 0:
            eta = max(0.0, (self.total_weight - self.finished_weight - current) * seen_s / seen_w)
        elif fraction >= 1.0:
            eta = 0.0
        return BatchProgress(self.finished, self.total, fraction, self.active_time(), eta)

    def finish(self, pos: int, worked_s: float | None) -> None:
        self.finished += 1
        if worked_s is not None:  # skipped items never entered total_weight
            self.finished_weight += self.weights[pos]
        if worked_s is not None and worked_s > 0:
            self.worked_weight += self.weights[pos]
            self.worked_s += worked_s


def _wait_while_paused(pause: threading.Event | None, cancel: CancelToken | None) -> float:
    """Block while ``pause`` is set (cancel still wins); returns the seconds spent paused."""
    if pause is None or not pause.is_set():
        return 0.0
    t0 = time.monotonic()
    while pause.is_set() and not (cancel is not None and cancel.cancelled):
        time.sleep(_PAUSE_POLL_S)
    return time.monotonic() - t0


def _error_text(path: Path, exc: BaseException) -> str:
    msg = str(exc) or type(exc).__name__
    return msg if str(path) in msg or path.name in msg else f"{path}: {msg}"


UpscalerSource = Union["TiledUpscaler", Callable[[], "TiledUpscaler"]]


def run_batch(items: Sequence[BatchItem], upscaler: UpscalerSource, *, quality: int = 95,
              cancel: CancelToken | None = None, pause: threading.Event | None = None,
              on_event: Callable[[BatchEvent], None] | None = None, model: str = "",
              backend: str = "", png_compression: int | None = None) -> BatchReport:
    """Upscale every item, continuing past failures; events go to ``on_event`` on the calling thread.

    ``upscaler`` is a ``TiledUpscaler`` or a zero-argument factory for one, called only
    when the first item actually needs upscaling (an all-skipped batch builds no backend);
    an upscaler made by the factory is closed at the end, one passed in is the caller's.
    ``pause`` is an Event the GUI sets to pause and clears to resume; it is honoured
    between files and between tiles. ``cancel`` stops the batch between files or tiles;
    the report is then marked ``cancelled`` and lists only the items that finished.
    """
    emit = on_event or (lambda _e: None)
    report = BatchReport(model=model, backend=backend)
    source = _UpscalerSource(upscaler)
    try:
        _run_items(items, source, report, emit, quality, cancel, pause, png_compression)
    finally:
        source.close()
    emit(BatchFinished(report))
    return report


class _UpscalerSource:
    """Builds the upscaler on first use when given a factory, and closes only what it built."""

    def __init__(self, upscaler: UpscalerSource) -> None:
        self._factory = None if hasattr(upscaler, "upscale") else upscaler
        self._upscaler: Any = upscaler if self._factory is None else None

    def get(self) -> Any:
        if self._upscaler is None:
            assert self._factory is not None
            self._upscaler = self._factory()  # type: ignore[operator]
        return self._upscaler

    def close(self) -> None:
        if self._factory is not None and self._upscaler is not None and hasattr(self._upscaler, "close"):
            self._upscaler.close()  # stops the tile worker threads of the upscaler we created


def _run_items(items: Sequence[BatchItem], source: _UpscalerSource, report: BatchReport,
               emit: Callable[[BatchEvent], None], quality: int, cancel: CancelToken | None,
               pause: threading.Event | None, png_compression: int | None = None) -> None:
    from .engine import upscale_image_to_file

    eta = _Eta(items)

    def failed(pos: int, item: BatchItem, error: str) -> None:
        report.failed.append(ReportEntry(item.input, item.output, error))
        eta.finish(pos, 0.0)
        emit(ItemFailed(item.index, error, eta.snapshot()))

    for pos, item in enumerate(items):
        eta.paused_s += _wait_while_paused(pause, cancel)
        if cancel is not None and cancel.cancelled:
            report.cancelled = True
            break
        if item.skip_reason is not None:
            report.skipped.append(ReportEntry(item.input, item.output, item.skip_reason))
            eta.finish(pos, None)
            emit(ItemSkipped(item.index, item.skip_reason, eta.snapshot()))
            continue
        emit(ItemStarted(item.index, item.input, eta.snapshot()))
        if item.error is not None:  # found at plan time (e.g. two inputs mapped to one output)
            failed(pos, item, item.error)
            continue
        t0 = time.monotonic()
        paused_before = eta.paused_s

        def on_tile(tp: TileProgress, _pos: int = pos, _item: BatchItem = item, _t0: float = t0,
                    _p0: float = paused_before) -> None:
            frac = tp.done / tp.total if tp.total else 0.0
            spent = time.monotonic() - _t0 - (eta.paused_s - _p0)
            emit(ItemProgress(_item.index, tp, eta.snapshot(_pos, frac, spent)))
            # Pausing inside the tile callback holds the engine between tiles.
            eta.paused_s += _wait_while_paused(pause, cancel)

        # Outside the per-file try: a backend that cannot be built is not this file's fault.
        active = source.get()
        try:
            img = read_image(item.input)
            item.output.parent.mkdir(parents=True, exist_ok=True)
            # Plan time checked outputs against every input by path; the writer re-checks this item's
            # own input by file identity (hard links, case-insensitive folders). Passing every input
            # would cost a stat per input per file: quadratic on big folders.
            # PNG streams rows to the encoder as tile rows finish; a cancel publishes no file.
            upscale_image_to_file(img, active, item.output, quality=quality, png_compression=png_compression,
                                  overwrite=True, protect=(item.input,), cancel=cancel, progress=on_tile)
        except Cancelled:
            report.cancelled = True
            break
        except (ImageReadError, ImageWriteError, OSError, ValueError, RuntimeError, MemoryError) as exc:
            # One bad file must not stop the batch; the message names the file for the report.
            failed(pos, item, _error_text(item.input, exc))
            continue
        seconds = time.monotonic() - t0 - (eta.paused_s - paused_before)
        report.done.append(ReportEntry(item.input, item.output, seconds=seconds))
        eta.finish(pos, seconds)
        emit(ItemDone(item.index, item.output, seconds, eta.snapshot()))
    report.elapsed_s = eta.active_time()
