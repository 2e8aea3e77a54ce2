"""Training configs: presets by name, TOML/YAML round trips, strict keys, shipped config files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dipnet_core.train.config import (
    ConfigError,
    ProgressiveStage,
    config_from_dict,
    config_to_dict,
    load_config,
    preset,
    preset_names,
    save_config,
)

REPO = Path(__file__).resolve().parents[2]


def test_presets_load_by_name_and_are_independent_copies() -> None:
    assert {"tiny-test", "quick-cpu", "paper"} <= set(preset_names())
    a = preset("quick-cpu")
    a.student.feat = 3
    assert preset("quick-cpu").student.feat == 32
    paper = preset("paper")
    assert [s.lr_patch * paper.data.scale for s in paper.distill.stages] == [64, 128, 256, 384]
    assert (paper.student.feat, paper.prune.target_feat, paper.prune.target_mid) == (64, 44, 38)
    quick = preset("quick-cpu")
    assert [s.lr_patch for s in quick.distill.stages] == [32, 48, 64]
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("nope")


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    cfg = preset("tiny-test")
    cfg.data.train_dirs = ["/data/a", "/data/b"]
    cfg.teacher.kind, cfg.teacher.path = "file", "/models/t.safetensors"
    cfg.distill.stages = [ProgressiveStage(16, 5, 2), ProgressiveStage(24, 7, 3, lr=1e-4)]
    path = save_config(cfg, tmp_path / f"c{suffix}")
    assert config_to_dict(load_config(path)) == config_to_dict(cfg)


def test_partial_file_uses_preset_and_rejects_typos(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('preset = "quick-cpu"\n[student]\nfeat = 24\n[[distill.stages]]\nlr_patch = 16\nsteps = 3\nbatch = 2\n')
    cfg = load_config(p)
    assert cfg.student.feat == 24 and cfg.student.mid == 32
    assert cfg.distill.stages == [ProgressiveStage(16, 3, 2)]
    p.write_text("[student]\nfeats = 24\n")
    with pytest.raises(ConfigError, match="feats"):
        load_config(p)
    with pytest.raises(ConfigError, match="integer"):
        config_from_dict({"student": {"feat": "wide"}})
    with pytest.raises(ConfigError, match="minimum"):
        config_from_dict({"distill": {"stages": [[8, 10, 2]]}})  # compact [lr_patch, steps, batch] form
    with pytest.raises(ConfigError, match="teacher.kind"):
        config_from_dict({"teacher": {"kind": "magic"}})


@pytest.mark.parametrize("name", ["adapt", "quick-cpu", "paper"])
def test_shipped_config_files_match_presets(name: str) -> None:
    assert config_to_dict(load_config(REPO / "configs" / f"{name}.toml")) == config_to_dict(preset(name))


def test_resuming_a_run_folder_with_a_different_recipe_is_refused(tmp_path: Path) -> None:
    from dipnet_core.train.checkpoint import write_json
    from dipnet_core.train.context import RunContext

    cfg = preset("tiny-test")
    cfg.run.out_dir = str(tmp_path / "run")
    RunContext.open(cfg, load_data=False).close()
    write_json(tmp_path / "run" / "state.json", {"done": ["teacher"], "metrics": {}})
    cfg.run.log_every = 7  # runtime settings may change between attempts
    RunContext.open(cfg, load_data=False).close()
    cfg.student.feat = 20
    with pytest.raises(ConfigError, match="student"):
        RunContext.open(cfg, load_data=False)
    RunContext.open(cfg, resume=False, load_data=False).close()  # starting over is allowed
    assert not (tmp_path / "run" / "state.json").exists()
