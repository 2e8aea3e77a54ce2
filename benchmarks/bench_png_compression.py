"""PNG encode time and size by compression level: Pillow's encoder against ours (``io/stream_png.py``).

    nice python benchmarks/bench_png_compression.py            # Pillow 0, 1, 3, 6; ours 0, 1, 4
    nice python benchmarks/bench_png_compression.py --all      # every level 0-9 of both (Pillow 8-9: minutes)

The image is a real upscaled photo: the centre 810x810 of a wallpaper-set photo through the built-in
model (x4: 3240x3240, 10.5 MP, 8-bit RGB), the size issue 19 measured. Each encode writes to memory,
best of two. Prints a table and writes ``benchmarks/results/png_compression.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

PHOTO = "/work/datasets/wallpapers/val/mate-backgrounds__mate_nature_Storm.png"
OUT_JSON = REPO / "benchmarks" / "results" / "png_compression.json"


def upscaled_photo() -> tuple[np.ndarray, str]:
    from PIL import Image

    from dipnet_core.engine import TiledUpscaler, create_backend
    from dipnet_core.io import to_uint8
    from dipnet_core.models import load_model
    from dipnet_core.resources import builtin_model_path

    with Image.open(PHOTO) as im:
        rgb = im.convert("RGB")
        x0, y0 = (rgb.width - 810) // 2, (rgb.height - 810) // 2
        x = np.asarray(rgb.crop((x0, y0, x0 + 810, y0 + 810)), np.float32) / 255.0
    with TiledUpscaler(create_backend(load_model(builtin_model_path()))) as up:
        return to_uint8(up.upscale(x)), f"{Path(PHOTO).stem}, centre 810x810, x4 by the built-in model"


def _best_of_two(encode: Any) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(2):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        encode(buf)
        best = min(best, time.perf_counter() - t0)
        size = buf.tell()
    return best, size


def main() -> None:
    from bench_big_input import cpu_info
    from PIL import Image

    from dipnet_core.io.stream_png import DEFAULT_PNG_COMPRESSION, write_png

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="every level 0-9 of both encoders")
    args = ap.parse_args()
    pillow_levels = range(10) if args.all else (0, 1, 3, 6)
    our_levels = range(10) if args.all else (0, 1, 4)  # 1-3 and 4-8 give the same files; 9 takes minutes
    pixels, what = upscaled_photo()
    mp = pixels.shape[0] * pixels.shape[1] / 1e6
    rows: list[dict[str, Any]] = []
    pil = Image.fromarray(pixels)
    for level in pillow_levels:
        s, n = _best_of_two(lambda buf, lv=level: pil.save(buf, format="PNG", compress_level=lv))
        rows.append({"encoder": "Pillow", "level": level, "seconds": s, "mb": n / 2**20})
        print(rows[-1], flush=True)
    for level in our_levels:
        s, n = _best_of_two(lambda buf, lv=level: write_png(buf, pixels, compress_level=lv))
        rows.append({"encoder": "ours", "level": level, "seconds": s, "mb": n / 2**20,
                     "default": level == DEFAULT_PNG_COMPRESSION})
        print(rows[-1], flush=True)
    result = {"cpu": cpu_info(), "date": time.strftime("%Y-%m-%d %H:%M"), "image": what,
              "megapixels": mp, "rows": rows}
    OUT_JSON.parent.mkdir(parents=True, exist_ok=True)
    OUT_JSON.write_text(json.dumps(result, indent=1))
    print(f"\n{result['cpu']['model']}; {what} ({mp:.1f} MP)")
    print("| encoder | level | seconds | MB |\n|---|---:|---:|---:|")
    for r in rows:
        mark = " (default)" if r.get("default") else ""
        print(f"| {r['encoder']} | {r['level']}{mark} | {r['seconds']:.2f} | {r['mb']:.2f} |")
    print(f"wrote {OUT_JSON}")


if __name__ == "__main__":
    main()
