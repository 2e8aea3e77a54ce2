"""The built-in model (issue 6): it ships, loads, matches its ONNX twin and keeps the quality its card states.

Everything runs on the real shipped files in ``resources/models``; the quality check needs the real Set5 images.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dipnet_core.eval import evaluate
from dipnet_core.models import DIPNet, load_model
from dipnet_core.resize import bicubic_downscale_uint8, modcrop
from dipnet_core.resources import BUILTIN_MODEL_NAME, builtin_model_path

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "resources" / "models" / "README.md"
MARGIN_LINE = re.compile(r"Set5 PSNR-Y margin over bicubic:\s*\*{0,2}\+(\d+\.\d+) dB")


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = builtin_model_path()
    assert path is not None, "no built-in model: resources/models/*.safetensors is missing"
    assert path.name == f"{BUILTIN_MODEL_NAME}.safetensors"
    return path


def card_margin() -> float:
    match = MARGIN_LINE.search(CARD.read_text(encoding="utf-8"))
    assert match, f"{CARD} has no 'Set5 PSNR-Y margin over bicubic: +X.XX dB' line"
    return float(match.group(1))


def test_shipped_model_loads_with_descriptor_and_training_record(shipped: Path) -> None:
    loaded = load_model(shipped)
    d = loaded.descriptor
    assert isinstance(loaded.module, DIPNet) and d.arch == "dipnet" and d.scale == 4
    assert d.source == "DIPNet Studio trainer"
    # BSD200 is among its training photos: the file itself must say what that means for its use
    assert d.license.startswith("research use only") and "BSD200" in d.license
    training = d.training
    assert isinstance(training, dict) and training["trainer"] == "dipnet_core.train"
    # The whole recipe ran, over its lineage (a run continued from a finished model records that
    # model's own record as started_from): our own teacher (run 291's, as a file), distillation
    # stages, reparameterization, pruning, fine-tune.
    lineage = [training]
    while "started_from" in lineage[-1]:
        lineage.append(lineage[-1]["started_from"]["training"])
    stages = {s for record in lineage for s in record["stages"]}
    assert {"reparam", "finetune"} <= stages
    assert all(record["teacher"].startswith("file:training/") for record in lineage)
    assert any(s.startswith("distill") for s in stages) and any(record["prune_rounds"] for record in lineage)
    # no closing comparison: it compared against the model this one replaced, and a copy imported
    # into the library would ask "install a model that is worse?" for a model that is better
    assert all("comparison" not in record for record in lineage)
    assert shipped.stat().st_size < 2_000_000  # small enough to commit and ship in the wheel


def test_shipped_model_is_pruned_to_fast_widths(shipped: Path) -> None:
    """Every width a multiple of 16 (oneDNN's fast path) and no more MACs than the official 44/38."""
    from dipnet_core.models import DIPNetConfig

    cfg = load_model(shipped).module.config
    widths = [cfg.feat] + [w for b in cfg.blocks for w in (b.mid1, b.mid2, b.esa)]
    assert all(w % 16 == 0 for w in widths), widths
    assert cfg.macs_per_input_pixel() <= DIPNetConfig.uniform(44, 38).macs_per_input_pixel()


def test_onnx_twin_matches(shipped: Path, photo) -> None:
    import onnxruntime as ort

    twin = shipped.with_suffix(".onnx")
    assert twin.exists(), f"{twin} is missing"
    hr = modcrop(photo("butterfly"), 4)[:160, :200]
    x = bicubic_downscale_uint8(hr, 4).astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    with torch.inference_mode():
        ref = load_model(shipped).module.eval()(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(twin), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert out.shape == ref.shape == (1, 3, 160, 200)
    assert float(np.abs(out - ref).max()) < 1e-4


def test_beats_bicubic_on_set5_by_the_card_margin(shipped: Path, set5_dir: Path) -> None:
    result = evaluate(shipped, set5_dir, scale=4)
    assert result["n_images"] == 5
    margin = result["mean"]["psnr_y"] - result["mean"]["bicubic_psnr_y"]
    assert margin >= card_margin() - 0.05, (margin, card_margin())
