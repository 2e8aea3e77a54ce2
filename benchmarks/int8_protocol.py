"""The int8 benchmarks' shared protocol: onnxruntime sessions, Set5/Set14 PSNR-Y, interleaved timing.

Used by ``int8_ptq.py``, ``int8_qat.py`` and ``scripts/make_int8_twin.py`` so the three measure the
same way: scores on the Y channel with a 4 px border, MATLAB-bicubic LR; speed as the median of
per-round fp32/int8 ratios on one 256x256 input (rounds interleaved, so a noisy neighbour hits both).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dipnet_core.export.int8 import graph_feeds
from dipnet_core.metrics import psnr
from dipnet_core.resize import bicubic_downscale_uint8, modcrop

SHARED = Path(os.environ.get("DIPNET_SHARED_DIR", REPO.parent / "shared"))
CALIBRATION = [SHARED / "training-data", Path(os.environ.get("DIPNET_WALLPAPERS_DIR", "/work/datasets/wallpapers/train"))]
BOUND_DB = 0.05


def ort_session(data: bytes, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def upscale_uint8(session: Any, lr: np.ndarray) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    y = session.run(None, graph_feeds(names, lr.astype(np.float32) / 255.0))[0][0]
    return np.clip(np.rint(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def test_sets() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    out = {}
    for name in ("Set5", "Set14"):
        pairs = []
        for path in sorted((SHARED / "benchmarks" / name).glob("*.png")):
            with Image.open(path) as im:
                hr = modcrop(np.asarray(im.convert("RGB")), 4)
            pairs.append((bicubic_downscale_uint8(hr, 4), hr))
        out[name] = pairs
    return out


def score(session: Any, sets: dict[str, list[tuple[np.ndarray, np.ndarray]]]) -> dict[str, float]:
    return {name: float(np.mean([psnr(upscale_uint8(session, lr), hr, border=4) for lr, hr in pairs]))
            for name, pairs in sets.items()}


def speed_ratio(fp32: Any, int8: Any, rounds: int) -> tuple[float, float, float]:
    x = {n: v for n, v in graph_feeds([i.name for i in fp32.get_inputs()],
                                      np.random.default_rng(0).random((256, 256, 3), np.float32)).items()}
    for s in (fp32, int8):
        s.run(None, x)
    ratios, t32, t8 = [], [], []
    for _ in range(rounds):
        a = time.perf_counter()
        fp32.run(None, x)
        b = time.perf_counter()
        int8.run(None, x)
        c = time.perf_counter()
        t32.append(b - a)
        t8.append(c - b)
        ratios.append((b - a) / (c - b))
    return statistics.median(ratios), min(t32), min(t8)
