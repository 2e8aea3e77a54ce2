"""The int8 guard: auto uses the twin only where this machine computes what its recorded loss was measured on.

Real graphs: the shipped fp32 graph and its shipped int8 twin (which carries a parity record),
copied to a temp folder as ``m.onnx`` / ``m.int8.onnx``; "bad" twins are the real twin with a
tampered record (claiming a smaller deviation than it has). Timings are faked where the
choice logic is tested, so the busy machine decides nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dipnet_core.engine.backends import autoselect
from dipnet_core.engine.backends.autoselect import INT8_LABEL, Candidate, candidate_paths, choose, measure
from dipnet_core.engine.backends.int8_guard import check_twin, synthetic_probe
from dipnet_core.export.int8 import PARITY_KEY, decode_probe, read_int8_parity
from dipnet_core.models import LoadedModel, load_model
from dipnet_core.resources import builtin_model_path
from tests.cli_testutil import run_cli

MODELS = Path(builtin_model_path()).parent
FP32 = MODELS / "dipnet-studio-x4.grid.onnx"
TWIN = MODELS / "dipnet-studio-x4.int8.onnx"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")


def _with_meta(data: bytes, key: str, value: str | None) -> bytes:
    import onnx

    proto = onnx.load_from_string(data)
    kept = [p for p in proto.metadata_props if p.key != key]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    if value is not None:
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def _tampered(scale_rms: float = 1.0, scale_p999: float = 1.0) -> bytes:
    """The shipped twin whose record claims ``scale`` x the deviation it really has."""
    data = TWIN.read_bytes()
    record = read_int8_parity(data)
    assert record is not None, "the shipped twin must carry a parity record (scripts/make_int8_twin.py)"
    record["vs_fp32"]["rms"] *= scale_rms
    record["vs_fp32"]["p999"] *= scale_p999
    return _with_meta(data, PARITY_KEY, json.dumps(record))


def _model_with_twin(folder: Path, twin: bytes) -> LoadedModel:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.onnx").write_bytes(FP32.read_bytes())
    (folder / "m.int8.onnx").write_bytes(twin)
    return load_model(folder / "m.onnx")


def test_shipped_twin_records_its_probe_and_machine() -> None:
    record = read_int8_parity(TWIN.read_bytes())
    assert record is not None
    probe = decode_probe(record["probe"])
    assert probe.dtype == np.uint8 and probe.shape == (64, 64, 3) and probe.std() > 10  # a real, busy crop
    assert record["vs_fp32"]["rms"] > 0 and record["machine"]["cpu"]
    assert "vs_qdq" in record


def test_guard_accepts_a_twin_that_computes_what_it_recorded() -> None:
    verdict = check_twin(TWIN.read_bytes(), FP32.read_bytes(), 0.05)
    assert verdict.ok, verdict.reason
    assert "verified" in verdict.reason
    recorded = read_int8_parity(TWIN.read_bytes())["vs_fp32"]["rms"]
    # 7-bit weights compute the same on every x86 CPU: within rounding noise of the record.
    assert verdict.measured["vs_fp32"]["rms"] == pytest.approx(recorded, rel=0.03)


def test_guard_rejects_a_twin_whose_record_claims_less_deviation() -> None:
    verdict = check_twin(_tampered(scale_rms=0.5), FP32.read_bytes(), 0.05)
    assert not verdict.ok
    assert verdict.reason.startswith("int8 twin rejected")
    assert "error power" in verdict.reason and "bound 0.05 dB" in verdict.reason
    assert verdict.measured["power_ratio"] == pytest.approx(4.0, rel=0.05)
    assert verdict.measured["predicted_loss_db"] > 0.05


def test_guard_rejects_outliers_the_record_does_not_have() -> None:
    verdict = check_twin(_tampered(scale_p999=0.2), FP32.read_bytes(), 0.05)
    assert not verdict.ok
    assert "99.9th percentile" in verdict.reason


def test_guard_rejects_a_damaged_record() -> None:
    data = TWIN.read_bytes()
    record = read_int8_parity(data)
    record["probe"]["sha256"] = "0" * 16
    verdict = check_twin(_with_meta(data, PARITY_KEY, json.dumps(record)), FP32.read_bytes(), 0.05)
    assert not verdict.ok and "damaged" in verdict.reason


def test_twin_without_record_is_checked_against_its_own_qdq_arithmetic() -> None:
    legacy = _with_meta(TWIN.read_bytes(), PARITY_KEY, None)
    verdict = check_twin(legacy, FP32.read_bytes(), 0.05)
    # 7-bit weights cannot saturate: the kernels keep to the QDQ arithmetic on every CPU.
    assert verdict.ok, verdict.reason
    assert "no parity record" in verdict.reason and verdict.measured["unverified"]


def test_synthetic_probe_is_deterministic() -> None:
    a, b = synthetic_probe(), synthetic_probe()
    assert a.dtype == np.uint8 and a.shape == (64, 64, 3) and np.array_equal(a, b)
    assert 40 < a.std() < 120  # edges and texture, not a flat field


# ------------------------------------------------------------------------------- choice logic


def test_rejected_twin_is_left_out_and_the_fastest_passing_path_wins(tmp_path: Path) -> None:
    model = _model_with_twin(tmp_path / "bad", _tampered(scale_rms=0.4))
    cands, excluded = candidate_paths(model)
    assert Candidate("onnx", "int8") not in cands and Candidate("onnx", "fp32") in cands
    assert excluded[INT8_LABEL].startswith("int8 twin rejected")

    def fake(cand: Candidate, tile: int) -> float:  # int8 would be fastest, were it allowed
        return {"int8": 1.0, "fp32": 2.0}[cand.precision] + (0.1 if tile > 160 else 0.0)

    choice = measure(model, fake, tiles=(160, 320))
    assert (choice.backend, choice.precision) == ("onnx", "fp32")
    assert "int8 twin rejected" in choice.reason
    assert choice.int8_check["ok"] is False and "power_ratio" in choice.int8_check["measured"]
    assert not any("int8" in k for k in choice.timings)  # never timed


def test_verified_twin_is_a_candidate_and_wins_when_fastest(tmp_path: Path) -> None:
    model = _model_with_twin(tmp_path / "good", TWIN.read_bytes())

    def fake(cand: Candidate, tile: int) -> float:
        return {"int8": 1.0, "fp32": 2.0}[cand.precision]

    choice = measure(model, fake, tiles=(160, 320))
    assert (choice.backend, choice.precision) == ("onnx", "int8")
    assert "int8 twin verified" in choice.reason and choice.int8_check["ok"] is True


def test_verdict_is_cached_with_the_choice(tmp_path: Path) -> None:
    model = _model_with_twin(tmp_path / "bad", _tampered(scale_rms=0.4))
    first = choose(model, lambda: lambda cand, tile: 1.0)
    again = choose(model, lambda: pytest.fail("a cached choice must not measure again"))  # type: ignore[arg-type]
    assert again.cached and again.int8_check == first.int8_check and not again.int8_check["ok"]
    assert autoselect.CACHE_VERSION >= 3


def test_dipnet_info_reports_the_rejection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model_with_twin(tmp_path / "bad", _tampered(scale_rms=0.4))
    rc, out, _ = run_cli(capsys, "info", model.path)
    assert rc == 0
    line = next(line for line in out.splitlines() if line.startswith("int8 twin"))
    assert "not used by auto here" in line and "int8 twin rejected" in line and "error power" in line
    # Once the choice is measured and cached, info reports the cached verdict (and the choice's reason).
    choose(model, lambda: lambda cand, tile: 1.0)
    rc, out, _ = run_cli(capsys, "info", model.path)
    assert "int8 twin rejected" in next(line for line in out.splitlines() if line.startswith("auto choice"))
