"""``dipnet bench``: upscaling speed of every usable backend configuration on this machine."""

from __future__ import annotations

import argparse
import time
from typing import Any

from .common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    add_engine_args,
    add_model_arg,
    load,
    measurement_notice,
    positive_float,
    positive_int,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure upscaling speed on this machine")
    add_model_arg(p)
    p.add_argument("--size", type=positive_int, default=256, help="input side in pixels (default 256)")
    p.add_argument("--seconds", type=positive_float, default=5.0, help="time per configuration (default 5)")
    add_engine_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..engine import TiledUpscaler, available_backends, create_backend

    loaded = load(args.model)
    entries = [e for e in available_backends() if e["available"]
               and args.backend in ("auto", e["backend"]) and args.device in ("auto", e["device"])]
    # onnxruntime's CUDA and TensorRT providers share (backend, device, precision); create_backend picks one.
    configs = list(dict.fromkeys((e["backend"], e["device"], p) for e in entries for p in e["precisions"]
                                 if args.precision in ("auto", p)))
    if not configs:
        raise CliError(f"no usable backend here for --backend {args.backend} --device {args.device} "
                       f"--precision {args.precision}", EXIT_USAGE)
    pixels = np.random.default_rng(0).random((args.size, args.size, loaded.descriptor.in_channels),
                                             dtype=np.float32)
    megapixels = args.size * args.size / 1e6
    print(f"model: {loaded.descriptor.summary()}")
    print(f"input {args.size}x{args.size} ({megapixels:.3f} MP), about {args.seconds:g} s per configuration")
    auto = None
    if args.backend == "auto" and args.precision == "auto" and args.device in ("auto", "cpu"):
        with measurement_notice():
            auto = create_backend(loaded, device=args.device)
        print(f"auto: {auto.describe()}: {auto.choice.reason if auto.choice else 'explicit'}")
    int8_check = auto.choice.int8_check if auto is not None and auto.choice is not None else {}
    out_megapixels = megapixels * loaded.descriptor.scale ** 2
    print(f"output {args.size * loaded.descriptor.scale}x{args.size * loaded.descriptor.scale} "
          f"({out_megapixels:.3f} MP); speed in output megapixels per second, as the app shows it")
    print(f"{'s/out MP':>9} {'out MP/s':>9} {'runs':>5}  backend")
    for name, device, precision in configs:
        try:
            backend = create_backend(loaded, backend=name, device=device, precision=precision)
        except (ValueError, RuntimeError) as exc:  # BackendUnavailable, or a backend that fails to build
            print(f"{'-':>9} {'-':>9} {'-':>5}  {name} {device} {precision}: unavailable: {exc}")
            continue
        with TiledUpscaler(backend, tile_size=args.tile) as up:
            up.upscale(pixels)  # warm-up: lazy init, kernel selection, allocator growth
            times: list[float] = []
            deadline = time.monotonic() + args.seconds
            while not times or time.monotonic() < deadline:
                t0 = time.perf_counter()
                up.upscale(pixels)
                times.append(time.perf_counter() - t0)
        s_per_out_mp = float(np.median(times)) / out_megapixels
        # The backend's description goes last and whole: cut to a column it lost its tail.
        note = ""
        if precision == "int8" and int8_check and not int8_check.get("ok", True):
            note = " (asked for explicitly; auto rejects it here, see above)"
        print(f"{s_per_out_mp:9.3f} {1 / s_per_out_mp:9.2f} {len(times):5d}  {backend.describe()}{note}")
    return EXIT_OK
