"""Fixtures shared by the core training tests: tiny textured images and a tiny config.

Reference-data fixtures (official weights, Set5) live in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    from dipnet_core.train.config import TrainConfig


def _textured(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([128 + 90 * np.sin(x / (3 + seed % 5) + c) * np.cos(y / (4 + c)) for c in range(3)], -1)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def textured() -> Callable[[int, int, int], np.ndarray]:
    """``textured(h, w, seed)``: a reproducible HxWx3 uint8 image (sine texture plus noise).

    Structured enough for a tiny model to learn from in a few steps, unlike pure noise.
    """
    return _textured


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 8 textured HR images ``img0.png`` .. ``img7.png`` (64x96 down to 92x68), one per module."""
    from PIL import Image

    root = tmp_path_factory.mktemp("hr")
    for i in range(8):
        Image.fromarray(_textured(64 + 4 * i, 96 - 4 * i, i)).save(root / f"img{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_config(data_dir: Path) -> Callable[[Path], TrainConfig]:
    """``tiny_config(out)``: a fresh ``tiny-test`` preset training on ``data_dir``, writing to ``out``."""

    from dipnet_core.train.config import preset

    def make(out: Path) -> TrainConfig:
        cfg = preset("tiny-test")
        cfg.data.train_dirs = [str(data_dir)]
        cfg.run.out_dir = str(out)
        return cfg

    return make
