"""Engine tests on the real shipped built-in model and small photo-like crops (no model mocks).

Fault injection (out-of-memory, run counting) wraps a real backend; the model always runs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from dipnet_core.cancel import Cancelled, CancelToken
from dipnet_core.engine import (
    DEFAULT_OVERLAP,
    Backend,
    BackendUnavailable,
    TiledUpscaler,
    TileProgress,
    auto_tile_size,
    available_backends,
    create_backend,
    plan_tiles,
    upscale_image,
)
from dipnet_core.engine.gridnet import GRID_ALIGN, coarse_size
from dipnet_core.engine.upscaler import default_overlap
from dipnet_core.models import LoadedModel

ONE_LEVEL = 1.0 / 255.0


def _crop(photo: Callable[..., np.ndarray], name: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    rgb = photo(name).astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb[y:y + h, x:x + w])


def _levels(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0)


def _max_level_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(_levels(a) - _levels(b)).max())


def _reference(model: LoadedModel, x: np.ndarray, clip: bool = True) -> np.ndarray:
    """Plain eager forward pass of the model's module on the whole image."""
    assert model.module is not None
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))
        y = model.module(t)[0].numpy().transpose(1, 2, 0)
    return np.clip(y, 0.0, 1.0) if clip else y


@pytest.fixture(scope="module")
def fp32(builtin_model: LoadedModel) -> Backend:
    return create_backend(builtin_model, backend="torch", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def crops(photo: Callable[..., np.ndarray]) -> list[np.ndarray]:
    # Large enough that a 128 px tile (the smallest size the overlap table covers) really splits them.
    return [_crop(photo, "baby", 100, 100, 150, 136), _crop(photo, "butterfly", 60, 70, 140, 150)]


@pytest.fixture(scope="module")
def small(crops: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(crops[0][:72, :90])


class _Wrapped(Backend):
    """Delegates to a real backend; subclasses inject faults or count calls."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        for attr in ("name", "device", "precision", "provider", "scale", "fallback_reason", "workers",
                     "min_size", "tileable", "bytes_per_pixel", "grid_aware", "grid_align", "in_channels"):
            setattr(self, attr, getattr(inner, attr))
        self.calls: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def run(self, x: np.ndarray, grid: Any = None) -> np.ndarray:
        with self._lock:
            self.calls.append((x.shape[2], x.shape[3]))
        return self.inner.run(x, grid)

    def init_worker(self) -> None:
        self.inner.init_worker()

    def workers_ready(self) -> None:
        self.inner.workers_ready()

    def describe(self) -> str:
        return "wrapped " + self.inner.describe()


class _OutOfMemoryAbove(_Wrapped):
    def __init__(self, inner: Backend, limit: int) -> None:
        super().__init__(inner)
        self.limit = limit
        self.failures = 0

    def run(self, x: np.ndarray, grid: Any = None) -> np.ndarray:
        if max(x.shape[2], x.shape[3]) > self.limit:
            with self._lock:
                self.failures += 1
            raise torch.OutOfMemoryError(f"injected: tile {x.shape[3]}x{x.shape[2]} is over {self.limit} px")
        return super().run(x, grid)


# ---------------------------------------------------------------------------------------------- plan


@pytest.mark.parametrize("h,w", [(1, 1), (15, 15), (64, 64), (65, 97), (100, 130), (257, 61), (513, 300)])
@pytest.mark.parametrize("tile,overlap,align", [(64, 8, 1), (64, 16, 6), (96, 24, 6), (128, 0, 1), (256, 24, 6)])
def test_plan_tiles_cores_cover_every_pixel_once(h: int, w: int, tile: int, overlap: int, align: int) -> None:
    plan = plan_tiles(h, w, tile, overlap, align)
    cover = np.zeros((h, w), np.int32)
    for b in plan:
        assert 0 <= b.x0 < b.x1 <= w and 0 <= b.y0 < b.y1 <= h
        assert b.width <= tile and b.height <= tile
        assert b.x0 % align == 0 and b.y0 % align == 0
        assert b.x0 <= b.core_x0 < b.core_x1 <= b.x1 and b.y0 <= b.core_y0 < b.core_y1 <= b.y1
        # Every core edge inside the image keeps `overlap` px of real context.
        assert b.core_x0 == 0 or b.core_x0 - b.x0 >= overlap
        assert b.core_y0 == 0 or b.core_y0 - b.y0 >= overlap
        assert b.core_x1 == w or b.x1 - b.core_x1 >= overlap
        assert b.core_y1 == h or b.y1 - b.core_y1 >= overlap
        cover[b.core_y0:b.core_y1, b.core_x0:b.core_x1] += 1
    assert (cover == 1).all()
    # All windows share one shape (one engine / allocator size per plan).
    assert len({(b.width, b.height) for b in plan}) == 1
    if h <= tile and w <= tile:
        assert len(plan) == 1 and plan[0].window == (0, 0, w, h)


def test_plan_tiles_shrinks_windows_just_over_the_tile_size() -> None:
    plan = plan_tiles(300, 300, 256, 16)
    assert len(plan) == 4
    assert plan[0].width < 200  # 2 x ~166 px per side, not 2 x 256


@pytest.mark.parametrize("kwargs", [{"tile": 32, "overlap": 16}, {"tile": 64, "overlap": -1},
                                    {"tile": 40, "overlap": 16, "align": 6}])
def test_plan_tiles_rejects_impossible_settings(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        plan_tiles(100, 100, **kwargs)


# ------------------------------------------------------------------------------------------ parity


def test_whole_image_matches_plain_forward(builtin_model: LoadedModel, fp32: Backend, small: np.ndarray) -> None:
    y = TiledUpscaler(fp32).upscale(small)
    assert y.shape == (4 * small.shape[0], 4 * small.shape[1], 3) and y.dtype == np.float32
    assert float(np.abs(y - _reference(builtin_model, small)).max()) < 1e-5
    assert y.min() >= 0.0 and y.max() <= 1.0


def test_tiled_matches_whole_image_within_one_level(builtin_model: LoadedModel, fp32: Backend,
                                                    crops: list[np.ndarray]) -> None:
    up = TiledUpscaler(fp32, tile_size=128)  # default overlap for 128 px tiles
    for x in crops:
        assert len(up.plan(*x.shape[:2])) == 4
        assert _max_level_diff(up.upscale(x), _reference(builtin_model, x)) <= 1.0


def test_naive_tiling_would_not_match(builtin_model: LoadedModel, fp32: Backend, crops: list[np.ndarray]) -> None:
    """Why the engine keeps ESA on the whole image's grid: plain tiles miss by many levels."""
    x = crops[1]
    plain = _Wrapped(fp32)
    plain.grid_aware, plain.grid_align = False, 1
    tiled = TiledUpscaler(plain, tile_size=128).upscale(x)
    assert _max_level_diff(tiled, _reference(builtin_model, x)) > 2.0


def test_upscale_region_matches_full_result(builtin_model: LoadedModel, fp32: Backend,
                                            crops: list[np.ndarray]) -> None:
    x = crops[1]
    full = _reference(builtin_model, x)
    # A small box runs as one window with context.
    up = TiledUpscaler(fp32, tile_size=128)
    box = (61, 47, 83, 70)
    region = up.upscale_region(x, box)
    assert region.shape == (4 * 23, 4 * 22, 3)
    assert _max_level_diff(region, full[4 * 47:4 * 70, 4 * 61:4 * 83]) <= 1.0
    # A box too big for one window (here: a backend that looks memory-hungry, so the automatic size
    # is small too) runs exactly the touching tiles: identical to the tiled result.
    hungry = _Wrapped(fp32)
    hungry.bytes_per_pixel = 10**12
    up = TiledUpscaler(hungry, tile_size=128)
    box = (20, 30, 130, 140)
    sl = np.s_[4 * box[1]:4 * box[3], 4 * box[0]:4 * box[2]]
    np.testing.assert_array_equal(up.upscale_region(x, box), up.upscale(x)[sl])


def test_regions_plan_covers_each_box_once_centre_first_one_tile_per_worker(fp32: Backend) -> None:
    """The live preview's plan for a 1600x1000 view at 100 % on a 1600x1000 LR image."""
    up = TiledUpscaler(fp32)
    h, w, box = 1000, 1600, (600, 375, 1000, 625)
    whole = up.plan_regions(h, w, [box], split=False)
    assert [(i, c) for i, _, c in whole] == [(0, box)]  # fits one window: the window upscale_region uses
    assert whole[0][1] == up._context_window(box, (0, 0, w, h), 400)
    plan = up.plan_regions(h, w, [box, (0, 0, 64, 1000)], centre=(800, 500))
    assert len([t for t in plan if t[0] == 0]) >= max(2, up.workers) or up.workers == 1
    cover = np.zeros((h, w), int)
    for _, (wx0, wy0, wx1, wy1), (x0, y0, x1, y1) in plan:
        cover[y0:y1, x0:x1] += 1
        assert wx0 % up.align == 0 and wy0 % up.align == 0
        # Every core keeps the overlap of context inside its window, except at the image's edges.
        ov = up.overlap_for(max(wx1 - wx0, wy1 - wy0))
        assert all(d >= min(ov, edge) for d, edge in ((x0 - wx0, x0), (y0 - wy0, y0), (wx1 - x1, w - x1),
                                                        (wy1 - y1, h - y1)))
    assert cover[375:625, 600:1000].min() == 1 and cover[:, :64].min() == 1
    assert cover.max() == 1 and cover.sum() == 400 * 250 + 64 * 1000
    # Centre first: the first tile holds the centre, the far strip comes last.
    x0, y0, x1, y1 = plan[0][2]
    assert x0 <= 800 < x1 and y0 <= 500 < y1
    assert plan[-1][0] == 1


def test_regions_hand_over_each_tile_once_and_stop_between_tiles(builtin_model: LoadedModel, fp32: Backend,
                                                                 crops: list[np.ndarray]) -> None:
    x = crops[1]
    full = _reference(builtin_model, x)
    counting = _Wrapped(fp32)
    up = TiledUpscaler(counting, tile_size=128)  # several tiles on a small crop
    boxes = [(8, 12, 128, 70), (40, 80, 110, 146)]
    centre = (70.0, 75.0)
    events: list[TileProgress] = []
    snapshots: list[np.ndarray] = []
    for e in up.iter_regions(x, boxes, centre=centre):
        events.append(e)
        snapshots.append(e.output.copy())  # final when handed over: later tiles must not change it
    plan = up.plan_regions(*x.shape[:2], boxes, centre=centre)
    assert len(events) == len(plan) >= 4 and [e.done for e in events] == list(range(1, len(plan) + 1))
    assert len(counting.calls) == len(plan)
    outs = up.upscale_regions(x, boxes, centre=centre)  # the same job, run again and assembled
    # The tiles, as handed over, assemble to exactly the one-shot boxes, each pixel once.
    for (bx0, by0, bx1, by1), out in zip(boxes, outs):
        assert out.shape == (4 * (by1 - by0), 4 * (bx1 - bx0), 3)
        built = np.full(out.shape, np.nan, np.float32)
        count = np.zeros(out.shape[:2], int)
        for e, pixels in zip(events, snapshots):
            x0, y0, x1, y1 = e.core  # type: ignore[misc]
            if bx0 <= x0 and x1 <= bx1 and by0 <= y0 and y1 <= by1:
                sl = np.s_[4 * (y0 - by0):4 * (y1 - by0), 4 * (x0 - bx0):4 * (x1 - bx0)]
                built[sl] = pixels
                count[sl] += 1
        assert (count == 1).all()
        np.testing.assert_array_equal(built, out)
        assert _max_level_diff(out, full[4 * by0:4 * by1, 4 * bx0:4 * bx1]) <= 1.0
    # A box that fits one window, unsplit, is exactly upscale_region's one-shot result.
    one = TiledUpscaler(fp32).upscale_regions(x, [(61, 47, 83, 70)], split=False)
    np.testing.assert_array_equal(one[0], TiledUpscaler(fp32).upscale_region(x, (61, 47, 83, 70)))

    # Cancelled at the first finished tile: at most the tiles already running finish, then it stops.
    counting.calls.clear()
    token = CancelToken()
    seen = []
    with pytest.raises(Cancelled):
        for e in up.iter_regions(x, boxes, token, centre=centre):
            seen.append(e)
            token.cancel()
    assert len(seen) == 1
    assert len(counting.calls) <= max(1, up.workers) < len(plan)
    up.close()


def test_regions_of_an_image_smaller_than_the_model_minimum(fp32: Backend, small: np.ndarray) -> None:
    x = small[:9, :30]
    up = TiledUpscaler(fp32)
    outs = up.upscale_regions(x, [(2, 1, 20, 8), (25, 0, 30, 9)])
    y = up.upscale(x)
    np.testing.assert_array_equal(outs[0], y[4:32, 8:80])
    np.testing.assert_array_equal(outs[1], y[0:36, 100:120])
    grey = np.ascontiguousarray(x.mean(axis=2))  # one channel in, one channel out
    outs = up.upscale_regions(grey, [(2, 1, 20, 8)])
    np.testing.assert_array_equal(outs[0], up.upscale(grey)[4:32, 8:80])


# ------------------------------------------------------------------------- progress, cancel, OOM


def test_progress_and_cancellation_between_tiles(fp32: Backend, small: np.ndarray) -> None:
    counting = _Wrapped(fp32)
    up = TiledUpscaler(counting, tile_size=48, overlap=8)  # many cheap tiles; parity is not the point here
    total = len(up.plan(*small.shape[:2]))
    assert total >= 6
    events: list[TileProgress] = []
    snapshots: list[np.ndarray] = []
    up.upscale(small, progress=lambda e: (events.append(e), snapshots.append(e.output.copy())))
    assert [e.done for e in events] == list(range(1, total + 1))
    assert all(e.total == total and e.phase == "rgb" for e in events)
    assert events[-1].eta_s == 0.0 and events[-1].megapixels_per_s > 0
    # Each event carries its finished core and those upscaled pixels, already final (a GUI paints them).
    result = up.upscale(small)
    covered = np.zeros(result.shape[:2], int)
    for e, pixels in zip(events, snapshots):
        x0, y0, x1, y1 = e.core
        np.testing.assert_array_equal(pixels, result[4 * y0:4 * y1, 4 * x0:4 * x1])
        covered[4 * y0:4 * y1, 4 * x0:4 * x1] += 1
    assert (covered == 1).all()

    counting.calls.clear()
    token = CancelToken()
    seen: list[TileProgress] = []

    def cancel_after_first(event: TileProgress) -> None:
        seen.append(event)
        token.cancel()

    with pytest.raises(Cancelled):
        up.upscale(small, cancel=token, progress=cancel_after_first)
    assert len(seen) == 1
    # At most the tiles already running on the other workers finish; nothing new starts.
    assert len(counting.calls) <= up.workers < total
    counting.calls.clear()
    with pytest.raises(Cancelled):  # a token cancelled beforehand runs nothing
        up.upscale(small, cancel=token)
    assert counting.calls == []
    up.close()


def test_out_of_memory_retries_with_smaller_tiles(builtin_model: LoadedModel, fp32: Backend,
                                                  crops: list[np.ndarray]) -> None:
    x = np.ascontiguousarray(crops[0][:120, :130])
    failing = _OutOfMemoryAbove(fp32, limit=120)
    up = TiledUpscaler(failing)  # the crop would run whole; every window over 120 px fails
    events: list[TileProgress] = []
    y = up.upscale(x, progress=events.append)
    assert failing.failures == 1  # the whole image, once; its replacement tiles fit
    assert len(failing.calls) > 1 and all(max(c) <= 120 for c in failing.calls)
    assert "out of memory" in " ".join(e.message for e in events)
    assert events[-1].tile_size <= 120
    assert _max_level_diff(y, TiledUpscaler(fp32).upscale(x)) <= 1.0
    assert _max_level_diff(y, _reference(builtin_model, x)) <= 1.0
    # The next image starts directly at the smaller size.
    up.upscale(x)
    assert failing.failures == 1


def test_out_of_memory_below_the_floor_is_raised(fp32: Backend, small: np.ndarray) -> None:
    up = TiledUpscaler(_OutOfMemoryAbove(fp32, limit=20), overlap=8)
    with pytest.raises(torch.OutOfMemoryError):
        up.upscale(small)


def test_non_memory_errors_propagate(fp32: Backend, small: np.ndarray) -> None:
    class Broken(_Wrapped):
        def run(self, x: np.ndarray, grid: Any = None) -> np.ndarray:
            raise RuntimeError("driver crashed")

    with pytest.raises(RuntimeError, match="driver crashed"):
        TiledUpscaler(Broken(fp32), tile_size=48, overlap=8).upscale(small)


# ---------------------------------------------------------------------------------------- backends


def test_onnx_backend_matches_torch_fp32(builtin_model: LoadedModel, fp32: Backend, small: np.ndarray) -> None:
    ort_backend = create_backend(builtin_model, backend="onnx", device="cpu", precision="fp32")
    assert ort_backend.name == "onnxruntime" and ort_backend.provider == "CPUExecutionProvider"
    assert ort_backend.grid_aware and ort_backend.scale == 4 and ort_backend.fallback_reason is None
    x = np.ascontiguousarray(small[:40, :52].transpose(2, 0, 1)[None])
    a, b = ort_backend.run(x), fp32.run(x)
    assert a.shape == b.shape == (1, 3, 160, 208)
    assert float(np.abs(a - b).max()) < 1e-4
    # Tiled through the upscaler too (the ESA grid matrices are fed to the session).
    y_ort = TiledUpscaler(ort_backend, tile_size=48, overlap=8).upscale(small)
    y_torch = TiledUpscaler(fp32, tile_size=48, overlap=8).upscale(small)
    assert float(np.abs(y_ort - y_torch).max()) < 1e-4


def test_thread_spinning_is_onnxruntimes_default_and_can_be_turned_off(builtin_model: LoadedModel,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from dipnet_core.engine import set_thread_spinning
    from dipnet_core.engine.backends import onnxruntime_backend

    key = "session.intra_op.allow_spinning"
    backend = create_backend(builtin_model, backend="onnx", device="cpu", precision="fp32")
    monkeypatch.setattr(onnxruntime_backend, "_spinning", True)  # restored after the test
    with pytest.raises(RuntimeError):  # not set: onnxruntime's default, spinning
        backend._options(2).get_session_config_entry(key)
    set_thread_spinning(False)  # what the app does at start
    assert backend._options(2).get_session_config_entry(key) == "0"
    with pytest.raises(RuntimeError):  # a single-threaded session has nothing to spin
        backend._options(1).get_session_config_entry(key)
    # A session built while spinning is off still computes the same image.
    x = np.random.default_rng(1).random((1, 3, 24, 20), dtype=np.float32)
    quiet = create_backend(builtin_model, backend="onnx", device="cpu", precision="fp32", tile_workers=False)
    assert float(np.abs(quiet.run(x) - backend.run(x)).max()) < 1e-5


# CPU flags of the two x86 kinds the project runs on (only the flags the choice reads matter).
AVX2_ONLY_FLAGS = frozenset({"sse4_2", "avx", "avx2", "fma"})
AVX512_BF16_FLAGS = AVX2_ONLY_FLAGS | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}


@pytest.fixture
def fake_cpu(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """``fake_cpu(flags, onnxruntime=True)``: pretend to be a CPU with ``flags`` and no CUDA.

    Fakes what the backend choice reads: ``/proc/cpuinfo`` flags (``hardware.cpu_flags``),
    torch's CUDA check and the onnxruntime providers (``[]`` when onnxruntime is not installed).
    The backends that are then built are real and run the real model.
    """
    from dipnet_core.engine import hardware
    from dipnet_core.engine.backends import factory, onnxruntime_backend

    def fake(flags: frozenset[str], onnxruntime: bool = True) -> None:
        providers = ["CPUExecutionProvider"] if onnxruntime else []
        monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
        monkeypatch.setattr(factory, "_torch_cuda_available", lambda: False)
        monkeypatch.setattr(factory, "ort_providers", lambda: providers)
        monkeypatch.setattr(onnxruntime_backend, "ort_providers", lambda: providers)

    return fake


@pytest.mark.parametrize("onnxruntime", [True, False], ids=["with-onnxruntime", "without-onnxruntime"])
def test_auto_on_avx512_bf16_cpu_is_torch_bf16_fused(builtin_model: LoadedModel, fake_cpu: Callable[..., None],
                                                     small: np.ndarray, onnxruntime: bool) -> None:
    fake_cpu(AVX512_BF16_FLAGS, onnxruntime=onnxruntime)
    backend = create_backend(builtin_model)
    assert (backend.name, backend.device, backend.precision) == ("torch", "cpu", "bf16")
    assert backend.describe().startswith("torch CPU bf16 (channels_last")  # fused where oneDNN has bf16 kernels
    assert TiledUpscaler(backend).upscale(small[:24, :20]).shape == (96, 80, 3)


def test_auto_on_avx2_cpu_without_bf16_is_onnxruntime_fp32(builtin_model: LoadedModel,
                                                           fake_cpu: Callable[..., None], small: np.ndarray) -> None:
    fake_cpu(AVX2_ONLY_FLAGS, onnxruntime=True)
    backend = create_backend(builtin_model)
    assert (backend.name, backend.device, backend.precision) == ("onnxruntime", "cpu", "fp32")
    assert backend.provider == "CPUExecutionProvider"
    assert backend.describe().startswith("onnxruntime CPU fp32")
    assert TiledUpscaler(backend).upscale(small[:24, :20]).shape == (96, 80, 3)


def test_auto_on_avx2_cpu_without_onnxruntime_is_torch_fp32(builtin_model: LoadedModel,
                                                            fake_cpu: Callable[..., None]) -> None:
    fake_cpu(AVX2_ONLY_FLAGS, onnxruntime=False)
    backend = create_backend(builtin_model)
    assert (backend.name, backend.device, backend.precision) == ("torch", "cpu", "fp32")
    assert backend.describe().startswith("torch CPU fp32 (channels_last")


@pytest.mark.parametrize("flags,precisions", [(AVX2_ONLY_FLAGS, ["fp32"]), (AVX512_BF16_FLAGS, ["fp32", "bf16"])],
                         ids=["avx2", "avx512-bf16"])
def test_available_backends_follow_the_cpu(fake_cpu: Callable[..., None], flags: frozenset[str],
                                           precisions: list[str]) -> None:
    fake_cpu(flags)
    rows = available_backends()
    torch_cpu = next(r for r in rows if r["backend"] == "torch" and r["device"] == "cpu")
    assert torch_cpu["available"] and torch_cpu["precisions"] == precisions
    assert torch_cpu["default_precision"] == precisions[-1]
    assert {"torch", "onnx"} <= {r["backend"] for r in rows}


def test_backend_argument_errors(builtin_model: LoadedModel, fake_cpu: Callable[..., None]) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        create_backend(builtin_model, backend="tensorflow")
    fake_cpu(AVX2_ONLY_FLAGS)
    with pytest.raises(BackendUnavailable):
        create_backend(builtin_model, backend="torch", device="cuda")


def test_onnx_file_runs_on_onnxruntime_only(builtin_model: LoadedModel) -> None:
    onnx_model = LoadedModel(descriptor=dataclasses.replace(builtin_model.descriptor, arch="onnx"), module=None,
                             path=None)
    with pytest.raises(BackendUnavailable):
        create_backend(onnx_model, backend="torch")


def test_bf16_stays_close_to_fp32(builtin_model: LoadedModel, fp32: Backend, small: np.ndarray) -> None:
    bf16 = create_backend(builtin_model, backend="torch", device="cpu", precision="bf16")
    x = small
    a = TiledUpscaler(bf16).upscale(x)
    b = TiledUpscaler(fp32).upscale(x)
    assert float(np.abs(a - b).mean()) < 1.0 / 255.0


def test_worker_threads_leave_the_callers_thread_count(builtin_model: LoadedModel, small: np.ndarray) -> None:
    backend = create_backend(builtin_model, backend="torch", device="cpu", precision="fp32")
    with TiledUpscaler(backend, tile_size=48, overlap=8, workers=2) as up:
        up.upscale(small)
        assert torch.get_num_threads() == backend.threads  # type: ignore[attr-defined]


def test_auto_tile_size_and_overlap_table(fp32: Backend) -> None:
    assert auto_tile_size(fp32, 100, 100) == 100  # small images run whole
    tile = auto_tile_size(fp32, 3000, 4000)
    assert 128 <= tile <= 1024 and tile % 16 == 0
    assert default_overlap(128) >= default_overlap(192) >= default_overlap(256) >= default_overlap(384)
    assert default_overlap(384) == DEFAULT_OVERLAP
    assert TiledUpscaler(fp32, overlap=5).overlap_for(300) == 5


def test_grid_geometry_helpers() -> None:
    assert coarse_size(15) == 1 and GRID_ALIGN == 6
    # A tile that starts on the grid and ends at the image edge has exactly the whole image's last cells.
    for full in (90, 97, 300):
        for start in (0, 6, 42):
            assert coarse_size(full) == start // 6 + coarse_size(full - start)


# ---------------------------------------------------------------------------- images and small inputs


def _image_data(**kwargs: Any) -> Any:
    from dipnet_core.io import ImageData

    return ImageData(**kwargs)


def test_gray_and_alpha_images(builtin_model: LoadedModel, fp32: Backend, small: np.ndarray) -> None:
    x = small[:48, :56]
    gray = x.mean(axis=2, keepdims=True)
    alpha = np.zeros(x.shape[:2], np.float32)
    alpha[:, 20:] = 1.0  # a sharp vertical cut-out edge
    up = TiledUpscaler(fp32)
    img = _image_data(pixels=gray, alpha=alpha, bit_depth=16, exif=b"Exif\0\0test", icc_profile=b"icc",
                      format="PNG")
    phases: list[str] = []
    out = upscale_image(img, up, progress=lambda e: phases.append(e.phase))
    assert out.pixels.shape == (192, 224, 1) and out.alpha.shape == (192, 224)
    assert (out.bit_depth, out.exif, out.icc_profile, out.format) == (16, b"Exif\0\0test", b"icc", "PNG")
    assert phases == ["rgb", "alpha"]
    # Grey: the model sees the plane replicated to RGB; the channel mean (then clipped) comes back.
    expect_gray = np.clip(_reference(builtin_model, np.repeat(gray, 3, axis=2), clip=False).mean(axis=2), 0, 1)
    assert float(np.abs(out.pixels[..., 0] - expect_gray).max()) < 1e-4
    # Alpha goes through the model too, not a bilinear resize.
    replicated = np.repeat(alpha[..., None], 3, axis=2)
    model_alpha = np.clip(_reference(builtin_model, replicated, clip=False).mean(axis=2), 0, 1)
    assert float(np.abs(out.alpha - model_alpha).max()) < 1e-4
    bilinear = np.asarray(Image.fromarray(alpha).resize((224, 192), Image.Resampling.BILINEAR))
    assert float(np.abs(out.alpha - bilinear).max()) > 0.05
    assert out.alpha.min() >= 0.0 and out.alpha.max() <= 1.0


@pytest.mark.parametrize("h,w", [(1, 1), (7, 10), (14, 40), (40, 9)])
def test_inputs_smaller_than_the_model_minimum(fp32: Backend, small: np.ndarray, h: int, w: int) -> None:
    x = small[:h, :w]
    up = TiledUpscaler(fp32)
    y = up.upscale(x)
    assert y.shape == (4 * h, 4 * w, 3)
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    region = up.upscale_region(x, (0, 0, w, h))
    np.testing.assert_array_equal(region, y)


def test_rejects_bad_pixels(fp32: Backend) -> None:
    up = TiledUpscaler(fp32)
    with pytest.raises(TypeError):
        up.upscale(np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(ValueError):
        up.upscale(np.zeros((20, 20, 4), np.float32))
    with pytest.raises(ValueError):
        TiledUpscaler(fp32, tile_size=0)
    with pytest.raises(ValueError):
        TiledUpscaler(fp32, overlap=-1)
    tiny = TiledUpscaler(fp32, tile_size=16)  # raised to the smallest tile with room for a core
    assert tiny.tile_size == tiny.min_tile >= 2 * tiny.overlap_for(tiny.min_tile)


@pytest.mark.parametrize("block", [8, 16])
def test_torch_can_pad_ragged_widths_without_changing_the_output(builtin_model: LoadedModel, small: np.ndarray,
                                                                block: int) -> None:
    from dipnet_core.engine.backends.torch_backend import TorchBackend
    from dipnet_core.prune import prune_dipnet

    # The built-in model pruned to ragged widths (44 features like the official network, 30/26 mids).
    assert builtin_model.module is not None
    cfg = builtin_model.module.config
    ragged = dataclasses.replace(cfg, feat=44, blocks=tuple(dataclasses.replace(b, mid1=30, mid2=26)
                                                            for b in cfg.blocks))
    odd = LoadedModel(descriptor=builtin_model.descriptor, module=prune_dipnet(builtin_model.module, ragged))
    padded = TorchBackend(odd, "cpu", "fp32", threads=1, pad_channels=block)
    plain = TorchBackend(odd, "cpu", "fp32", threads=1)  # the default: measured slower padded on AVX2
    assert (padded.padded_to, plain.padded_to) == (block, 0)
    assert "padded to multiples of" in padded.describe() and "padded" not in plain.describe()
    assert odd.module.config.feat == 44  # the caller's module is untouched
    x = small[:40, :48]
    np.testing.assert_allclose(TiledUpscaler(padded).upscale(x), TiledUpscaler(plain).upscale(x), rtol=0, atol=1e-5)
    # Widths that already fit are left alone.
    assert TorchBackend(builtin_model, "cpu", "fp32", threads=1, pad_channels=16).padded_to == 0
