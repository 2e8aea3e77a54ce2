#!/usr/bin/env python3
"""Build a small image domain unlike photos: rendered text and UI screenshots, for benchmarks/bench_adapt.py.

Each image is a fake application window (at 200 % UI scale by default) drawn with Pillow from the TrueType /
OpenType fonts installed under /usr/share/fonts (Debian: fonts-dejavu-core and
whatever else is there): a title bar, a menu line, buttons, a text field,
paragraphs in several fonts, sizes and colours, list rows and small icons. It is
deterministic (one seed per image) and takes a few seconds for 70 images.

    python scripts/build_adapt_domain.py --out /tmp/adapt-domain --train 50 --test 20

writes OUT/train/*.png and OUT/test/*.png (different seeds, so no image is in both).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WORDS = (
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "settings", "file", "edit", "view",
    "help", "open", "save", "close", "cancel", "apply", "window", "tools", "options", "preview",
    "export", "import", "batch", "model", "scale", "image", "folder", "quality", "value", "network",
    "upscale", "train", "status", "ready", "error", "warning", "1024", "x4", "PSNR", "31.8", "dB",
    "progress", "step", "total", "remaining", "minutes", "seconds", "sharpen", "detail", "texture",
    "edge", "pixel", "channel", "colour", "gamma",
)

FONT_ROOTS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


def find_fonts() -> list[Path]:
    fonts: list[Path] = []
    for root in FONT_ROOTS:
        if root.is_dir():
            fonts += sorted(p for p in root.rglob("*") if p.suffix.lower() in (".ttf", ".otf"))
    usable = []
    for p in fonts:
        try:
            f = ImageFont.truetype(str(p), 16)
            family = f.getname()[0].lower()
            # Symbol and dingbat fonts map letters to pictograms (or to one "missing glyph" box).
            if any(w in family for w in ("symbol", "dingbat", "d050000l")) or \
                    bytes(f.getmask("A")) == bytes(f.getmask("g")):
                continue
        except OSError:
            continue
        usable.append(p)
    return usable


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _colour(rng: random.Random, dark: bool) -> tuple[int, int, int]:
    lo, hi = (0, 90) if dark else (170, 255)
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def render(seed: int, fonts: list[Path], size: tuple[int, int], zoom: float = 2.0) -> Image.Image:
    """One fake window of ``size`` pixels, laid out at ``zoom`` (a HiDPI screenshot: 2 = 200 %).

    Deterministic for (seed, fonts, size, zoom). At 100 % the smallest text would be 2-4 px
    tall after a x4 reduction, which no upscaler can recover; at 200 % it is 5-9 px.
    """
    rng = random.Random(seed)
    w, h = size

    def z(v: float) -> int:
        return round(v * zoom)

    dark_theme = rng.random() < 0.3
    bg = _colour(rng, dark_theme)
    fg = _colour(rng, not dark_theme)
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)

    def font(px: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(str(rng.choice(fonts)), z(px))

    # title bar and menu
    bar = rng.randint(18, 28)
    d.rectangle([0, 0, w, z(bar)], fill=_colour(rng, True))
    d.text((z(8), z(bar / 2)), _text(rng, 3).title(), font=font(bar - 8), fill=(240, 240, 240), anchor="lm")
    for i, x in enumerate(range(w - 3 * z(bar), w, z(bar))):
        d.ellipse([x + z(4), z(4), x + z(bar - 4), z(bar - 4)],
                  fill=[(230, 80, 70), (240, 190, 60), (90, 200, 90)][i % 3])
    y = z(bar + 4)
    x = z(8)
    menu_font = font(rng.randint(11, 15))
    for word in rng.sample(WORDS[:12], 5):
        d.text((x, y), word.title(), font=menu_font, fill=fg)
        x += int(d.textlength(word.title(), font=menu_font)) + z(14)
    y += z(22)
    d.line([0, y, w, y], fill=_colour(rng, not dark_theme), width=z(1))
    y += z(8)
    # a sidebar list with icons
    side = rng.randint(w // 5, w // 3)
    row_font = font(rng.randint(10, 14))
    for k in range(rng.randint(5, 12)):
        ry = y + k * z(20)
        if ry > h - z(20):
            break
        if k == 1:
            d.rectangle([0, ry - z(2), side, ry + z(16)], fill=_colour(rng, dark_theme))
        icon = _colour(rng, rng.random() < 0.5)
        if rng.random() < 0.5:
            d.rectangle([z(6), ry + z(2), z(18), ry + z(14)], outline=icon, width=z(2))
        else:
            d.polygon([(z(6), ry + z(14)), (z(12), ry + z(2)), (z(18), ry + z(14))], fill=icon)
        d.text((z(24), ry), _text(rng, 2), font=row_font, fill=fg)
    d.line([side, y, side, h], fill=_colour(rng, not dark_theme), width=z(1))
    # content: a text field, buttons, paragraphs
    cx = side + z(10)
    field_h = z(22)
    d.rectangle([cx, y, w - z(10), y + field_h], outline=fg, fill=bg, width=z(1))
    d.text((cx + z(4), y + field_h // 2), _text(rng, 4), font=font(13), fill=fg, anchor="lm")
    y += field_h + z(10)
    bx = cx
    for _ in range(rng.randint(2, 4)):
        label = rng.choice(WORDS[:20]).title()
        bf = font(rng.randint(11, 14))
        bw = int(d.textlength(label, font=bf)) + z(18)
        if bx + bw > w - z(10):
            break
        fill = _colour(rng, rng.random() < 0.5)
        d.rounded_rectangle([bx, y, bx + bw, y + z(22)], radius=z(rng.randint(0, 8)), fill=fill, outline=fg,
                            width=z(1))
        light = sum(fill) > 380
        d.text((bx + bw // 2, y + z(11)), label, font=bf, fill=(20, 20, 20) if light else (245, 245, 245),
               anchor="mm")
        bx += bw + z(8)
    y += z(32)
    while y < h - z(14):
        pf = font(rng.randint(9, 18))
        line = _text(rng, rng.randint(4, 12))
        while line and d.textlength(line, font=pf) > w - cx - z(10):
            line = line.rsplit(" ", 1)[0] if " " in line else ""
        d.text((cx, y), line, font=pf, fill=fg if rng.random() < 0.8 else _colour(rng, not dark_theme))
        y += int(pf.size * rng.uniform(1.2, 1.8))
    return img


def build(out: Path, n_train: int, n_test: int, size: tuple[int, int] = (640, 480), seed: int = 0,
          zoom: float = 2.0) -> Path:
    """Write OUT/train and OUT/test (PNG); existing files with the same names are replaced atomically."""
    fonts = find_fonts()
    if not fonts:
        raise SystemExit("no TrueType/OpenType fonts found under /usr/share/fonts; "
                         "install some, e.g. `apt-get install fonts-dejavu-core`")
    for split, count, base in (("train", n_train, seed * 100_000), ("test", n_test, seed * 100_000 + 50_000)):
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = render(base + i, fonts, size, zoom)
            tmp = folder / f".{split}{i:03d}.png.tmp"
            img.save(tmp, format="PNG")
            tmp.replace(folder / f"{split}{i:03d}.png")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--train", type=int, default=50)
    ap.add_argument("--test", type=int, default=20)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--zoom", type=float, default=2.0, help="UI scale: 2 = a 200 %% HiDPI screenshot")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    build(args.out, args.train, args.test, (args.width, args.height), args.seed, args.zoom)
    print(f"wrote {args.train} training and {args.test} test images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
