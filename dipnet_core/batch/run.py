"""Running a batch: upscale planned items one by one, continuing past files that fail.

:func:`run_batch` reports typed events through a callback and returns a
:class:`BatchReport`. Outputs are written atomically (``engine.upscale_image_to_file``:
PNG streamed to a temporary file as tile rows finish, other formats written whole)
and appear only once complete, so a cancelled or failed item never leaves a
partial file behind; temporary files that a killed earlier run left in an
output folder are removed before the first write into it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from ..errors import Cancelled, DipnetError, describe_os_error
from ..io import ImageWriteError, read_image, remove_stale_temp_files
from ..io.atomic import file_blocking_folder
from .animation import animation_plan, upscale_animation
from .plan import BatchItem
from .report import BatchReport, ReportEntry

if TYPE_CHECKING:
    from ..cancel import CancelToken
    from ..engine import TiledUpscaler, TileProgress

logger = logging.getLogger(__name__)

# How often a paused batch re-checks its pause and cancel flags.
_PAUSE_POLL_S = 0.05


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
    warning: str = ""  # names the input file; e.g. only the first frame of an animation was upscaled


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
    if isinstance(exc, OSError) and not isinstance(exc, DipnetError):
        msg = describe_os_error(exc)  # plain words, no "[Errno 28]"
    else:
        msg = str(exc) or type(exc).__name__
    return msg if str(path) in msg or path.name in msg else f"{path}: {msg}"


def _prepare_folder(output: Path) -> None:
    """Create the output's folder; a file where a folder is needed gets a plain message."""
    blocker = file_blocking_folder(output.parent)
    if blocker is not None:
        raise ImageWriteError.about(output, f"'{blocker}' is a file, not a folder")
    output.parent.mkdir(parents=True, exist_ok=True)


def animation_warning(path: Path, frames: int, why: str = "") -> str:
    """The warning for a multi-frame input of which only the first frame is upscaled."""
    why = why or "an animation or a multi-page file; only the first frame was upscaled"
    return f"{path}: has {frames} frames: {why}"


UpscalerSource = Union["TiledUpscaler", Callable[[], "TiledUpscaler"]]


def run_batch(items: Sequence[BatchItem], upscaler: UpscalerSource, *, quality: int = 95,
              cancel: CancelToken | None = None, pause: threading.Event | None = None,
              on_event: Callable[[BatchEvent], None] | None = None, model: str = "",
              backend: str = "", png_compression: int | None = None,
              self_ensemble: bool = False) -> BatchReport:
    """Upscale every item, continuing past failures; events go to ``on_event`` on the calling thread.

    ``upscaler`` is a ``TiledUpscaler`` or a zero-argument factory for one, called only
    when the first item actually needs upscaling (an all-skipped batch builds no backend);
    an upscaler made by the factory is closed at the end, one passed in is the caller's.
    ``pause`` is an Event the GUI sets to pause and clears to resume; it is honoured
    between files and between tiles. ``cancel`` stops the batch between files or tiles;
    the report is then marked ``cancelled`` and lists only the items that finished.
    ``png_compression``: PNG level 0-9 (None: the writer's default, see ``io.stream_png``).
    ``self_ensemble``: the x8 "best quality" upscale for every item (8x slower; recorded in the report).
    """
    emit = on_event or (lambda _e: None)
    report = BatchReport(model=model, backend=backend, self_ensemble=self_ensemble)
    # Only our own temporary files whose process is gone (see io.atomic); once per folder.
    for folder in dict.fromkeys(it.output.parent for it in items if it.skip_reason is None):
        if folder.is_dir():
            remove_stale_temp_files(folder)
    source = _UpscalerSource(upscaler)
    try:
        _run_items(items, source, report, emit, quality, cancel, pause, png_compression, self_ensemble)
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


def _upscale_item(item: BatchItem, upscaler: Any, quality: int, cancel: CancelToken | None,
                  on_tile: Callable[..., None], png_compression: int | None = None,
                  self_ensemble: bool = False) -> str:
    """Read, upscale and write one item; returns its warning ("" when none)."""
    from ..engine import upscale_image_to_file

    img = read_image(item.input)
    warning = ""
    if img.frames > 1:
        scale = int(getattr(getattr(upscaler, "backend", None), "scale", 4))
        animation, why = animation_plan(item.input, img, item.output, scale)
        if animation is not None:
            _prepare_folder(item.output)
            frames = animation.frames
            upscale_animation(item.input, item.output, animation, upscaler, quality=quality, cancel=cancel,
                              progress=lambda tp, i: on_tile(tp, frame=i, frames=frames),
                              self_ensemble=self_ensemble)
            return ""
        warning = animation_warning(item.input, img.frames, why)
        logger.info("%s", warning)  # the caller shows it (event and report)
    _prepare_folder(item.output)
    # Plan time checked outputs against every input by path; the writer re-checks this item's
    # own input by file identity (hard links, case-insensitive folders). Passing every input
    # would cost a stat per input per file: quadratic on big folders.
    # PNG streams rows to the encoder as tile rows finish (not with the self-ensemble, which averages
    # in memory); a cancel publishes no file.
    upscale_image_to_file(img, upscaler, item.output, quality=quality, png_compression=png_compression,
                          overwrite=True, protect=(item.input,), cancel=cancel, progress=on_tile,
                          self_ensemble=self_ensemble)
    return warning


def _run_items(items: Sequence[BatchItem], source: _UpscalerSource, report: BatchReport,
               emit: Callable[[BatchEvent], None], quality: int, cancel: CancelToken | None,
               pause: threading.Event | None, png_compression: int | None = None,
               self_ensemble: bool = False) -> None:
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
                    _p0: float = paused_before, frame: int = 0, frames: int = 1) -> None:
            frac = ((tp.done / tp.total if tp.total else 0.0) + frame) / frames
            spent = time.monotonic() - _t0 - (eta.paused_s - _p0)
            emit(ItemProgress(_item.index, tp, eta.snapshot(_pos, frac, spent)))
            # Pausing inside the tile callback holds the engine between tiles.
            eta.paused_s += _wait_while_paused(pause, cancel)

        # Outside the per-file try: a backend that cannot be built is not this file's fault.
        active = source.get()
        try:
            warning = _upscale_item(item, active, quality, cancel, on_tile, png_compression, self_ensemble)
        except Cancelled:
            report.cancelled = True
            break
        except (DipnetError, OSError, ValueError, RuntimeError, MemoryError) as exc:
            # One bad file must not stop the batch; the message names the file for the report.
            failed(pos, item, _error_text(item.input, exc))
            continue
        seconds = time.monotonic() - t0 - (eta.paused_s - paused_before)
        report.done.append(ReportEntry(item.input, item.output, seconds=seconds, warning=warning))
        eta.finish(pos, seconds)
        emit(ItemDone(item.index, item.output, seconds, eta.snapshot(), warning))
    report.elapsed_s = eta.active_time()
