"""Cell tables: the primitives of a rectangular window of grid cells, built in parallel.

The world is a pure function of (family, seed, cell index); a :class:`CellTable` materializes it
for the window of cells some cameras can see, and :class:`CellCache` keeps the last window so a
trajectory rendered chunk by chunk builds its cells once.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numba import njit
from numpy.typing import NDArray

from srender_ros.backends.generators.procedural.cellkit import object_bounds
from srender_ros.backends.generators.procedural.cells_indoor import build_kitchen, build_office, build_room, build_warehouse
from srender_ros.backends.generators.procedural.cells_outdoor import build_field, build_forest, build_street
from srender_ros.backends.generators.procedural.materials import NF, T_BOX, T_CYL
from srender_ros.backends.generators.procedural.noise import NJIT
from srender_ros.backends.generators.procedural.scene import (
    F_FOREST,
    F_KITCHEN,
    F_OFFICE,
    F_ROOM,
    F_STREET,
    F_WAREHOUSE,
    P_CEILING,
    P_CELL,
    P_CONTENT_R,
    P_FAMILY,
    P_ORIGIN,
    P_SUBDIV,
    P_TERRAIN,
    SceneSpec,
)
from srender_ros.errors import InputError

#: Content stops this far below the ceiling plane, so that no wall or shelf top pokes through the
#: flat roof when seen from above (float32 storage rounds 2.7 up to 2.70000005).
CEILING_GAP_M = 0.002
#: A window of more cells than this is built in pieces (bounds memory: ~100 MB of primitives).
MAX_WINDOW_CELLS = 40_000


@njit(**NJIT)
def clamp_under_ceiling(rec: np.ndarray, n: int, zmax: float) -> None:
    """Cut boxes and cylinders at zmax and move ellipsoids down below it."""
    for k in range(n):
        row = rec[k]
        t = int(row[0])
        if t == T_BOX:
            row[6] = min(row[6], zmax)
        elif t == T_CYL:
            row[5] = min(row[5], zmax)
        else:
            row[3] = min(row[3], zmax - row[6])


@njit(**NJIT)
def confine(rec: np.ndarray, n: int, x0: float, y0: float, c: float) -> None:
    """Make every primitive lie inside its cell [x0, x0 + c] x [y0, y0 + c] (the ray caster relies on it).

    Boxes are clipped; cylinders and ellipsoids are moved inwards by their overhang (builders keep
    overhangs to centimetres, so this only guards against a stray plant or chair).
    """
    for k in range(n):
        row = rec[k]
        t = int(row[0])
        if t == T_BOX:
            row[1] = max(row[1], x0)
            row[2] = max(row[2], y0)
            row[4] = min(row[4], x0 + c)
            row[5] = min(row[5], y0 + c)
        else:
            rx = row[3] if t == T_CYL else row[4]
            ry = row[3] if t == T_CYL else row[5]
            row[1] = min(max(row[1], x0 + rx), x0 + c - rx)
            row[2] = min(max(row[2], y0 + ry), y0 + c - ry)


@njit(**NJIT)
def _build_window(seed: np.uint64, params: np.ndarray, ix0: int, iy0: int, nx: int, ny: int, k: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    family = int(params[P_FAMILY])
    c = params[P_CELL]
    g = params[P_ORIGIN]
    s = int(params[P_SUBDIV])
    hgt = params[P_CEILING]
    cs = c / s
    objs = np.zeros((nx * ny, k, NF), dtype=np.float32)
    count = np.zeros(nx * ny, dtype=np.int32)
    sub_cnt = np.zeros((nx * ny, s * s), dtype=np.int32)
    sub_idx = np.zeros((nx * ny, s * s, k), dtype=np.uint8)
    sub_z = np.empty((nx * ny, s * s + 1, 2), dtype=np.float64)
    for ci in range(nx * ny):
        ix = ix0 + ci // ny
        iy = iy0 + ci % ny
        rec = objs[ci]
        x0 = g + ix * c
        y0 = g + iy * c
        # The family dispatch lives here rather than in a helper: one less level of compiled calls.
        if family == F_ROOM:
            n = build_room(rec, seed, ix, iy, x0, y0, c, hgt)
        elif family == F_OFFICE:
            n = build_office(rec, seed, ix, iy, x0, y0, c, hgt)
        elif family == F_KITCHEN:
            n = build_kitchen(rec, seed, ix, iy, x0, y0, c, hgt)
        elif family == F_WAREHOUSE:
            n = build_warehouse(rec, seed, ix, iy, x0, y0, c, hgt)
        elif family == F_STREET:
            n = build_street(rec, seed, ix, iy, x0, y0, c)
        elif family == F_FOREST:
            n = build_forest(rec, seed, ix, iy, x0, y0, c)
        else:
            n = build_field(rec, seed, ix, iy, x0, y0, c, g, params[P_TERRAIN])
        count[ci] = n
        confine(rec, n, x0, y0, c)
        if params[P_CEILING] > 0.0:
            clamp_under_ceiling(objs[ci], n, params[P_CEILING] - CEILING_GAP_M)
        sub_z[ci, :, 0] = np.inf
        sub_z[ci, :, 1] = -np.inf
        for j in range(n):
            bx0, by0, bz0, bx1, by1, bz1 = object_bounds(objs[ci, j])
            # Sub-cells the primitive's footprint overlaps (a hair of margin for faces on a boundary).
            a0 = max(0, min(s - 1, int(math.floor((bx0 - x0) / cs - 1e-6))))
            a1 = max(0, min(s - 1, int(math.floor((bx1 - x0) / cs + 1e-6))))
            b0 = max(0, min(s - 1, int(math.floor((by0 - y0) / cs - 1e-6))))
            b1 = max(0, min(s - 1, int(math.floor((by1 - y0) / cs + 1e-6))))
            for a in range(a0, a1 + 1):
                for b in range(b0, b1 + 1):
                    q = a * s + b
                    sub_idx[ci, q, sub_cnt[ci, q]] = j
                    sub_cnt[ci, q] += 1
                    sub_z[ci, q, 0] = min(sub_z[ci, q, 0], bz0)
                    sub_z[ci, q, 1] = max(sub_z[ci, q, 1], bz1)
            sub_z[ci, s * s, 0] = min(sub_z[ci, s * s, 0], bz0)
            sub_z[ci, s * s, 1] = max(sub_z[ci, s * s, 1], bz1)
    return objs, count, sub_cnt, sub_idx, sub_z


@dataclass(frozen=True, eq=False)
class CellTable:
    """Primitives of the cells ix0 <= ix < ix0 + nx, iy0 <= iy < iy0 + ny.

    Attributes:
        ix0, iy0, nx, ny: the window, in cell indices.
        objs: [nx * ny, K, NF] float32 primitive records (cell index ci = (ix - ix0) * ny + (iy - iy0)).
        count: [nx * ny] int32 primitives per cell (rows beyond it are unused).
        sub_cnt: [nx * ny, S * S] int32 number of primitives overlapping each sub-cell
            (sub-cell q = a * S + b for the a-th column in x and b-th row in y).
        sub_idx: [nx * ny, S * S, K] uint8 their indices into the cell's records.
        sub_z: [nx * ny, S * S + 1, 2] float64 (min z, max z) of the primitives overlapping each
            sub-cell; entry S * S holds the range of the whole cell (+inf, -inf when empty).
    """

    ix0: int
    iy0: int
    nx: int
    ny: int
    objs: NDArray[np.float32]
    count: NDArray[np.int32]
    sub_cnt: NDArray[np.int32]
    sub_idx: NDArray[np.uint8]
    sub_z: NDArray[np.float64]

    @cached_property
    def z_bounds(self) -> tuple[float, float]:
        """(min z, max z) over every primitive of the window (+-inf sentinels when it is empty)."""
        lo, hi = self.sub_z[..., 0], self.sub_z[..., 1]
        return (float(lo.min()) if lo.size else np.inf), (float(hi.max()) if hi.size else -np.inf)

    def contains(self, ix0: int, iy0: int, nx: int, ny: int) -> bool:
        return (self.ix0 <= ix0 and self.iy0 <= iy0 and ix0 + nx <= self.ix0 + self.nx
                and iy0 + ny <= self.iy0 + self.ny)


def build_table(scene: SceneSpec, ix0: int, iy0: int, nx: int, ny: int) -> CellTable:
    """Build the cells of a window (~1 us per cell)."""
    if nx <= 0 or ny <= 0 or nx * ny > 4 * MAX_WINDOW_CELLS:
        raise InputError(f"cell window {nx}x{ny} is empty or too large; render fewer, closer cameras at once")
    if scene.layout.max_objects > 255:
        raise InputError(f"max_objects={scene.layout.max_objects}: sub-cell indices are uint8, at most 255")
    objs, count, sub_cnt, sub_idx, sub_z = _build_window(np.uint64(scene.seed), scene.params(), ix0, iy0, nx, ny,
                                                         scene.layout.max_objects)
    return CellTable(ix0, iy0, nx, ny, objs, count, sub_cnt, sub_idx, sub_z)


def window_for(scene: SceneSpec, xy_m: NDArray[np.float64]) -> tuple[int, int, int, int]:
    """(ix0, iy0, nx, ny): every cell within the content radius of any of the [N, 2] camera positions."""
    lay = scene.layout
    r = float(scene.params()[P_CONTENT_R]) + 1e-6
    lo = np.floor((xy_m.min(axis=0) - r - lay.grid_origin_m) / lay.cell_m).astype(np.int64)
    hi = np.floor((xy_m.max(axis=0) + r - lay.grid_origin_m) / lay.cell_m).astype(np.int64)
    return int(lo[0]), int(lo[1]), int(hi[0] - lo[0] + 1), int(hi[1] - lo[1] + 1)


def group_cameras(scene: SceneSpec, xy_m: NDArray[np.float64]) -> list[NDArray[np.int64]]:
    """Split camera indices (in order) into runs whose cell window stays below MAX_WINDOW_CELLS."""
    groups: list[NDArray[np.int64]] = []
    start = 0
    n = len(xy_m)
    lo = xy_m[0].copy()
    hi = xy_m[0].copy()
    for i in range(1, n + 1):
        if i < n:
            nlo, nhi = np.minimum(lo, xy_m[i]), np.maximum(hi, xy_m[i])
            _, _, nx, ny = window_for(scene, np.stack([nlo, nhi]))
            if nx * ny <= MAX_WINDOW_CELLS:
                lo, hi = nlo, nhi
                continue
        groups.append(np.arange(start, i, dtype=np.int64))
        if i < n:
            start, lo, hi = i, xy_m[i].copy(), xy_m[i].copy()
    return groups


class CellCache:
    """The last built window of one scene; thread-safe. Grows to cover new cameras when that stays small."""

    def __init__(self, scene: SceneSpec) -> None:
        self.scene = scene
        self._table: CellTable | None = None
        self._lock = threading.Lock()

    def table_for(self, xy_m: NDArray[np.float64]) -> CellTable:
        """A table covering every cell within the content radius of the [N, 2] camera positions."""
        ix0, iy0, nx, ny = window_for(self.scene, xy_m)
        with self._lock:
            old = self._table
            if old is not None and old.contains(ix0, iy0, nx, ny):
                return old
            if old is not None:
                ux0, uy0 = min(ix0, old.ix0), min(iy0, old.iy0)
                ux1 = max(ix0 + nx, old.ix0 + old.nx)
                uy1 = max(iy0 + ny, old.iy0 + old.ny)
                if (ux1 - ux0) * (uy1 - uy0) <= MAX_WINDOW_CELLS:
                    ix0, iy0, nx, ny = ux0, uy0, ux1 - ux0, uy1 - uy0
            # Pad a little so a camera moving on builds the next window less often.
            pad = max(1, int(math.ceil(0.1 * max(nx, ny))))
            if (nx + 2 * pad) * (ny + 2 * pad) <= MAX_WINDOW_CELLS:
                ix0, iy0, nx, ny = ix0 - pad, iy0 - pad, nx + 2 * pad, ny + 2 * pad
            table = build_table(self.scene, ix0, iy0, nx, ny)
            self._table = table
            return table
