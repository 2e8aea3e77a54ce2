"""Training data: skipped files, exact crop LR, reproducible sampling, paired folders, val split."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dipnet_core.resize import bicubic_downscale_uint8, modcrop
from dipnet_core.train.config import preset
from dipnet_core.train.context import prepare_data
from dipnet_core.train.data import (
    DataError,
    ImageSet,
    SRCropDataset,
    make_loader,
    read_rgb_uint8,
    scan_images,
    split_train_val,
)


@pytest.fixture
def make_images(textured: Callable[[int, int, int], np.ndarray]) -> Callable[..., Path]:
    """``make_images(root, n=8)``: n textured images (some in ``sub/``) plus grey, broken, text, tiny."""

    def make(root: Path, n: int = 8) -> Path:
        (root / "sub").mkdir(parents=True)
        for i in range(n):
            h, w = 64 + 4 * i, 96 - 4 * i
            folder = root / "sub" if i % 3 == 0 else root
            Image.fromarray(textured(h, w, i)).save(folder / f"img{i}.png")
        Image.fromarray(textured(70, 70, 99)[:, :, 0]).save(root / "grey.png")  # greyscale is fine
        (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        (root / "notes.txt").write_text("not an image")
        Image.fromarray(textured(30, 40, 7)).save(root / "tiny.png")
        return root

    return make


def test_bad_and_tiny_images_are_skipped_and_reported(make_images: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    root = make_images(tmp_path / "hr")
    found, skipped = scan_images([root, tmp_path / "missing"], min_side=60)
    names = {p.name for p in found}
    assert names == {f"img{i}.png" for i in range(8)} | {"grey.png"}
    reasons = {Path(p).name: r for p, r in skipped}
    assert "unreadable" in reasons["broken.png"] and "too small" in reasons["tiny.png"]
    assert "not found" in reasons["missing"]
    assert read_rgb_uint8(root / "grey.png").shape == (70, 70, 3)

    cfg = preset("tiny-test")
    cfg.data.train_dirs = [str(root)]
    images, val, skipped2 = prepare_data(cfg)
    assert len(images) + len(val) == 9 and len(val) == 2
    assert {Path(p).name for p, _ in skipped2} >= {"broken.png", "tiny.png"}


def test_crop_lr_equals_the_benchmark_lr_of_the_whole_image(make_images: Callable[..., Path],
                                                            tmp_path: Path) -> None:
    root = make_images(tmp_path / "hr", n=2)
    paths = sorted(root.glob("img*.png"))
    images = ImageSet(paths, 4, cache=True)
    ds = SRCropDataset(images, 16, 3, seed=5, augment=False)
    whole = {i: (modcrop(read_rgb_uint8(p), 4), bicubic_downscale_uint8(modcrop(read_rgb_uint8(p), 4), 4))
             for i, p in enumerate(paths)}
    for key in range(12):
        lr, hr = (t.permute(1, 2, 0).mul(255).round().byte().numpy() for t in ds[key])
        assert lr.shape == (16, 16, 3) and hr.shape == (64, 64, 3)
        # find where the HR crop came from, then compare the LR with the whole image's LR there
        hits = [(i, y, x) for i, (h_img, _) in whole.items()
                for y in range(0, h_img.shape[0] - 63, 4) for x in range(0, h_img.shape[1] - 63, 4)
                if np.array_equal(h_img[y:y + 64, x:x + 64], hr)]
        assert len(hits) == 1
        i, y, x = hits[0]
        assert np.array_equal(whole[i][1][y // 4:y // 4 + 16, x // 4:x // 4 + 16], lr)
    assert images._cache_bytes > 0
    tiny_cache = ImageSet(paths, 4, cache=True, cache_mb=0)
    tiny_cache.get(0)
    assert not tiny_cache._cache  # over the budget: decoded on every use instead


def test_sampling_is_a_function_of_seed_step_and_rank(make_images: Callable[..., Path],
                                                      tmp_path: Path) -> None:
    root = make_images(tmp_path / "hr")
    images = ImageSet(sorted(root.rglob("img*.png")), 4)
    ds = SRCropDataset(images, 16, 4, seed=1, stream=3, rank=0)
    full = [b for b in make_loader(ds, 0, 6)]
    resumed = [b for b in make_loader(SRCropDataset(images, 16, 4, seed=1, stream=3, rank=0), 4, 6)]
    for (la, ha), (lb, hb) in zip(full[4:], resumed, strict=True):
        assert torch.equal(la, lb) and torch.equal(ha, hb)
    with_workers = [b for b in make_loader(SRCropDataset(images, 16, 4, seed=1, stream=3, rank=0), 0, 6,
                                           num_workers=2)]
    for (la, ha), (lb, hb) in zip(full, with_workers, strict=True):
        assert torch.equal(la, lb) and torch.equal(ha, hb)  # worker processes change nothing
    other_rank = next(iter(make_loader(SRCropDataset(images, 16, 4, seed=1, stream=3, rank=1), 0, 1)))
    assert not torch.equal(full[0][1], other_rank[1])
    # every crop is one of the 8 dihedral transforms of an aligned HR/LR pair
    lr, hr = full[0]
    assert lr.shape == (4, 3, 16, 16) and hr.shape == (4, 3, 64, 64)


def test_patch_larger_than_every_image_is_a_clear_error(make_images: Callable[..., Path],
                                                        tmp_path: Path) -> None:
    root = make_images(tmp_path / "hr", n=2)
    with pytest.raises(DataError, match="at least"):
        SRCropDataset(ImageSet(sorted(root.glob("img*.png")), 4), 64, 2, seed=0)


def test_paired_lr_folders(make_images: Callable[..., Path], tmp_path: Path) -> None:
    hr_root = make_images(tmp_path / "hr", n=4)
    lr_root = tmp_path / "lr"
    for p in sorted(hr_root.rglob("img*.png")):
        rel = p.relative_to(hr_root)
        (lr_root / rel.parent).mkdir(parents=True, exist_ok=True)
        lr = bicubic_downscale_uint8(modcrop(read_rgb_uint8(p), 4), 4)
        if p.name != "img3.png":  # one HR without its LR partner
            Image.fromarray(lr).save(lr_root / rel.parent / f"{p.stem}x4.png")
    cfg = preset("tiny-test")
    cfg.data.train_dirs, cfg.data.paired_lr_dirs = [str(hr_root)], [str(lr_root)]
    cfg.data.val_fraction = 0.0
    images, _, skipped = prepare_data(cfg)
    assert len(images) == 3 and any("no paired LR" in r for _, r in skipped)
    ds = SRCropDataset(images, 15, 2, seed=0, augment=False)
    lr, hr = ds[0]
    assert lr.shape == (3, 15, 15) and hr.shape == (3, 60, 60)


def test_val_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    paths = [tmp_path / f"{i}.png" for i in range(40)]
    train, val = split_train_val(paths, 0.1, 10)
    assert len(val) == 4 and not set(train) & set(val)
    assert split_train_val(list(reversed(paths)), 0.1, 10)[1] == list(reversed(val))


def _find_crop(hr: np.ndarray, sources: dict[str, np.ndarray]) -> list[tuple[str, int, int]]:
    """Where in which source image an HR crop was cut (scale-aligned positions)."""
    n = hr.shape[0]
    return [(name, y, x) for name, img in sources.items()
            for y in range(0, img.shape[0] - n + 1, 4) for x in range(0, img.shape[1] - n + 1, 4)
            if np.array_equal(img[y:y + n, x:x + n], hr)]


def test_hr_scales_crop_from_shrunk_copies_with_their_exact_lr(
        textured: Callable[[int, int, int], np.ndarray], tmp_path: Path) -> None:
    from dipnet_core.train.data import shrink_uint8

    path = tmp_path / "photo.png"
    Image.fromarray(textured(96, 128, 3)).save(path)
    images = ImageSet([path], 4, hr_scales=(1.0, 0.5))
    full = modcrop(read_rgb_uint8(path), 4)
    half = modcrop(shrink_uint8(full, 0.5), 4)
    assert half.shape == (48, 64, 3) and np.array_equal(images.get(0, 1)[0], half)
    sources = {"full": full, "half": half}
    lrs = {k: bicubic_downscale_uint8(v, 4) for k, v in sources.items()}
    ds = SRCropDataset(images, 8, 1, seed=2, augment=False)
    seen = set()
    for key in range(24):
        lr, hr = (t.permute(1, 2, 0).mul(255).round().byte().numpy() for t in ds[key])
        hits = _find_crop(hr, sources)
        assert len(hits) == 1
        name, y, x = hits[0]
        assert np.array_equal(lrs[name][y // 4:y // 4 + 8, x // 4:x // 4 + 8], lr)  # the copy's own LR
        seen.add(name)
    assert seen == {"full", "half"}


def test_texture_tries_spend_fewer_crops_on_flat_areas(
        textured: Callable[[int, int, int], np.ndarray], tmp_path: Path) -> None:
    from dipnet_core.train.data import gradient_energy

    img = np.full((64, 256, 3), 128, np.uint8)
    img[:, 128:] = textured(64, 128, 5)  # left half flat grey, right half texture
    path = tmp_path / "half-flat.png"
    Image.fromarray(img).save(path)
    images = ImageSet([path], 4)

    def flat_share(tries: int) -> float:
        ds = SRCropDataset(images, 8, 1, seed=0, augment=False, texture_tries=tries)
        return float(np.mean([gradient_energy(ds[k][1].permute(1, 2, 0).mul(255).numpy()) == 0 for k in range(200)]))

    plain, picky = flat_share(1), flat_share(4)
    assert 0.3 < plain < 0.6  # a crop is wholly flat when it starts in the first 97 of 225 positions
    assert picky < 0.1  # all four candidates flat: about 0.43 ** 4


def test_data_options_are_validated() -> None:
    from dipnet_core.train.config import ConfigError

    for field_name, value, message in (("hr_scales", [0.5, 0.75], "include 1.0"), ("hr_scales", [1.0, 1.5], "(0, 1]"),
                                       ("texture_tries", 0, ">= 1")):
        cfg = preset("tiny-test")
        setattr(cfg.data, field_name, value)
        with pytest.raises(ConfigError, match=re.escape(message)):
            cfg.validate()
    cfg = preset("tiny-test")
    cfg.data.hr_scales, cfg.data.paired_lr_dirs = [1.0, 0.5], ["/lr"]
    with pytest.raises(ConfigError, match="paired"):
        cfg.validate()


def _solid_folders(root: Path, counts: dict[str, int]) -> dict[str, Path]:
    """One folder per colour (red, green, blue...), each holding ``n`` solid 64x64 images of it."""
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    folders = {}
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", (64, 64), colours[name]).save(folder / f"{name}{i}.png")
        folders[name] = folder
    return folders


def _drawn_colours(ds: SRCropDataset, n: int) -> list[int]:
    """The dominant channel (0 red, 1 green, 2 blue) of the HR crop of each of n samples."""
    return [int(ds[k][1].mean(dim=(1, 2)).argmax()) for k in range(n)]


def test_folder_weights_set_the_crop_mix_whatever_the_image_counts(tmp_path: Path) -> None:
    folders = _solid_folders(tmp_path, {"red": 1, "green": 9, "blue": 2})
    cfg = preset("tiny-test")
    cfg.data.train_dirs = [str(folders[c]) for c in ("red", "green", "blue")]
    cfg.data.val_fraction, cfg.data.val_max_images = 0.0, 0
    uniform, _, _ = prepare_data(cfg)
    drawn = _drawn_colours(SRCropDataset(uniform, 16, 4, seed=0, augment=False), 600)
    assert 0.04 < drawn.count(0) / 600 < 0.14  # uniform per image: red is 1 image in 12

    cfg.data.train_weights = [2.0, 1.0, 0.0]
    weighted, _, _ = prepare_data(cfg)
    ds = SRCropDataset(weighted, 16, 4, seed=0, augment=False)
    drawn = _drawn_colours(ds, 600)
    assert 0.58 < drawn.count(0) / 600 < 0.75  # red gets 2/3 of the crops from its single image
    assert drawn.count(2) == 0  # weight 0: blue is never drawn
    again = SRCropDataset(weighted, 16, 4, seed=0, augment=False)
    for key in (0, 7, 123):  # still a pure function of (seed, step, index)
        assert all(torch.equal(a, b) for a, b in zip(ds[key], again[key], strict=True))


def test_folder_weights_are_checked_against_the_folders(tmp_path: Path) -> None:
    from dipnet_core.train.config import ConfigError

    folders = _solid_folders(tmp_path, {"red": 1, "green": 1})
    cfg = preset("tiny-test")
    cfg.data.train_dirs = [str(folders["red"]), str(folders["green"])]
    cfg.data.train_weights = [1.0]
    with pytest.raises(ConfigError, match=r"train_weights has 1 value\(s\) for 2 folder"):
        cfg.validate()
    for bad in ([1.0, -1.0], [0.0, 0.0], [1.0, float("nan")]):
        cfg.data.train_weights = bad
        with pytest.raises(ConfigError, match="train_weights must be >= 0 with a positive sum"):
            cfg.validate()
