"""Hostile inputs (issue 13): each case reproduced, and the exact message users see.

The CLI cases run the shipped built-in model on tiny images, so they need no ``../shared``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.batch import REPORT_NAME, BatchReport, image_pixels, plan_batch
from dipnet_core.cli import main
from dipnet_core.errors import describe_os_error
from dipnet_core.io import ImageReadError, read_image
from dipnet_core.io.atomic import atomic_output, remove_stale_temp_files
from dipnet_core.io.formats import DECODER_FORMATS
from dipnet_core.resources import builtin_model_path

needs_builtin = pytest.mark.skipif(builtin_model_path() is None, reason="this build has no built-in model")
ENGINE = ("--backend", "torch", "--device", "cpu")


def _png(path: Path, size: tuple[int, int] = (16, 12), color: tuple[int, int, int] = (200, 40, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "[Errno" not in err
    return rc, out, err


def _without_hanging(fn: Callable[[], object], fifo: Path) -> object:
    """Run ``fn`` in a thread; if it blocks on the FIFO, unblock it by writing, and fail."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below on the test thread
            result["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(120)
    if worker.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a reader is waiting: this releases it
        os.close(fd)
        worker.join(30)
        pytest.fail(f"opening {fifo} blocked: a FIFO was opened instead of refused by its file type")
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


def _report(folder: Path) -> dict:
    return json.loads((folder / REPORT_NAME).read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------- 1: FIFO


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_is_planned_without_opening_and_fails_by_name(tmp_path: Path) -> None:
    src = tmp_path / "in"
    _png(src / "a.png")
    fifo = src / "x.png"
    os.mkfifo(fifo)
    assert _without_hanging(lambda: image_pixels(fifo), fifo) == 0
    items = _without_hanging(lambda: plan_batch([src], tmp_path / "out"), fifo)
    by_name = {it.input.name: it for it in items}  # type: ignore[union-attr]
    assert by_name["a.png"].error is None
    assert by_name["x.png"].error == f"{fifo}: is a FIFO (named pipe), not a regular file; it was not opened"
    with pytest.raises(ImageReadError, match=r"x\.png': is a FIFO \(named pipe\), not a regular file"):
        _without_hanging(lambda: read_image(fifo), fifo)


@needs_builtin
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_in_cli_batch_and_upscale(capsys, tmp_path: Path) -> None:
    src = tmp_path / "in"
    _png(src / "a.png")
    fifo = src / "x.png"
    os.mkfifo(fifo)
    rc, _, err = _without_hanging(lambda: _run(capsys, "batch", src, "-o", tmp_path / "out", *ENGINE), fifo)
    assert rc == 1
    assert f"failed: {fifo}: is a FIFO (named pipe), not a regular file; it was not opened" in err
    assert (tmp_path / "out" / "a_x4.png").is_file()
    assert [Path(e["input"]).name for e in _report(tmp_path / "out")["failed"]] == ["x.png"]

    rc, _, err = _without_hanging(lambda: _run(capsys, "upscale", fifo, *ENGINE), fifo)
    assert rc == 1 and f"error: {fifo}: is a FIFO (named pipe), not a regular file; it was not opened" in err


# ---------------------------------------------------------------------------------------------- 2: symlink loop


@needs_builtin
def test_symlink_loop_is_one_failed_item(capsys, tmp_path: Path) -> None:
    src = tmp_path / "in"
    _png(src / "a.png")
    loop = src / "loop.png"
    os.symlink("loop.png", loop)
    dangling = src / "gone.png"
    os.symlink("nowhere.png", dangling)
    rc, _, err = _run(capsys, "batch", src, "-o", tmp_path / "out", *ENGINE)
    assert rc == 1
    assert f"failed: {loop}: is a symlink loop (the link leads back to itself), not an image file" in err
    assert f"failed: {dangling}: is a broken symlink (its target 'nowhere.png' does not exist)" in err
    assert (tmp_path / "out" / "a_x4.png").is_file()  # the batch went on
    assert sorted(Path(e["input"]).name for e in _report(tmp_path / "out")["failed"]) == ["gone.png", "loop.png"]

    rc, _, err = _run(capsys, "upscale", loop, *ENGINE)
    assert rc == 1
    assert f"error: {loop}: is a symlink loop (the link leads back to itself), not an image file" in err


# ---------------------------------------------------------------------------------------------- 3: decoders


def test_postscript_named_png_never_reaches_the_eps_plugin(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import EpsImagePlugin

    opened: list[str] = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open",
                        lambda self: opened.append("EPS plugin ran"))  # would lead to Ghostscript
    ps = tmp_path / "ps.png"
    ps.write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n")
    with pytest.raises(ImageReadError) as info:
        read_image(ps)
    assert str(info.value) == f"cannot read '{ps}': content is a PostScript document, which this program cannot decode"
    assert image_pixels(ps) == 0
    assert opened == []
    assert "EPS" not in DECODER_FORMATS and {"PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"} <= set(DECODER_FORMATS)


def test_an_unsupported_format_is_not_decoded_even_with_its_own_extension(tmp_path: Path) -> None:
    pcx = tmp_path / "old.pcx"
    Image.new("RGB", (8, 8)).save(pcx)  # Pillow reads PCX, the app does not offer it
    with pytest.raises(ImageReadError, match="is not an image|cannot decode"):
        read_image(pcx)


# ---------------------------------------------------------------------------------------------- 6: own outputs


def test_rerun_into_the_input_folder_does_not_take_its_outputs_as_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    _png(folder / "a.png")
    _png(folder / "a_x4.png", size=(64, 48))  # the output of the first run
    _png(folder / "b.png")
    items = plan_batch([folder], folder)
    by_name = {it.input.name: it for it in items}
    assert by_name["a_x4.png"].skip_reason == "is an output of this batch's name template (from a.png), not an input"
    assert by_name["a.png"].error is None and by_name["a.png"].output == folder / "a_x4.png"
    assert by_name["b.png"].error is None and by_name["b.png"].skip_reason is None
    # Another template does not claim a_x4.png: then it is an input like any other.
    other = {it.input.name: it for it in plan_batch([folder], folder, name_template="{stem}_big")}
    assert other["a_x4.png"].skip_reason is None and other["a_x4.png"].output == folder / "a_x4_big.png"


@needs_builtin
def test_rerun_into_the_input_folder_via_cli(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "pics"
    _png(folder / "a.png")
    assert _run(capsys, "batch", folder, "-o", folder, *ENGINE)[0] == 0
    first = (folder / "a_x4.png").stat().st_mtime_ns
    rc, _, err = _run(capsys, "batch", folder, "-o", folder, *ENGINE)
    assert rc == 0
    assert "1 of them are earlier outputs of this batch's name template, not inputs: skipped" in err
    assert not (folder / "a_x4_x4.png").exists()
    assert (folder / "a_x4.png").stat().st_mtime_ns >= first
    report = _report(folder)
    assert [Path(e["input"]).name for e in report["done"]] == ["a.png"] and report["failed"] == []
    assert [e["reason"] for e in report["skipped"]] == [
        "is an output of this batch's name template (from a.png), not an input"]


# ---------------------------------------------------------------------------------------------- 7: stale temps


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_file_left_by_kill_9_is_removed_by_the_next_run(tmp_path: Path) -> None:
    code = ("import sys, time\nfrom dipnet_core.io.atomic import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half an image')\n    print(tmp, flush=True)\n    time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "img_x4.png")], stdout=subprocess.PIPE,
                              text=True, env=env)
    assert writer.stdout is not None
    tmp = Path(writer.stdout.readline().strip())
    assert tmp.is_file()
    assert remove_stale_temp_files(tmp_path) == []  # its writer is alive: not stale
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    assert tmp.is_file() and not (tmp_path / "img_x4.png").exists()  # what kill -9 leaves
    assert remove_stale_temp_files(tmp_path) == [tmp]
    assert not tmp.exists()


def test_only_our_own_stale_temp_files_are_removed(tmp_path: Path) -> None:
    dead, alive = _dead_pid(), os.getppid()
    stale = tmp_path / f".a_x4.png.dipnet-{dead}-k2j4_9x.tmp.png"
    live = tmp_path / f".b_x4.png.dipnet-{alive}-k2j4_9x.tmp.png"
    foreign = [tmp_path / ".a_x4.png.ndjhmdug.tmp.png", tmp_path / f".notes.dipnet-{dead}.txt",
               tmp_path / f"a.dipnet-{dead}-x.tmp.png"]
    for p in (stale, live, *foreign):
        p.write_bytes(b"x")
    os.mkdir(tmp_path / f".c.png.dipnet-{dead}-abc.tmp.png")  # a folder: never touched
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and all(p.exists() for p in foreign)


def test_temp_names_carry_the_writer_pid(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "out.png") as tmp:
        assert tmp.name.startswith(f".out.png.dipnet-{os.getpid()}-") and tmp.name.endswith(".tmp.png")
        tmp.write_bytes(b"data")
    assert (tmp_path / "out.png").read_bytes() == b"data"


@needs_builtin
def test_batch_removes_stale_temp_files_in_its_output_folder(capsys, tmp_path: Path) -> None:
    _png(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".a_x4.png.dipnet-{_dead_pid()}-zz11.tmp.png"
    stale.write_bytes(b"half")
    assert _run(capsys, "batch", tmp_path / "in", "-o", out, *ENGINE)[0] == 0
    assert not stale.exists() and (out / "a_x4.png").is_file()


# ---------------------------------------------------------------------------------------------- 8: output errors


@needs_builtin
def test_report_that_cannot_be_written_still_prints_the_summary(capsys, tmp_path: Path) -> None:
    _png(tmp_path / "in" / "a.png")
    blocker = tmp_path / "c.png"
    blocker.write_bytes(b"a file")
    report = blocker / "report.json"
    rc, _, err = _run(capsys, "batch", tmp_path / "in", "-o", tmp_path / "out", "--report", report, *ENGINE)
    assert rc == 1
    assert "done 1, skipped 0, failed 0 in " in err
    assert (f"error: cannot write the report {report}: '{blocker}' is a file, not a folder; "
            "the upscaled images were written, only the report is missing") in err
    assert (tmp_path / "out" / "a_x4.png").is_file()


@needs_builtin
def test_full_disk_on_the_report_is_said_in_words(capsys, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import dipnet_core.batch.report as report_module

    def full(path: Path, text: str) -> Path:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(report_module, "atomic_write_text", full)
    _png(tmp_path / "in" / "a.png")
    rc, _, err = _run(capsys, "batch", tmp_path / "in", "-o", tmp_path / "out", *ENGINE)
    target = tmp_path / "out" / REPORT_NAME
    assert rc == 1 and "done 1, skipped 0, failed 0 in " in err
    assert f"error: cannot write the report {target}: '{target}': the disk is full;" in err


@needs_builtin
def test_output_under_a_file_names_the_file(capsys, tmp_path: Path) -> None:
    src = _png(tmp_path / "a.png")
    blocker = tmp_path / "c.png"
    blocker.write_bytes(b"a file")
    rc, _, err = _run(capsys, "upscale", src, "-o", blocker / "out.png", *ENGINE)
    assert rc == 1
    assert f"error: {src}: cannot write '{blocker / 'out.png'}': '{blocker}' is a file, not a folder" in err
    rc, _, err = _run(capsys, "batch", tmp_path, "-o", blocker / "out", *ENGINE)
    assert rc == 2
    assert f"error: output folder {blocker / 'out'} cannot be created: '{blocker}' is a file, not a folder" in err


def test_os_errors_in_words() -> None:
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/x/r.json")) == \
        "'/x/r.json': the disk is full"
    assert describe_os_error(OSError(errno.EROFS, "Read-only file system", "/ro")) == \
        "'/ro': the file system is read-only"
    assert describe_os_error(OSError("plain message")) == "plain message"


# ---------------------------------------------------------------------------------------------- 9: animations


def _animated_gif(path: Path, frames: int = 3) -> Path:
    images = [Image.new("RGB", (16, 12), (60 * i, 0, 0)) for i in range(frames)]
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=50)
    return path


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".png", ".tif"])
def test_frames_are_counted(tmp_path: Path, suffix: str) -> None:
    if suffix == ".webp" and "WEBP" not in DECODER_FORMATS:
        pytest.skip("no WebP in this Pillow")
    images = [Image.new("RGB", (16, 12), (60 * i, 0, 0)) for i in range(3)]
    path = tmp_path / f"multi{suffix}"
    images[0].save(path, save_all=True, append_images=images[1:])
    assert read_image(path).frames == 3
    still = _png(tmp_path / "still.png")
    assert read_image(still).frames == 1
    # The batch's ETA weighs each file by the work it is: every frame of an animation.
    assert image_pixels(path) == 3 * 16 * 12
    with Image.open(still) as im:
        assert image_pixels(still) == im.width * im.height


@needs_builtin
def test_animation_is_upscaled_frame_by_frame(capsys, tmp_path: Path) -> None:
    anim = _animated_gif(tmp_path / "in" / "anim.gif")
    _png(tmp_path / "in" / "still.png")
    out = tmp_path / "out"
    rc, _, err = _run(capsys, "batch", tmp_path / "in", "-o", out, *ENGINE)
    assert rc == 0 and "warning" not in err
    with Image.open(out / "anim_x4.png") as im:  # a GIF has no writer here: PNG, animated (APNG)
        assert im.n_frames == 3 and im.size == (64, 48)
        reds = []
        for i in range(3):
            im.seek(i)
            reds.append(int(np.asarray(im.convert("RGB"))[..., 0].mean()))
    assert reds[0] < reds[1] < reds[2]  # each frame is its own picture, in order
    report = _report(out)
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 0, "warnings": 0}

    webp = tmp_path / "anim.webp"
    rc, _, err = _run(capsys, "upscale", anim, "-o", webp, *ENGINE)
    assert rc == 0 and "warning" not in err
    with Image.open(webp) as im:
        assert im.n_frames == 3 and im.size == (64, 48)


@needs_builtin
def test_frames_that_the_output_cannot_hold_are_warned_per_file_and_in_the_report(capsys, tmp_path: Path) -> None:
    anim = _animated_gif(tmp_path / "in" / "anim.gif")
    pages = tmp_path / "in" / "scan.tif"
    Image.new("RGB", (16, 12), (9, 9, 9)).save(pages, save_all=True,
                                              append_images=[Image.new("RGB", (16, 12), (99, 9, 9))])
    out = tmp_path / "out"
    rc, _, err = _run(capsys, "batch", tmp_path / "in", "-o", out, "--format", "jpg", *ENGINE)
    gif_warning = (f"{anim}: has 3 frames: an animation; .jpg output holds one frame, so only the first "
                   "was upscaled")
    tif_warning = f"{pages}: has 2 frames: a multi-page TIFF; only the first page was upscaled"
    assert rc == 0 and f"warning: {gif_warning}" in err and f"warning: {tif_warning}" in err
    assert ", 2 with warnings" in err
    report = _report(out)
    assert {Path(e["input"]).name: e.get("warning") for e in report["done"]} == {"anim.gif": gif_warning,
                                                                                   "scan.tif": tif_warning}
    assert report["counts"]["warnings"] == 2
    assert BatchReport.load(out / REPORT_NAME).warnings[0].warning == gif_warning

    rc, _, err = _run(capsys, "upscale", pages, "-o", tmp_path / "one.tif", *ENGINE)
    assert rc == 0 and f"warning: {pages}: has 2 frames: a multi-page TIFF" in err


# ---------------------------------------------------------------------------------------------- 10: zero width


def test_zero_width_gif_names_the_real_problem(tmp_path: Path) -> None:
    good = tmp_path / "good.gif"
    Image.new("P", (4, 3)).save(good)
    data = bytearray(good.read_bytes())
    descriptor = data.index(b",", 13)  # the image descriptor; both it and the screen get width 0
    data[6:8] = struct.pack("<H", 0)
    data[descriptor + 5:descriptor + 7] = struct.pack("<H", 0)
    bad = tmp_path / "zero.gif"
    bad.write_bytes(bytes(data))
    assert read_image(good).width == 4  # GIFs decode fine
    with pytest.raises(ImageReadError) as info:
        read_image(bad)
    assert str(info.value) == (f"cannot read '{bad}': image has zero width: its header says 0x3 pixels, "
                               "so it holds no pixels")


def test_zero_height_png_names_the_real_problem(tmp_path: Path) -> None:
    path = _png(tmp_path / "flat.png", size=(5, 4))
    data = bytearray(path.read_bytes())
    data[20:24] = struct.pack(">I", 0)  # IHDR height (the CRC no longer matches either)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match=r"image has zero height: its header says 5x0 pixels"):
        read_image(path)
