"""The whole image's ESA grid for a tile: geometry and interpolation matrices, numpy only.

Kept apart from :mod:`.gridnet` (the torch modules) so the onnxruntime path and the
tiler never import torch. See :mod:`.gridnet` for why tiles follow the whole image's grid.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

#: Tiles of a grid-aware model must start on multiples of this (conv stride 2 x pool stride 3).
GRID_ALIGN = 6


def coarse_size(n: int) -> int:
    """Coarse-map length ESA produces for an input length ``n`` (>= 15)."""
    return ((n - 3) // 2 + 1 - 7) // 3 + 1


@dataclass(frozen=True)
class TileGrid:
    """Where a tile lies in the image whose ESA grid it must follow."""

    y0: int
    x0: int
    height: int  # whole image
    width: int


@functools.lru_cache(maxsize=512)
def _axis_matrix(start: int, length: int, full: int) -> np.ndarray:
    """(length x coarse_size(length)) bilinear weights: tile pixels -> tile coarse cells, on the full grid."""
    n_full = coarse_size(full)
    n_tile = coarse_size(length)
    if start % GRID_ALIGN:
        raise ValueError(f"tile start {start} is not a multiple of {GRID_ALIGN}")
    ratio = np.float32(n_full) / np.float32(full)  # PyTorch computes the resize ratio in float32
    y = np.arange(start, start + length, dtype=np.float32)
    u = np.maximum((y + np.float32(0.5)) * ratio - np.float32(0.5), np.float32(0.0))
    i0 = u.astype(np.int64)
    i1 = np.where(i0 < n_full - 1, i0 + 1, i0)
    lam = np.clip(u - i0, 0.0, 1.0).astype(np.float32)
    # Cells of the tile are the full grid's cells start/6 ... ; near the tile's far edge the
    # needed cell may be missing: clamp (those pixels lie in the overlap and are discarded).
    shift = start // GRID_ALIGN
    j0 = np.clip(i0 - shift, 0, n_tile - 1)
    j1 = np.clip(i1 - shift, 0, n_tile - 1)
    m = np.zeros((length, n_tile), np.float32)
    rows = np.arange(length)
    np.add.at(m, (rows, j0), 1.0 - lam)
    np.add.at(m, (rows, j1), lam)
    m.flags.writeable = False  # cached and shared between tiles
    return m


def grid_matrices(grid: TileGrid, tile_h: int, tile_w: int) -> tuple[np.ndarray, np.ndarray]:
    """``ry`` (tile_h x coarse_h) and ``rx_t`` (coarse_w x tile_w) for :class:`GridDIPNet`."""
    # Fresh writable copies (a few tens of kB): torch refuses read-only numpy arrays.
    ry = _axis_matrix(grid.y0, tile_h, grid.height).copy()
    rx_t = _axis_matrix(grid.x0, tile_w, grid.width).T.copy()
    return ry, rx_t
