"""Adaptation: the student starts as the built-in model, exactly; every run ends with its comparison."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dipnet_core.models import DIPNet, DIPNetConfig, load_model, save_model
from dipnet_core.models.loader import dipnet_descriptor
from dipnet_core.resources import builtin_model_path
from dipnet_core.train import events as ev
from dipnet_core.train import run_pipeline
from dipnet_core.train.config import ConfigError, ProgressiveStage, TrainConfig, preset
from dipnet_core.train.context import RunContext
from dipnet_core.train.expand import expand_fused
from dipnet_core.train.stages.common import grown_start_model, new_student

BUILTIN = builtin_model_path()
needs_builtin = pytest.mark.skipif(BUILTIN is None, reason="this build carries no built-in model")


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small DIPNet-family teacher file (random weights: the test is about wiring, not quality)."""
    torch.manual_seed(1)
    model = DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=4, esa=8))
    path = tmp_path_factory.mktemp("teacher") / "tiny-teacher.safetensors"
    save_model(path, model, dipnet_descriptor(model, name="tiny-teacher"))
    return path


@needs_builtin
def test_expanded_builtin_model_computes_the_same_function() -> None:
    fused = load_model(BUILTIN).module.eval()
    torch.manual_seed(0)
    train = expand_fused(fused, expansion=2.0, fuse_in_forward=False).eval()
    x = torch.rand(1, 3, 23, 31)
    with torch.no_grad():
        want = fused(x)
        assert (train(x) - want).abs().max() < 1e-5  # branch by branch
        train.set_fuse_in_forward(True)
        assert (train(x) - want).abs().max() < 1e-5  # fused kernel, as distillation runs it
        assert (train.reparameterize().eval()(x) - want).abs().max() < 1e-5
    # every branch can still learn: the extra hidden channels and the shortcut are not dead
    train.train()
    train(torch.rand(1, 3, 16, 16)).mean().backward()
    rep = train.block_1.c1_r
    assert rep.shortcut.weight_v.grad.abs().sum() > 0 and rep.squeeze.weight_v.grad.abs().sum() > 0


