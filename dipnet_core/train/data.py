"""Training and validation data: random HR crops with their MATLAB-bicubic LR.

Reproducibility is the central design choice: the crop for sample ``i`` of
step ``s`` is drawn from a generator seeded by ``(seed, stream, rank, s, i)``.
A run resumed at step ``s`` therefore sees exactly the batches an uninterrupted
run would, without saving any DataLoader or sampler state, and with any number
of worker processes. Under DDP each rank has its own ``rank`` in the seed, so
ranks see different crops.

LR patches are made by downscaling the HR crop plus a margin of ``2 * scale``
HR pixels (the bicubic kernel's reach) and cutting the margin off the result,
so a crop's LR equals the same region of the whole-image LR exactly, the same
LR the benchmark protocol uses. Images that cannot be read or are too small
are skipped and reported as ``(path, reason)``; they never crash a run.

Two options shape what the crops show, both off by default:

- ``hr_scales``: each sample picks one of several copies of its image, shrunk
  by these factors (Lanczos, made once and cached). Shrinking a smooth photo
  packs more edges and texture into each patch, the way multi-scale DIV2K
  copies are used for training (our wallpapers are far smoother than Set5/14).
- ``texture_tries``: draw this many crop positions and keep the one with the
  most gradient energy, so fewer steps are spent on flat sky; the idea of
  informative-patch sampling (SamplingAug, 2021), with a cheap score.

A third, ``degradation`` (:mod:`.degrade`), replaces the bicubic LR of a crop
by a blurred, noisy, JPEG-compressed one for models meant for real photos.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import InputError
from ..image_folder import IMAGE_SUFFIXES, READ_ERRORS, image_size, read_rgb_uint8, scan_images
from ..models.blocks import min_input_size
from ..resize import bicubic_downscale_uint8, imresize, modcrop
from .degrade import Degrader

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "ImageSet",
    "SRCropDataset",
    "StepBatchSampler",
    "ValItem",
    "gradient_energy",
    "load_val_set",
    "make_loader",
    "read_rgb_uint8",
    "sample_generator",
    "scan_images",
    "shrink_uint8",
    "split_train_val",
]


class DataError(InputError, RuntimeError):
    """No usable training data (the message says why and lists what was skipped)."""


def split_train_val(paths: Sequence[Path], fraction: float, max_val: int) -> tuple[list[Path], list[Path]]:
    """Deterministic split by a hash of each file name, stable when files are added or removed."""
    if fraction <= 0 or len(paths) < 2:
        return list(paths), []
    keyed = sorted(paths, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    n_val = max(1, min(max_val, round(len(paths) * fraction), len(paths) - 1))
    val = set(keyed[:n_val])
    return [p for p in paths if p not in val], [p for p in paths if p in val]


@dataclass
class ImageSet:
    """HR image files (and optional paired LR files) with a bounded in-memory decode cache.

    Only decoded HR (and paired LR) pixels are cached: bicubic LR is always made
    per crop (exactly equal to the whole-image LR, see :func:`_lr_of_crop`),
    which keeps memory flat for 5K wallpapers where a whole-image MATLAB resize
    would need gigabytes of temporaries.
    """

    paths: list[Path]
    scale: int
    lr_paths: list[Path] | None = None
    cache: bool = True
    cache_mb: int = 2048
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Shrink factors of the HR copies a crop may come from; must include 1.0 (the file as it
    # is), which also stands in when a shrunk copy is smaller than the patch.
    hr_scales: tuple[float, ...] = (1.0,)
    # Optional crop mix per source folder: folders[i] is the folder index of paths[i] and
    # folder_weights the relative share of crops each folder gets (empty = uniform per image).
    folders: list[int] | None = None
    folder_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.hr_scales = tuple(float(f) for f in self.hr_scales)
        if 1.0 not in self.hr_scales or not all(0.0 < f <= 1.0 for f in self.hr_scales):
            raise ValueError(f"hr_scales must be in (0, 1] and include 1.0, got {list(self.hr_scales)}")
        if self.lr_paths is not None and self.hr_scales != (1.0,):
            raise ValueError("hr_scales other than [1.0] cannot be used with paired LR folders")
        self.folder_weights = tuple(float(w) for w in self.folder_weights)
        if self.folder_weights and (self.folders is None or len(self.folders) != len(self.paths)
                                    or max(self.folders, default=0) >= len(self.folder_weights)):
            raise ValueError("folder_weights need a folder index for every path")
    _cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict, repr=False)
    _cache_bytes: int = 0
    _sizes: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    def size(self, i: int) -> tuple[int, int]:
        """(height, width) of the HR image after modcrop (from the header; EXIF rotation may swap them)."""
        if i not in self._sizes:
            h, w = image_size(self.paths[i])
            self._sizes[i] = (h - h % self.scale, w - w % self.scale)
        return self._sizes[i]

    def get(self, i: int, k: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """HR uint8 (modcropped) of copy ``k`` (``hr_scales[k]``) and, for paired folders, the full LR (else None)."""
        if (i, k) in self._cache:
            return self._cache[(i, k)]
        factor = self.hr_scales[k]
        if factor != 1.0:
            hr = modcrop(shrink_uint8(self.get(i, self.hr_scales.index(1.0))[0], factor), self.scale)
            self._remember((i, k), (hr, None))
            return hr, None
        hr = modcrop(read_rgb_uint8(self.paths[i]), self.scale)
        lr: np.ndarray | None = None
        if self.lr_paths is not None:
            lr = read_rgb_uint8(self.lr_paths[i])
            lh, lw = hr.shape[0] // self.scale, hr.shape[1] // self.scale
            if lr.shape[0] < lh or lr.shape[1] < lw:
                raise ValueError(f"paired LR '{self.lr_paths[i]}' is {lr.shape[1]}x{lr.shape[0]}, "
                                 f"expected {lw}x{lh} for scale {self.scale}")
            lr = lr[:lh, :lw]
        self._remember((i, k), (hr, lr))
        return hr, lr

    def _remember(self, key: tuple[int, int], pair: tuple[np.ndarray, np.ndarray | None]) -> None:
        nbytes = sum(a.nbytes for a in pair if a is not None)
        if self.cache and self._cache_bytes + nbytes <= self.cache_mb * 2**20:
            self._cache[key] = pair
            self._cache_bytes += nbytes


def shrink_uint8(img: np.ndarray, factor: float) -> np.ndarray:
    """``img`` resized by ``factor`` < 1 with Lanczos (new HR content, not the LR degradation)."""
    from PIL import Image

    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def gradient_energy(patch: np.ndarray) -> float:
    """Mean absolute horizontal + vertical difference of the channel sum: a cheap texture score."""
    g = patch.astype(np.int32).sum(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def _lr_of_crop(hr: np.ndarray, y: int, x: int, hp: int, scale: int) -> np.ndarray:
    """LR of ``hr[y:y+hp, x:x+hp]`` equal to the whole-image MATLAB-bicubic LR at that place."""
    m = 2 * scale  # bicubic reach at 1/scale: 2 LR px = 2*scale HR px per side
    h, w = hr.shape[:2]
    y0, x0 = max(0, y - m), max(0, x - m)
    y1, x1 = min(h, y + hp + m), min(w, x + hp + m)
    region = hr[y0:y1, x0:x1]
    lr = np.clip(np.round(imresize(region.astype(np.float64), scale=1.0 / scale)), 0, 255).astype(np.uint8)
    oy, ox = (y - y0) // scale, (x - x0) // scale
    lp = hp // scale
    return lr[oy:oy + lp, ox:ox + lp]


def _augment(lr: np.ndarray, hr: np.ndarray, code: int) -> tuple[np.ndarray, np.ndarray]:
    """One of the 8 dihedral transforms (flips and 90-degree rotations), the same for LR and HR."""
    if code & 1:
        lr, hr = lr[:, ::-1], hr[:, ::-1]
    if code & 2:
        lr, hr = lr[::-1], hr[::-1]
    if code & 4:
        lr, hr = lr.transpose(1, 0, 2), hr.transpose(1, 0, 2)
    return lr, hr


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img).transpose(2, 0, 1).astype(np.float32) / 255.0)


def sample_generator(seed: int, stream: int, rank: int, step: int, index: int) -> np.random.Generator:
    """The generator for one training sample; a pure function of its coordinates."""
    return np.random.Generator(np.random.PCG64([seed, stream, rank, step, index]))


def folder_mix(images: ImageSet, eligible: list[int]) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """For weighted folders: (probability of each folder, positions in ``eligible`` of its images).

    None when the set has no folder weights (every image equally likely). A folder with no image
    large enough for the patch drops out and the others' shares are renormalized.
    """
    if not images.folder_weights or images.folders is None:
        return None
    members = [np.flatnonzero([images.folders[idx] == k for idx in eligible]) for k in range(len(images.folder_weights))]
    keep = [k for k, m in enumerate(members) if len(m) and images.folder_weights[k] > 0]
    if not keep:
        raise DataError("no folder with a positive data.train_weights value has an image large enough "
                        "for the training patch")
    weights = np.array([images.folder_weights[k] for k in keep], dtype=np.float64)
    return weights / weights.sum(), [members[k] for k in keep]


class SRCropDataset(Dataset):
    """Map-style dataset indexed by ``(step, i)`` pairs encoded as ``step * batch + i``."""

    def __init__(self, images: ImageSet, lr_patch: int, batch: int, seed: int, stream: int = 0,
                 rank: int = 0, augment: bool = True, texture_tries: int = 1,
                 degrader: Degrader | None = None) -> None:
        self.images, self.lr_patch, self.batch = images, lr_patch, batch
        self.degrader = degrader
        self.seed, self.stream, self.rank, self.augment = seed, stream, rank, augment
        self.texture_tries = max(1, int(texture_tries))
        hp = lr_patch * images.scale
        self.eligible = [i for i in range(len(images)) if min(images.size(i)) >= hp]
        eligible = set(self.eligible)
        self.too_small = [(str(images.paths[i]), f"smaller than the {hp} px HR patch")
                          for i in range(len(images)) if i not in eligible]
        if not self.eligible:
            raise DataError(f"no training image is at least {hp}x{hp} px (LR patch {lr_patch} x{images.scale}); "
                            f"{len(images)} image(s) were considered")
        self._failed: set[int] = set()
        self._folder_pick = folder_mix(images, self.eligible)

    def __len__(self) -> int:
        return 2**62  # indices come from StepBatchSampler, never from len()

    def _candidates(self, rng: np.random.Generator) -> np.ndarray:
        """Positions in ``eligible`` to try in order: the first is the sample's image."""
        if self._folder_pick is None:
            return rng.permutation(len(self.eligible))  # the original draw: default runs keep their crops
        probs, members = self._folder_pick
        first = members[int(rng.choice(len(probs), p=probs))]
        # the drawn folder's images first, then every other image as a fallback for unreadable files
        rest = rng.permutation(len(self.eligible))
        return np.concatenate([rng.permutation(first), rest[~np.isin(rest, first)]])

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor]:
        step, i = divmod(int(key), self.batch)
        rng = sample_generator(self.seed, self.stream, self.rank, step, i)
        order = self._candidates(rng)
        # Fall through to the next candidate if an image fails to decode, so a
        # corrupt file found late costs one retry instead of the run.
        for j in order:
            idx = self.eligible[int(j)]
            if idx in self._failed:
                continue
            try:
                return self._crop(idx, rng)
            except READ_ERRORS as exc:
                self._failed.add(idx)
                self.images.skipped.append((str(self.images.paths[idx]), f"decode failed: {exc}"))
        raise DataError("every training image failed to decode")

    def _crop(self, idx: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        s, lp = self.images.scale, self.lr_patch
        hp = lp * s
        # Extra draws happen only when an option is on, so default runs keep their exact crops.
        k = int(rng.integers(0, len(self.images.hr_scales))) if len(self.images.hr_scales) > 1 else 0
        hr_img, lr_img = self.images.get(idx, k)
        if min(hr_img.shape[:2]) < hp:  # a shrunk copy can be too small for this patch size
            hr_img, lr_img = self.images.get(idx, self.images.hr_scales.index(1.0))
        h, w = hr_img.shape[:2]
        best = -1.0
        for _ in range(self.texture_tries):
            cy = int(rng.integers(0, h // s - lp + 1))
            cx = int(rng.integers(0, w // s - lp + 1))
            if self.texture_tries == 1:
                ly, lx = cy, cx
                break
            score = gradient_energy(hr_img[cy * s:cy * s + hp, cx * s:cx * s + hp])
            if score > best:
                best, ly, lx = score, cy, cx
        y, x = ly * s, lx * s
        hr = hr_img[y:y + hp, x:x + hp]
        code = int(rng.integers(0, 8)) if self.augment else 0
        if self.degrader is not None:
            # Drawn after the crop and flip, so a degraded run sees the same crops as a clean one.
            lr = self.degrader(hr, np.random.Generator(np.random.PCG64(int(rng.integers(0, 2**63)))))
        else:
            lr = lr_img[ly:ly + lp, lx:lx + lp] if lr_img is not None else _lr_of_crop(hr_img, y, x, hp, s)
        lr, hr = _augment(lr, hr, code)
        return _to_tensor(lr), _to_tensor(hr)


class StepBatchSampler(Sampler[list[int]]):
    """Yields the index batches of steps ``start .. total-1``; resuming is just a different ``start``."""

    def __init__(self, start: int, total: int, batch: int) -> None:
        self.start, self.total, self.batch = start, total, batch

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.total):
            yield [step * self.batch + i for i in range(self.batch)]

    def __len__(self) -> int:
        return max(0, self.total - self.start)


def make_loader(dataset: SRCropDataset, start_step: int, total_steps: int, num_workers: int = 0,
                pin_memory: bool = False) -> DataLoader:
    """DataLoader over steps ``start_step..total_steps-1``; workers only speed it up, never change it."""
    kwargs: dict = {}
    if num_workers > 0:
        # The platform's default start method: fork on Linux up to Python 3.13 shares the
        # parent's decoded-image cache for free; forcing fork would warn on newer Pythons.
        kwargs.update(persistent_workers=False, prefetch_factor=2)
    return DataLoader(dataset, batch_sampler=StepBatchSampler(start_step, total_steps, dataset.batch),
                      num_workers=num_workers, pin_memory=pin_memory, **kwargs)


@dataclass
class ValItem:
    name: str
    lr: np.ndarray  # uint8 HxWx3
    hr: np.ndarray  # uint8 (h*scale)x(w*scale)x3


def load_val_set(paths: Sequence[Path], scale: int, crop: int = 0,
                 skipped: list[tuple[str, str]] | None = None) -> list[ValItem]:
    """HR -> modcrop -> optional centre crop -> benchmark LR (MATLAB bicubic, rounded to uint8)."""
    items: list[ValItem] = []
    min_hr = min_input_size() * scale
    for p in paths:
        try:
            hr = read_rgb_uint8(p)
        except READ_ERRORS as exc:
            if skipped is not None:
                skipped.append((str(p), f"validation image unreadable: {exc}"))
            continue
        if crop > 0:
            c = max(crop - crop % scale, min_hr)
            h, w = hr.shape[:2]
            if h > c or w > c:
                y, x = max(0, (h - c) // 2), max(0, (w - c) // 2)
                hr = hr[y:y + c, x:x + c]
        hr = modcrop(hr, scale)
        if min(hr.shape[:2]) < min_hr:
            if skipped is not None:
                skipped.append((str(p), f"validation image too small (< {min_hr} px)"))
            continue
        items.append(ValItem(Path(p).stem, bicubic_downscale_uint8(hr, scale), np.ascontiguousarray(hr)))
    return items
