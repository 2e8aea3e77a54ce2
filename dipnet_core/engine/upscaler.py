"""Tiled upscaling with progress, cancellation and out-of-memory recovery.

Tiling error. ESA bilinearly resizes a coarse attention map to the size of
whatever the model sees, so naive tiles miss the whole-image result by 12-46
levels (of 255) whatever the overlap (measured on Set5 ``baby``). DIPNet-family
models therefore run grid-aware (``gridnet.py``): tiles start on the 6 px ESA
grid and resample the attention on the whole image's grid, which leaves only
receptive-field truncation at tile edges. ESA's reach (a 15 px pooling window,
a 3x3 conv on the 6 px grid, bilinear taps, chained over 4 blocks) makes that
truncation decay slowly, so the overlap is sizeable and depends on tile size.

Measured with ``benchmarks/bench_inference.py`` (fp32, official weights): worst
max abs difference to one whole-image pass over all 19 Set5 + Set14 images,
the HR images used as inputs (228-768 px, so every tile size really splits
them); "float / uint8" = worst float difference in levels / worst difference
after rounding both outputs to 8 bits:

=====  =========  =========  =========  =========  =========  =========  =========  =========
tile   ov 16      ov 20      ov 24      ov 28      ov 32      ov 36      ov 40      ov 48
=====  =========  =========  =========  =========  =========  =========  =========  =========
128    21.3 / 21  11.2 / 11  7.55 / 8   6.95 / 7   4.13 / 4   .          2.50 / 3   0.67 / 1
192    35.3 / 36  12.8 / 13  12.1 / 12  5.13 / 6   1.95 / 2   1.60 / 2   0.90 / 1   0.41 / 1
256    11.7 / 12  6.74 / 7   3.99 / 4   2.96 / 3   0.96 / 1   0.60 / 1   0.37 / 1   .
320    11.9 / 12  6.57 / 7   2.31 / 2   1.93 / 2   0.73 / 1   0.45 / 1   .          .
384    11.9 / 12  5.19 / 6   2.31 / 2   1.93 / 2   0.53 / 1   0.44 / 1   .          .
=====  =========  =========  =========  =========  =========  =========  =========  =========

Default overlap (``OVERLAP_BY_TILE``): the smallest one whose worst float
difference stays below 1 level with some margin, i.e. at most 1 level after
rounding: 32 px for tiles >= 320 (worst 0.73), 36 px at 256 (0.60) and 48 px
below (0.67 at 128, 0.41 at 192). Larger tiles have fewer edges and need no
more than 32 px.

Peak memory is the output array plus about one tile's working set per worker:
tiles are written straight into a preallocated output as they finish.
:meth:`TiledUpscaler.iter_bands` holds no whole output at all: it runs the plan
tile row by tile row and hands over each finished band of output rows (already
quantized to the file's integer samples by the tile workers, if asked), so a
streaming writer can encode it while the next row computes. :meth:`TiledUpscaler.iter_regions`
runs a few boxes of an image (a viewer's visible region) as one job, nearest a centre point
first, and hands over each tile in its own array as it finishes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..cancel import CancelToken, check
from . import hardware
from .backends import Backend, is_out_of_memory
from .grid import TileGrid
from .tiling import TileBox, plan_tiles

log = logging.getLogger(__name__)

#: Context kept around every tile core, in LR px, by tile size: (smallest tile, overlap), from
#: the measured table above. Small tiles need more: a core pixel there sits near more tile edges.
OVERLAP_BY_TILE: tuple[tuple[int, int], ...] = ((320, 32), (256, 36), (0, 48))
#: The overlap of the CPU default tile sizes (>= 320 px).
DEFAULT_OVERLAP = OVERLAP_BY_TILE[0][1]
#: CPU tile side. Measured on the 2-core Zen 4 (bench_inference.py): the fused bf16 path loses little
#: per pixel up to ~640 px tiles, while the 32 px overlap costs (T / (T - 64))^2 extra work (1.31x at
#: 512, 1.78x at 256), so 384-640 px tie and 512 bounds the memory (~215 MB per worker).
CPU_TILE_SIZE = 512
#: Images up to this side run in one piece on the CPU; splitting them only adds overlap work.
CPU_WHOLE_IMAGE_MAX = 512
#: Smallest tile :meth:`TiledUpscaler.plan_regions` cuts a region into to give every worker a tile: below it
#: the overlap (36-48 px a side) would cost more than the extra worker gains.
SPLIT_MIN_TILE = 256
#: Largest tile for GPUs (the TensorRT optimisation profile goes up to 2048 px).
GPU_TILE_MAX = 2048
#: Fraction of free memory the tiles of one job may take; the rest is for the image, the GUI and the OS.
MEMORY_FRACTION_CPU = 0.25
MEMORY_FRACTION_GPU = 0.5

#: Float values quantized at once per tile in banded jobs (1 MB of float32 scratch per worker).
_QUANTIZE_CHUNK_VALUES = 1 << 18

if TYPE_CHECKING:
    from typing_extensions import Self

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TileProgress:
    """Progress after one finished tile (all passes of a job counted together)."""

    done: int
    total: int
    elapsed_s: float
    eta_s: float | None
    #: Input (LR) megapixels finished per second so far.
    megapixels_per_s: float
    phase: str  # "rgb" | "alpha"
    tile_size: int = 0
    #: Out-of-memory retries and similar events since the previous progress report.
    message: str = ""
    #: The LR box ``(x0, y0, x1, y1)`` this tile finished, in the coordinates of the job's input.
    core: Box | None = None
    #: That box's upscaled pixels (float32 in [0, 1], a view into the result being built; final
    #: from now on, so a GUI can paint the result tile by tile). None where no view applies.
    output: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass(frozen=True)
class OutputBand:
    """Finished output rows ``y0 .. y0 + height`` of every plane of a banded job, handed over top to bottom.

    ``planes`` holds one array per input plane, in the order given to
    :meth:`TiledUpscaler.iter_bands`: ``height x W x 3`` for colour, ``height x W``
    for a single channel; float32 in [0, 1], or what the job's ``quantize`` returns.
    """

    y0: int
    planes: tuple[np.ndarray, ...] = field(repr=False, compare=False)

    @property
    def height(self) -> int:
        return int(self.planes[0].shape[0])


def auto_tile_size(backend: Backend, height: int, width: int) -> int:
    """Tile side for ``backend`` on an ``height`` x ``width`` image.

    GPUs take the largest tile that fits half of the free device memory (fewer
    tiles, less overlap work). CPUs take the measured sweet spot
    ``CPU_TILE_SIZE``, and images up to ``CPU_WHOLE_IMAGE_MAX`` run whole; the
    tiles of all workers together stay within a quarter of the available RAM.
    """
    side = max(height, width)
    if not backend.tileable:
        return side
    floor = max(64, backend.min_size)
    bpp = max(1, backend.bytes_per_pixel)
    if backend.is_cuda:
        free = hardware.cuda_free_memory_bytes(backend.device)
        if free is None:
            return min(side, 512)  # onnxruntime-only GPU setups: no way to ask, stay modest
        fit = int(math.sqrt(free * MEMORY_FRACTION_GPU / bpp))
        tile = min(GPU_TILE_MAX, fit)
    else:
        base = backend.preferred_tile or CPU_TILE_SIZE  # the measured choice, when it found a best
        tile = base if side > CPU_WHOLE_IMAGE_MAX else max(side, base)
        avail = hardware.available_memory_bytes()
        if avail is not None:
            per_worker = avail * MEMORY_FRACTION_CPU / max(1, backend.workers)
            tile = min(tile, int(math.sqrt(per_worker / bpp)))
    tile = max(floor, tile // 16 * 16 if tile >= 32 else tile)
    return min(side, tile)


def default_overlap(tile: int) -> int:
    """Overlap that keeps tiles of side ``tile`` within 1/255 of the whole image (measured)."""
    for smallest, overlap in OVERLAP_BY_TILE:
        if tile >= smallest:
            return overlap
    return OVERLAP_BY_TILE[-1][1]


def _intersect(a: Box, b: Box) -> Box | None:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    return (x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None


class _Tracker:
    """Counts tiles and pixels over all passes of one job and builds progress events."""

    def __init__(self, total_tiles: int, total_pixels: int) -> None:
        self.total_tiles = total_tiles
        self.total_pixels = max(1, total_pixels)
        self.done_tiles = 0
        self.done_pixels = 0
        self.start = time.perf_counter()
        self._messages: list[str] = []
        self._lock = threading.Lock()

    def note(self, message: str) -> None:
        with self._lock:
            self._messages.append(message)

    def tile_done(self, pixels: int, phase: str, tile_size: int, core: Box | None = None,
                  output: np.ndarray | None = None) -> TileProgress:
        self.done_tiles += 1
        self.done_pixels += pixels
        elapsed = time.perf_counter() - self.start
        rate = self.done_pixels / elapsed if elapsed > 0 else 0.0
        eta = (self.total_pixels - self.done_pixels) / rate if rate > 0 else None
        with self._lock:
            message, self._messages = "; ".join(self._messages), []
        return TileProgress(
            done=self.done_tiles, total=self.total_tiles, elapsed_s=elapsed,
            eta_s=max(0.0, eta) if eta is not None else None,
            megapixels_per_s=rate / 1e6, phase=phase, tile_size=tile_size, message=message,
            core=core, output=output,
        )


@dataclass
class _Pass:
    """One image plane through the model: RGB, or a single channel replicated to RGB."""

    src: np.ndarray  # HxWx3 or HxW (single channel), float, padded to the model's minimum size
    out: np.ndarray  # (sH)x(sW)x3 or (sH)x(sW), float32
    phase: str
    tasks: list[tuple[Box, Box]]  # (window, core) in src coordinates
    origin: tuple[int, int]  # src coordinates of out[0, 0] (for regions and bands)
    tile: int
    #: Float tile in [0, 1] -> the samples ``out`` stores (integer bands for a file); None: float32 as is.
    quantize: Callable[[np.ndarray], np.ndarray] | None = None
    row: int = 0  # index of the tile row, for banded jobs


class TiledUpscaler:
    """Runs a :class:`Backend` over overlapping tiles of an image.

    ``tile_size=None`` picks :func:`auto_tile_size` per image; ``overlap=None``
    uses :data:`DEFAULT_OVERLAP`. One instance serves one job at a time.
    """

    def __init__(self, backend: Backend, tile_size: int | None = None, overlap: int | None = None,
                 *, workers: int | None = None) -> None:
        self.backend = backend
        if overlap is not None and overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap}")
        if tile_size is not None and tile_size < 1:
            raise ValueError(f"tile_size must be positive, got {tile_size}")
        #: Fixed overlap, or None: :func:`default_overlap` of the tile size in use.
        self.overlap = None if overlap is None else int(overlap)
        self.align = max(1, int(backend.grid_align))
        #: Smallest tile that still has a useful core; smaller requests are raised to it, and
        #: out-of-memory retries stop here.
        self.min_tile = max(backend.min_size, 32)
        while self.min_tile < 2 * self.overlap_for(self.min_tile) + 2 * self.align + 4:
            self.min_tile += 1
        if tile_size is not None and tile_size < self.min_tile:
            log.info("tile size %d raised to %d (the overlap needs room for a core)", tile_size, self.min_tile)
            tile_size = self.min_tile
        self.tile_size = tile_size
        self.workers = max(1, int(workers if workers is not None else backend.workers))
        self._pool: ThreadPoolExecutor | None = None
        self._oom_limit: int | None = None
        self._lock = threading.Lock()
        self._tracker: _Tracker | None = None
        self._buffers = threading.local()

    # ------------------------------------------------------------------ planning

    def overlap_for(self, tile: int) -> int:
        return self.overlap if self.overlap is not None else default_overlap(tile)

    def tile_size_for(self, height: int, width: int) -> int:
        if not self.backend.tileable:
            return max(height, width)
        tile = self.tile_size or auto_tile_size(self.backend, height, width)
        return max(tile, self.min_tile) if max(height, width) > tile else tile

    def plan(self, height: int, width: int) -> list[TileBox]:
        """The tiles this upscaler would run for an image of that size."""
        h, w = max(height, self.backend.min_size), max(width, self.backend.min_size)
        tile = self.tile_size_for(h, w)
        if not self.backend.tileable or max(h, w) <= tile:
            return [TileBox(0, 0, w, h, 0, 0, w, h)]
        return plan_tiles(h, w, tile, self.overlap_for(tile), self.align)

    def work(self, height: int, width: int) -> tuple[int, int]:
        """(tiles, LR pixels) one plane of that size costs, as counted by progress events."""
        m = self.backend.min_size
        h, w = max(height, m), max(width, m)  # what _make_pass pads a too-small image up to
        return len(self.plan(h, w)), h * w

    # ------------------------------------------------------------------ public API

    def upscale_iter(self, pixels: np.ndarray, cancel: CancelToken | None = None
                     ) -> Generator[TileProgress, None, np.ndarray]:
        """Yield a :class:`TileProgress` per finished tile; return the upscaled image.

        ``pixels``: HxWx3 float in [0, 1] (HxW or HxWx1 grey also works; the model
        sees it replicated to RGB and the channel mean comes back). The result is
        float32 clipped to [0, 1], ``scale`` times larger, same channel layout.
        """
        p = self._make_pass(pixels, "rgb")
        yield from self._run_passes([p], cancel)
        return self._finish(p, pixels)

    def upscale(self, pixels: np.ndarray, cancel: CancelToken | None = None,
                progress: Callable[[TileProgress], None] | None = None) -> np.ndarray:
        return drive(self.upscale_iter(pixels, cancel), progress)

    def upscale_region(self, pixels: np.ndarray, box: tuple[int, int, int, int],
                       cancel: CancelToken | None = None) -> np.ndarray:
        """Upscale only the LR box ``(x0, y0, x1, y1)`` (exclusive ends), e.g. the visible part of a view.

        A box that fits one tile together with its context (or the automatic tile
        size, if larger) runs as one window (``overlap`` px of context, aligned
        to the ESA grid): within the tiling error (< 1/255) of the whole-image
        result, at the cost of the box only.
        A larger box runs exactly the tiles of :meth:`plan` that touch it, so it
        is identical to the same crop of :meth:`upscale`.
        """
        src = self._as_planes(pixels)
        h, w = src.shape[:2]
        x0, y0, x1, y1 = (int(v) for v in box)
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {box} does not overlap the {w}x{h} image")
        s = self.backend.scale
        if h < self.backend.min_size or w < self.backend.min_size:
            return self.upscale(pixels, cancel)[s * y0:s * y1, s * x0:s * x1]
        region = (x0, y0, x1, y1)
        tile = self.tile_size_for(h, w)
        window = self._context_window(region, (0, 0, w, h), max(x1 - x0, y1 - y0))
        # One window is far cheaper than small tiles' overlaps; allow it up to the automatic (memory-safe)
        # tile size even when this upscaler was given a smaller tile.
        one_window = max(tile, auto_tile_size(self.backend, h, w))
        if max(window[2] - window[0], window[3] - window[1]) <= one_window or not self.backend.tileable:
            tasks = [(window, region)]
        else:
            tasks = [(b.window, core) for b in self.plan(h, w) if (core := _intersect(b.core, region))]
        out = np.empty(self._out_shape(src, y1 - y0, x1 - x0), np.float32)
        drive(self._run_passes([_Pass(src, out, "rgb", tasks, (x0, y0), tile)], cancel), None)
        return self._restore_channels(out, pixels)

    def plan_regions(self, height: int, width: int, boxes: Sequence[Box], *,
                     centre: tuple[float, float] | None = None, split: bool = True
                     ) -> list[tuple[int, Box, Box]]:
        """The tiles that cover the LR ``boxes`` of a ``height`` x ``width`` image, nearest ``centre`` first.

        Returns ``(box index, window, core)`` triples; each box's cores partition it (clipped to
        the image). Each box is planned on its own context area (the box grown by the overlap and
        clipped to the image), so context is paid once around the box and along the seams between
        its tiles, not around every piece. A box whose area fits one tile runs as one window (the
        window :meth:`upscale_region` uses). With ``split`` and several workers, a box that would
        give fewer tiles than workers gets smaller tiles, down to :data:`SPLIT_MIN_TILE`, so every
        worker has one: on 2 cores that finished as fast as one window on both threads (the seam's
        context costs what the threads' synchronisation does), and a cancel waits for a smaller tile.

        Order: tiles whose core holds ``centre`` (default: the middle of the boxes' bounding box)
        first, then by the distance from ``centre`` to the core's middle.
        """
        bounds = (0, 0, width, height)
        clipped = [_intersect(tuple(int(v) for v in b), bounds) for b in boxes]  # type: ignore[arg-type]
        tile = self.tile_size_for(height, width)
        triples: list[tuple[int, Box, Box]] = []
        for i, box in enumerate(clipped):
            if box is None:
                continue
            tasks = self._region_tasks(box, bounds, tile)
            if split and self.workers > 1 and len(tasks) < self.workers:
                for smaller in range((tile - 1) // 16 * 16, SPLIT_MIN_TILE - 1, -16):
                    more = self._region_tasks(box, bounds, smaller)
                    if len(more) >= self.workers:
                        tasks = more
                        break
            triples += [(i, window, core) for window, core in tasks]
        if centre is None:
            live = [b for b in clipped if b is not None]
            if not live:
                return []
            centre = ((min(b[0] for b in live) + max(b[2] for b in live)) / 2,
                      (min(b[1] for b in live) + max(b[3] for b in live)) / 2)
        cx, cy = centre

        def off(lo: int, hi: int, c: float) -> float:
            """Pixels from the one at ``c`` to the span [lo, hi); 0 inside."""
            return max(lo - math.floor(c), 0, math.floor(c) - (hi - 1))

        def key(t: tuple[int, Box, Box]) -> tuple[float, float, int, int]:
            x0, y0, x1, y1 = t[2]
            outside = math.hypot(off(x0, x1, cx), off(y0, y1, cy))
            return outside, math.hypot((x0 + x1) / 2 - cx, (y0 + y1) / 2 - cy), y0, x0

        return sorted(triples, key=key)

    def _region_tasks(self, box: Box, bounds: Box, tile: int) -> list[tuple[Box, Box]]:
        """``(window, core)`` pairs covering ``box`` with tiles of at most ``tile`` px (see plan_regions)."""
        x0, y0, x1, y1 = box
        one = self._context_window(box, bounds, max(x1 - x0, y1 - y0))
        if not self.backend.tileable or max(one[2] - one[0], one[3] - one[1]) <= tile:
            return [(one, box)]
        tile = max(tile, self.min_tile)
        ov = self.overlap_for(tile)
        while True:
            ax0, ay0, ax1, ay1 = self._grow(box, bounds, ov)
            plan = plan_tiles(ay1 - ay0, ax1 - ax0, tile, ov, self.align)
            # Windows come out smaller than `tile` when fewer of them cover the area: give them
            # the overlap their own size needs (larger windows need no more, so this settles).
            need = max(self.overlap_for(max(b.width, b.height)) for b in plan)
            if need <= ov:
                break
            ov = need
        tasks = []
        for b in plan:
            window = (b.x0 + ax0, b.y0 + ay0, b.x1 + ax0, b.y1 + ay0)
            core = _intersect((b.core_x0 + ax0, b.core_y0 + ay0, b.core_x1 + ax0, b.core_y1 + ay0), box)
            if core is not None:
                tasks.append((window, core))
        return tasks

    def iter_regions(self, pixels: np.ndarray, boxes: Sequence[Box], cancel: CancelToken | None = None, *,
                     centre: tuple[float, float] | None = None, split: bool = True
                     ) -> Generator[TileProgress, None, None]:
        """Upscale the LR ``boxes`` of ``pixels`` as one job, yielding each tile as it finishes.

        The tiles of every box (:meth:`plan_regions`, nearest ``centre`` first) run on the
        worker threads together. Each :class:`TileProgress` carries the tile's ``core`` (image
        coordinates) and its upscaled pixels as ``output`` (float32 in [0, 1], the tile's own
        array: only the tiles being computed are in memory, however large the boxes), so a
        viewer can paint the region tile by tile, centre first. ``cancel`` is checked between
        tiles: once set, no new tile starts, the running ones finish and
        :class:`~dipnet_core.cancel.Cancelled` is raised. :meth:`upscale_regions` assembles the boxes.
        """
        src = self._as_planes(pixels)
        h, w = src.shape[:2]
        s = self.backend.scale
        if h < self.backend.min_size or w < self.backend.min_size:
            # Padded up to the model's minimum: tiny, so run it whole and hand each box over as one tile.
            full = drive(self.upscale_iter(src, cancel), None)
            live = [b for b in (_intersect(tuple(int(v) for v in box), (0, 0, w, h)) for box in boxes) if b]
            tracker = _Tracker(len(live), sum((b[2] - b[0]) * (b[3] - b[1]) for b in live))
            for b in live:
                out = self._restore_channels(full[s * b[1]:s * b[3], s * b[0]:s * b[2]].copy(), pixels)
                yield tracker.tile_done((b[2] - b[0]) * (b[3] - b[1]), "rgb", max(h, w), b, out)
            return
        tile = self.tile_size_for(h, w)
        plan = self.plan_regions(h, w, boxes, centre=centre, split=split)

        def jobs() -> Iterator[tuple[_Pass, tuple[Box, Box]]]:
            # Lazy, so a tile's output array exists only from its start to its hand-over.
            for _i, window, core in plan:
                out = np.empty(self._out_shape(src, core[3] - core[1], core[2] - core[0]), np.float32)
                yield _Pass(src, out, "rgb", [(window, core)], (core[0], core[1]), tile), (window, core)

        tracker = _Tracker(len(plan), sum((c[2] - c[0]) * (c[3] - c[1]) for _, _, c in plan))
        self._tracker = tracker
        check(cancel)
        try:
            for p, core in self._execute_jobs(jobs(), cancel, parallel=len(plan) > 1):
                yield tracker.tile_done((core[2] - core[0]) * (core[3] - core[1]), p.phase,
                                        min(tile, self._oom_limit or tile), core,
                                        self._restore_channels(p.out, pixels))
                check(cancel)
        finally:
            self._tracker = None

    def upscale_regions(self, pixels: np.ndarray, boxes: Sequence[Box], cancel: CancelToken | None = None, *,
                        centre: tuple[float, float] | None = None, split: bool = True,
                        progress: Callable[[TileProgress], None] | None = None) -> list[np.ndarray]:
        """:meth:`iter_regions` assembled: one upscaled array per box (clipped to the image; an empty
        box gives an empty array). ``progress`` gets every tile as it finishes."""
        src = self._as_planes(pixels)
        h, w = src.shape[:2]
        s = self.backend.scale
        clipped = [_intersect(tuple(int(v) for v in b), (0, 0, w, h)) for b in boxes]
        outs = [np.empty(self._out_shape(src, *((b[3] - b[1], b[2] - b[0]) if b else (0, 0))), np.float32)
                for b in clipped]
        for event in self.iter_regions(pixels, boxes, cancel, centre=centre, split=split):
            core = event.core
            assert core is not None and event.output is not None
            shape = (s * (core[3] - core[1]), s * (core[2] - core[0])) + outs[0].shape[2:]
            tile = event.output.reshape(shape)
            for b, out in zip(clipped, outs):
                part = _intersect(core, b) if b is not None else None
                if part is None or b is None:
                    continue  # (overlapping boxes each take their part of every tile)
                x0, y0, x1, y1 = part
                out[s * (y0 - b[1]):s * (y1 - b[1]), s * (x0 - b[0]):s * (x1 - b[0])] = (
                    tile[s * (y0 - core[1]):s * (y1 - core[1]), s * (x0 - core[0]):s * (x1 - core[0])])
            if progress is not None:
                progress(event)
        return [self._restore_channels(o, pixels) for o in outs]

    def _context_window(self, core: Box, bounds: Box, side: int) -> Box:
        """``core`` grown by the overlap a ``side`` px tile needs (a bigger window needs no more), clipped
        to ``bounds`` and aligned to the ESA grid."""
        return self._grow(core, bounds, self.overlap_for(side))

    def _grow(self, core: Box, bounds: Box, ov: int) -> Box:
        """``core`` grown by ``ov`` px, clipped to ``bounds``, its top-left aligned to the ESA grid."""
        a = self.align
        return (max(bounds[0], core[0] - ov) // a * a, max(bounds[1], core[1] - ov) // a * a,
                min(bounds[2], core[2] + ov), min(bounds[3], core[3] + ov))

    def iter_bands(self, planes: Sequence[tuple[np.ndarray, str]], cancel: CancelToken | None = None, *,
                   quantize: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> Generator[TileProgress | OutputBand, None, None]:
        """Upscale same-sized planes of one image tile row by tile row, yielding finished bands top to bottom.

        ``planes``: ``(pixels, phase)`` pairs, e.g. the colour plane as ``"rgb"``
        and the alpha plane as ``"alpha"`` (pixels as for :meth:`upscale_iter`).
        Yields a :class:`TileProgress` per finished tile and an :class:`OutputBand`
        as soon as every tile of a tile row of every plane is done. Each band
        holds exactly what the same rows of :meth:`upscale_iter`'s result hold
        (passed through ``quantize``, e.g. ``to_uint8``, inside the tile workers),
        so only the rows being computed, not the whole output, are in memory:
        about two bands while tile workers cross from one row into the next.
        """
        if not planes:
            raise ValueError("no planes to upscale")
        srcs = [(self._as_planes(px), phase) for px, phase in planes]
        h, w = srcs[0][0].shape[:2]
        if any(src.shape[:2] != (h, w) for src, _ in srcs):
            raise ValueError(f"planes differ in size: {[src.shape[:2] for src, _ in srcs]}")
        s = self.backend.scale
        m = self.backend.min_size
        if h < m or w < m:
            # Padded up to the model's minimum: tiny, so run it whole and hand it over as one band.
            passes = [self._make_pass(src, phase) for src, phase in srcs]
            yield from self._run_passes(passes, cancel)
            outs = [self._finish(p, src) for p, (src, _) in zip(passes, srcs)]
            yield OutputBand(0, tuple(quantize(o) if quantize is not None else o for o in outs))
            return

        tile = self.tile_size_for(h, w)
        rows: dict[tuple[int, int], list[tuple[Box, Box]]] = {}
        for b in self.plan(h, w):
            rows.setdefault((b.core_y0, b.core_y1), []).append((b.window, b.core))
        row_list = list(rows.items())
        dtype = np.float32 if quantize is None else quantize(np.zeros((1, 1), np.float32)).dtype
        open_bands: dict[int, list[_Pass]] = {}
        left: dict[int, int] = {}

        def jobs() -> Iterator[tuple[_Pass, tuple[Box, Box]]]:
            # Lazy, so a row's band buffers exist only from its first submitted tile to its hand-over.
            for r, ((cy0, cy1), tasks) in enumerate(row_list):
                band = []
                for src, phase in srcs:
                    shape = (s * (cy1 - cy0), s * w) + ((3,) if src.ndim == 3 else ())
                    band.append(_Pass(src, np.empty(shape, dtype), phase, tasks, (0, cy0), tile, quantize, r))
                open_bands[r] = band
                left[r] = len(tasks) * len(band)
                for p in band:
                    for task in p.tasks:
                        yield p, task

        total_tiles = sum(len(t) for _, t in row_list) * len(srcs)
        tracker = _Tracker(total_tiles, h * w * len(srcs))
        self._tracker = tracker
        check(cancel)
        next_row = 0
        try:
            for p, core in self._execute_jobs(jobs(), cancel, parallel=total_tiles > 1):
                yield tracker.tile_done((core[2] - core[0]) * (core[3] - core[1]), p.phase,
                                        min(tile, self._oom_limit or tile), core, self._core_view(p, core))
                left[p.row] -= 1
                while left.get(next_row) == 0:
                    band = open_bands.pop(next_row)
                    del left[next_row]
                    yield OutputBand(s * band[0].origin[1], tuple(bp.out for bp in band))
                    next_row += 1
                check(cancel)
        finally:
            self._tracker = None
            open_bands.clear()

    def close(self) -> None:
        """Stop the worker threads (they are also stopped at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ passes

    @staticmethod
    def _as_planes(pixels: np.ndarray) -> np.ndarray:
        """HxWx3 stays; HxWx1 / HxW become HxW (replicated to RGB per tile, not for the whole image)."""
        a = np.asarray(pixels)
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"expected float pixels in [0, 1], got {a.dtype}")
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
            raise ValueError(f"expected an HxWx3 (or HxW grey) image, got shape {a.shape}")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"empty image {a.shape}")
        return a

    def _out_shape(self, src: np.ndarray, h: int, w: int) -> tuple[int, ...]:
        s = self.backend.scale
        return (s * h, s * w, 3) if src.ndim == 3 else (s * h, s * w)

    def _make_pass(self, pixels: np.ndarray, phase: str) -> _Pass:
        src = self._as_planes(pixels)
        h, w = src.shape[:2]
        m = self.backend.min_size
        if h < m or w < m:
            # Too small for ESA: mirror up to the minimum size, crop the output in _finish.
            pad = ((0, max(0, m - h)), (0, max(0, m - w))) + (((0, 0),) if src.ndim == 3 else ())
            src = np.pad(src.astype(np.float32), pad, mode="reflect")
        ph, pw = src.shape[:2]
        plan = self.plan(ph, pw)
        out = np.empty(self._out_shape(src, ph, pw), np.float32)
        return _Pass(src, out, phase, [(b.window, b.core) for b in plan], (0, 0), self.tile_size_for(ph, pw))

    def _finish(self, p: _Pass, pixels: np.ndarray) -> np.ndarray:
        h, w = np.asarray(pixels).shape[:2]
        s = self.backend.scale
        out = p.out
        if out.shape[0] != s * h or out.shape[1] != s * w:
            out = np.ascontiguousarray(out[: s * h, : s * w])
        return self._restore_channels(out, pixels)

    @staticmethod
    def _restore_channels(out: np.ndarray, pixels: np.ndarray) -> np.ndarray:
        a = np.asarray(pixels)
        return out[:, :, None] if a.ndim == 3 and a.shape[2] == 1 else out

    def _run_passes(self, passes: Sequence[_Pass], cancel: CancelToken | None,
                    tracker: _Tracker | None = None) -> Generator[TileProgress, None, None]:
        """Run every task of every pass, yielding progress; shared by images, alpha and regions.

        ``tracker``: one that counts a larger job these passes are part of (the
        self-ensemble's 8 passes), instead of a fresh one for just these.
        """
        if tracker is None:
            total_px = sum((c[2] - c[0]) * (c[3] - c[1]) for p in passes for _, c in p.tasks)
            tracker = _Tracker(sum(len(p.tasks) for p in passes), total_px)
        self._tracker = tracker
        check(cancel)
        try:
            for p in passes:
                for core in self._execute(p, cancel):
                    tile = min(p.tile, self._oom_limit or p.tile)
                    yield tracker.tile_done((core[2] - core[0]) * (core[3] - core[1]), p.phase, tile,
                                            core, self._core_view(p, core))
                    check(cancel)
        finally:
            self._tracker = None

    def _execute(self, p: _Pass, cancel: CancelToken | None) -> Generator[Box, None, None]:
        """Run the pass's tasks (in worker threads when there are several) and yield each finished core."""
        for _, core in self._execute_jobs(((p, t) for t in p.tasks), cancel, parallel=len(p.tasks) > 1):
            yield core

    def _execute_jobs(self, jobs: Iterator[tuple[_Pass, tuple[Box, Box]]], cancel: CancelToken | None,
                      parallel: bool) -> Generator[tuple[_Pass, Box], None, None]:
        """Run ``(pass, (window, core))`` jobs, pulled lazily in order, and yield each finished one."""
        def job(item: tuple[_Pass, tuple[Box, Box]]) -> tuple[_Pass, Box]:
            p, (window, core) = item
            self._process(p, window, core)
            return p, core

        if self.workers <= 1 or not parallel:
            for item in jobs:
                check(cancel)
                yield job(item)
            return
        pool = self._get_pool()
        pending: set[Future[tuple[_Pass, Box]]] = set()
        try:
            for item in jobs:
                pending.add(pool.submit(job, item))
                if len(pending) >= self.workers:
                    break
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
                    # Cancelled between tiles: nothing new starts; the finally waits for the running ones.
                    check(cancel)
                    item = next(jobs, None)
                    if item is not None:
                        pending.add(pool.submit(job, item))
        finally:
            for f in pending:
                f.cancel()
            wait(pending)

    def _get_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            n = self.workers
            pool = ThreadPoolExecutor(n, thread_name_prefix="dipnet-tile", initializer=self.backend.init_worker)
            # Start all n threads now (each waits for the others), so every one has run
            # init_worker before the backend restores its process-wide settings.
            barrier = threading.Barrier(n, timeout=30)
            wait([pool.submit(barrier.wait) for _ in range(n)])
            self.backend.workers_ready()
            self._pool = pool
        return self._pool

    # ------------------------------------------------------------------ one tile

    def _input_buffer(self, h: int, w: int) -> np.ndarray:
        """A per-thread NCHW buffer reused while the tile shape stays the same (it does within a plan)."""
        buf = getattr(self._buffers, "buf", None)
        c = self.backend.in_channels
        if buf is None or buf.shape != (1, c, h, w):
            buf = np.empty((1, c, h, w), np.float32)
            self._buffers.buf = buf
        return buf

    def _window_input(self, src: np.ndarray, window: Box) -> np.ndarray:
        x0, y0, x1, y1 = window
        buf = self._input_buffer(y1 - y0, x1 - x0)
        crop = src[y0:y1, x0:x1]
        if crop.ndim == 3:
            buf[0] = crop.transpose(2, 0, 1)
        else:
            buf[0] = crop[None]  # grey: the same plane into every input channel
        return buf

    def _core_view(self, p: _Pass, core: Box) -> np.ndarray:
        """The part of the pass's output that holds ``core`` (image coordinates) upscaled."""
        s = self.backend.scale
        ox, oy = p.origin
        return p.out[s * (core[1] - oy):s * (core[3] - oy), s * (core[0] - ox):s * (core[2] - ox)]

    def _write(self, p: _Pass, y: np.ndarray, window: Box, core: Box) -> None:
        s = self.backend.scale
        cx0, cy0, cx1, cy1 = (core[0] - window[0], core[1] - window[1], core[2] - window[0], core[3] - window[1])
        tile = y[0, :, s * cy0:s * cy1, s * cx0:s * cx1].transpose(1, 2, 0)
        dst = self._core_view(p, core)
        if p.quantize is None:
            self._clip_into(tile, dst)
            return
        # A quantized band gets exactly the float32 values a float output would hold, then rounded;
        # a few rows at a time, so the float scratch stays small next to the band.
        step = max(1, _QUANTIZE_CHUNK_VALUES // max(1, tile.shape[1] * tile.shape[2]))
        for r in range(0, tile.shape[0], step):
            part = dst[r:r + step]
            res = np.empty(part.shape, np.float32)
            self._clip_into(tile[r:r + step], res)
            part[...] = p.quantize(res)

    @staticmethod
    def _clip_into(tile: np.ndarray, dst: np.ndarray) -> None:
        """Model output (h x w x 3) clipped to [0, 1] into ``dst``: colour as is, one channel as the mean."""
        if dst.ndim == 3:
            np.clip(tile, 0.0, 1.0, out=dst)
        else:
            np.clip(tile.mean(axis=2, dtype=np.float32), 0.0, 1.0, out=dst)

    def _process(self, p: _Pass, window: Box, core: Box) -> None:
        """Run one window and write its core; on out-of-memory, split it into smaller windows."""
        side = max(window[2] - window[0], window[3] - window[1])
        limit = self._oom_limit
        if limit is not None and side > limit:
            self._split(p, window, core, limit)
            return
        try:
            x = self._window_input(p.src, window)
            if self.backend.grid_aware:
                y = self.backend.run(x, TileGrid(window[1], window[0], p.src.shape[0], p.src.shape[1]))
            else:
                y = self.backend.run(x)
        except Exception as exc:  # torch, onnxruntime and numpy each signal OOM differently
            if not is_out_of_memory(exc) or side <= self.min_tile or not self.backend.tileable:
                raise
            self.backend.release_memory()
            smaller = max(self.min_tile, side // 2)
            with self._lock:
                self._oom_limit = min(self._oom_limit or smaller, smaller)
            msg = (f"out of memory on a {window[2] - window[0]}x{window[3] - window[1]} px tile; "
                   f"retrying with {smaller} px tiles")
            log.warning(msg)
            tracker = self._tracker
            if tracker is not None:
                tracker.note(msg)
            self._buffers.buf = None
            self._split(p, window, core, smaller)
            return
        self._write(p, y, window, core)

    def _split(self, p: _Pass, window: Box, core: Box, tile: int) -> None:
        # Context comes from the whole source, not just the failed window: smaller tiles may
        # need a larger overlap than the window had.
        ov, a = self.overlap_for(tile), self.align
        bounds = (0, 0, p.src.shape[1], p.src.shape[0])
        region = (max(0, core[0] - ov) // a * a, max(0, core[1] - ov) // a * a,
                  min(bounds[2], core[2] + ov), min(bounds[3], core[3] + ov))
        rw, rh = region[2] - region[0], region[3] - region[1]
        for b in plan_tiles(rh, rw, tile, ov, a):
            sub_window = (b.x0 + region[0], b.y0 + region[1], b.x1 + region[0], b.y1 + region[1])
            sub_core = (b.core_x0 + region[0], b.core_y0 + region[1],
                        b.core_x1 + region[0], b.core_y1 + region[1])
            keep = _intersect(sub_core, core)
            if keep is not None:
                self._process(p, sub_window, keep)


def drive(gen: Generator[TileProgress, None, np.ndarray],
          progress: Callable[[TileProgress], None] | None) -> np.ndarray:
    """Exhaust an ``upscale_iter``-style generator, forwarding events to ``progress``; return its result."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        if progress is not None:
            progress(event)
