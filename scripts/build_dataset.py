#!/usr/bin/env python3
"""Build a super-resolution training set of real photographs from Debian wallpaper packages.

Recipe
------
1. For every package (``--packages`` or :data:`DEFAULT_PACKAGES`) look up its size with
   ``apt-cache show``; run ``apt-get update`` once only when a package is not found.  Abort when the
   total would exceed ``--max-download-mb``.
2. ``apt-get download`` each ``.deb`` into ``--cache`` (nothing is installed) and unpack it with
   ``dpkg-deb -x`` into ``--extract-dir/<package>``.  Both steps are skipped when already done.
3. Collect raster images (jpg, jpeg, png, webp; svg is ignored) below ``usr/share`` whose path has a
   ``wallpaper(s)`` / ``background(s)`` folder (``usr/share/wallpapers``, ``usr/share/backgrounds``,
   ``usr/share/lxqt/wallpapers``, ...).
4. Drop images whose short side is below ``--min-size`` and images with real transparency.
5. Deduplicate: an 8x8 average hash of a grayscale thumbnail; images whose hashes differ in at most
   :data:`DUP_MAX_HAMMING` bits, whose aspect ratios agree within :data:`DUP_MAX_ASPECT_DIFF` and
   whose 16x16 RGB thumbnails agree (:data:`DUP_MAX_SIGNATURE_MAD`) are the same picture at several
   resolutions; the one with the most pixels is kept.  In the KDE layout
   ``<Name>/contents/images/<W>x<H>.<ext>`` the files of one folder are sizes/crops of one picture:
   only the largest is kept, and light/dark versions always share a split.  ``--exclude`` globs
   drop sources by hand.
6. Keep photographs, drop flat graphics with the cheap heuristic in :func:`classify` (see there).
7. Write the kept images as 8-bit RGB PNG into ``OUT/train`` and ``OUT/val`` (split by a hash of the
   output name, ``--val-fraction``, at least :data:`MIN_VAL_IMAGES` val images), downscaled with
   Pillow's LANCZOS so that the long side is at most ``--max-side`` (HR preparation, like DIV2K; this
   is not the SR degradation).  Names are ``<package>__<stem>.png``.
8. Write ``OUT/manifest.json``: per source file the package, source path, size, the classifier's
   numbers, kept/dropped and why, split and output file.

All writes are atomic (temp file + ``os.replace``) and a rerun skips outputs that already exist.

Example::

    python scripts/build_dataset.py --out /work/datasets/wallpapers
    python scripts/build_dataset.py --out /tmp/ds --dry-run
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

try:  # the project's one atomic write; a plain checkout run as a script finds it beside scripts/
    from dipnet_core.io.atomic import atomic_output
    from dipnet_core.io.atomic import atomic_write_bytes as _core_atomic_write_bytes
except ImportError:  # pragma: no cover - not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from dipnet_core.io.atomic import atomic_output
    from dipnet_core.io.atomic import atomic_write_bytes as _core_atomic_write_bytes

LOG = logging.getLogger("build_dataset")

# Default packages (Debian bookworm). Sizes are the .deb download sizes seen with `apt-cache show`.
# Graphics-only packages are still cheap to fetch; the classifier drops their images and the
# manifest records why.  Not used: desktop-base / debian-edu-artwork-* (wallpapers are SVG only),
# enlightenment-data (400 MB, backgrounds are .edj containers), xfce4-artwork / budgie-backgrounds /
# deepin-wallpapers / ubuntu-wallpapers (not in bookworm).
DEFAULT_PACKAGES: dict[str, str] = {
    # ~94 MB: KDE Plasma 5.27 wallpapers, photos (Autumn, Path, Kite, ColorfulCups...) and digital art.
    "plasma-workspace-wallpapers": "KDE Plasma wallpapers, photos and digital art",
    # ~33 MB: GNOME 43 backgrounds, 3D renders and illustrations (webp) + svg; mostly graphics.
    "gnome-backgrounds": "GNOME 43 backgrounds, mostly renders/illustrations",
    # ~47 MB: MATE backgrounds; nature/ are photos, abstract/ and desktop/ graphics.
    "mate-backgrounds": "MATE backgrounds, nature photos + abstract graphics",
    # ~21 MB: UKUI (Ubuntu Kylin) wallpapers, photos and graphics.
    "ukui-wallpapers": "UKUI wallpapers, photos and graphics",
    # ~16 MB: Ubuntu community wallpapers of the 16.04 era, mostly photographs.
    "lomiri-wallpapers-16.04": "Ubuntu 16.04-era community photos",
    # ~11 MB: Ubuntu 20.04-era wallpapers, photos and one mascot graphic.
    "lomiri-wallpapers-20.04": "Ubuntu 20.04-era wallpapers",
    # ~2.7 MB: Lomiri default wallpaper (one graphic); cheap negative example.
    "lomiri-wallpapers": "Lomiri default wallpaper",
    # ~26 MB: LXQt themes; usr/share/lxqt/wallpapers has a few photos (fog, after-the-rain...).
    "lxqt-themes": "LXQt wallpapers, some photos",
    # ~4.8 MB: sway logo wallpapers at several sizes; graphics (exercises dedup + classifier).
    "sway-backgrounds": "sway logo wallpapers, graphics",
    # ~1.2 MB: Xfce default backgrounds, graphics.
    "xfdesktop4-data": "Xfce backgrounds, graphics",
    # ~0.8 MB: LXDE wallpapers, graphics.
    "lxde-common": "LXDE wallpapers, graphics",
}

IMAGE_EXTS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp"})
# A source image must have one of these folder names (case-insensitive) below usr/share.
WALLPAPER_DIR_RE = re.compile(r"^(wallpapers?|backgrounds?)$", re.IGNORECASE)
# Folders that are never wallpapers even below a wallpaper folder.
EXCLUDED_DIRS: frozenset[str] = frozenset({"icons", "doc", "locale", "man"})
# Path components dropped when building an output stem (they carry no information).
GENERIC_COMPONENTS: frozenset[str] = frozenset(
    {"usr", "share", "wallpapers", "wallpaper", "backgrounds", "background", "contents", "images"}
)

THUMB_SIDE = 512  # long side of the downsized copy the classifier and the hash look at
FLAT_BLOCK = 8  # block size (thumbnail pixels) for the flat-region measure
FLAT_STD = 1.5  # a block whose luminance std (0..255) is below this is "flat"
SMOOTH_LAPLACIAN = 0.5  # a pixel whose 4-neighbour Laplacian magnitude is below this is "smooth"
DUP_HASH_SIZE = 8  # 8x8 average hash
DUP_MAX_HAMMING = 5  # bits out of 64
DUP_MAX_ASPECT_DIFF = 0.03  # relative aspect-ratio difference allowed between duplicates
DUP_SIGNATURE_SIDE = 16  # confirmation: 16x16 RGB thumbnails ...
DUP_MAX_SIGNATURE_MAD = 8.0  # ... whose mean absolute difference (0..255) is at most this
MIN_VAL_IMAGES = 4
# Only these decoders run on the packages' files (never a plugin that starts a program, like EPS).
DECODE_FORMATS = ("JPEG", "PNG", "WEBP")
FILE_MODE = 0o644  # mode of written files (temp files start as 0600)


# Classifier thresholds (see classify()).  Tuned on the default packages by looking at the images:
# they drop every flat/vector graphic and smooth gradient render seen there, keep the textured
# photographs, and lose a few photos that are almost all bokeh (see the module notes in classify()).
@dataclass(frozen=True)
class Thresholds:
    min_colors: int = 64  # distinct 5-bit-per-channel colours (colour images only)
    max_top8_share: float = 0.65  # share of pixels in the 8 most common quantized colours (colour only)
    max_flat_fraction: float = 0.65  # share of flat 8x8 blocks (luminance std < FLAT_STD)
    max_smooth_fraction: float = 0.25  # share of pixels with |Laplacian| < SMOOTH_LAPLACIAN
    min_grad_energy: float = 2.0  # mean luminance gradient magnitude (0..255 per pixel)
    min_sat_entropy: float = 1.0  # bits, 32-bin saturation histogram (colour images only)
    gray_chroma: float = 2.0  # mean (max-min) over RGB below this: a grayscale image


THRESHOLDS = Thresholds()


# --------------------------------------------------------------------------------------------------
# Image analysis
# --------------------------------------------------------------------------------------------------


def thumbnail(img: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """A downsized RGB copy with long side <= ``side`` (box filter).

    Call ``img.draft("RGB", (side, side))`` before to let a JPEG decode at a reduced scale.
    """
    img = to_rgb(img)
    thumb = img.copy()
    thumb.thumbnail((side, side), Image.Resampling.BOX)
    return thumb


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB version of ``img`` (alpha is dropped; 16-bit grey is scaled to 8 bit)."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        arr8 = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr8).convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def has_transparency(img: Image.Image) -> bool:
    """True when the image has an alpha channel (or palette transparency) that is not fully opaque."""
    if img.mode == "P":
        if "transparency" not in img.info:
            return False
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        lo, _ = img.getchannel("A").getextrema()
        return lo < 250
    return False


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec.601 luma of an (H, W, 3) array, float64 in 0..255."""
    rgbf = rgb.astype(np.float64)
    return 0.299 * rgbf[..., 0] + 0.587 * rgbf[..., 1] + 0.114 * rgbf[..., 2]


