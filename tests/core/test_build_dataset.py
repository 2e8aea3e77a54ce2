"""Tests of scripts/build_dataset.py: classifier, dedup hash, split, extraction walk, output step.

Fast and offline: no apt, no network; every image is synthesized here.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_dataset.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dataset", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


bd = _load()


# ------------------------------------------------------------------------------------------------
# Synthetic images
# ------------------------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Value noise: random grid of (h/cell, w/cell) upsampled bicubically, in [-1, 1]."""
    small = rng.uniform(-1.0, 1.0, size=(max(2, h // cell), max(2, w // cell))).astype(np.float32)
    img = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float64)


def natural_image(seed: int = 0, size: tuple[int, int] = (768, 512), gray: bool = False) -> Image.Image:
    """Photo-like: multi-scale (1/f-ish) texture per channel, colour cast, plus sensor noise."""
    w, h = size
    rng = np.random.default_rng(seed)
    chans = []
    for c in range(3):
        acc = np.zeros((h, w))
        for cell, amp in ((128, 60.0), (32, 30.0), (8, 15.0), (2, 6.0)):
            acc += amp * _smooth_noise(rng, h, w, cell)
        chans.append(acc)
    if gray:
        chans = [chans[0]] * 3
    base = np.array([120.0, 110.0, 90.0]) if not gray else np.array([115.0] * 3)
    arr = np.stack(chans, axis=-1) + base + rng.normal(0.0, 3.0, size=(h, w, 1 if gray else 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def flat_graphic(size: tuple[int, int] = (768, 512)) -> Image.Image:
    """Vector-style: three uniform colour areas with hard edges (a band and a disc on a background)."""
    w, h = size
    arr = np.empty((h, w, 3), dtype=np.uint8)
    arr[:] = (32, 64, 140)
    yy, xx = np.mgrid[:h, :w]
    arr[(xx + yy) % w < w // 3] = (240, 200, 40)
    arr[(xx - w * 0.7) ** 2 + (yy - h * 0.5) ** 2 < (h * 0.25) ** 2] = (250, 250, 250)
    return Image.fromarray(arr)


def gradient_render(size: tuple[int, int] = (768, 512)) -> Image.Image:
    """Smooth abstract background: two linear colour ramps, no texture."""
    w, h = size
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    arr = np.stack([40 + 150 * xx / w, 30 + 80 * yy / h, 160 - 100 * xx / w], axis=-1)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def _thumb(img: Image.Image) -> Image.Image:
    return bd.thumbnail(img)


# ------------------------------------------------------------------------------------------------
# Classifier
# ------------------------------------------------------------------------------------------------


def test_natural_texture_is_photo() -> None:
    is_photo, feats, reason = bd.classify(_thumb(natural_image(1)))
    assert is_photo, (reason, feats)
    assert reason == "photo"
    assert feats["n_colors"] > 500 and feats["flat_fraction"] < 0.1 and feats["smooth_fraction"] < 0.1


def test_grayscale_texture_is_photo() -> None:
    is_photo, feats, reason = bd.classify(_thumb(natural_image(2, gray=True)))
    assert is_photo, (reason, feats)
    assert reason == "photo (grayscale)"
    assert feats["chroma"] < bd.THRESHOLDS.gray_chroma


def test_flat_three_colour_image_is_graphic() -> None:
    is_photo, feats, reason = bd.classify(_thumb(flat_graphic()))
    assert not is_photo
    assert reason.startswith("graphic:")
    assert feats["n_colors"] <= 16  # 3 colours (+ a few from box-filtered edges)
    assert feats["top8_share"] > 0.99
    assert feats["flat_fraction"] > 0.8
    for test in ("n_colors", "top8_share", "flat_fraction", "smooth_fraction", "grad_energy"):
        assert test in reason


def test_smooth_gradient_render_is_graphic() -> None:
    is_photo, _feats, reason = bd.classify(_thumb(gradient_render()))
    assert not is_photo
    assert "smooth_fraction" in reason or "flat_fraction" in reason, reason


def test_classifier_features_are_json_numbers() -> None:
    _, feats, _ = bd.classify(_thumb(natural_image(3)))
    assert set(feats) == {
        "n_colors",
        "top8_share",
        "flat_fraction",
        "smooth_fraction",
        "grad_energy",
        "sat_entropy",
        "chroma",
    }
    json.dumps(feats)  # plain floats / ints only


# ------------------------------------------------------------------------------------------------
# Dedup
# ------------------------------------------------------------------------------------------------


def test_resized_copy_is_duplicate() -> None:
    big = natural_image(5, size=(1200, 800))
    small = big.resize((600, 400), Image.Resampling.LANCZOS)
    hb, hs = bd.average_hash(_thumb(big)), bd.average_hash(_thumb(small))
    assert bd.hamming(hb, hs) <= 2
    sig_b, sig_s = bd.signature(_thumb(big)), bd.signature(_thumb(small))
    assert bd.is_duplicate(hb, big.size, hs, small.size, sig_b, sig_s)


def test_different_image_is_not_duplicate() -> None:
    a, b = natural_image(6), natural_image(7)
    ha, hb = bd.average_hash(_thumb(a)), bd.average_hash(_thumb(b))
    assert bd.hamming(ha, hb) > bd.DUP_MAX_HAMMING
    assert not bd.is_duplicate(ha, a.size, hb, b.size, bd.signature(_thumb(a)), bd.signature(_thumb(b)))


def test_other_aspect_ratio_is_not_duplicate() -> None:
    a = natural_image(8, size=(1200, 800))
    crop = a.crop((0, 0, 800, 800))
    h = bd.average_hash(_thumb(a))
    assert not bd.is_duplicate(h, a.size, h, crop.size)  # even with an equal hash


def test_hash_match_needs_signature_match() -> None:
    a = natural_image(9)
    shifted = Image.fromarray(np.clip(np.asarray(a).astype(int) + 60, 0, 255).astype(np.uint8))
    ha, hs = bd.average_hash(_thumb(a)), bd.average_hash(_thumb(shifted))
    assert bd.hamming(ha, hs) <= bd.DUP_MAX_HAMMING  # same layout, so the same average hash
    sig_a, sig_s = bd.signature(_thumb(a)), bd.signature(_thumb(shifted))
    assert not bd.is_duplicate(ha, a.size, hs, shifted.size, sig_a, sig_s)


# ------------------------------------------------------------------------------------------------
# Split
# ------------------------------------------------------------------------------------------------


def test_split_is_deterministic_and_order_independent() -> None:
    names = [f"pkg__image{i:03d}.png" for i in range(200)]
    s1 = bd.assign_splits(names, 0.1)
    s2 = bd.assign_splits(list(reversed(names)), 0.1)
    assert s1 == s2
    assert set(s1) == set(names) and set(s1.values()) == {"train", "val"}
    n_val = sum(v == "val" for v in s1.values())
    assert 8 <= n_val <= 35  # ~10 % of 200
    # adding images does not move existing ones when the hash alone decides
    s3 = bd.assign_splits(names + [f"other__x{i}.png" for i in range(50)], 0.1)
    assert all(s3[n] == s1[n] for n in names)


def test_split_has_at_least_four_val_images() -> None:
    names = [f"p__{i}.png" for i in range(12)]
    split = bd.assign_splits(names, 0.1)
    assert sum(v == "val" for v in split.values()) >= 4
    assert sum(v == "train" for v in split.values()) >= 1
    assert bd.assign_splits(names, 0.1) == split
    tiny = bd.assign_splits(["a", "b"], 0.1)
    assert list(tiny.values()).count("val") == 2  # fewer names than the minimum: all val


def test_split_key_is_in_unit_interval() -> None:
    keys = [bd.split_key(f"n{i}") for i in range(100)]
    assert all(0.0 <= k < 1.0 for k in keys)
    assert len(set(keys)) == 100


# ------------------------------------------------------------------------------------------------
# Extraction walk
# ------------------------------------------------------------------------------------------------


def _touch(root: Path, rel: str, data: bytes = b"x") -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_collect_images_walks_wallpaper_folders(tmp_path: Path) -> None:
    wanted = [
        "usr/share/backgrounds/mate/nature/Dune.jpg",
        "usr/share/backgrounds/photo.JPEG",
        "usr/share/lxqt/wallpapers/fog.png",
        "usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
        "usr/share/wallpapers/Kite/contents/images_dark/2560x1600.webp",
    ]
    ignored = [
        "usr/share/backgrounds/gnome/blobs-d.svg",  # svg ignored
        "usr/share/backgrounds/gnome/adwaita.xml",
        "usr/share/icons/hicolor/wallpapers/logo.png",  # icons excluded
        "usr/share/doc/pkg/backgrounds/readme.png",  # doc excluded
        "usr/share/pixmaps/logo.png",  # no wallpaper folder
        "usr/share/desktop-base/grub/grub-16x9.png",
        "etc/backgrounds/local.png",  # not below usr/share
        "usr/share/wallpapers/Kite/metadata.json",
    ]
    for rel in wanted + ignored:
        _touch(tmp_path, rel)
    link = tmp_path / "usr/share/backgrounds/link.jpg"
    os.symlink(tmp_path / wanted[0], link)  # symlinked duplicates are skipped

    found = bd.collect_images(tmp_path)
    assert [p.as_posix() for p in found] == sorted(wanted)


def test_output_names_and_variant_keys(tmp_path: Path) -> None:
    rel = Path("usr/share/wallpapers/Kite/contents/images/2560x1600.jpg")
    assert bd.output_stem(rel) == "Kite_2560x1600"
    dark = Path("usr/share/wallpapers/Flow/contents/images_dark/720x1440.jpg")
    assert bd.output_stem(dark) == "Flow_dark_720x1440"
    assert bd.output_stem(Path("usr/share/backgrounds/mate/nature/Dune Big.jpg")) == "mate_nature_Dune-Big"
    assert bd.wallpaper_keys(rel) == ("usr/share/wallpapers/Kite/images", "usr/share/wallpapers/Kite")
    assert bd.wallpaper_keys(Path("usr/share/backgrounds/a.jpg")) == (None, None)

    for r in ("usr/share/backgrounds/a/b.png", "usr/share/backgrounds/a_b.png"):  # same stem "a_b"
        _touch(tmp_path, r)
    recs = bd.make_records("pkg", tmp_path, set(), exclude=["pkg/usr/share/backgrounds/a/*"])
    names = [r.name for r in recs]
    assert len(set(names)) == 2 and all(n.startswith("pkg__a_b") and n.endswith(".png") for n in names)
    excluded = [r for r in recs if r.reason.startswith("excluded")]
    assert [r.source_path for r in excluded] == ["usr/share/backgrounds/a/b.png"]


# ------------------------------------------------------------------------------------------------
# Analysis + output step on a fake extracted package (no apt)
# ------------------------------------------------------------------------------------------------


def test_analyse_and_write_outputs(tmp_path: Path) -> None:
    root = tmp_path / "extract" / "fakepkg"
    bg = root / "usr/share/backgrounds"
    bg.mkdir(parents=True)
    photos = [natural_image(20 + i, size=(420, 280)) for i in range(5)]
    for i, im in enumerate(photos):
        im.save(bg / f"photo{i}.jpg", quality=95)
    photos[0].resize((390, 260), Image.Resampling.LANCZOS).save(bg / "photo0_small.png")  # dup, 390x260
    flat_graphic((420, 280)).save(bg / "logo.png")
    natural_image(30, size=(300, 200)).save(bg / "tiny.jpg")  # below --min-size
    rgba = Image.new("RGBA", (420, 280), (10, 20, 30, 0))
    rgba.save(bg / "transparent.png")
    kde = root / "usr/share/wallpapers/Scene/contents/images"
    kde.mkdir(parents=True)
    big = natural_image(40, size=(640, 480))
    big.save(kde / "640x480.png")
    big.crop((0, 0, 280, 480)).save(kde / "280x480.png")  # portrait crop: a smaller variant

    recs = bd.make_records("fakepkg", root, set())
    bd.analyse(recs, {"fakepkg": root}, min_size=256)
    by = {r.source_path.rsplit("/", 1)[-1]: r for r in recs}
    assert by["tiny.jpg"].reason.startswith("too small")
    assert by["transparent.png"].reason.startswith("transparent")
    assert by["logo.png"].reason.startswith("graphic")
    assert by["photo0_small.png"].duplicate_of == by["photo0.jpg"].name
    assert by["280x480.png"].reason.startswith("smaller variant of")
    kept = sorted(r.name for r in recs if r.decision == "kept")
    assert kept == sorted([by[f"photo{i}.jpg"].name for i in range(5)] + [by["640x480.png"].name])

    out = tmp_path / "out"
    args = argparse.Namespace(val_fraction=0.1, max_side=500)
    bd.write_outputs(recs, {"fakepkg": root}, out, args)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert len(files) == 6
    assert sum(f.startswith("val/") for f in files) == 4  # the minimum number of val images
    scene = by["640x480.png"]
    assert (scene.out_width, scene.out_height) == (500, 375)  # long side capped with LANCZOS
    with Image.open(out / scene.output) as im:
        assert im.mode == "RGB" and im.size == (500, 375)
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temp files
    assert (out / scene.output).stat().st_mode & 0o777 == bd.FILE_MODE

    # Idempotent: a second run keeps the files (no rewrite) and the same splits.
    mtimes = {f: (out / f).stat().st_mtime_ns for f in files}
    splits = {r.name: r.split for r in recs if r.decision == "kept"}
    recs2 = bd.make_records("fakepkg", root, set())
    bd.analyse(recs2, {"fakepkg": root}, min_size=256)
    bd.write_outputs(recs2, {"fakepkg": root}, out, args)
    assert {f: (out / f).stat().st_mtime_ns for f in files} == mtimes
    assert {r.name: r.split for r in recs2 if r.decision == "kept"} == splits


def test_atomic_write_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "manifest.json"
    bd.atomic_write_bytes(target, b"one")
    bd.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["manifest.json"]


def test_cli_defaults() -> None:
    args = bd.parse_args(["--out", "/tmp/x"])
    assert args.min_size == 512 and args.max_side == 2040 and args.val_fraction == 0.1
    assert args.packages == list(bd.DEFAULT_PACKAGES)
    assert "plasma-workspace-wallpapers" in args.packages and "gnome-backgrounds" in args.packages
    assert args.cache == "~/.cache/dipnet-studio/debs" and not args.dry_run
    with pytest.raises(SystemExit):
        bd.parse_args(["--out", "/tmp/x", "--val-fraction", "1.5"])
