"""Tracing and shading one ray through a procedural world (numba).

Per ray: the global planes (ground z = 0, the ceiling / flat roof of indoor families) and the field
terrain give a first bound, then a two-level 2D DDA walks the grid cells in the order the ray
crosses them, skipping cells it passes above or below, and inside the others walks the sub-cells,
testing only the primitives overlapping each (analytic ray-box, ray-cylinder, ray-ellipsoid).
Because every primitive lies inside its cell and is registered in all sub-cells it overlaps, the
walk stops at the first sub-cell whose exit lies beyond the closest hit. Rays are parametrized with direction
R @ (x, y, 1), so the hit parameter t *is* the z-depth along the optical axis. Every ray ends at the
latest at the sky, SKY_DISTANCE_M away.

Shading is view-independent: albedo x (ambient + lambert of one fixed light) + emission, a fake
contact darkening near floor and ceiling, nothing specular.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.intersect import EPS_T, hit_box, hit_cyl, hit_ell, object_normal, terrain_hit
from srender_ros.backends.generators.procedural.materials import (
    K_CEILING,
    K_FLOOR,
    K_OBJECT,
    K_ROOF,
    K_SKY,
    K_TERRAIN,
    M_ROOMWALL,
    T_BOX,
    T_CYL,
)
from srender_ros.backends.generators.procedural.noise import NJIT
from srender_ros.backends.generators.procedural.scene import (
    F_FIELD,
    F_FOREST,
    F_STREET,
    P_CEILING,
    P_CELL,
    P_CONTENT_R,
    P_FAMILY,
    P_ORIGIN,
    P_SKY,
    P_SUBDIV,
    P_TERRAIN,
    P_ZMAX,
    P_ZMIN,
)
from srender_ros.backends.generators.procedural.surfaces import (
    ceiling_albedo,
    floor_albedo,
    roof_albedo,
    room_wall,
    sky_color,
)
from srender_ros.backends.generators.procedural.terrain import terrain_normal
from srender_ros.backends.generators.procedural.textures import albedo_object

_INF = np.inf


@njit(**NJIT)
def trace(ox: float, oy: float, oz: float, dx: float, dy: float, dz: float, seed: np.uint64, params: np.ndarray,
          ix0: int, iy0: int, nx: int, ny: int, objs: np.ndarray, sub_cnt: np.ndarray, sub_idx: np.ndarray,
          sub_z: np.ndarray) -> tuple[float, int, int, int, int]:
    """Closest hit along o + t d: (t, kind K_*, cell index, primitive index, part)."""
    family = int(params[P_FAMILY])
    dlen = math.sqrt(dx * dx + dy * dy + dz * dz)
    best = params[P_SKY] / dlen
    kind, hit_c, hit_k, hit_p = K_SKY, -1, -1, -1
    if family != F_FIELD and dz != 0.0:
        t = -oz / dz
        if EPS_T < t < best:
            best, kind = t, K_FLOOR
    hgt = params[P_CEILING]
    if hgt > 0.0 and dz != 0.0:
        t = (hgt - oz) / dz
        if EPS_T < t < best:
            best, kind = t, (K_CEILING if oz < hgt else K_ROOF)
    if family == F_FIELD:
        t = terrain_hit(seed, params, ox, oy, oz, dx, dy, dz, best)
        if t < best:
            best, kind = t, K_TERRAIN
    s = int(params[P_SUBDIV])
    c, g = params[P_CELL], params[P_ORIGIN]
    cf = c / s
    rc = params[P_CONTENT_R]
    dxy = math.sqrt(dx * dx + dy * dy)
    idx = 1.0 / dx if dx != 0.0 else _INF
    idy = 1.0 / dy if dy != 0.0 else _INF
    idz = 1.0 / dz if dz != 0.0 else _INF
    sx = 1 if dx > 0.0 else (-1 if dx < 0.0 else 0)
    sy = 1 if dy > 0.0 else (-1 if dy < 0.0 else 0)
    # Outer DDA over cells; cells the ray passes above or below (or that are empty) are skipped
    # whole, and only the others are walked sub-cell by sub-cell.
    kx = int(math.floor((ox - g) / c))
    ky = int(math.floor((oy - g) / c))
    tkx = ((kx + (1 if sx > 0 else 0)) * c + g - ox) * idx if sx != 0 else _INF
    tky = ((ky + (1 if sy > 0 else 0)) * c + g - oy) * idy if sy != 0 else _INF
    dtkx = c * abs(idx) if sx != 0 else _INF
    dtky = c * abs(idy) if sy != 0 else _INF
    zmin_all, zmax_all = params[P_ZMIN], params[P_ZMAX]
    whole = s * s  # sub_z[ci, whole] is the range of the whole cell
    tc = 0.0
    for _ in range(1 << 20):
        if tc >= best or tc * dxy > rc:
            break
        ze = oz + tc * dz
        if (ze > zmax_all and dz >= 0.0) or (ze < zmin_all and dz <= 0.0):
            break  # above (below) everything in the grid and not coming back
        tce = min(tkx, tky)
        lx, ly = kx - ix0, ky - iy0
        if 0 <= lx < nx and 0 <= ly < ny:
            ci = lx * ny + ly
            tb = min(tce, best)
            za, zb = oz + tc * dz, oz + tb * dz
            if max(za, zb) >= sub_z[ci, whole, 0] and min(za, zb) <= sub_z[ci, whole, 1]:
                # Inner DDA over this cell's sub-cells, from the entry point.
                x0, y0 = g + kx * c, g + ky * c
                fx = min(s - 1, max(0, int(math.floor((ox + tc * dx - x0) / cf))))
                fy = min(s - 1, max(0, int(math.floor((oy + tc * dy - y0) / cf))))
                tnx = ((fx + (1 if sx > 0 else 0)) * cf + x0 - ox) * idx if sx != 0 else _INF
                tny = ((fy + (1 if sy > 0 else 0)) * cf + y0 - oy) * idy if sy != 0 else _INF
                dtx, dty = cf * abs(idx), cf * abs(idy)
                t_in = tc
                while True:
                    t_out = min(min(tnx, tny), tce)
                    q = fx * s + fy
                    tb = min(t_out, best)
                    za, zb = oz + t_in * dz, oz + tb * dz
                    if max(za, zb) >= sub_z[ci, q, 0] and min(za, zb) <= sub_z[ci, q, 1]:
                        for j in range(sub_cnt[ci, q]):
                            k = int(sub_idx[ci, q, j])
                            typ = int(objs[ci, k, 0])
                            if typ == T_BOX:
                                t, part = hit_box(objs, ci, k, ox, oy, oz, idx, idy, idz, EPS_T, best)
                            elif typ == T_CYL:
                                t, part = hit_cyl(objs, ci, k, ox, oy, oz, dx, dy, dz, EPS_T, best)
                            else:
                                t, part = hit_ell(objs, ci, k, ox, oy, oz, dx, dy, dz, EPS_T, best), 0
                            if t < best:
                                best, kind, hit_c, hit_k, hit_p = t, K_OBJECT, ci, k, part
                    if best <= t_out or t_out >= tce or t_out >= best:
                        break
                    if tnx < tny:
                        fx += sx
                        t_in = tnx
                        tnx += dtx
                    else:
                        fy += sy
                        t_in = tny
                        tny += dty
                    if fx < 0 or fx >= s or fy < 0 or fy >= s:
                        break
        if best <= tce or (sx == 0 and sy == 0):
            break
        if tkx < tky:
            kx += sx
            tc = tkx
            tkx += dtkx
        else:
            ky += sy
            tc = tky
            tky += dtky
    return best, kind, hit_c, hit_k, hit_p


@njit(**NJIT)
def shade(ox: float, oy: float, oz: float, dx: float, dy: float, dz: float, hit: tuple[float, int, int, int, int],
          seed: np.uint64, params: np.ndarray, objs: np.ndarray, fp_per_m: float) -> tuple[float, float, float]:
    """Colour of a traced ray. ``fp_per_m``: sample footprint per metre of z-depth (1 / (f * ss))."""
    t, kind, ci, k, part = hit
    family = int(params[P_FAMILY])
    dlen = math.sqrt(dx * dx + dy * dy + dz * dz)
    ux, uy, uz = dx / dlen, dy / dlen, dz / dlen
    if kind == K_SKY:
        c = sky_color(seed, ux, uy, uz, fp_per_m)
        return c[0], c[1], c[2]
    px, py, pz = ox + t * dx, oy + t * dy, oz + t * dz
    if kind == K_OBJECT:
        row = objs[ci, k]
        nx, ny, nz = object_normal(row, part, px, py, pz)
    elif kind == K_TERRAIN:
        nx, ny, nz = terrain_normal(seed, px, py, params[P_CELL], params[P_ORIGIN], params[P_TERRAIN])
    else:
        nx, ny, nz = 0.0, 0.0, 1.0
    cosv = nx * ux + ny * uy + nz * uz
    if cosv > 0.0:
        nx, ny, nz, cosv = -nx, -ny, -nz, -cosv
    fp = t * fp_per_m / math.sqrt(max(-cosv, 0.02))
    emit = 0.0
    if kind == K_OBJECT:
        if int(objs[ci, k, 7]) == M_ROOMWALL:
            r, g, b = room_wall(seed, family, params, px, py, pz, nx, ny, fp)
        else:
            r, g, b, emit = albedo_object(objs[ci, k], seed, px, py, pz, nx, ny, nz, fp)
    elif kind == K_CEILING:
        r, g, b, emit = ceiling_albedo(seed, family, params, px, py, fp)
    elif kind == K_ROOF:
        r, g, b = roof_albedo(seed, family, params, px, py, fp)
    else:
        r, g, b = floor_albedo(seed, family, params, px, py, fp)
    outdoor = family == F_STREET or family == F_FOREST or family == F_FIELD
    if outdoor or kind == K_ROOF:
        lx, ly, lz, amb, dif = 0.4319, 0.2879, 0.8546, 0.55, 0.55
    else:
        lx, ly, lz, amb, dif = 0.3035, 0.2023, 0.9311, 0.62, 0.42
    ndl = nx * lx + ny * ly + nz * lz
    light = amb + dif * max(0.0, ndl) + 0.1 * max(0.0, -ndl)
    if kind == K_OBJECT:
        # Contact darkening near the floor (and under indoor ceilings): static, a function of height only.
        light *= 1.0 - 0.28 * math.exp(-max(pz, 0.0) / 0.25)
        hgt = params[P_CEILING]
        if hgt > 0.0 and pz < hgt:
            light *= 1.0 - 0.18 * math.exp(-(hgt - pz) / 0.3)
    s = light * (1.0 - emit) + emit
    return min(1.0, r * s), min(1.0, g * s), min(1.0, b * s)


@njit(**NJIT)
def sample(R: np.ndarray, xc: float, yc: float, seed: np.uint64, params: np.ndarray, ix0: int, iy0: int, nx: int,
            ny: int, objs: np.ndarray, sub_cnt: np.ndarray, sub_idx: np.ndarray, sub_z: np.ndarray,
            fp_per_m: float) -> tuple[float, float, float, float, int]:
    """One ray through image-plane point (xc, yc, 1): (r, g, b, z-depth, hit id)."""
    ox, oy, oz = R[0, 3], R[1, 3], R[2, 3]
    dx = R[0, 0] * xc + R[0, 1] * yc + R[0, 2]
    dy = R[1, 0] * xc + R[1, 1] * yc + R[1, 2]
    dz = R[2, 0] * xc + R[2, 1] * yc + R[2, 2]
    hit = trace(ox, oy, oz, dx, dy, dz, seed, params, ix0, iy0, nx, ny, objs, sub_cnt, sub_idx, sub_z)
    r, g, b = shade(ox, oy, oz, dx, dy, dz, hit, seed, params, objs, fp_per_m)
    t, kind, ci, k, part = hit
    # Which surface was hit (kind, cell, primitive, face): neighbours that differ mark a geometric edge.
    hid = kind + 8 * (part + 1) + 64 * (k + 1) + 16384 * (ci + 1)
    return r, g, b, t, hid