def image_features(thumb: Image.Image) -> dict[str, float]:
    """Cheap statistics of a downsized RGB image (see :func:`classify`)."""
    rgb = np.asarray(to_rgb(thumb), dtype=np.uint8)
    h, w, _ = rgb.shape
    n = h * w
    rgbf = rgb.astype(np.float64)
    mx = rgbf.max(axis=2)
    mn = rgbf.min(axis=2)

    # Mean chroma (max - min over R, G, B): tells grayscale images apart.
    chroma = float((mx - mn).mean())

    # Distinct colours after quantizing to 5 bits per channel, and the share of the 8 biggest ones.
    q = (rgb >> 3).astype(np.int32)
    codes = (q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]
    counts = np.bincount(codes.ravel(), minlength=1 << 15)
    n_colors = int(np.count_nonzero(counts))
    top8 = float(np.sort(counts)[-8:].sum()) / n

    # Share of flat blocks: FLAT_BLOCK x FLAT_BLOCK blocks whose luminance standard deviation is tiny.
    lum = luminance(rgb)
    bh, bw = h // FLAT_BLOCK, w // FLAT_BLOCK
    if bh > 0 and bw > 0:
        blocks = lum[: bh * FLAT_BLOCK, : bw * FLAT_BLOCK].reshape(bh, FLAT_BLOCK, bw, FLAT_BLOCK)
        flat_fraction = float((blocks.std(axis=(1, 3)) < FLAT_STD).mean())
    else:
        flat_fraction = 1.0

    # Share of "synthetically smooth" pixels: the image is locally flat or an exact linear ramp.
    if h >= 3 and w >= 3:
        lap = lum[:-2, 1:-1] + lum[2:, 1:-1] + lum[1:-1, :-2] + lum[1:-1, 2:] - 4.0 * lum[1:-1, 1:-1]
        smooth_fraction = float((np.abs(lap) < SMOOTH_LAPLACIAN).mean())
        gx = lum[:-1, 1:] - lum[:-1, :-1]
        gy = lum[1:, :-1] - lum[:-1, :-1]
        grad_energy = float(np.sqrt(gx * gx + gy * gy).mean())
    else:
        smooth_fraction, grad_energy = 1.0, 0.0

    # Saturation histogram entropy (HSV saturation, 32 bins).
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-9), 0.0)
    hist = np.bincount(np.minimum((sat * 32).astype(np.int64), 31).ravel(), minlength=32) / n
    nz = hist[hist > 0]
    sat_entropy = float(-(nz * np.log2(nz)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0

    return {
        "n_colors": n_colors,
        "top8_share": round(top8, 4),
        "flat_fraction": round(flat_fraction, 4),
        "smooth_fraction": round(smooth_fraction, 4),
        "grad_energy": round(grad_energy, 3),
        "sat_entropy": round(sat_entropy, 3),
        "chroma": round(chroma, 2),
    }


def classify(thumb: Image.Image, thresholds: Thresholds = THRESHOLDS) -> tuple[bool, dict[str, float], str]:
    """Decide whether a downsized image is a photograph (True) or a flat graphic (False).

    Heuristic, on the downsized copy (long side <= ``THUMB_SIDE``); every measure is in
    :func:`image_features` and is written to the manifest:

    * ``n_colors``: distinct colours after 5-bit-per-channel quantization.  Vector art and logos use
      a handful of colours; photos have hundreds to thousands.
    * ``top8_share``: share of pixels in the 8 most common quantized colours.  Big uniform areas (flat
      fills) push this up; in photos shading and noise spread the colours out.
    * ``flat_fraction``: share of 8x8 blocks whose luminance std is below ``FLAT_STD`` (flat fills,
      very smooth gradients).
    * ``smooth_fraction``: share of pixels whose Laplacian is ~0, i.e. the image is locally constant
      or an exact linear ramp.  Renders and vector gradients are smooth almost everywhere; camera
      images have texture and noise.  This is the test that removes most smooth abstract renders.
    * ``grad_energy``: mean luminance gradient magnitude.  Very low for soft abstract backgrounds.
    * ``sat_entropy``: entropy of the saturation histogram.  Graphics use few saturation levels.
    * ``chroma``: mean max-min over RGB; below ``gray_chroma`` the image is grayscale and the three
      colour tests (n_colors, top8_share, sat_entropy) are skipped, since they say nothing there.

    Any test beyond its threshold makes the image a graphic; the reason names every failed test.
    Known limits: textured 3D renders and detailed digital paintings pass as photos, and photos
    that are mostly out-of-focus bokeh fail as "smooth".  Returns ``(is_photo, features, reason)``.
    """
    f = image_features(thumb)
    t = thresholds
    gray = f["chroma"] < t.gray_chroma
    failed: list[str] = []
    if not gray and f["n_colors"] < t.min_colors:
        failed.append(f"n_colors {f['n_colors']} < {t.min_colors}")
    if not gray and f["top8_share"] > t.max_top8_share:
        failed.append(f"top8_share {f['top8_share']:.3f} > {t.max_top8_share}")
    if f["flat_fraction"] > t.max_flat_fraction:
        failed.append(f"flat_fraction {f['flat_fraction']:.3f} > {t.max_flat_fraction}")
    if f["smooth_fraction"] > t.max_smooth_fraction:
        failed.append(f"smooth_fraction {f['smooth_fraction']:.3f} > {t.max_smooth_fraction}")
    if f["grad_energy"] < t.min_grad_energy:
        failed.append(f"grad_energy {f['grad_energy']:.2f} < {t.min_grad_energy}")
    if not gray and f["sat_entropy"] < t.min_sat_entropy:
        failed.append(f"sat_entropy {f['sat_entropy']:.2f} < {t.min_sat_entropy}")
    if failed:
        return False, f, "graphic: " + "; ".join(failed)
    return True, f, "photo (grayscale)" if gray else "photo"


def average_hash(img: Image.Image, size: int = DUP_HASH_SIZE) -> int:
    """``size`` x ``size`` average hash of a grayscale thumbnail, as an int (bit i = pixel i > mean)."""
    small = to_rgb(img).convert("L").resize((size, size), Image.Resampling.BOX)
    arr = np.asarray(small, dtype=np.float64).ravel()
    value = 0
    for bit in arr > arr.mean():
        value = (value << 1) | int(bit)
    return value


def signature(img: Image.Image, side: int = DUP_SIGNATURE_SIDE) -> np.ndarray:
    """Tiny RGB thumbnail (``side`` x ``side``, box filter) used to confirm a hash match."""
    return np.asarray(to_rgb(img).resize((side, side), Image.Resampling.BOX), dtype=np.float64)


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


def is_duplicate(
    hash_a: int,
    size_a: tuple[int, int],
    hash_b: int,
    size_b: tuple[int, int],
    sig_a: np.ndarray | None = None,
    sig_b: np.ndarray | None = None,
) -> bool:
    """Same picture at another resolution.

    Needs near-equal aspect ratios, average hashes at most ``DUP_MAX_HAMMING`` bits apart and, when
    signatures are given, 16x16 RGB thumbnails that differ by at most ``DUP_MAX_SIGNATURE_MAD`` on
    average (the 64-bit hash alone matches unrelated smooth gradients of the same layout).
    """
    ar_a = size_a[0] / size_a[1]
    ar_b = size_b[0] / size_b[1]
    if abs(ar_a - ar_b) / max(ar_a, ar_b) > DUP_MAX_ASPECT_DIFF:
        return False
    if hamming(hash_a, hash_b) > DUP_MAX_HAMMING:
        return False
    if sig_a is not None and sig_b is not None:
        return float(np.abs(sig_a - sig_b).mean()) <= DUP_MAX_SIGNATURE_MAD
    return True


# --------------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------------


def split_key(name: str) -> float:
    """Deterministic number in [0, 1) from a name (SHA-256)."""
    return int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:12], 16) / float(1 << 48)


