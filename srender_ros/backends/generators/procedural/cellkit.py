"""Small building blocks for the cell builders: a per-cell random stream, primitive writers, palettes."""

from __future__ import annotations

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.materials import T_BOX, T_CYL, T_ELL
from srender_ros.backends.generators.procedural.noise import NJIT, REC_T, RGB_T, ST_T, hash3, mix64, u01

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_SLOT_T = "Tuple((float64, float64, float64, float64, int64))"
_G6 = "float64, float64, float64, float64, float64, float64"


@njit(ST_T + "(uint64, int64, int64, int64)", **NJIT)
def stream(seed: np.uint64, ix: int, iy: int, salt: int) -> np.ndarray:
    """A random stream (1-element uint64 state) for one cell and purpose."""
    st = np.empty(1, dtype=np.uint64)
    st[0] = hash3(seed, ix, iy, salt)
    return st


@njit(**NJIT)
def nxt(st: np.ndarray) -> float:
    """Next uniform float in [0, 1) of a stream."""
    st[0] = st[0] + _GOLDEN
    return u01(mix64(st[0]))


@njit(**NJIT)
def uni(st: np.ndarray, lo: float, hi: float) -> float:
    """Uniform float in [lo, hi)."""
    return lo + (hi - lo) * nxt(st)


@njit("int64(" + ST_T + ", int64)", **NJIT)
def choice(st: np.ndarray, n: int) -> int:
    """Uniform integer in [0, n)."""
    return min(n - 1, int(nxt(st) * n))


@njit(**NJIT)
def pick(pal: np.ndarray, st: np.ndarray) -> tuple[float, float, float]:
    """A colour from a [N, 3] palette, slightly jittered so no two objects are identical."""
    i = choice(st, pal.shape[0])
    j = 0.92 + 0.16 * nxt(st)
    return (min(1.0, pal[i, 0] * j), min(1.0, pal[i, 1] * j), min(1.0, pal[i, 2] * j))


@njit(f"int64({REC_T}, int64, int64, {_G6}, int64, {RGB_T}, {RGB_T}, float64, float64)", **NJIT)
def put(rec: np.ndarray, n: int, typ: int, g0: float, g1: float, g2: float, g3: float, g4: float, g5: float,
        mat: int, ca: tuple[float, float, float], cb: tuple[float, float, float], p0: float, p1: float) -> int:
    """Write one primitive at row n of ``rec`` [K, NF]; returns n + 1 (or n when the cell is full)."""
    if n >= rec.shape[0]:
        return n
    row = rec[n]
    row[0] = typ
    row[1] = g0
    row[2] = g1
    row[3] = g2
    row[4] = g3
    row[5] = g4
    row[6] = g5
    row[7] = mat
    row[8] = ca[0]
    row[9] = ca[1]
    row[10] = ca[2]
    row[11] = cb[0]
    row[12] = cb[1]
    row[13] = cb[2]
    row[14] = p0
    row[15] = p1
    return n + 1


@njit(f"int64({REC_T}, int64, {_G6}, int64, {RGB_T}, {RGB_T}, float64, float64)", **NJIT)
def put_box(rec: np.ndarray, n: int, x0: float, y0: float, z0: float, x1: float, y1: float, z1: float, mat: int,
            ca: tuple[float, float, float], cb: tuple[float, float, float], p0: float, p1: float) -> int:
    """Axis-aligned box between two corners (any order)."""
    return put(rec, n, T_BOX, min(x0, x1), min(y0, y1), min(z0, z1), max(x0, x1), max(y0, y1), max(z0, z1),
               mat, ca, cb, p0, p1)


@njit(f"int64({REC_T}, int64, float64, float64, float64, float64, float64, int64, {RGB_T}, {RGB_T}, float64, float64)", **NJIT)
def put_cyl(rec: np.ndarray, n: int, cx: float, cy: float, r: float, z0: float, z1: float, mat: int,
            ca: tuple[float, float, float], cb: tuple[float, float, float], p0: float, p1: float) -> int:
    """Vertical cylinder of radius r from z0 to z1."""
    return put(rec, n, T_CYL, cx, cy, r, min(z0, z1), max(z0, z1), 0.0, mat, ca, cb, p0, p1)


@njit(f"int64({REC_T}, int64, {_G6}, int64, {RGB_T}, {RGB_T}, float64, float64)", **NJIT)
def put_ell(rec: np.ndarray, n: int, cx: float, cy: float, cz: float, rx: float, ry: float, rz: float, mat: int,
            ca: tuple[float, float, float], cb: tuple[float, float, float], p0: float, p1: float) -> int:
    """Axis-aligned ellipsoid."""
    return put(rec, n, T_ELL, cx, cy, cz, rx, ry, rz, mat, ca, cb, p0, p1)


@njit(**NJIT)
def slot_xy(slot: tuple[float, float, float, float, int], a: float, d: float) -> tuple[float, float]:
    """World (x, y) of a point ``a`` metres along and ``d`` metres out from the back wall of a slot.

    A slot is (x0, y0, x1, y1, side): a floor rectangle whose back wall is at side 0: x = x0,
    1: x = x1, 2: y = y0, 3: y = y1. Furniture is written in (along, depth) so one function serves
    every orientation.
    """
    x0, y0, x1, y1, side = slot
    if side == 0:
        return x0 + d, y0 + a
    if side == 1:
        return x1 - d, y0 + a
    if side == 2:
        return x0 + a, y0 + d
    return x0 + a, y1 - d


