"""Would OpenVINO's CPU runtime beat onnxruntime for our graphs? (issue 19, AVX2 compute target)

Usage: python benchmarks/bench_openvino.py [--rounds 5] [--size 256] [--threads 1 2]

Needs ``pip install openvino`` (not a dependency of the project: this benchmark decides whether
it should be one). The same ONNX graphs the app runs (the engine's grid-aware tiling graphs: the
built-in model's ``.grid.onnx`` and ``.int8.onnx`` twin, and the authors' weights exported with
``dipnet export --grid-aware``) go through onnxruntime's CPU provider (fp32 with the app's
blocked-layout pass, as the engine runs it, and int8) and through OpenVINO's CPU plugin (fp32
precision hint, and the int8 twin's QDQ graph as OpenVINO compiles it), on one real photo crop
(Set14 ``baboon``, top-left ``size`` px), interleaved round by round. Reports the median seconds
per input megapixel, each path's speed as a ratio to onnxruntime fp32 in the same run, and the
largest difference from onnxruntime fp32's output in levels of 255; records the CPU. Writes
``benchmarks/results/openvino.json`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import SHARED, WEIGHTS, cpu_record

from dipnet_core.engine.backends import cpu_graph
from dipnet_core.engine.grid import TileGrid, grid_matrices
from dipnet_core.resources import builtin_model_path

Runner = Callable[[], np.ndarray]


def graphs(tmp: Path) -> dict[str, dict[str, Path]]:
    builtin = builtin_model_path()
    found: dict[str, dict[str, Path]] = {}
    if builtin is not None:
        base = builtin.with_suffix("")
        found["built-in"] = {"fp32": base.with_suffix(".grid.onnx"), "int8": base.with_suffix(".int8.onnx")}
    authors = tmp / "authors.grid.onnx"
    code = "import sys; from dipnet_core.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, "export", str(WEIGHTS), "-o", str(authors), "--grid-aware"],
                   check=True, capture_output=True, cwd=REPO)
    found["authors' 44/38"] = {"fp32": authors}
    return {name: {k: p for k, p in g.items() if p.is_file()} for name, g in found.items()}


def runners(paths: dict[str, Path], x: np.ndarray, threads: int) -> dict[str, Runner]:
    import onnxruntime as ort
    import openvino as ov

    h, w = x.shape[2:]
    ry, rx_t = (m.astype(np.float32) for m in grid_matrices(TileGrid(0, 0, h, w), h, w))
    feeds = {"input": x, "ry": ry, "rx_t": rx_t}
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    core = ov.Core()
    out: dict[str, Runner] = {}
    for prec, path in paths.items():
        data = path.read_bytes()
        if prec == "fp32":
            data, _ = cpu_graph.optimize_for_cpu(data)  # what the engine runs on this CPU
        session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        out[f"onnxruntime {prec}"] = lambda s=session: s.run(None, feeds)[0]
        model = core.read_model(str(path))
        model.reshape({"input": list(x.shape), "ry": list(ry.shape), "rx_t": list(rx_t.shape)})
        compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                     "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        out[f"OpenVINO {prec}"] = lambda r=request, c=compiled: r.infer(feeds)[c.output(0)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "openvino.json")
    args = ap.parse_args()
    try:
        import openvino
    except ImportError:
        raise SystemExit("this benchmark needs OpenVINO: pip install openvino") from None

    image = SHARED / "benchmarks" / "Set14" / "baboon.png"
    rgb = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32)[: args.size, : args.size] / 255.0
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])
    mp = x.shape[2] * x.shape[3] / 1e6
    cpu = cpu_record()
    print(f"{cpu['cpu']} ({cpu['kind']}), OpenVINO {openvino.__version__}, {image.name} crop "
          f"{x.shape[3]}x{x.shape[2]}, {args.rounds} rounds")
    print(f"{'model':>15} {'threads':>7} {'path':>18} {'s/MP':>7} {'x ort fp32':>10} {'max diff':>9}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, paths in graphs(Path(tmp)).items():
            for threads in args.threads:
                run = runners(paths, x, threads)
                ref = run["onnxruntime fp32"]()
                diffs = {k: float(np.abs(f() - ref).max() * 255) for k, f in run.items()}  # also warms up
                times: dict[str, list[float]] = {k: [] for k in run}
                for _ in range(args.rounds):
                    for k, f in run.items():
                        t0 = time.perf_counter()
                        f()
                        times[k].append((time.perf_counter() - t0) / mp)
                base = statistics.median(times["onnxruntime fp32"])
                for k, samples in times.items():
                    med = statistics.median(samples)
                    rows.append({"model": model, "threads": threads, "path": k, "median_s_per_mp": med,
                                 "x_onnxruntime_fp32": base / med, "max_diff_levels": diffs[k],
                                 "samples_s_per_mp": samples})
                    print(f"{model:>15} {threads:>7} {k:>18} {med:>7.2f} {base / med:>10.2f} {diffs[k]:>9.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": cpu, "openvino": openvino.__version__, "image": image.name,
                                    "size": args.size, "rounds": args.rounds, "date": time.strftime("%Y-%m-%d %H:%M"),
                                    "rows": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
