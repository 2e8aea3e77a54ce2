"""Does zero-padding ragged widths to the CPU's conv block pay off on the torch path?

Usage: python benchmarks/bench_pad_widths.py [--rounds 7] [--tile 256]

The authors' 44/38 weights run through the app's torch backend (channels_last,
oneDNN-fused where available, tiled) three ways, interleaved round by round so
background load hits each alike: as they are, with every feature/mid width padded
to a multiple of 8 (48/40) and of 16 (48/48) by :func:`dipnet_core.prune.pad_dipnet`.
fp32 always, bf16 too where the CPU has it natively. Reports seconds per input
megapixel and the ratio to the unpadded model in the same run, checks that the
outputs agree, and records the CPU. Writes benchmarks/results/pad_widths.json
(``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import SHARED, WEIGHTS, cpu_record  # noqa: E402

from dipnet_core.engine import TiledUpscaler, hardware  # noqa: E402
from dipnet_core.engine.backends.torch_backend import TorchBackend  # noqa: E402
from dipnet_core.models import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--threads", type=int, default=hardware.physical_cores())
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "pad_widths.json")
    args = ap.parse_args()

    model = load_model(WEIGHTS)
    image = SHARED / "benchmarks" / "Set14" / "baboon.png"
    rgb = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32) / 255.0
    mp = rgb.shape[0] * rgb.shape[1] / 1e6
    precisions = ["fp32"] + (["bf16"] if hardware.has_native_bf16() else [])
    ups = {(p, pad): TiledUpscaler(TorchBackend(model, "cpu", p, threads=args.threads, pad_channels=pad),
                                   tile_size=args.tile)
           for p in precisions for pad in (0, 8, 16)}
    times: dict[tuple[str, int], list[float]] = {k: [] for k in ups}
    outputs: dict[tuple[str, int], np.ndarray] = {}
    for r in range(args.rounds + 1):  # round 0 warms up
        for key, up in ups.items():
            t0 = time.perf_counter()
            out = up.upscale(rgb)
            if r:
                times[key].append((time.perf_counter() - t0) / mp)
            outputs[key] = out

    cpu = cpu_record()
    print(f"{cpu['cpu']} ({cpu['kind']}), {args.threads} threads, tile {args.tile}, {args.rounds} rounds, "
          f"{image.name} {rgb.shape[1]}x{rgb.shape[0]}")
    print(f"{'precision':>9} {'widths':>14} {'median s/MP':>11} {'min s/MP':>9} {'x unpadded':>10} {'max diff':>9}")
    rows = []
    for (prec, pad), samples in times.items():
        base = statistics.median(times[(prec, 0)])
        med = statistics.median(samples)
        diff = float(np.abs(outputs[(prec, pad)] - outputs[(prec, 0)]).max())
        widths = ups[(prec, pad)].backend.describe()
        label = "44/38" if pad == 0 else f"padded to {pad}"
        rows.append({"precision": prec, "pad_to": pad, "backend": widths, "median_s_per_mp": med,
                     "min_s_per_mp": min(samples), "speedup_vs_unpadded": base / med,
                     "max_abs_diff_vs_unpadded": diff, "samples_s_per_mp": samples})
        print(f"{prec:>9} {label:>14} {med:>11.3f} {min(samples):>9.3f} {base / med:>10.2f} {diff:>9.2e}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": cpu, "tile": args.tile, "threads": args.threads,
                                    "rounds": args.rounds, "image": str(image), "results": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
