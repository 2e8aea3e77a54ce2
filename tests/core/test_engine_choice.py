"""The measured automatic choice of the CPU path: faked timings and CPU features, real tiny models.

Timings are faked (the candidate runner is replaced) so every branch is decided
by the test, not by how busy the machine is; the backends themselves are real.
One test runs the real measurement on a tiny DIPNet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dipnet_core.engine import TiledUpscaler, create_backend, hardware
from dipnet_core.engine.backends import autoselect
from dipnet_core.engine.backends.autoselect import Candidate, candidate_paths, choose, measure
from dipnet_core.engine.backends.factory import rule_choice
from dipnet_core.models import DIPNet, DIPNetConfig, LoadedModel, dipnet_descriptor, load_model, save_model

AVX2_ONLY = frozenset({"avx", "avx2", "fma", "sse4_2"})
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512bw", "avx512_vnni", "avx512_bf16"}


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("DIPNET_CACHE_DIR", str(cache))
    monkeypatch.setenv(autoselect.ENV_SWITCH, "1")
    return cache


def _fake_cpu(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str], name: str = "Test CPU") -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(hardware, "cpu_model", lambda: name)


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real DIPNet (random weights) saved as .safetensors."""
    import torch

    torch.manual_seed(0)
    net = DIPNet(DIPNetConfig.uniform(feat=8, mid=8, n_blocks=1, esa=4)).eval()
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_model(path, net, dipnet_descriptor(net, name="tiny"))
    return path


@pytest.fixture
def tiny(tiny_path: Path) -> LoadedModel:
    return load_model(tiny_path)


def _fake_runner(table: dict[tuple[str, str, bool, int], float], calls: list[tuple[Candidate, int]] | None = None
                 ) -> Callable[[Candidate, int], float]:
    def run(cand: Candidate, tile: int) -> float:
        if calls is not None:
            calls.append((cand, tile))
        return table.get((cand.backend, cand.precision, cand.tile_workers, tile), 10.0)

    return run


# --------------------------------------------------------------------------------------- measure


def test_measure_picks_the_fastest_path_then_its_tile(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "physical_cores", lambda: 2)
    cands = [Candidate("torch", "fp32"), Candidate("torch", "bf16"), Candidate("onnx", "fp32")]
    table = {("torch", "fp32", True, 160): 3.0, ("torch", "bf16", True, 160): 1.5, ("onnx", "fp32", True, 160): 2.0,
             ("torch", "bf16", False, 160): 1.8, ("torch", "bf16", True, 320): 1.2}
    calls: list[tuple[Candidate, int]] = []
    choice = measure(tiny, _fake_runner(table, calls), cands, {}, tiles=(160, 320))
    assert (choice.backend, choice.precision, choice.tile_workers) == ("torch", "bf16", True)
    assert choice.tile is None  # the largest measured tile won: the tiler may go as large as memory allows
    assert choice.s_per_mp == pytest.approx(1.2)
    assert "torch bf16" in choice.reason and "onnxruntime fp32 2.00" in choice.reason
    # 3 paths in interleaved rounds, then only the winner is refined: its other threading, its other tile.
    assert len(calls) == 3 * autoselect.PATH_ROUNDS + 2
    assert [c.precision for c, _ in calls[:6]] == ["fp32", "bf16", "fp32"] * 2  # round by round, not path by path

    table[("torch", "bf16", True, 320)] = 9.0  # now the small tile is better
    choice = measure(tiny, _fake_runner(table), cands, {}, tiles=(160, 320))
    assert choice.tile == 160 and "160 px tiles" in choice.reason