@njit(**NJIT)
def slot_len(slot: tuple[float, float, float, float, int]) -> tuple[float, float]:
    """(length along the back wall, depth away from it) of a slot, metres."""
    x0, y0, x1, y1, side = slot
    if side <= 1:
        return y1 - y0, x1 - x0
    return x1 - x0, y1 - y0


@njit(f"int64({REC_T}, int64, {_SLOT_T}, {_G6}, int64, {RGB_T}, {RGB_T}, float64, float64)", **NJIT)
def slot_box(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], a0: float, a1: float, d0: float,
             d1: float, z0: float, z1: float, mat: int, ca: tuple[float, float, float], cb: tuple[float, float, float],
             p0: float, p1: float) -> int:
    """A box spanning [a0, a1] along and [d0, d1] out from the slot's back wall."""
    xa, ya = slot_xy(slot, a0, d0)
    xb, yb = slot_xy(slot, a1, d1)
    return put_box(rec, n, xa, ya, z0, xb, yb, z1, mat, ca, cb, p0, p1)


@njit(**NJIT)
def object_bounds(row: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Axis-aligned bounds (x0, y0, z0, x1, y1, z1) of one primitive."""
    t = int(row[0])
    if t == T_BOX:
        return row[1], row[2], row[3], row[4], row[5], row[6]
    if t == T_CYL:
        return row[1] - row[3], row[2] - row[3], row[4], row[1] + row[3], row[2] + row[3], row[5]
    return row[1] - row[4], row[2] - row[5], row[3] - row[6], row[1] + row[4], row[2] + row[5], row[3] + row[6]


def _pal(rows: list[tuple[float, float, float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


# Palettes: plausible real-world albedos (linear-ish, in [0, 1]).
PAL_WALL = _pal([(0.86, 0.83, 0.76), (0.78, 0.82, 0.80), (0.85, 0.76, 0.66), (0.70, 0.76, 0.84), (0.88, 0.86, 0.82),
                 (0.80, 0.72, 0.74), (0.74, 0.80, 0.66), (0.90, 0.80, 0.58)])
PAL_WOOD = _pal([(0.62, 0.42, 0.24), (0.48, 0.31, 0.18), (0.74, 0.56, 0.36), (0.36, 0.22, 0.13), (0.80, 0.66, 0.46)])
PAL_FABRIC = _pal([(0.55, 0.20, 0.18), (0.22, 0.32, 0.52), (0.40, 0.48, 0.30), (0.62, 0.56, 0.48), (0.30, 0.30, 0.34),
                   (0.70, 0.50, 0.22), (0.45, 0.28, 0.45)])
PAL_PAINT_DARK = _pal([(0.16, 0.16, 0.18), (0.25, 0.20, 0.16), (0.12, 0.20, 0.26), (0.30, 0.10, 0.10)])
PAL_METAL = _pal([(0.16, 0.34, 0.62), (0.88, 0.46, 0.10), (0.70, 0.70, 0.72), (0.20, 0.45, 0.25), (0.80, 0.20, 0.15)])
PAL_CARDBOARD = _pal([(0.66, 0.50, 0.32), (0.72, 0.56, 0.36), (0.58, 0.44, 0.28), (0.78, 0.66, 0.48)])
PAL_BRICK = _pal([(0.58, 0.26, 0.18), (0.66, 0.36, 0.24), (0.50, 0.30, 0.24), (0.72, 0.52, 0.36), (0.46, 0.20, 0.16)])
PAL_FACADE = _pal([(0.82, 0.76, 0.64), (0.70, 0.70, 0.70), (0.86, 0.82, 0.74), (0.62, 0.58, 0.52), (0.78, 0.66, 0.52),
                   (0.56, 0.62, 0.66)])
PAL_GLASS = _pal([(0.14, 0.20, 0.26), (0.20, 0.26, 0.30), (0.10, 0.14, 0.18), (0.24, 0.30, 0.28)])
PAL_CAR = _pal([(0.70, 0.08, 0.06), (0.10, 0.16, 0.40), (0.85, 0.85, 0.86), (0.12, 0.12, 0.13), (0.55, 0.56, 0.58),
                (0.15, 0.35, 0.20), (0.85, 0.65, 0.10)])
PAL_LEAF = _pal([(0.20, 0.38, 0.12), (0.26, 0.42, 0.14), (0.16, 0.30, 0.12), (0.32, 0.44, 0.16), (0.12, 0.26, 0.14)])
PAL_CONIFER = _pal([(0.10, 0.24, 0.12), (0.12, 0.28, 0.16), (0.08, 0.20, 0.12)])
PAL_BARK = _pal([(0.34, 0.26, 0.20), (0.40, 0.34, 0.28), (0.28, 0.22, 0.18), (0.50, 0.46, 0.40)])
PAL_ROCK = _pal([(0.50, 0.49, 0.46), (0.42, 0.40, 0.38), (0.58, 0.55, 0.50)])
PAL_POT = _pal([(0.66, 0.34, 0.22), (0.85, 0.85, 0.82), (0.20, 0.20, 0.22), (0.40, 0.55, 0.60)])
PAL_COUNTER = _pal([(0.85, 0.84, 0.80), (0.22, 0.22, 0.24), (0.60, 0.56, 0.50), (0.40, 0.36, 0.33)])
PAL_CABINET = _pal([(0.92, 0.92, 0.90), (0.30, 0.38, 0.45), (0.62, 0.44, 0.28), (0.55, 0.62, 0.52), (0.20, 0.22, 0.24)])
PAL_WHITE = _pal([(0.92, 0.92, 0.90)])
