"""Analytic ray-primitive intersections and the terrain march (numba).

Rays are o + t d with an unnormalized direction d; only entering hits with tmin < t < tmax count
(a camera inside a box sees out of it: no back faces).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.materials import T_BOX, T_CYL
from srender_ros.backends.generators.procedural.noise import NJIT
from srender_ros.backends.generators.procedural.scene import P_CELL, P_ORIGIN, P_TERRAIN
from srender_ros.backends.generators.procedural.terrain import BIG, terrain_height

EPS_T = 1e-4
_INF = np.inf


@njit(**NJIT)
def hit_box(o: np.ndarray, ci: int, k: int, ox: float, oy: float, oz: float, ix: float, iy: float, iz: float, tmin: float,
            tmax: float) -> tuple[float, int]:
    """Entry t of a ray (origin o, inverse direction i) into box ``o[ci, k]`` and the face axis; (inf, -1) if none.

    Primitives are read in place from the [cells, K, NF] table: taking a row view per test costs a
    reference-count round trip, which is most of a box test.
    """
    t0 = (o[ci, k, 1] - ox) * ix
    t1 = (o[ci, k, 4] - ox) * ix
    if t0 > t1:
        t0, t1 = t1, t0
    tn, tf, ax = t0, t1, 0
    t0 = (o[ci, k, 2] - oy) * iy
    t1 = (o[ci, k, 5] - oy) * iy
    if t0 > t1:
        t0, t1 = t1, t0
    if t0 > tn:
        tn, ax = t0, 1
    tf = min(tf, t1)
    t0 = (o[ci, k, 3] - oz) * iz
    t1 = (o[ci, k, 6] - oz) * iz
    if t0 > t1:
        t0, t1 = t1, t0
    if t0 > tn:
        tn, ax = t0, 2
    tf = min(tf, t1)
    # Only entering hits count: a camera inside a box sees out of it (no back faces).
    if tn <= tf and tn > tmin and tn < tmax:
        return tn, ax
    return _INF, -1


@njit(**NJIT)
def hit_cyl(o: np.ndarray, ci: int, k: int, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float,
            tmin: float, tmax: float) -> tuple[float, int]:
    """Entry t into a vertical capped cylinder; part 0 = side, 1 = top cap, 2 = bottom cap."""
    cx, cy, r, z0, z1 = o[ci, k, 1], o[ci, k, 2], o[ci, k, 3], o[ci, k, 4], o[ci, k, 5]
    best, part = _INF, -1
    qx, qy = ox - cx, oy - cy
    a = dx * dx + dy * dy
    if a > 0.0:
        b = qx * dx + qy * dy
        c = qx * qx + qy * qy - r * r
        disc = b * b - a * c
        if disc >= 0.0:
            t = (-b - math.sqrt(disc)) / a
            if tmin < t < tmax:
                z = oz + t * dz
                if z0 <= z <= z1:
                    best, part = t, 0
    if dz != 0.0:
        for cap in range(2):
            zc = z1 if cap == 0 else z0
            # Top cap is entered from above, bottom cap from below.
            if (cap == 0 and oz > z1 and dz < 0.0) or (cap == 1 and oz < z0 and dz > 0.0):
                t = (zc - oz) / dz
                if tmin < t < min(best, tmax):
                    hx, hy = qx + t * dx, qy + t * dy
                    if hx * hx + hy * hy <= r * r:
                        best, part = t, 1 + cap
    return best, part


@njit(**NJIT)
def hit_ell(o: np.ndarray, ci: int, k: int, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float,
            tmin: float, tmax: float) -> float:
    """Entry t into an axis-aligned ellipsoid (inf if none)."""
    rx, ry, rz = o[ci, k, 4], o[ci, k, 5], o[ci, k, 6]
    qx, qy, qz = (ox - o[ci, k, 1]) / rx, (oy - o[ci, k, 2]) / ry, (oz - o[ci, k, 3]) / rz
    ex, ey, ez = dx / rx, dy / ry, dz / rz
    a = ex * ex + ey * ey + ez * ez
    b = qx * ex + qy * ey + qz * ez
    c = qx * qx + qy * qy + qz * qz - 1.0
    disc = b * b - a * c
    if disc < 0.0 or c < 0.0:
        return _INF
    t = (-b - math.sqrt(disc)) / a
    if tmin < t < tmax:
        return t
    return _INF


@njit(**NJIT)
def object_normal(row: np.ndarray, part: int, px: float, py: float, pz: float) -> tuple[float, float, float]:
    """Outward unit normal of a primitive at a surface point (box: ``part`` is the face axis)."""
    typ = int(row[0])
    if typ == T_BOX:
        if part == 0:
            return (-1.0 if px < 0.5 * (row[1] + row[4]) else 1.0), 0.0, 0.0
        if part == 1:
            return 0.0, (-1.0 if py < 0.5 * (row[2] + row[5]) else 1.0), 0.0
        return 0.0, 0.0, (-1.0 if pz < 0.5 * (row[3] + row[6]) else 1.0)
    if typ == T_CYL:
        if part == 1:
            return 0.0, 0.0, 1.0
        if part == 2:
            return 0.0, 0.0, -1.0
        nx, ny = px - row[1], py - row[2]
        inv = 1.0 / max(1e-12, math.sqrt(nx * nx + ny * ny))
        return nx * inv, ny * inv, 0.0
    nx = (px - row[1]) / (row[4] * row[4])
    ny = (py - row[2]) / (row[5] * row[5])
    nz = (pz - row[3]) / (row[6] * row[6])
    inv = 1.0 / max(1e-12, math.sqrt(nx * nx + ny * ny + nz * nz))
    return nx * inv, ny * inv, nz * inv


@njit(**NJIT)
def terrain_hit(seed: np.uint64, params: np.ndarray, ox: float, oy: float, oz: float, dx: float, dy: float, dz: float,
                tmax: float) -> float:
    """First crossing of the field terrain before tmax (inf if none).

    The terrain lies in [-amp, 0], so only the part of the ray inside that slab is searched. There
    it marches with steps its bounded slope makes safe (gap above the ground / fastest closing
    speed), then refines the bracketing step by bisection and a final linear interpolation.
    """
    c, g, amp = params[P_CELL], params[P_ORIGIN], params[P_TERRAIN]
    if dz >= 0.0:
        if oz > 0.0 or dz > 0.0:
            return _INF
        ta, tb = EPS_T, tmax
    else:
        ta = max(EPS_T, -oz / dz)
        tb = min(tmax, (-amp - oz) / dz)
    if not ta < tb:
        return _INF
    dxy = math.sqrt(dx * dx + dy * dy)
    # Largest terrain slope: |grad value noise| <= 1.875 * sqrt(2) per lattice unit, two octaves.
    slope = 2.66 * amp * (0.8 / (BIG * c) + 0.2 / c)
    rate = slope * dxy - dz  # fastest closing speed of ray and ground per unit t
    t = ta
    f = oz + t * dz - terrain_height(seed, ox + t * dx, oy + t * dy, c, g, amp)
    if f <= 0.0:
        return t
    # Safe sphere-tracing steps crawl along grazing rays, because the slope bound is a worst case the
    # gentle terrain rarely reaches. Steps are over-relaxed (x1.6) and at least ~0.5 m (growing with
    # distance like the pixel footprint): they can only skip a crossing that enters and leaves the
    # ground within one step, i.e. graze a hill top by far less than a pixel.
    inv_dxy = 1.0 / max(dxy, 1e-9)
    for _ in range(512):
        min_step = min((0.5 + 0.015 * t * dxy) * inv_dxy, 1e9)
        tn = min(t + max(1.6 * f / rate, min_step), tb)
        fn = oz + tn * dz - terrain_height(seed, ox + tn * dx, oy + tn * dy, c, g, amp)
        if fn <= 0.0:
            lo, hi, flo, fhi = t, tn, f, fn
            for _ in range(8):
                mid = 0.5 * (lo + hi)
                fm = oz + mid * dz - terrain_height(seed, ox + mid * dx, oy + mid * dy, c, g, amp)
                if fm > 0.0:
                    lo, flo = mid, fm
                else:
                    hi, fhi = mid, fm
            return lo + (hi - lo) * flo / max(flo - fhi, 1e-12)
        if tn >= tb:
            return _INF
        t, f = tn, fn
    return _INF
