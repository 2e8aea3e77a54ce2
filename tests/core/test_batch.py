"""The batch job with the real shipped built-in model over a small folder tree with good and bad files."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from dipnet_core.batch import (
    REPORT_NAME,
    BatchFinished,
    BatchItem,
    BatchReport,
    ItemDone,
    ItemProgress,
    ItemSkipped,
    ItemStarted,
    ReportError,
    check_name_template,
    plan_batch,
    run_batch,
)
from dipnet_core.cancel import CancelToken
from dipnet_core.engine import TiledUpscaler, create_backend

GOOD = ("a.png", "sub/b.jpg", "sub/deeper/c.png")
BAD = ("sub/truncated.png", "empty.jpg", "notes.png")


@pytest.fixture(scope="module")
def upscaler(builtin_model) -> Iterator[TiledUpscaler]:
    with TiledUpscaler(create_backend(builtin_model, backend="torch", device="cpu")) as up:
        yield up


@pytest.fixture
def tree(tmp_path: Path, small_rgb_image: Callable[..., Path]) -> Path:
    """in/ with 3 good images (two levels deep), 3 bad image-named files and a text file."""
    root = tmp_path / "in"
    for i, rel in enumerate(GOOD):
        small_rgb_image(rel, size=(40 + 4 * i, 32), offset=(150 + 40 * i, 200), folder=root)
    good_png = (root / "a.png").read_bytes()
    (root / "sub" / "truncated.png").write_bytes(good_png[: len(good_png) // 2])
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.png").write_text("these are not pixels\n")
    (root / "readme.txt").write_text("ignored: not an image name\n")
    return root


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _run(items: list[BatchItem], upscaler: TiledUpscaler, **kw) -> tuple[BatchReport, list[object]]:
    events: list[object] = []
    report = run_batch(items, upscaler, on_event=events.append, **kw)
    return report, events


def test_plan_mirrors_tree_and_ignores_non_images(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    flat = plan_batch([tree], out, recursive=False)
    assert sorted(it.input.relative_to(tree).as_posix() for it in flat) == ["a.png", "empty.jpg", "notes.png"]
    items = plan_batch([tree], out, recursive=True, name_template="{stem}_{ext}_x{scale}_{model}", model="m")
    rel = {it.input.relative_to(tree).as_posix(): it.output.relative_to(out).as_posix() for it in items}
    assert rel == {
        "a.png": "a_png_x4_m.png", "empty.jpg": "empty_jpg_x4_m.jpg", "notes.png": "notes_png_x4_m.png",
        "sub/b.jpg": "sub/b_jpg_x4_m.jpg", "sub/truncated.png": "sub/truncated_png_x4_m.png",
        "sub/deeper/c.png": "sub/deeper/c_png_x4_m.png",
    }
    assert all(it.error is None for it in items)
    by_name = {it.input.name: it for it in items}
    assert by_name["a.png"].pixels == 40 * 32
    assert plan_batch([tree], out, recursive=True, format="webp")[0].output.suffix == ".webp"


def test_run_continues_past_bad_files(tree: Path, tmp_path: Path, upscaler: TiledUpscaler) -> None:
    out = tmp_path / "out"
    before = _digest(tree)
    items = plan_batch([tree], out, recursive=True)
    report, events = _run(items, upscaler)

    assert sorted(e.input.relative_to(tree).as_posix() for e in report.done) == sorted(GOOD)
    assert sorted(e.input.relative_to(tree).as_posix() for e in report.failed) == sorted(BAD)
    for entry in report.failed:
        assert entry.input.name in entry.reason  # every failure names its file
    assert report.cancelled is False and report.ok is False
    # Outputs exist at 4x for the good files only, mirrored, with no temp or partial files anywhere.
    assert _files(out) == {"a_x4.png", "sub/b_x4.jpg", "sub/deeper/c_x4.png"}
    with Image.open(out / "sub" / "deeper" / "c_x4.png") as im:
        assert im.size == (48 * 4, 32 * 4)
    assert _digest(tree) == before  # inputs untouched

    kinds = [type(e).__name__ for e in events]
    assert kinds.count("ItemStarted") == 6 and kinds.count("ItemDone") == 3 and kinds.count("ItemFailed") == 3
    assert isinstance(events[-1], BatchFinished) and events[-1].report is report
    progress = [e for e in events if isinstance(e, ItemProgress)]
    assert progress and all(0.0 <= e.progress.fraction <= 1.0 for e in progress)
    done_events = [e for e in events if isinstance(e, ItemDone)]
    assert done_events[-1].progress.eta_s is not None

    # Report round trip (atomic JSON) and the failure list used by --retry-failed.
    path = report.save(out / REPORT_NAME)
    loaded = BatchReport.load(path)
    assert [e.input for e in loaded.failed] == [e.input for e in report.failed]
    assert [e.output for e in loaded.done] == [e.output for e in report.done]
    assert sorted(e.input.name for e in BatchReport.load(path).failed) == sorted(Path(b).name for b in BAD)


def test_skip_existing_and_retry_failed(tree: Path, tmp_path: Path, upscaler: TiledUpscaler,
                                        small_rgb_image: Callable[..., Path]) -> None:
    out = tmp_path / "out"
    first, _ = _run(plan_batch([tree], out, recursive=True), upscaler)

    items = plan_batch([tree], out, recursive=True, skip_existing=True)
    report, events = _run(items, upscaler)
    assert len(report.skipped) == 3 and len(report.done) == 0 and len(report.failed) == 3
    started = {e.path.name for e in events if isinstance(e, ItemStarted)}
    assert started == {Path(b).name for b in BAD}
    assert all("exists" in e.reason for e in events if isinstance(e, ItemSkipped))

    # Repair one bad file, then retry only the failures of the first run.
    small_rgb_image("sub/truncated.png", folder=tree)
    report_path = first.save(tmp_path / "report.json")
    retry_items = BatchReport.load(report_path).failed_items()
    retry, events = _run(retry_items, upscaler)
    assert {e.path.name for e in events if isinstance(e, ItemStarted)} == {Path(b).name for b in BAD}
    assert [e.input.name for e in retry.done] == ["truncated.png"]
    assert (out / "sub" / "truncated_x4.png").is_file()
    merged = first.merged_retry(retry)
    assert len(merged.done) == 4 and sorted(e.input.name for e in merged.failed) == ["empty.jpg", "notes.png"]


def test_outputs_never_overwrite_inputs(tree: Path, upscaler: TiledUpscaler) -> None:
    before = _digest(tree)
    items = plan_batch([tree], tree, recursive=False, name_template="{stem}")
    assert all(it.error and "overwrite an input" in it.error for it in items)
    report, _ = _run(items, upscaler)
    assert len(report.failed) == 3 and not report.done
    assert _digest(tree) == before


def test_output_folder_inside_input_is_not_rescanned(tree: Path, upscaler: TiledUpscaler) -> None:
    out = tree / "upscaled"
    _run(plan_batch([tree / "a.png"], out), upscaler)
    assert (out / "a_x4.png").is_file()
    again = plan_batch([tree], out, recursive=True)
    assert not any(out in it.input.parents for it in again)


def test_colliding_outputs_are_reported(tmp_path: Path, small_rgb_image: Callable[..., Path]) -> None:
    small_rgb_image("photo.png", folder=tmp_path / "in")
    small_rgb_image("photo.jpg", folder=tmp_path / "in")
    items = plan_batch([tmp_path / "in"], tmp_path / "out", format="png")
    assert items[0].error is None
    assert items[1].error is not None and "{ext}" in items[1].error


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown field"):
        check_name_template("{stem}_{width}")
    with pytest.raises(ValueError, match="invalid file name"):
        check_name_template("{stem}/x")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        plan_batch([tmp_path / "missing_dir"], tmp_path / "out")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match="bad.json"):
        BatchReport.load(tmp_path / "bad.json")


def test_cancel_between_files(tree: Path, tmp_path: Path, upscaler: TiledUpscaler) -> None:
    out = tmp_path / "out"
    token = CancelToken()
    good = {Path(g).name for g in GOOD}
    items = [it for it in plan_batch([tree], out, recursive=True) if it.input.name in good]

    def on_event(event: object) -> None:
        if isinstance(event, ItemDone):
            token.cancel()

    report = run_batch(items, upscaler, cancel=token, on_event=on_event)
    assert report.cancelled and len(report.done) == 1 and not report.failed
    assert _files(out) == {report.done[0].output.relative_to(out).as_posix()}


def test_cancel_mid_image_leaves_no_file(tree: Path, tmp_path: Path, upscaler: TiledUpscaler) -> None:
    token = CancelToken()
    items = plan_batch([tree / "a.png"], tmp_path / "out")

    def on_event(event: object) -> None:
        if isinstance(event, ItemProgress):
            token.cancel()

    report = run_batch(items, upscaler, cancel=token, on_event=on_event)
    assert report.cancelled and not report.done
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == set()


class _WatchedPause(threading.Event):
    """A pause flag that records the batch thread looking at it (how the test knows it is waiting)."""

    def __init__(self) -> None:
        super().__init__()
        self.polls_while_set = 0
        self.polled = threading.Event()

    def is_set(self) -> bool:
        value = super().is_set()
        if value and threading.current_thread() is not threading.main_thread():
            self.polls_while_set += 1
            if self.polls_while_set >= 3:  # seen paused on several checks: it is inside the wait
                self.polled.set()
        return value


def test_pause_holds_between_files(tree: Path, tmp_path: Path, upscaler: TiledUpscaler) -> None:
    pause = _WatchedPause()
    pause.set()
    started = threading.Event()
    items = plan_batch([tree / "a.png"], tmp_path / "out")
    result: list[BatchReport] = []

    def on_event(event: object) -> None:
        if isinstance(event, ItemStarted):
            started.set()

    worker = threading.Thread(target=lambda: result.append(run_batch(items, upscaler, pause=pause,
                                                                    on_event=on_event)))
    worker.start()
    assert pause.polled.wait(30), "the batch never checked its pause flag"
    assert not started.is_set() and worker.is_alive()  # paused before the first file
    pause.clear()
    worker.join(timeout=30)
    assert result and len(result[0].done) == 1 and started.is_set()


def test_upscaler_factory_not_called_when_everything_is_skipped(tree: Path, tmp_path: Path) -> None:
    items = [BatchItem(0, tree / "a.png", tmp_path / "x.png", skip_reason="output exists")]

    def factory() -> TiledUpscaler:
        raise AssertionError("no backend should be built for an all-skipped batch")

    report = run_batch(items, factory)
    assert len(report.skipped) == 1 and report.ok