@needs_builtin
def test_grown_start_model_keeps_the_function_and_is_checked(data_dir: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    cfg = _adapt_cfg(tmp_path / "run", data_dir, tiny_teacher)
    cfg.student.grow_to = [56, 40]
    cfg.validate()
    fused = load_model(BUILTIN).module.eval()
    student = new_student(cfg).eval()
    assert student.config.feat == 56 and {(b.mid1, b.mid2) for b in student.config.blocks} == {(40, 40)}
    x = torch.rand(1, 3, 21, 26)
    with torch.no_grad():
        assert (student(x) - fused(x)).abs().max() < 1e-5
    # The same seed grows the same model (the expansion's fresh branches follow the run's global
    # seed, like any run's); narrower than the start model or without one is refused.
    torch.testing.assert_close(grown_start_model(fused, cfg).state_dict(), grown_start_model(fused, cfg).state_dict(),
                               rtol=0, atol=0)
    cfg.student.grow_to = [40, 40]
    with pytest.raises(ConfigError, match="narrower"):
        new_student(cfg)
    cfg.student.from_model, cfg.student.grow_to = None, [56, 40]
    with pytest.raises(ConfigError, match="needs student.from_model"):
        cfg.validate()


def test_expansion_below_one_is_refused() -> None:
    fused = DIPNet(DIPNetConfig.uniform(8, 8, n_blocks=1, esa=8))
    with pytest.raises(ValueError, match="expansion >= 1"):
        expand_fused(fused, expansion=0.5)


def _adapt_cfg(out: Path, data: Path, teacher: Path) -> TrainConfig:
    cfg = preset("adapt")
    cfg.data.train_dirs, cfg.run.out_dir = [str(data)], str(out)
    cfg.teacher.path = str(teacher)
    cfg.distill.stages = [ProgressiveStage(16, 4, 2), ProgressiveStage(20, 2, 2)]
    cfg.data.val_fraction, cfg.data.val_max_images, cfg.data.val_crop = 0.25, 2, 64
    cfg.run.device, cfg.run.threads, cfg.run.log_every, cfg.run.val_every = "cpu", 1, 2, 0
    cfg.export.onnx = False
    cfg.compare.benchmark_dir = str(data)  # a benchmark folder that is always there
    return cfg


@needs_builtin
def test_adapt_run_starts_from_the_builtin_model_and_compares_against_it(
        data_dir: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    cfg = _adapt_cfg(tmp_path / "run", data_dir, tiny_teacher)
    seen: list[ev.Event] = []
    result = run_pipeline(cfg, seen.append, resume=False)
    assert result.status == "done"
    m = result.metrics
    assert m["distill_1"]["continued_from"] == "builtin" and m["distill_1"]["widths"] == "48/32"
    # The new file's training record keeps the start model's own record: the lineage survives a chain.
    import hashlib

    from dipnet_core.models.loader import read_descriptor as _read

    started = _read(result.model_path).training["started_from"]
    assert started["file"] == "builtin" and started["name"] == load_model(BUILTIN).descriptor.name
    assert started["sha256"] == hashlib.sha256(BUILTIN.read_bytes()).hexdigest()
    assert started["training"] == _read(BUILTIN).training
    assert all("started_from" not in stage for stage in _read(result.model_path).training["stages"].values())
    assert set(m["distill_1"]["losses"]) == {"l1_hr", "l1_teacher", "anchor"}  # the full method
    assert "prune_1" not in m and load_model(result.model_path).module.config.widths_label() == "48/32"

    c = m["comparison"]
    assert c["reference"] == "start" and set(c["models"]) == {"new", "start"}  # the built-in model is the start
    assert set(c["datasets"]) == {"validation", data_dir.name}
    for d in c["datasets"].values():
        p = d["psnr_y"]
        assert set(p) == {"new", "start", "bicubic"}
        # six small steps at a fine-tuning rate: still the built-in model, not a random one (~-10 dB)
        assert abs(p["new"] - p["start"]) < 1.0
    val = c["datasets"]["validation"]["psnr_y"]
    assert c["worse_than_reference"] == (val["new"] < val["start"])
    assert c["delta"]["validation"]["vs_reference_db"] == pytest.approx(val["new"] - val["start"], abs=1e-3)
    assert [type(e).__name__ for e in seen[-2:]] == ["Comparison", "RunFinished"]
    assert seen[-1].metrics["comparison"] == c
    # the model file carries its comparison, for whoever installs it later
    from dipnet_core.models.loader import read_descriptor

    recorded = read_descriptor(result.model_path).comparison
    assert recorded is not None and recorded["datasets"] == c["datasets"]
    assert recorded["worse_than_reference"] == c["worse_than_reference"]
    assert read_descriptor(BUILTIN).comparison is None
    # the starting model's score is the built-in model's own, computed independently
    from dipnet_core.eval import evaluate

    direct = evaluate(BUILTIN, data_dir, scale=4)["mean"]["psnr_y"]
    assert c["datasets"][data_dir.name]["psnr_y"]["start"] == pytest.approx(direct, abs=1e-3)

    # a stage output becomes a model file `--teacher` and the app load (how the built-in teacher is made)
    import importlib.util

    script = Path(__file__).resolve().parents[2] / "scripts" / "export_stage_model.py"
    spec = importlib.util.spec_from_file_location("export_stage_model", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "distilled.safetensors"
    assert module.main([str(tmp_path / "run"), "distill_2", str(out)]) == 0
    assert load_model(out).module.config.widths_label() == "48/32"
    assert module.main([str(tmp_path / "run"), "distill_2", str(out)]) == 1  # never overwrites


def test_missing_builtin_teacher_is_a_clear_error_before_any_training(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dipnet_core.train.stages import common

    only_model = tmp_path / "models"
    only_model.mkdir()
    monkeypatch.setattr(common, "builtin_models_dir", lambda: only_model)
    cfg = preset("adapt")
    cfg.data.train_dirs, cfg.run.out_dir = [str(data_dir)], str(tmp_path / "run")
    with pytest.raises(ConfigError, match=r"teacher\.path = 'builtin'.*--teacher FILE"):
        run_pipeline(cfg, resume=False)
    assert not (tmp_path / "run" / "stages").exists()

    # the CLI says it once, before it creates anything
    from dipnet_core.train.cli import add_train_arguments, train_main

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    args = p.parse_args(["--preset", "adapt", "--data", str(data_dir), "--out", str(tmp_path / "cli")])
    assert train_main(args) == 1
    assert not (tmp_path / "cli").exists()


def test_cli_adapt_preset_takes_an_imported_teacher(data_dir: Path, tiny_teacher: Path, tmp_path: Path) -> None:
    from dipnet_core.train.cli import add_train_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    cfg = config_from_args(p.parse_args(["--preset", "adapt", "--data", str(data_dir), "--out", str(tmp_path),
                                         "--name", "comics", "--teacher", str(tiny_teacher)]))
    assert cfg.student.from_model == "builtin" and not cfg.prune.enabled
    assert (cfg.teacher.kind, cfg.teacher.path, cfg.export.name) == ("file", str(tiny_teacher), "comics")
    assert cfg.distill.alpha > 0 and cfg.distill.beta > 0


def test_time_estimate_covers_every_training_stage_and_leaves_the_rng_alone(
        tiny_config: Callable[[Path], TrainConfig], tmp_path: Path) -> None:
    from dipnet_core.train.estimate import estimate_run

    ctx = RunContext.open(tiny_config(tmp_path), resume=False)
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    est = estimate_run(ctx)
    assert torch.equal(torch.rand(3), want)
    ctx.close()
    assert set(est.stages) == {"teacher", "distill_1", "distill_2", "prune_1", "finetune"}
    assert all(v > 0 for v in est.stages.values())
    assert est.total_s == pytest.approx(sum(est.stages.values()), abs=0.2)
    steps = {"teacher": 6, "distill_1": 4, "distill_2": 4, "prune_1": 3, "finetune": 2}
    for stage, n in steps.items():
        assert est.stages[stage] == pytest.approx(est.seconds_per_step[stage] * n, rel=0.05, abs=0.1)


def test_ship_model_drops_the_comparison_and_writes_checked_twins(tmp_path: Path) -> None:
    import importlib.util

    from dipnet_core.models.loader import read_descriptor

    torch.manual_seed(2)
    model = DIPNet(DIPNetConfig.uniform(16, 16, n_blocks=2, esa=8))
    base = dipnet_descriptor(model, name="run-output")
    record = {"trainer": "dipnet_core.train", "comparison": {"reference": "start"},
              "started_from": {"file": "builtin", "training": {"prune_rounds": [1]}}}
    run_file = save_model(tmp_path / "run" / "run-output.safetensors", model,
                          dataclasses.replace(base, training=record))
    script = Path(__file__).resolve().parents[2] / "scripts" / "ship_model.py"
    spec = importlib.util.spec_from_file_location("ship_model", script)
    assert spec is not None and spec.loader is not None
    ship_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship_model)

    shipped = ship_model.ship(run_file, tmp_path / "models")
    assert [p.name for p in shipped] == ["run-output.safetensors", "run-output.onnx", "run-output.grid.onnx"]
    training = read_descriptor(shipped[0]).training
    assert "comparison" not in training and training["started_from"] == record["started_from"]
    assert "comparison" in read_descriptor(run_file).training  # the run's own file is left as it was
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(load_model(shipped[0]).module(x), model(x))
    assert load_model(shipped[1]).descriptor.name == "run-output"
    assert ship_model.main([str(shipped[1]), str(tmp_path / "again")]) == 1  # an ONNX file is refused
