"""Cell builders of the outdoor families: street, forest, field.

Street cells are city blocks whose edges are road centre lines (the grid origin sits on a crossing,
so a car starting at the origin along an axis drives on a road). Forest and field cells keep trails
along x = 0 and y = 0 (and every TRAIL_PERIOD_M) free of trees.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.cellkit import (
    PAL_BARK,
    PAL_BRICK,
    PAL_CAR,
    PAL_CONIFER,
    PAL_FACADE,
    PAL_GLASS,
    PAL_LEAF,
    PAL_ROCK,
    choice,
    nxt,
    pick,
    put_box,
    put_cyl,
    put_ell,
    stream,
    uni,
)
from srender_ros.backends.generators.procedural.materials import (
    M_BARK,
    M_CAR,
    M_CONCRETE,
    M_FACADE,
    M_FOLIAGE,
    M_HAY,
    M_LAMP,
    M_METAL,
    M_ROCK,
    M_SIDEWALK,
)
from srender_ros.backends.generators.procedural.noise import NJIT, REC_T, ST_T
from srender_ros.backends.generators.procedural.terrain import terrain_height

#: Half width of a street (centre line to kerb), metres; kerbs and sidewalks start there.
ROAD_HALF_M = 5.0
SIDEWALK_M = 3.0
#: Forest and field trails run along every TRAIL_PERIOD_M in x and y, through the origin.
TRAIL_PERIOD_M = 60.0
TRAIL_HALF_M = 1.8
_NONE = (0.0, 0.0, 0.0)
_LAMP = (1.0, 0.93, 0.75)


@njit(**NJIT)
def trail_distance(x: float, y: float) -> float:
    """Distance (metres) from (x, y) to the nearest trail centre line."""
    p = TRAIL_PERIOD_M
    dx = abs(x - p * math.floor(x / p + 0.5))
    dy = abs(y - p * math.floor(y / p + 0.5))
    return min(dx, dy)


@njit(f"int64({REC_T}, int64, float64, float64, boolean, {ST_T})", **NJIT)
def car(rec: np.ndarray, n: int, x: float, y: float, along_x: bool, st: np.ndarray) -> int:
    """A parked car centred at (x, y): dark underbody, painted body, glazed cabin."""
    L, W = uni(st, 3.9, 4.7), uni(st, 1.7, 1.85)
    hx, hy = (L / 2, W / 2) if along_x else (W / 2, L / 2)
    paint = pick(PAL_CAR, st)
    n = put_box(rec, n, x - hx + 0.3, y - hy + 0.15, 0.0, x + hx - 0.3, y + hy - 0.15, 0.3, M_CAR, (0.05, 0.05, 0.05),
                _NONE, 2.0, 0.0)
    n = put_box(rec, n, x - hx, y - hy, 0.3, x + hx, y + hy, 0.95, M_CAR, paint, paint, 0.0, nxt(st))
    f, b = uni(st, 0.8, 1.1), uni(st, 0.7, 1.0)
    if along_x:
        return put_box(rec, n, x - hx + b, y - hy + 0.08, 0.95, x + hx - f, y + hy - 0.08, 1.45, M_CAR, paint,
                       (0.1, 0.12, 0.14), 1.0, nxt(st))
    return put_box(rec, n, x - hx + 0.08, y - hy + b, 0.95, x + hx - 0.08, y + hy - f, 1.45, M_CAR, paint,
                   (0.1, 0.12, 0.14), 1.0, nxt(st))


@njit(**NJIT)
def street_tree(rec: np.ndarray, n: int, x: float, y: float, st: np.ndarray) -> int:
    """A small street tree: trunk and one crown."""
    h = uni(st, 3.0, 4.0)
    r = uni(st, 1.2, 1.6)
    n = put_cyl(rec, n, x, y, uni(st, 0.1, 0.16), 0.0, h, M_BARK, pick(PAL_BARK, st), (0.2, 0.16, 0.12), 0.0, nxt(st))
    leaf = pick(PAL_LEAF, st)
    return put_ell(rec, n, x, y, h + 0.6 * r, r, r, r * 1.2, M_FOLIAGE, leaf, (0.5, 0.62, 0.25), 0.0, nxt(st))


@njit(**NJIT)
def build_street(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float) -> int:
    """One city block: kerbed sidewalk slab, 1-4 buildings with windows, street trees, lamps, parked cars."""
    st = stream(seed, ix, iy, 21)
    r0, r1 = ROAD_HALF_M, c - ROAD_HALF_M
    n = put_box(rec, 0, x0 + r0, y0 + r0, 0.0, x0 + r1, y0 + r1, 0.15, M_SIDEWALK, (0.62, 0.61, 0.58), (0.5, 0.5, 0.48),
                0.0, nxt(st))
    b0, b1 = r0 + SIDEWALK_M, r1 - SIDEWALK_M
    mode = choice(st, 4)
    nxl = 2 if mode == 1 or mode == 3 else 1
    nyl = 2 if mode == 2 or mode == 3 else 1
    if mode == 0 and nxt(st) < 0.25:
        # A small square with a monument instead of a building.
        mx, my = x0 + 0.5 * c, y0 + 0.5 * c
        n = put_box(rec, n, mx - 2.0, my - 2.0, 0.15, mx + 2.0, my + 2.0, 1.0, M_CONCRETE, (0.7, 0.68, 0.64), _NONE,
                    0.0, nxt(st))
        n = put_cyl(rec, n, mx, my, 0.6, 1.0, uni(st, 6.0, 12.0), M_CONCRETE, (0.75, 0.72, 0.66), _NONE, 0.0, nxt(st))
        for k in range(4):
            n = street_tree(rec, n, mx + (7.0 if k & 1 else -7.0), my + (7.0 if k & 2 else -7.0), st)
    else:
        wx = (b1 - b0) / nxl
        wy = (b1 - b0) / nyl
        for i in range(nxl):
            for j in range(nyl):
                lx0, ly0 = x0 + b0 + i * wx, y0 + b0 + j * wy
                s0, s1, s2, s3 = uni(st, 0.0, 1.5), uni(st, 0.0, 1.5), uni(st, 0.0, 1.5), uni(st, 0.0, 1.5)
                floors = 2 + choice(st, 10)
                hgt = floors * 3.2 + uni(st, 0.3, 0.9)
                style = choice(st, 3)
                wall = pick(PAL_BRICK, st) if style == 0 else pick(PAL_FACADE, st)
                bx0, by0 = lx0 + s0 + 0.15, ly0 + s1 + 0.15
                bx1, by1 = lx0 + wx - s2 - 0.15, ly0 + wy - s3 - 0.15
                n = put_box(rec, n, bx0, by0, 0.15, bx1, by1, hgt, M_FACADE, wall, pick(PAL_GLASS, st),
                            float(style), nxt(st))
                if nxt(st) < 0.5:
                    ax, ay = uni(st, bx0 + 1.0, bx1 - 4.0), uni(st, by0 + 1.0, by1 - 4.0)
                    n = put_box(rec, n, ax, ay, hgt, ax + uni(st, 1.5, 3.0), ay + uni(st, 1.5, 3.0),
                                hgt + uni(st, 1.0, 2.8), M_METAL, (0.62, 0.63, 0.64), _NONE, 0.0, nxt(st))
    # Street furniture on the sidewalk ring (strip centre at r0 + 1.5 from the cell edge).
    mid = r0 + 1.2
    for k in range(8):
        along = 12.0 if k & 1 else 28.0
        side = k >> 1
        if nxt(st) < 0.45:
            continue
        if side == 0:
            tx, ty = x0 + along, y0 + mid
        elif side == 1:
            tx, ty = x0 + along, y0 + c - mid
        elif side == 2:
            tx, ty = x0 + mid, y0 + along
        else:
            tx, ty = x0 + c - mid, y0 + along
        n = street_tree(rec, n, tx, ty, st)
    for side in range(4):
        if nxt(st) < 0.3:
            continue
        lx = x0 + 20.0 if side < 2 else (x0 + r0 + 0.4 if side == 2 else x0 + c - r0 - 0.4)
        ly = (y0 + r0 + 0.4 if side == 0 else y0 + c - r0 - 0.4) if side < 2 else y0 + 20.0
        n = put_cyl(rec, n, lx, ly, 0.07, 0.15, 6.0, M_METAL, (0.22, 0.23, 0.24), _NONE, 0.0, 0.0)
        n = put_ell(rec, n, lx, ly, 6.05, 0.3, 0.3, 0.12, M_LAMP, _LAMP, _LAMP, 0.0, 0.0)
    # Parked cars in the parking lanes of the four roads around the block.
    lane = r0 - 1.0
    for side in range(4):
        for k in range(2):
            if nxt(st) < 0.5:
                continue
            along = 11.0 + 12.0 * k + uni(st, 0.0, 5.0)
            if side == 0:
                n = car(rec, n, x0 + along, y0 + lane, True, st)
            elif side == 1:
                n = car(rec, n, x0 + along, y0 + c - lane, True, st)
            elif side == 2:
                n = car(rec, n, x0 + lane, y0 + along, False, st)
            else:
                n = car(rec, n, x0 + c - lane, y0 + along, False, st)
    return n


@njit(f"int64({REC_T}, int64, float64, float64, float64, float64, float64, boolean, {ST_T})", **NJIT)
def tree(rec: np.ndarray, n: int, x: float, y: float, z0: float, h: float, rc: float, conifer: bool,
         st: np.ndarray) -> int:
    """A tree standing at (x, y, z0): trunk plus one to three crown ellipsoids."""
    bark = pick(PAL_BARK, st)
    tr = 0.1 + 0.018 * h * uni(st, 0.8, 1.2)
    if conifer:
        leaf = pick(PAL_CONIFER, st)
        n = put_cyl(rec, n, x, y, tr, z0 - 0.3, z0 + 0.92 * h, M_BARK, bark, (0.18, 0.14, 0.1), 0.0, nxt(st))
        for k in range(3):
            f = 1.0 - 0.3 * k
            n = put_ell(rec, n, x, y, z0 + h * (0.38 + 0.22 * k), rc * f, rc * f, h * (0.2 - 0.035 * k), M_FOLIAGE,
                        leaf, (0.22, 0.36, 0.16), 1.0, nxt(st))
        return n
    leaf = pick(PAL_LEAF, st)
    n = put_cyl(rec, n, x, y, tr, z0 - 0.3, z0 + 0.72 * h, M_BARK, bark, (0.18, 0.14, 0.1), 0.0, nxt(st))
    n = put_ell(rec, n, x, y, z0 + 0.68 * h, rc, rc, 0.3 * h, M_FOLIAGE, leaf, (0.45, 0.6, 0.2), 0.0, nxt(st))
    ox, oy = uni(st, -0.35, 0.35) * rc, uni(st, -0.35, 0.35) * rc
    r2 = rc * 0.6
    return put_ell(rec, n, x + ox, y + oy, z0 + 0.8 * h, r2, r2, 0.2 * h, M_FOLIAGE, leaf, (0.45, 0.6, 0.2), 0.0,
                   nxt(st))


@njit(**NJIT)
def build_forest(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float) -> int:
    """Up to four trees (2x2 jittered slots), bushes and a rock; nothing on the trails."""
    st = stream(seed, ix, iy, 31)
    n = 0
    conifer_share = 0.2 + 0.6 * nxt(stream(seed, 0, 0, 98))
    for s in range(4):
        if nxt(st) < 0.22:
            continue
        conifer = nxt(st) < conifer_share
        h = uni(st, 8.0, 20.0)
        rc = uni(st, 1.4, 2.6) if not conifer else uni(st, 1.3, 2.2)
        half = 0.5 * c
        sx0 = x0 + rc + (s & 1) * (half - rc)
        sy0 = y0 + rc + (s >> 1) * (half - rc)
        x = uni(st, sx0, sx0 + half - rc)
        y = uni(st, sy0, sy0 + half - rc)
        clear = TRAIL_HALF_M + 0.6 + (rc if conifer else 0.5)
        if trail_distance(x, y) < clear:
            continue
        n = tree(rec, n, x, y, 0.0, h, rc, conifer, st)
    for _ in range(choice(st, 4)):
        rx, ry = uni(st, 0.5, 1.2), uni(st, 0.5, 1.2)
        x, y = uni(st, x0 + rx, x0 + c - rx), uni(st, y0 + ry, y0 + c - ry)
        if trail_distance(x, y) < TRAIL_HALF_M + max(rx, ry) + 0.2:
            continue
        rz = uni(st, 0.4, 0.9)
        n = put_ell(rec, n, x, y, 0.1 * rz, rx, ry, rz, M_FOLIAGE, pick(PAL_LEAF, st), (0.4, 0.5, 0.2), 2.0, nxt(st))
    if nxt(st) < 0.3:
        r = uni(st, 0.3, 0.9)
        x, y = uni(st, x0 + 1.5 * r, x0 + c - 1.5 * r), uni(st, y0 + 1.5 * r, y0 + c - 1.5 * r)
        if trail_distance(x, y) > TRAIL_HALF_M + 1.5 * r:
            n = put_ell(rec, n, x, y, 0.0, 1.4 * r, r, 0.8 * r, M_ROCK, pick(PAL_ROCK, st), (0.35, 0.4, 0.25), 0.0,
                        nxt(st))
    return n


@njit(**NJIT)
def build_field(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float, g: float,
                amp: float) -> int:
    """Sparse objects on rolling ground: hay bales, a lone tree, a hedgerow on plot edges, rocks."""
    st = stream(seed, ix, iy, 41)
    n = 0
    if nxt(st) < 0.18:
        k = 1 + choice(st, 4)
        bx, by = uni(st, x0 + 3.0, x0 + c - 6.0), uni(st, y0 + 3.0, y0 + c - 6.0)
        for i in range(k):
            x = bx + (i % 2) * 1.7 + uni(st, -0.1, 0.1)
            y = by + (i // 2) * 1.7 + uni(st, -0.1, 0.1)
            if trail_distance(x, y) < TRAIL_HALF_M + 1.0:
                continue
            z = terrain_height(seed, x, y, c, g, amp)
            n = put_cyl(rec, n, x, y, 0.75, z - 0.4, z + 1.3, M_HAY, (0.78, 0.64, 0.34), (0.55, 0.42, 0.2), 0.0, nxt(st))
    if nxt(st) < 0.14:
        rc = uni(st, 2.0, 3.5)
        x, y = uni(st, x0 + rc, x0 + c - rc), uni(st, y0 + rc, y0 + c - rc)
        if trail_distance(x, y) > TRAIL_HALF_M + rc + 0.5:
            n = tree(rec, n, x, y, terrain_height(seed, x, y, c, g, amp), uni(st, 7.0, 13.0), rc, False, st)
    if iy % 3 == 0 and nxt(st) < 0.75:
        # Hedgerow segment along the plot edge (y0 side), with a gap at trails.
        hx = 0.5 * c - 0.2
        x, y = x0 + 0.5 * c, y0 + 1.2
        if trail_distance(x, y) > TRAIL_HALF_M + 1.2 and abs(x - 60.0 * math.floor(x / 60.0 + 0.5)) > hx + 2.0:
            z = terrain_height(seed, x, y, c, g, amp)
            n = put_ell(rec, n, x, y, z + 0.2, hx, 1.0, 1.4, M_FOLIAGE, pick(PAL_LEAF, st), (0.4, 0.5, 0.2), 2.0,
                        nxt(st))
    for _ in range(choice(st, 3)):
        r = uni(st, 0.2, 0.6)
        x, y = uni(st, x0 + 2.0, x0 + c - 2.0), uni(st, y0 + 2.0, y0 + c - 2.0)
        if trail_distance(x, y) > TRAIL_HALF_M + 1.0:
            z = terrain_height(seed, x, y, c, g, amp)
            n = put_ell(rec, n, x, y, z, 1.3 * r, r, 0.7 * r, M_ROCK, pick(PAL_ROCK, st), (0.4, 0.42, 0.3), 0.0, nxt(st))
    return n