def assign_splits(names: Iterable[str], val_fraction: float, min_val: int = MIN_VAL_IMAGES) -> dict[str, str]:
    """Map each name to "train" or "val".

    A name goes to val when its hash key is below ``val_fraction``; if that gives fewer than
    ``min_val`` val images, the names with the smallest keys are moved to val (never all of them when
    there are more than ``min_val`` names).  Depends only on the set of names, not on their order.
    """
    uniq = sorted(set(names), key=lambda n: (split_key(n), n))
    n_val = sum(1 for n in uniq if split_key(n) < val_fraction)
    n_val = max(n_val, min(min_val, len(uniq)))
    return {n: ("val" if i < n_val else "train") for i, n in enumerate(uniq)}


# --------------------------------------------------------------------------------------------------
# Packages: apt
# --------------------------------------------------------------------------------------------------


@dataclass
class PackageInfo:
    name: str
    version: str = ""
    size_bytes: int = 0
    found: bool = False
    deb: str = ""
    comment: str = ""


def _run(cmd: Sequence[str], cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    LOG.debug("$ %s", " ".join(cmd))
    return subprocess.run(list(cmd), cwd=cwd, check=check, text=True, capture_output=True)


def apt_show(name: str) -> PackageInfo | None:
    """Version and download size of the candidate version, or None when apt does not know it."""
    proc = _run(["apt-cache", "show", "--no-all-versions", name], check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        return None
    info = PackageInfo(name=name, found=True)
    for line in proc.stdout.splitlines():
        if line.startswith("Version:") and not info.version:
            info.version = line.split(":", 1)[1].strip()
        elif line.startswith("Size:") and not info.size_bytes:
            info.size_bytes = int(line.split(":", 1)[1].strip())
    return info


def resolve_packages(names: Sequence[str], allow_update: bool = True) -> list[PackageInfo]:
    """Look packages up with apt-cache; run ``apt-get update`` once if (and only if) one is missing."""
    infos: dict[str, PackageInfo | None] = {n: apt_show(n) for n in names}
    missing = [n for n, i in infos.items() if i is None]
    if missing and allow_update:
        LOG.info("not found in the apt lists: %s; running apt-get update", ", ".join(missing))
        proc = _run(["apt-get", "update"], check=False)
        if proc.returncode != 0:
            LOG.warning("apt-get update failed: %s", proc.stderr.strip()[-500:])
        for n in missing:
            infos[n] = apt_show(n)
    out: list[PackageInfo] = []
    for n in names:
        info = infos[n]
        if info is None:
            LOG.warning("package %s not found; skipped", n)
            info = PackageInfo(name=n, found=False)
        info.comment = DEFAULT_PACKAGES.get(n, "")
        out.append(info)
    return out


def cached_deb(cache: Path, info: PackageInfo) -> Path | None:
    """The cached .deb of this package (the exact version when known, else the newest one)."""
    cands = sorted(cache.glob(f"{info.name}_*.deb"), key=lambda p: p.stat().st_mtime, reverse=True)
    exact = [p for p in cands if p.stat().st_size == info.size_bytes] if info.size_bytes else []
    return (exact or cands or [None])[0]


def download(cache: Path, info: PackageInfo) -> Path:
    """``apt-get download`` into ``cache`` unless the .deb is already there."""
    have = cached_deb(cache, info)
    if have is not None:
        LOG.info("cached  %s", have.name)
        return have
    cache.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # As root apt drops to the _apt user, which may not be able to write into ~/.cache.
        cmd += ["-o", "APT::Sandbox::User=root"]
    LOG.info("download %s (%.1f MB)", info.name, info.size_bytes / 1e6)
    _run(cmd + [info.name], cwd=cache)
    have = cached_deb(cache, info)
    if have is None:
        raise RuntimeError(f"apt-get download {info.name} produced no .deb in {cache}")
    return have


def extract(deb: Path, dest: Path) -> Path:
    """``dpkg-deb -x`` into ``dest`` (atomic: a temp folder renamed when done; skipped if present)."""
    marker = dest / ".extracted-from"
    if marker.is_file() and marker.read_text().strip() == deb.name:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _run(["dpkg-deb", "-x", str(deb), str(tmp)])
        (tmp / ".extracted-from").write_text(deb.name + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    LOG.info("extracted %s -> %s", deb.name, dest)
    return dest


# --------------------------------------------------------------------------------------------------
# Collecting source images
# --------------------------------------------------------------------------------------------------


def is_wallpaper_path(rel: Path) -> bool:
    """Raster image below usr/share inside a wallpaper(s)/background(s) folder."""
    parts = rel.parts
    if rel.suffix.lower() not in IMAGE_EXTS:
        return False
    if len(parts) < 3 or parts[0] != "usr" or parts[1] != "share":
        return False
    dirs = parts[2:-1]
    if any(d.lower() in EXCLUDED_DIRS for d in dirs):
        return False
    return any(WALLPAPER_DIR_RE.match(d) for d in dirs)


def collect_images(root: Path) -> list[Path]:
    """Wallpaper image files in an extracted package tree, as paths relative to ``root``, sorted.

    Symlinks to files are skipped (Debian packages often link one wallpaper under several names).
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            full = Path(dirpath) / fn
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root)
            if is_wallpaper_path(rel):
                found.append(rel)
    return sorted(found)


def output_stem(rel: Path) -> str:
    """Readable unique-ish stem from a source path: generic folders dropped, the rest joined by '_'."""
    parts = [p for p in rel.with_suffix("").parts if p.lower() not in GENERIC_COMPONENTS]
    parts = ["dark" if p.lower() == "images_dark" else p for p in parts]
    stem = "_".join(parts) or rel.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "image"


def wallpaper_keys(rel: Path) -> tuple[str | None, str | None]:
    """Variant and split keys for the KDE layout ``<Name>/contents/images[_dark]/<W>x<H>.<ext>``.

    Files in one ``images*`` folder are the same picture at several sizes and crops (landscape and
    portrait), so only the largest is kept (variant key).  Light and dark versions share the split
    key so that they never end up on both sides of the train/val split.  ``(None, None)`` otherwise.
    """
    parts = rel.parts
    for i in range(len(parts) - 2):
        if parts[i] == "contents" and parts[i + 1].startswith("images") and i + 2 == len(parts) - 1:
            base = "/".join(parts[:i])
            return f"{base}/{parts[i + 1]}", base
    return None, None


# --------------------------------------------------------------------------------------------------
# Main pipeline
# --------------------------------------------------------------------------------------------------


@dataclass
class Record:
    name: str  # output file name, <package>__<stem>.png
    package: str
    source_path: str  # path inside the package (usr/share/...)
    split_group: str = ""  # records with the same split_group always get the same split
    variant_group: str | None = None  # records with the same variant_group: only the largest is kept
    width: int = 0
    height: int = 0
    decision: str = "dropped"  # "kept" | "dropped"
    reason: str = ""
    features: dict[str, float] = field(default_factory=dict)
    ahash: str = ""
    duplicate_of: str | None = None
    split: str | None = None
    output: str | None = None
    out_width: int | None = None
    out_height: int | None = None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _core_atomic_write_bytes(path, data, mode=FILE_MODE)


def atomic_save_png(img: Image.Image, path: Path) -> None:
    with atomic_output(path, ".png", mode=FILE_MODE) as tmp:  # fsync, rename, fsync of the folder
        img.save(tmp, format="PNG", compress_level=6)


def prepare_hr(img: Image.Image, max_side: int) -> Image.Image:
    """8-bit RGB, long side at most ``max_side`` (Pillow LANCZOS; HR preparation, not SR degradation)."""
    rgb = to_rgb(ImageOps.exif_transpose(img))
    w, h = rgb.size
    if max_side > 0 and max(w, h) > max_side:
        scale = max_side / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return rgb


def analyse(records: list[Record], roots: dict[str, Path], min_size: int) -> None:
    """Fill size, hash and features; drop small / transparent / unreadable / duplicates / graphics."""
    hashes: dict[str, int] = {}
    sigs: dict[str, np.ndarray] = {}
    for rec in records:
        if rec.reason:  # already decided (excluded)
            continue
        path = roots[rec.package] / rec.source_path
        try:
            with Image.open(path, formats=DECODE_FORMATS) as img:
                rec.width, rec.height = img.size
                if min(img.size) < min_size:
                    rec.reason = f"too small: short side {min(img.size)} < {min_size}"
                    continue
                if has_transparency(img):
                    rec.reason = "transparent: alpha channel in use"
                    continue
                img.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at 1/2..1/8 scale
                thumb = thumbnail(img)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            rec.reason = f"unreadable: {exc}"
            continue
        is_photo, feats, why = classify(thumb)
        rec.features = feats
        hashes[rec.name] = average_hash(thumb)
        sigs[rec.name] = signature(thumb)
        rec.ahash = f"{hashes[rec.name]:016x}"
        rec.decision = "kept" if is_photo else "dropped"
        rec.reason = why

    # Dedup among everything that passed the size test: largest first, greedy grouping.
    cands = sorted((r for r in records if r.name in hashes), key=lambda r: (-(r.width * r.height), r.name))
    reps: list[Record] = []
    variant_reps: dict[str, Record] = {}
    for rec in cands:
        rep = variant_reps.get(rec.variant_group) if rec.variant_group else None
        why = "smaller variant of"
        if rep is None:
            why = "duplicate of"
            rep = next(
                (
                    k
                    for k in reps
                    if is_duplicate(
                        hashes[k.name],
                        (k.width, k.height),
                        hashes[rec.name],
                        (rec.width, rec.height),
                        sigs[k.name],
                        sigs[rec.name],
                    )
                ),
                None,
            )
        if rep is None:
            reps.append(rec)
            if rec.variant_group:
                variant_reps[rec.variant_group] = rec
            continue
        rec.duplicate_of = rep.name
        rec.decision = "dropped"
        rec.reason = (
            f"{why} {rep.name} ({rep.width}x{rep.height}; hamming "
            f"{hamming(hashes[rep.name], hashes[rec.name])})"
        )


def write_outputs(records: list[Record], roots: dict[str, Path], out: Path, args: argparse.Namespace) -> None:
    kept = [r for r in records if r.decision == "kept"]
    splits = assign_splits([r.split_group for r in kept], args.val_fraction)
    for rec in kept:
        rec.split = splits[rec.split_group]
        dest = out / rec.split / rec.name
        other = out / ("train" if rec.split == "val" else "val") / rec.name
        if other.exists():  # the split moved (e.g. other images appeared): move the file
            os.replace(other, dest)
        rec.output = str(dest.relative_to(out))
        if dest.exists():
            with Image.open(dest, formats=("PNG",)) as done:
                rec.out_width, rec.out_height = done.size
            LOG.info("exists  %s", rec.output)
            continue
        with Image.open(roots[rec.package] / rec.source_path, formats=DECODE_FORMATS) as img:
            img.load()
            hr = prepare_hr(img, args.max_side)
        atomic_save_png(hr, dest)
        rec.out_width, rec.out_height = hr.size
        LOG.info("wrote   %s (%dx%d)", rec.output, *hr.size)
    expected = {r.output for r in kept}
    for split in ("train", "val"):
        for stale in sorted((out / split).glob("*.png")) if (out / split).is_dir() else []:
            if f"{split}/{stale.name}" not in expected:
                LOG.warning("not in this build (left in place): %s", stale.relative_to(out))


def make_records(pkg: str, root: Path, taken: set[str], exclude: Sequence[str] = ()) -> list[Record]:
    """One record per wallpaper file of a package; names made unique; ``exclude`` globs applied."""
    recs: list[Record] = []
    for rel in collect_images(root):
        stem = output_stem(rel)
        name = f"{pkg}__{stem}.png"
        if name in taken:
            name = f"{pkg}__{stem}-{hashlib.sha256(rel.as_posix().encode()).hexdigest()[:8]}.png"
        taken.add(name)
        variant, group = wallpaper_keys(rel)
        rec = Record(
            name=name,
            package=pkg,
            source_path=rel.as_posix(),
            split_group=f"{pkg}/{group}" if group else name,
            variant_group=f"{pkg}/{variant}" if variant else None,
        )
        hit = next(
            (
                g
                for g in exclude
                if fnmatch.fnmatch(f"{pkg}/{rec.source_path}", g) or fnmatch.fnmatch(name, g)
            ),
            None,
        )
        if hit:
            rec.reason = f"excluded: matches --exclude {hit!r}"
        recs.append(rec)
    return recs


def build(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    names = list(dict.fromkeys(args.packages))
    infos = resolve_packages(names, allow_update=not args.no_update)
    found = [i for i in infos if i.found]
    total = sum(i.size_bytes for i in found)
    cache = Path(args.cache).expanduser()
    for i in infos:
        state = "missing" if not i.found else ("cached" if cached_deb(cache, i) else "download")
        print(f"{i.name:32s} {i.version:28s} {i.size_bytes / 1e6:8.1f} MB  {state}")
    print(f"{'total':32s} {'':28s} {total / 1e6:8.1f} MB  ({len(found)} packages)")
    if total > args.max_download_mb * 1e6:
        LOG.error("total download %.0f MB exceeds --max-download-mb %d", total / 1e6, args.max_download_mb)
        return 2
    if args.dry_run:
        return 0

    extract_dir = Path(args.extract_dir).expanduser()
    roots: dict[str, Path] = {}
    for info in found:
        deb = download(cache, info)
        info.deb = deb.name
        roots[info.name] = extract(deb, extract_dir / info.name)

    taken: set[str] = set()
    records: list[Record] = []
    for info in found:
        records.extend(make_records(info.name, roots[info.name], taken, args.exclude))
    LOG.info("%d candidate images in %d packages", len(records), len(roots))

    analyse(records, roots, args.min_size)
    for rec in records:
        LOG.info(
            "%-7s %-60s %5dx%-5d %s %s",
            rec.decision,
            rec.name,
            rec.width,
            rec.height,
            rec.reason,
            json.dumps(rec.features) if rec.features else "",
        )

    out = Path(args.out).expanduser()
    write_outputs(records, roots, out, args)

    kept = [r for r in records if r.decision == "kept"]
    summary = {
        "candidates": len(records),
        "kept": len(kept),
        "dropped": len(records) - len(kept),
        "train": sum(1 for r in kept if r.split == "train"),
        "val": sum(1 for r in kept if r.split == "val"),
        "hr_pixels": sum((r.out_width or 0) * (r.out_height or 0) for r in kept),
        "dropped_by_reason": _count_reasons(records),
        "seconds": round(time.monotonic() - t0, 1),
    }
    manifest: dict[str, Any] = {
        "version": 1,
        "created_by": "scripts/build_dataset.py",
        "config": {
            "packages": names,
            "min_size": args.min_size,
            "max_side": args.max_side,
            "val_fraction": args.val_fraction,
            "thumb_side": THUMB_SIDE,
            "thresholds": asdict(THRESHOLDS),
            "flat_block": FLAT_BLOCK,
            "flat_std": FLAT_STD,
            "dup_max_hamming": DUP_MAX_HAMMING,
            "dup_max_aspect_diff": DUP_MAX_ASPECT_DIFF,
            "dup_max_signature_mad": DUP_MAX_SIGNATURE_MAD,
            "smooth_laplacian": SMOOTH_LAPLACIAN,
            "exclude": list(args.exclude),
        },
        "packages": [asdict(i) for i in infos],
        "summary": summary,
        "images": [asdict(r) for r in records],
    }
    atomic_write_bytes(out / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    print(json.dumps(summary, indent=1))
    return 0


def _count_reasons(records: list[Record]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in records:
        if r.decision == "kept":
            continue
        key = r.reason.split(":", 1)[0]
        if key.startswith("duplicate of"):
            key = "duplicate"
        elif key.startswith("smaller variant of"):
            key = "smaller variant"
        counts[key] = counts.get(key, 0) + 1
    return counts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="output folder (train/, val/, manifest.json)")
    p.add_argument(
        "--packages",
        nargs="+",
        default=list(DEFAULT_PACKAGES),
        metavar="PKG",
        help="Debian packages to take wallpapers from (default: %(default)s)",
    )
    p.add_argument("--cache", default="~/.cache/dipnet-studio/debs", help="where .deb files are downloaded")
    p.add_argument(
        "--extract-dir",
        default="~/.cache/dipnet-studio/extract",
        help="where packages are unpacked (one folder per package)",
    )
    p.add_argument("--min-size", type=int, default=512, help="drop images whose short side is smaller")
    p.add_argument(
        "--max-side",
        type=int,
        default=2040,
        help="downscale (LANCZOS) so the long side is at most this; 0 keeps the size",
    )
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help=f"share of val images (at least {MIN_VAL_IMAGES} val images)",
    )
    p.add_argument("--max-download-mb", type=int, default=1500, help="refuse to download more than this")
    p.add_argument(
        "--exclude",
        nargs="*",
        default=[],
        metavar="GLOB",
        help="drop sources matching a glob on '<package>/<source path>' or on the output name",
    )
    p.add_argument("--no-update", action="store_true", help="never run apt-get update")
    p.add_argument("--dry-run", action="store_true", help="list what would be downloaded and stop")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 0.0 <= args.val_fraction < 1.0:
        p.error("--val-fraction must be in [0, 1)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    return build(args)


if __name__ == "__main__":
    sys.exit(main())
