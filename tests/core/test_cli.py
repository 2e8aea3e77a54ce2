"""The ``dipnet`` command line, run in-process through ``main(argv)`` (plus one real subprocess)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_testutil import run_cli
from PIL import Image

from dipnet_core.batch import BatchReport

_run = run_cli


@pytest.fixture
def model(builtin_weights_path: Path) -> str:
    return str(builtin_weights_path)


def test_upscale_default_name_and_explicit_output(capsys, tmp_path: Path, model: str,
                                                  small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("photo.png", size=(40, 36))
    rc, out, _ = _run(capsys, "upscale", src, "--model", model, "--backend", "torch", "--device", "cpu",
                      "--precision", "fp32")
    assert rc == 0
    default = tmp_path / "photo_x4.png"
    with Image.open(default) as im:
        assert im.size == (160, 144)
    assert re.search(r"^model: dipnet-studio-x4 x4 ", out, re.M)
    assert re.search(r"^backend: torch CPU fp32 \(", out, re.M)
    assert re.search(rf"^wrote {re.escape(str(default))} in \d+\.\d\d s$", out, re.M)

    # A tile smaller than the image: the tiled path, written as JPEG to a new folder.
    bigger = small_rgb_image("wide.png", size=(72, 56))
    target = tmp_path / "custom" / "big.jpg"
    rc, _, _ = _run(capsys, "upscale", bigger, "-o", target, "--model", model, "--quality", "80",
                    "--tile", "48")
    assert rc == 0
    with Image.open(target) as im:
        assert im.size == (288, 224) and im.format == "JPEG"


def test_upscale_refuses_to_overwrite(capsys, tmp_path: Path, model: str,
                                      small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("photo.png")
    original = src.read_bytes()
    rc, _, err = _run(capsys, "upscale", src, "-o", src, "--model", model, "--overwrite")
    assert rc == 1 and "overwrite an input" in err and src.read_bytes() == original

    existing = tmp_path / "photo_x4.png"
    existing.write_bytes(b"keep me")
    rc, _, err = _run(capsys, "upscale", src, "--model", model)
    assert rc == 1 and "--overwrite" in err and existing.read_bytes() == b"keep me"
    rc, _, _ = _run(capsys, "upscale", src, "--model", model, "--overwrite")
    assert rc == 0 and existing.read_bytes()[:4] == b"\x89PNG"


def test_upscale_several_inputs_into_folder(capsys, tmp_path: Path, model: str,
                                            small_rgb_image: Callable[..., Path]) -> None:
    a, b = small_rgb_image("a.png"), small_rgb_image("b.png", offset=(100, 100))
    rc, _, _ = _run(capsys, "upscale", a, b, "-o", tmp_path / "out", "--model", model, "--format", "webp")
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_x4.webp", "b_x4.webp"]


def test_batch_exit_codes_and_report(capsys, tmp_path: Path, model: str,
                                     small_rgb_image: Callable[..., Path]) -> None:
    src = tmp_path / "in"
    small_rgb_image("one.png", folder=src)
    small_rgb_image("nested/two.png", folder=src, offset=(60, 60))
    out = tmp_path / "out"
    rc, _, err = _run(capsys, "batch", src, "-o", out, "--recursive", "--model", model)
    assert rc == 0, err
    assert (out / "one_x4.png").is_file() and (out / "nested" / "two_x4.png").is_file()
    report = BatchReport.load(out / "dipnet-batch-report.json")
    assert len(report.done) == 2 and report.ok
    assert "ETA" in err  # progress lines on stderr (not a TTY here: periodic lines)

    rc, _, err = _run(capsys, "batch", src, "-o", out, "--recursive", "--skip-existing", "--model", model)
    assert rc == 0 and "skipped 2" in err

    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    report_path = tmp_path / "r.json"
    rc, _, err = _run(capsys, "batch", src, "-o", out, "--model", model, "--report", report_path)
    assert rc == 1 and "broken.png" in err
    assert [e.input.name for e in BatchReport.load(report_path).failed] == ["broken.png"]

    small_rgb_image("broken.png", folder=src)  # fixed: the retry now succeeds
    rc, _, err = _run(capsys, "batch", "--retry-failed", report_path, "--model", model)
    assert rc == 0, err
    merged = BatchReport.load(report_path)
    assert not merged.failed and (out / "broken_x4.png").is_file()


@pytest.mark.parametrize(
    "argv,message",
    [(["batch", "{src}"], "give an output folder with -o"),
     (["batch", "{src}", "-o", "{out}", "--name", "{{stem}}_{{width}}"], "unknown field '{width}' in name template"),
     (["batch", "{src}", "-o", "{out}", "--quality", "0"], "quality must be 1-100, not 0"),
     (["upscale"], "the following arguments are required: IN"),
     (["no-such-command"], "invalid choice: 'no-such-command'"),
     (["batch", "{tmp}/missing", "-o", "{out}"], "input not found: {tmp}/missing")],
)
def test_usage_errors_exit_2(capsys, tmp_path: Path, model: str, argv: list[str], message: str) -> None:
    (tmp_path / "src").mkdir()
    fill = {"src": tmp_path / "src", "out": tmp_path / "out", "tmp": tmp_path}
    rc, out, err = _run(capsys, *[a.format(**fill) for a in argv], "--model", model)
    assert rc == 2
    assert "error: " in err and message.replace("{tmp}", str(tmp_path)) in err
    assert not (tmp_path / "out").exists()  # nothing written on a usage error


def test_info_text_and_json(capsys, model: str) -> None:
    rc, out, _ = _run(capsys, "info", model)
    # Counted here from the file itself, not through the code under test.
    from safetensors import safe_open

    with safe_open(model, "pt") as f:
        params = sum(f.get_tensor(k).numel() for k in f.keys())
        feat = f.get_tensor("conv_1.weight").shape[0]
    assert rc == 0
    assert re.search(r"^scale\s+x4$", out, re.M) and re.search(rf"^parameters\s+{params:,}$", out, re.M)
    assert re.search(r"^MACs\s+[\d,]+ per input pixel", out, re.M) and re.search(r"^backends\s+torch cpu", out, re.M)
    rc, out, _ = _run(capsys, "info", model, "--json")
    info = json.loads(out)
    assert rc == 0 and info["descriptor"]["scale"] == 4 and info["params"] == params
    assert info["widths"]["feat"] == feat and info["macs_per_input_pixel"] > 0 and info["backends"]


@pytest.mark.parametrize("name", ["m.onnx", "m.safetensors"])
def test_export_check(capsys, tmp_path: Path, model: str, name: str) -> None:
    rc, out, err = _run(capsys, "export", model, "-o", tmp_path / name, "--check")
    assert rc == 0, err
    assert "check:" in out and "ok" in out
    rc, out, _ = _run(capsys, "info", tmp_path / name, "--json")
    assert rc == 0 and json.loads(out)["descriptor"]["scale"] == 4


def test_bench_quick(capsys, model: str) -> None:
    rc, out, err = _run(capsys, "bench", "--model", model, "--size", "32", "--seconds", "0.1",
                        "--backend", "torch", "--device", "cpu", "--precision", "fp32")
    assert rc == 0, err
    assert "out MP/s" in out and "output megapixels" in out and "torch CPU fp32" in out


def test_clear_errors_for_missing_and_bad_files(capsys, tmp_path: Path, model: str,
                                                small_rgb_image: Callable[..., Path]) -> None:
    rc, _, err = _run(capsys, "upscale", tmp_path / "ghost.png", "--model", model)
    assert rc != 0 and err.strip().startswith("error:") and "ghost.png" in err

    bad_model = tmp_path / "bad.pth"
    bad_model.write_bytes(b"this is not a checkpoint")
    rc, _, err = _run(capsys, "upscale", small_rgb_image(), "--model", bad_model)
    assert rc == 1 and err.count("\n") == 1 and "error:" in err and "bad.pth" in err

    rc, _, err = _run(capsys, "info", tmp_path / "nothing.safetensors")
    assert rc == 1 and "nothing.safetensors" in err

    text_png = tmp_path / "text.png"
    text_png.write_text("hello")
    rc, _, err = _run(capsys, "upscale", text_png, "--model", model)
    assert rc == 1 and "text.png" in err and not (tmp_path / "text_x4.png").exists()


def test_no_builtin_model_message(capsys, monkeypatch: pytest.MonkeyPatch,
                                  small_rgb_image: Callable[..., Path]) -> None:
    import dipnet_core.resources as resources

    monkeypatch.setattr(resources, "builtin_model_path", lambda: None)  # a build without the model
    rc, _, err = _run(capsys, "upscale", small_rgb_image())
    assert rc == 2 and "no built-in model in this build; pass --model FILE" in err


def test_upscale_uses_the_builtin_model_by_default(capsys, tmp_path: Path,
                                                   small_rgb_image: Callable[..., Path]) -> None:
    src = small_rgb_image("plain.png", size=(36, 28))
    rc, out, _ = _run(capsys, "upscale", src)
    assert rc == 0 and "dipnet-studio-x4" in out
    with Image.open(tmp_path / "plain_x4.png") as im:
        assert im.size == (144, 112)


def test_subprocess_module_entry_point(model: str) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    proc = subprocess.run([sys.executable, "-m", "dipnet_core", "info", model], capture_output=True,
                          text=True, timeout=120, env=env, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert "x4" in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["train", "eval"])
def test_training_commands_are_mounted(capsys, command: str) -> None:
    rc, out, _ = _run(capsys, command, "--help")
    assert rc == 0 and f"dipnet {command}" in out and "--data" in out


def test_progress_printer_tty_and_plain() -> None:
    from dipnet_core.batch import BatchProgress, ItemDone, ItemFailed, ItemStarted
    from dipnet_core.cli import ProgressPrinter

    events = [ItemStarted(0, Path("a.png"), BatchProgress(0, 2, 0.0, 0.0, None)),
              ItemFailed(0, "cannot read 'a.png': broken", BatchProgress(1, 2, 0.4, 1.0, 3.0)),
              ItemDone(1, Path("b_x4.png"), 1.0, BatchProgress(2, 2, 1.0, 2.0, 0.0))]
    tty, plain = io.StringIO(), io.StringIO()
    for stream, is_tty in ((tty, True), (plain, False)):
        printer = ProgressPrinter(stream, tty=is_tty)
        for e in events:
            printer(e)
        printer.close()
    # TTY: one line redrawn with \r; failures on their own line; ends with a newline.
    assert "\r" in tty.getvalue() and "failed: cannot read 'a.png'" in tty.getvalue()
    assert tty.getvalue().endswith("\n") and "100%" in tty.getvalue()
    # Not a TTY: no carriage returns, whole lines only, the final state always printed.
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and lines[-1].startswith("100%") and "ETA 0:00" in lines[-1]
