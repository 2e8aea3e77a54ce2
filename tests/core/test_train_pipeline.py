"""The whole pipeline with the tiny-test preset, the CLI entry points and evaluation."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dipnet_core.eval import evaluate
from dipnet_core.models import DIPNet, DIPNetConfig, load_model
from dipnet_core.train import TrainConfig, run_pipeline
from dipnet_core.train import events as ev
from dipnet_core.train.cli import add_eval_arguments, add_train_arguments, eval_main, train_main


@pytest.fixture(scope="module")
def data_dir(data_dir: Path, textured: Callable[[int, int, int], np.ndarray]) -> Path:
    """The shared 8 images plus two the pipeline must skip: a corrupt JPEG and one too small."""
    (data_dir / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    Image.fromarray(textured(24, 24, 3)).save(data_dir / "small.png")
    return data_dir


def test_full_pipeline_exports_models_that_load(data_dir: Path, tiny_config: Callable[[Path], TrainConfig],
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(Path("run"))  # relative, as `dipnet train` without --out gives it
    seen: list[ev.Event] = []
    result = run_pipeline(cfg, seen.append, resume=False)

    assert result.status == "done"
    assert {Path(p).name for p, _ in result.skipped_images} == {"corrupt.jpg", "small.png"}
    run = tmp_path / "run"
    for name in ("config.toml", "log.txt", "state.json", "metrics.json", "skipped_images.json"):
        assert (run / name).is_file(), name
    state = json.loads((run / "state.json").read_text())
    assert state["done"] == ["teacher", "distill_1", "distill_2", "reparam", "prune_1", "finetune", "export",
                             "comparison"]
    for stage in state["done"]:
        assert (run / "stages" / stage / "metrics.json").is_file()

    st = load_model(result.model_path)
    assert isinstance(st.module, DIPNet) and st.module.config.widths_label() == "8/8"
    training = st.descriptor.training
    assert training["prune_rounds"][0]["latency_s_per_mp"] > 0
    assert training["stages"]["reparam"]["max_abs_diff"] < 1e-5
    onnx = load_model(result.onnx_path)
    assert onnx.descriptor.arch == "onnx" and onnx.descriptor.scale == 4
    assert result.metrics["export"]["onnx_max_abs_diff"] < 1e-4

    kinds = {type(e).__name__ for e in seen}
    assert {"StageStarted", "Step", "Validation", "CheckpointSaved", "StageFinished", "RunFinished", "Log",
            "Comparison"} <= kinds
    # every run ends with its comparison, in the metrics and in the last event
    comparison = json.loads((run / "metrics.json").read_text())["comparison"]
    assert seen[-1].metrics["comparison"] == comparison == result.metrics["comparison"]
    assert set(comparison["datasets"]["validation"]["psnr_y"]) == {"new", "builtin", "bicubic"}
    val = next(e for e in seen if isinstance(e, ev.Validation))
    assert val.sample is not None and val.sample["sr"].dtype == np.uint8
    assert val.sample["sr"].shape == val.sample["hr"].shape

    # a second call finds everything done and changes nothing
    again = run_pipeline(cfg, None, resume=True)
    assert again.status == "done" and again.model_path == result.model_path

    r = evaluate(result.model_path, data_dir, scale=4)
    assert r["n_images"] == 8 and {"psnr_y", "ssim_y", "psnr_rgb", "bicubic_psnr_y"} <= set(r["mean"])
    r_onnx = evaluate(result.onnx_path, data_dir, scale=4, max_images=2)
    assert r_onnx["images"][0]["psnr_y"] == pytest.approx(r["images"][0]["psnr_y"], abs=0.05)


def test_cli_train_and_eval(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    args = p.parse_args(["--preset", "tiny-test", "--data", str(data_dir), "--out", str(tmp_path / "run"),
                         "--no-teacher", "--name", "cli-model", "--device", "cpu"])
    assert train_main(args) == 0
    model = tmp_path / "run" / "cli-model.safetensors"
    assert model.is_file()
    # --resume on a finished run is a no-op that still reports the model
    args = p.parse_args(["--resume", str(tmp_path / "run")])
    assert train_main(args) == 0
    assert "cli-model.safetensors" in capsys.readouterr().out

    q = argparse.ArgumentParser()
    add_eval_arguments(q)
    out = tmp_path / "eval.json"
    assert eval_main(q.parse_args(["--model", str(model), "--data", str(data_dir), "--json", str(out)])) == 0
    assert json.loads(out.read_text())["n_images"] == 8
    assert "| **mean** |" in capsys.readouterr().out


def test_evaluate_reproduces_the_official_set5_score(official_weights_path: Path, set5_dir: Path) -> None:
    model = DIPNet(DIPNetConfig())
    model.load_state_dict(torch.load(official_weights_path, map_location="cpu", weights_only=True))
    r = evaluate(model, set5_dir, scale=4)
    assert r["n_images"] == 5
    assert r["mean"]["psnr_y"] == pytest.approx(31.81, abs=0.01)
    assert r["mean"]["bicubic_psnr_y"] == pytest.approx(28.43, abs=0.01)


def test_evaluate_reports_progress_and_stops_when_cancelled(tmp_path: Path, photo) -> None:
    from PIL import Image

    from dipnet_core.cancel import Cancelled, CancelToken

    set5_dir = tmp_path / "hr"
    set5_dir.mkdir()
    for name in ("baby", "bird", "butterfly"):
        Image.fromarray(photo(name)[:96, :80]).save(set5_dir / f"{name}.png")

    model = DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=1))
    seen: list[tuple[int, int, str]] = []
    evaluate(model, set5_dir, scale=4, max_images=2, progress=lambda *p: seen.append(p))
    assert [(d, t) for d, t, _ in seen] == [(1, 2), (2, 2)] and seen[0][2] == "baby.png"

    token, calls = CancelToken(), []

    def cancel_after_first(*p: object) -> None:
        calls.append(p)
        token.cancel()

    with pytest.raises(Cancelled):
        evaluate(model, set5_dir, scale=4, cancel=token, progress=cancel_after_first)
    assert len(calls) == 1  # checked before the second image