def test_close_paths_are_compared_at_the_tilers_own_tile(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """What the AVX2 EPYC did: torch fp32 ties at 160 px and wins at 320, but the tiler runs 512 px tiles."""
    from dipnet_core.engine.upscaler import CPU_TILE_SIZE

    assert autoselect.TILE_CANDIDATES[-1] == CPU_TILE_SIZE  # "large tiles" means the size the tiler runs
    monkeypatch.setattr(hardware, "physical_cores", lambda: 2)
    cands = [Candidate("torch", "fp32"), Candidate("onnx", "fp32"), Candidate("onnx", "int8")]
    # s per useful MP as measured there (int8 made slow enough to fall outside the margin).
    table = {("torch", "fp32", True, 160): 29.5, ("onnx", "fp32", True, 160): 30.6,
             ("onnx", "int8", True, 160): 40.0, ("torch", "fp32", False, 160): 47.5,
             ("torch", "fp32", True, 320): 7.2, ("onnx", "fp32", True, 320): 8.5,
             ("torch", "fp32", True, 512): 9.6, ("onnx", "fp32", True, 512): 6.3,
             ("onnx", "int8", True, 512): 1.0}
    calls: list[tuple[Candidate, int]] = []
    choice = measure(tiny, _fake_runner(table, calls), cands, {}, tiles=autoselect.TILE_CANDIDATES)
    assert (choice.backend, choice.precision, choice.tile) == ("onnx", "fp32", None)
    assert choice.s_per_mp == pytest.approx(6.3)
    assert "close at 160 px" in choice.reason and "torch fp32 9.60" in choice.reason
    # The winner at every larger tile, the other close path at the tiler's tile, int8 (1.36x slower
    # at 160 px) never beyond the first; then the winner's other threading at its tile.
    large = [(c.backend, c.precision, c.tile_workers, t) for c, t in calls if t > 160]
    assert large == [("torch", "fp32", True, 320), ("torch", "fp32", True, 512), ("onnx", "fp32", True, 512),
                     ("onnx", "fp32", False, 512)]

    # Where torch keeps its lead at the middle tile only, it wins with that tile, not "as large as possible".
    table[("onnx", "fp32", True, 512)] = 8.0
    choice = measure(tiny, _fake_runner(table), cands, {}, tiles=autoselect.TILE_CANDIDATES)
    assert (choice.backend, choice.tile) == ("torch", 320)


class _SleepyBackend:
    """Just enough of a Backend for BackendRunner: counts runs, each takes ``seconds``."""

    in_channels, grid_aware, workers = 3, False, 1

    def __init__(self, seconds: float) -> None:
        self.seconds, self.runs = seconds, 0

    def init_worker(self) -> None:
        pass

    def workers_ready(self) -> None:
        pass

    def run(self, x: np.ndarray, grid: object = None) -> np.ndarray:
        import time

        self.runs += 1
        time.sleep(self.seconds)
        return x


def test_long_timing_batches_run_once_after_the_warm_up(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = _SleepyBackend(0.02)
    runner = autoselect.BackendRunner(tiny, lambda _c: backend)  # type: ignore[arg-type,return-value]
    monkeypatch.setattr(autoselect, "LONG_BATCH_S", 10.0)
    runner(Candidate("onnx", "fp32"), 64)
    assert backend.runs == 3  # warm-up, then the best of two
    monkeypatch.setattr(autoselect, "LONG_BATCH_S", 0.01)
    backend.runs = 0
    s_per_mp = runner(Candidate("onnx", "fp32"), 64)
    assert backend.runs == 2  # warm-up, then one: a long batch is its own average
    assert s_per_mp > 0.02 / (64 * 64 * autoselect.useful_fraction(64, 0)) * 1e6 * 0.5


def test_a_burst_of_other_work_in_one_round_does_not_decide(tiny: LoadedModel) -> None:
    """Another process takes the CPU while onnxruntime is timed in the first round: its second round counts."""
    seen: list[str] = []

    def run(cand: Candidate, tile: int) -> float:
        seen.append(cand.backend)
        if cand.backend == "onnx" and seen.count("onnx") == 1:
            return 91.3  # the burst (what a loaded 2-core machine really did to one 160 px timing)
        return {"onnx": 5.2, "torch": 7.3}[cand.backend]

    choice = measure(tiny, run, [Candidate("torch", "fp32"), Candidate("onnx", "fp32")], {}, tiles=(160,))
    assert choice.backend == "onnx" and choice.s_per_mp == pytest.approx(5.2)
    assert choice.timings["onnxruntime fp32 (1 thread per tile) @160"] == pytest.approx(5.2)


def test_measure_threading_alternative_can_win(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "physical_cores", lambda: 4)
    table = {("onnx", "fp32", True, 160): 2.0, ("onnx", "fp32", False, 160): 1.0}
    choice = measure(tiny, _fake_runner(table), [Candidate("onnx", "fp32")], {}, tiles=(160,))
    assert choice.tile_workers is False and choice.tile is None


def test_a_failing_candidate_is_skipped_and_reported(tiny: LoadedModel) -> None:
    def run(cand: Candidate, tile: int) -> float:
        if cand.backend == "torch":
            raise RuntimeError("kernel missing")
        return 2.0

    choice = measure(tiny, run, [Candidate("torch", "fp32"), Candidate("onnx", "fp32")], {}, tiles=(160,))
    assert choice.backend == "onnx"
    assert any("kernel missing" in why for why in choice.excluded.values())


# ------------------------------------------------------------------------------ candidates by CPU


def test_avx2_only_cpu_does_not_time_bf16(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    cands, excluded = candidate_paths(tiny)
    assert Candidate("torch", "bf16") not in cands
    assert {Candidate("torch", "fp32"), Candidate("onnx", "fp32")} <= set(cands)
    assert "native bf16" in excluded["torch bf16"]
    assert "no int8 twin" in excluded["onnxruntime int8"]
    rule = rule_choice(tiny)
    assert (rule.backend, rule.precision) == ("onnx", "fp32") and rule.reason.startswith("rules")


def test_avx512_bf16_cpu_times_bf16(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cpu(monkeypatch, AVX512_BF16)
    cands, _ = candidate_paths(tiny)
    assert Candidate("torch", "bf16") in cands
    rule = rule_choice(tiny)
    assert (rule.backend, rule.precision) == ("torch", "bf16")


def _twin_with_loss(model_path: Path, loss_db: float) -> Path:
    """A real int8 twin of the tiny model (quantized on its own crops) recording ``loss_db``."""
    import onnx

    from dipnet_core.export.int8 import QUALITY_KEY, quantize_int8
    from dipnet_core.export.onnx_export import onnx_to_bytes

    rng = np.random.default_rng(0)
    crops = [rng.random((32, 32, 3), dtype=np.float32) for _ in range(2)]
    data = quantize_int8(onnx_to_bytes(load_model(model_path), grid_aware=True), crops)
    proto = onnx.load_from_string(data)
    proto.metadata_props.add(key=QUALITY_KEY, value=f'{{"loss_db": {{"Set5": {loss_db}, "Set14": 0.001}}}}')
    twin = model_path.with_name(model_path.stem + ".int8.onnx")
    twin.write_bytes(proto.SerializeToString())
    return twin


def test_int8_is_a_candidate_only_within_the_quality_bound(tmp_path: Path, tiny_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(tiny_path.read_bytes())
    _twin_with_loss(path, 0.08)
    cands, excluded = candidate_paths(load_model(path))
    assert Candidate("onnx", "int8") not in cands
    assert "bound" in excluded["onnxruntime int8"] and "+0.080" in excluded["onnxruntime int8"]

    _twin_with_loss(path, 0.03)
    model = load_model(path)
    cands, _ = candidate_paths(model)
    assert Candidate("onnx", "int8") in cands
    # int8 measured fastest: create_backend runs the twin and says why.
    table = {("onnx", "int8", True, 160): 0.5}
    choice = measure(model, _fake_runner(table), cands, {}, tiles=(160,))
    assert choice.precision == "int8" and "int8 loss Set14 +0.001 dB, Set5 +0.030 dB" in choice.reason


# ------------------------------------------------------------------------------------------- cache


def test_cache_hit_and_miss_by_key(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch, _isolated_cache: Path
                                   ) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY, "CPU A")
    calls: list[tuple[Candidate, int]] = []
    table = {("onnx", "fp32", True, 160): 1.0}
    first = choose(tiny, lambda: _fake_runner(table, calls))
    assert not first.cached and calls and (_isolated_cache / "engine-choices.json").is_file()
    n = len(calls)

    again = choose(tiny, lambda: _fake_runner(table, calls))
    assert again.cached and len(calls) == n and again.reason.startswith("cached: ")
    assert (again.backend, again.precision) == (first.backend, first.precision)

    _fake_cpu(monkeypatch, AVX2_ONLY, "CPU B")  # another CPU model: measure again
    assert not choose(tiny, lambda: _fake_runner(table, calls)).cached and len(calls) > n
    n = len(calls)
    real_versions = autoselect._library_versions
    monkeypatch.setattr(autoselect, "_library_versions", lambda: {**real_versions(), "onnxruntime": "0.0"})
    assert not choose(tiny, lambda: _fake_runner(table, calls)).cached and len(calls) > n


def test_cache_key_follows_the_model_content(tmp_path: Path, tiny_path: Path) -> None:
    import torch

    a = load_model(tiny_path)
    torch.manual_seed(1)
    other = DIPNet(DIPNetConfig.uniform(feat=8, mid=8, n_blocks=1, esa=4)).eval()
    path = tmp_path / "other.safetensors"
    save_model(path, other, dipnet_descriptor(other, name="tiny"))
    assert autoselect.cache_key(a) == autoselect.cache_key(load_model(tiny_path))
    assert autoselect.cache_key(a) != autoselect.cache_key(load_model(path))


def test_a_corrupt_cache_file_means_measuring_again(tiny: LoadedModel, _isolated_cache: Path) -> None:
    _isolated_cache.mkdir(parents=True)
    (_isolated_cache / "engine-choices.json").write_text("{not json")
    choice = choose(tiny, lambda: _fake_runner({("onnx", "fp32", True, 160): 1.0}))
    assert not choice.cached and choose(tiny, lambda: _fake_runner({})).cached


# --------------------------------------------------------------------------------- create_backend


def _fake_timings(monkeypatch: pytest.MonkeyPatch, table: dict[tuple[str, str, bool, int], float]) -> None:
    """Real backends are built; only their timing is replaced."""
    def fake_call(self: autoselect.BackendRunner, cand: Candidate, tile: int) -> float:
        self.backend(cand)
        return table.get((cand.backend, cand.precision, cand.tile_workers, tile), 10.0)

    monkeypatch.setattr(autoselect.BackendRunner, "__call__", fake_call)


def test_create_backend_runs_the_measured_fastest(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    _fake_timings(monkeypatch, {("torch", "fp32", True, 160): 1.0, ("onnx", "fp32", True, 160): 2.0})
    backend = create_backend(tiny, device="cpu")
    assert backend.name == "torch" and backend.precision == "fp32"
    assert backend.choice is not None and "torch fp32" in backend.choice.reason
    assert backend.preferred_tile == 160

    monkeypatch.setattr(hardware, "cpu_model", lambda: "Another CPU")
    _fake_timings(monkeypatch, {("torch", "fp32", True, 160): 3.0, ("onnx", "fp32", True, 160): 2.0})
    backend = create_backend(tiny, device="cpu")
    assert backend.name == "onnxruntime" and backend.choice is not None
    out = TiledUpscaler(backend).upscale(np.full((20, 24, 3), 0.5, np.float32))
    assert out.shape == (80, 96, 3)


def test_explicit_arguments_override_the_measurement(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    _fake_timings(monkeypatch, {("torch", "fp32", True, 160): 0.1})
    measured: list[str] = []
    real_choose = autoselect.choose
    monkeypatch.setattr(autoselect, "choose", lambda *a, **k: measured.append("x") or real_choose(*a, **k))
    assert create_backend(tiny, backend="onnx", device="cpu").name == "onnxruntime"
    assert create_backend(tiny, device="cpu", precision="fp32").precision == "fp32"
    assert create_backend(tiny, device="cpu", measure=False).choice.reason.startswith("rules")  # type: ignore[union-attr]
    assert not measured
    # The tile override stays with the caller: TiledUpscaler(tile_size=...) wins over the preferred tile.
    backend = create_backend(tiny, device="cpu")
    assert measured and backend.preferred_tile == 160
    assert TiledUpscaler(backend).tile_size_for(900, 900) == 160  # the measured tile, when none is given
    assert TiledUpscaler(backend, tile_size=200).tile_size_for(900, 900) == 200


def test_int8_precision_needs_a_twin(tiny: LoadedModel) -> None:
    from dipnet_core.engine import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="dipnet export --int8"):
        create_backend(tiny, precision="int8")
    with pytest.raises(BackendUnavailable, match="onnxruntime"):
        create_backend(tiny, backend="torch", precision="int8")


def test_real_measurement_on_a_tiny_model(tiny: LoadedModel) -> None:
    backend = create_backend(tiny, device="cpu")
    choice = backend.choice
    assert choice is not None and not choice.cached and choice.s_per_mp and choice.s_per_mp > 0
    assert all(v > 0 for v in choice.timings.values()) and len(choice.timings) >= 2
    assert choice.reason.startswith("measured on ")
    again = create_backend(tiny, device="cpu")
    assert again.choice is not None and again.choice.cached
    assert (again.name, again.precision) == (backend.name, backend.precision)


def test_int8_twin_runs_and_stays_close(tmp_path: Path, tiny_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    path.write_bytes(tiny_path.read_bytes())
    twin = _twin_with_loss(path, 0.01)
    model = load_model(path)
    int8 = create_backend(model, precision="int8")
    fp32 = create_backend(model, backend="onnx", device="cpu", precision="fp32")
    assert int8.precision == "int8" and "int8" in int8.describe()
    img = np.asarray(Image.new("RGB", (40, 30), (90, 140, 200)), dtype=np.float32) / 255.0
    a, b = TiledUpscaler(int8).upscale(img), TiledUpscaler(fp32).upscale(img)
    assert a.shape == b.shape == (120, 160, 3)
    assert float(np.abs(a - b).mean()) < 0.05  # random tiny weights: loose, but far from broken
    # The twin file itself loads and runs as int8 without a precision argument.
    direct = create_backend(load_model(twin), measure=False)
    assert direct.precision == "int8"


# ---------------------------------------------------------------------------- the user is told


def test_a_fresh_measurement_is_announced_once(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    _fake_timings(monkeypatch, {("onnx", "fp32", True, 160): 1.0})
    heard: list[str] = []
    remove = autoselect.add_measurement_listener(lambda message, _done: heard.append(message))
    try:
        create_backend(tiny, device="cpu")
        assert len(heard) == 2 and heard[0] == autoselect.MEASURING_MESSAGE
        assert heard[1].startswith(autoselect.MEASURED_PREFIX) and "onnxruntime fp32" in heard[1]
        create_backend(tiny, device="cpu")  # cached: nothing to wait for, nothing said
        assert len(heard) == 2
    finally:
        remove()
    monkeypatch.setattr(hardware, "cpu_model", lambda: "Another CPU")
    create_backend(tiny, device="cpu")  # measured again, but nobody listens any more
    assert len(heard) == 2


def test_a_failing_listener_does_not_stop_the_measurement(tiny: LoadedModel, monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    _fake_cpu(monkeypatch, AVX2_ONLY)
    _fake_timings(monkeypatch, {("onnx", "fp32", True, 160): 1.0})

    def broken(_message: str, _done: bool) -> None:
        raise RuntimeError("the status bar is gone")

    remove = autoselect.add_measurement_listener(broken)
    try:
        backend = create_backend(tiny, device="cpu")
    finally:
        remove()
    assert backend.choice is not None and backend.choice.reason.startswith("measured on")


def test_cli_says_it_is_measuring(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from dipnet_core.cli.parser import main

    _fake_cpu(monkeypatch, AVX2_ONLY)
    _fake_timings(monkeypatch, {("onnx", "fp32", True, 160): 1.0})
    src = tmp_path / "in.png"
    Image.fromarray(np.full((20, 24, 3), 128, np.uint8)).save(src)
    listening = list(autoselect._listeners)
    assert main(["upscale", str(src), "--model", str(tiny_path), "-o", str(tmp_path / "a.png")]) == 0
    first = capsys.readouterr().err
    assert autoselect.MEASURING_MESSAGE in first and autoselect.MEASURED_PREFIX in first
    assert main(["upscale", str(src), "--model", str(tiny_path), "-o", str(tmp_path / "b.png")]) == 0
    assert autoselect.MEASURING_MESSAGE not in capsys.readouterr().err  # the choice is cached now
    assert autoselect._listeners == listening  # the command removed its own listener
