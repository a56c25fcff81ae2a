"""Spatial cells: the one axis-aligned grid that storage, render culling and level of detail share.

A world is cut into cubes of ``size_m`` metres; cell ``(i, j, k)`` holds the Gaussians whose
means lie in ``[i, i+1) x [j, j+1) x [k, k+1)`` times ``size_m`` (world frame). The store writes
one file per cell, the renderer culls whole cells against a camera's frustum, and the level of
detail picks one level per cell, so all three must agree on the same keys: they use this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

#: Default cell edge in metres: a room or a stretch of street; a 320x240 frame sees tens of cells.
DEFAULT_CELL_SIZE_M = 8.0

CellKey = tuple[int, int, int]


@dataclass(frozen=True)
class CellGrid:
    """An axis-aligned grid of cubic cells in the world frame.

    Attributes:
        size_m: edge length of one cell in metres (> 0).
    """

    size_m: float = DEFAULT_CELL_SIZE_M

    def __post_init__(self) -> None:
        if not np.isfinite(self.size_m) or self.size_m <= 0:
            raise InputError(f"CellGrid.size_m={self.size_m}: must be a positive number of metres")

    def keys(self, points_world_m: NDArray[np.floating]) -> NDArray[np.int64]:
        """Cell index of each point: [N, 3] metres -> [N, 3] int64."""
        pts = np.asarray(points_world_m, dtype=np.float64).reshape(-1, 3)
        return np.floor(pts / self.size_m).astype(np.int64)

    def group(self, points_world_m: NDArray[np.floating]) -> dict[CellKey, NDArray[np.int64]]:
        """Indices of the points in each occupied cell, in ascending point order per cell.

        Args:
            points_world_m: [N, 3] positions in metres.

        Returns:
            {(i, j, k): [n_cell] int64 indices into ``points_world_m``}; cells sorted by key.
        """
        keys = self.keys(points_world_m)
        if len(keys) == 0:
            return {}
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        order = np.argsort(inverse.reshape(-1), kind="stable")
        bounds = np.searchsorted(inverse.reshape(-1)[order], np.arange(len(uniq) + 1))
        return {(int(u[0]), int(u[1]), int(u[2])): order[bounds[c]:bounds[c + 1]].astype(np.int64)
                for c, u in enumerate(uniq)}

    def bounds_m(self, key: CellKey) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(min corner [3], max corner [3]) of a cell in world metres."""
        lo = np.asarray(key, dtype=np.float64) * self.size_m
        return lo, lo + self.size_m

    def centre_m(self, key: CellKey) -> NDArray[np.float64]:
        """Centre [3] of a cell in world metres."""
        return (np.asarray(key, dtype=np.float64) + 0.5) * self.size_m

    def near(self, position_world_m: NDArray[np.floating], radius_m: float) -> list[CellKey]:
        """Every cell that intersects the ball of ``radius_m`` around a position, sorted by key."""
        p = np.asarray(position_world_m, dtype=np.float64).reshape(3)
        lo = np.floor((p - radius_m) / self.size_m).astype(np.int64)
        hi = np.floor((p + radius_m) / self.size_m).astype(np.int64)
        out: list[CellKey] = []
        for i in range(lo[0], hi[0] + 1):
            for j in range(lo[1], hi[1] + 1):
                for k in range(lo[2], hi[2] + 1):
                    c_lo, c_hi = self.bounds_m((i, j, k))
                    nearest = np.clip(p, c_lo, c_hi)
                    if float(np.sum((nearest - p) ** 2)) <= radius_m * radius_m:
                        out.append((int(i), int(j), int(k)))
        return out


def cell_name(key: CellKey) -> str:
    """File-system-safe name of a cell, e.g. ``c_3_-1_0``."""
    return f"c_{key[0]}_{key[1]}_{key[2]}"


def parse_cell_name(name: str) -> CellKey:
    """Inverse of :func:`cell_name`; InputError for anything else."""
    parts = name.split("_")
    if len(parts) != 4 or parts[0] != "c":
        raise InputError(f"{name!r} is not a cell name (expected c_I_J_K)")
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        raise InputError(f"{name!r} is not a cell name (expected c_I_J_K with integers)") from None
