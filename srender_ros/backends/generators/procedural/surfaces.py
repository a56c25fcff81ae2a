"""Textures of the surfaces that are not per-cell objects: floors and ground, ceilings, roofs, indoor
walls (styled per room), terrain and the sky. Same rules as :mod:`.textures`: functions of the
world point only, band-limited to the footprint.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.cellkit import PAL_BRICK, PAL_FABRIC, PAL_WALL, PAL_WOOD
from srender_ros.backends.generators.procedural.cells_outdoor import ROAD_HALF_M, TRAIL_HALF_M, trail_distance
from srender_ros.backends.generators.procedural.noise import (
    NJIT,
    clamp01,
    fbm2,
    hash3,
    lines,
    lod_weight,
    rand,
    smoothstep,
    sub,
    u01,
)
from srender_ros.backends.generators.procedural.scene import (
    F_FIELD,
    F_FOREST,
    F_KITCHEN,
    F_OFFICE,
    F_ROOM,
    F_STREET,
    F_WAREHOUSE,
    P_CEILING,
    P_CELL,
    P_ORIGIN,
)
from srender_ros.backends.generators.procedural.textures import RGB, brick, mix, mottle, scale, tiles, wood


@njit(**NJIT)
def pal(p: np.ndarray, h: np.uint64) -> RGB:
    """Palette entry chosen by a hash."""
    i = int(u01(h) * p.shape[0]) % p.shape[0]
    return float(p[i, 0]), float(p[i, 1]), float(p[i, 2])


@njit(**NJIT)
def cell_of(x: float, c: float, g: float) -> int:
    """Grid index along one axis."""
    return int(math.floor((x - g) / c))


@njit(**NJIT)
def planks(seed: np.uint64, u: float, v: float, fp: float, a: RGB, b: RGB, width: float) -> RGB:
    """Floorboards along u: staggered ends, per-board tone, grain, dark seams."""
    rowi = math.floor(v / width)
    length = 1.1 + 0.9 * rand(seed, int(rowi), 0, 5)
    off = length * rand(seed, int(rowi), 0, 6)
    k = math.floor((u + off) / length)
    h = hash3(seed, int(k), int(rowi), 7)
    w = lod_weight(width, fp)
    tone = 1.0 + w * 0.3 * (u01(h) - 0.5)
    c = scale(wood(seed + np.uint64(int(rowi) * 17 + int(k)), u, v, fp, a, b), tone)
    seam = 1.0 - (1.0 - lines(v, width, 0.004, fp)) * (1.0 - lines(u + off, length, 0.004, fp))
    return mix(c, scale(b, 0.5), 0.8 * seam)


@njit(**NJIT)
def room_wall(seed: np.uint64, family: int, params: np.ndarray, px: float, py: float, pz: float, nx: float, ny: float,
              fp: float) -> RGB:
    """Indoor wall: the style of the room on the side the normal points to (the viewer's room)."""
    c, g, hgt = params[P_CELL], params[P_ORIGIN], params[P_CEILING]
    rx = cell_of(px + 0.3 * nx, c, g)
    ry = cell_of(py + 0.3 * ny, c, g)
    h = hash3(seed, rx, ry, 501)
    base = pal(PAL_WALL, h)
    u = py if abs(nx) > abs(ny) else px
    v = pz
    style = int(u01(sub(h, 5)) * 5.0)
    if family == F_ROOM and (style == 3 or style == 4):
        paint = base  # brick and panelling styles have no painted part
    else:
        # Hand-troweled plaster under the paint: visible at 5-30 cm, not only in the finest grain.
        trowel = fbm2(seed + np.uint64(11), u, v, 0.25, 3, fp)
        paint = scale(base, mottle(seed, u, v, fp, 1.0, 0.08) * (0.9 + 0.2 * trowel)
                      * (0.96 + 0.08 * fbm2(seed, u, v, 0.03, 2, fp)))
    if family == F_KITCHEN:
        if 0.88 < v < 1.62:
            tcol = pal(PAL_WALL, sub(h, 9))
            return tiles(seed, u, v - 0.88, fp, scale(tcol, 1.05), scale(tcol, 0.8), 0.12 + 0.06 * (style & 1),
                         style >= 3)
        c2 = paint
    elif family == F_OFFICE:
        if style <= 1:
            band = 1.0 if 0.9 < v < 1.05 else 0.0
            c2 = mix(paint, scale(pal(PAL_FABRIC, sub(h, 11)), 1.1), band)
        elif style <= 3:
            panel = lines(u, 1.2, 0.02, fp)
            c2 = mix(mix(paint, scale(pal(PAL_FABRIC, sub(h, 11)), 1.2), 0.5 if 0.3 < v < 2.4 else 0.0),
                     scale(paint, 0.6), panel)
        else:
            pores = smoothstep(0.66, 0.74, fbm2(seed + np.uint64(12), u, v, 0.03, 2, fp))
            c2 = scale((0.72, 0.71, 0.69), mottle(seed, u, v, fp, 0.6, 0.18) * (1.0 - 0.25 * pores))
            c2 = mix(c2, scale(c2, 0.7), 1.0 - (1.0 - lines(u, 1.5, 0.015, fp)) * (1.0 - lines(v, 1.2, 0.015, fp)))
    else:
        if style == 0:
            period = 0.1 + 0.2 * u01(sub(h, 13))
            accent = scale(base, 0.78)
            c2 = mix(paint, accent, lines(u, period, 0.5 * period, fp))
        elif style == 1:
            if v < 0.92:
                panel_c = pal(PAL_WOOD, sub(h, 17)) if (h & np.uint64(1)) else (0.9, 0.9, 0.88)
                pan = 1.0 - (1.0 - lines(u, 0.6, 0.025, fp)) * (1.0 - lines(v - 0.1, 0.76, 0.025, fp))
                c2 = mix(scale(panel_c, mottle(seed, u, v, fp, 0.3, 0.06)), scale(panel_c, 0.65), 0.7 * pan)
            elif v < 0.98:
                c2 = (0.88, 0.87, 0.84)
            else:
                c2 = paint
        elif style == 2:
            d1 = lines(u + v, 0.3, 0.02, fp)
            d2 = lines(u - v + 100.0, 0.3, 0.02, fp)
            dots = lines(u + 0.14, 0.3, 0.03, fp) * lines(v + 0.14, 0.3, 0.03, fp)
            c2 = mix(paint, scale(base, 0.7), clamp01(d1 + d2 - d1 * d2 + dots))
        elif style == 3:
            c2 = brick(seed, u, v, fp, pal(PAL_BRICK, sub(h, 19)), 0.075)
        else:
            wc = pal(PAL_WOOD, sub(h, 23))
            c2 = mix(wood(seed, v, u, fp, wc, scale(wc, 0.6)), scale(wc, 0.4), lines(u, 0.14, 0.004, fp))
    if family != F_KITCHEN and v < 0.1:
        return (0.9, 0.89, 0.86) if (h >> np.uint64(29)) & np.uint64(1) else (0.3, 0.24, 0.2)
    if v > hgt - 0.06:
        return (0.92, 0.91, 0.89)
    return c2


@njit(**NJIT)
def asphalt(seed: np.uint64, x: float, y: float, fp: float, c: float) -> RGB:
    """Road surface: multi-scale asphalt, patches, centre dashes, parking lines, zebra crossings."""
    base = 0.25 + 0.08 * (fbm2(seed, x, y, 4.0, 4, fp) - 0.5) + 0.1 * (fbm2(seed + np.uint64(1), x, y, 0.05, 4, fp) - 0.5)
    patch = smoothstep(0.62, 0.66, fbm2(seed + np.uint64(2), x, y, 6.0, 2, fp))
    col = scale((1.0, 1.0, 1.02), base * (1.0 - 0.25 * patch))
    xr = x - c * math.floor(x / c + 0.5)  # offset from the nearest road centre line x = k c
    yr = y - c * math.floor(y / c + 0.5)
    on_x_road = abs(yr) < ROAD_HALF_M  # a road running along x
    on_y_road = abs(xr) < ROAD_HALF_M
    paint = 0.0
    if on_x_road and on_y_road:
        return col
    if on_x_road:
        d, s = yr, xr
    else:
        d, s = xr, yr
    a = abs(s)
    if a > ROAD_HALF_M + 0.5 and a < ROAD_HALF_M + 3.5:
        paint = lines(d + 0.25, 0.6, 0.3, fp) * (1.0 if abs(d) < ROAD_HALF_M - 1.3 else 0.0)
    elif a >= ROAD_HALF_M + 3.5:
        paint = lines(d + 0.06, 100.0, 0.12, fp) * lines(s, 6.0, 3.0, fp)
        paint = max(paint, lines(abs(d) - (ROAD_HALF_M - 2.0), 100.0, 0.1, fp))
    return mix(col, (0.86, 0.85, 0.8), 0.9 * paint)


@njit(**NJIT)
def forest_floor(seed: np.uint64, x: float, y: float, fp: float) -> RGB:
    """Leaf litter and moss, with a dirt trail along the trail lines."""
    big = fbm2(seed, x, y, 6.0, 3, fp)
    mid = fbm2(seed + np.uint64(1), x, y, 0.6, 4, fp)
    fine = fbm2(seed + np.uint64(2), x, y, 0.05, 3, fp)
    litter = (0.30 + 0.24 * mid, 0.22 + 0.16 * mid, 0.13 + 0.1 * mid)
    moss = (0.17 + 0.2 * mid, 0.28 + 0.24 * mid, 0.1 + 0.08 * mid)
    c = mix(litter, moss, smoothstep(0.4, 0.65, big))
    c = scale(c, 0.7 + 0.6 * fine)
    # Fallen leaves and twigs: small bright and dark flecks.
    fleck = fbm2(seed + np.uint64(3), x, y, 0.12, 2, fp)
    w = lod_weight(0.12, fp)
    c = mix(c, (0.62, 0.46, 0.2), 0.6 * w * smoothstep(0.68, 0.74, fleck))
    c = mix(c, (0.12, 0.09, 0.06), 0.5 * w * smoothstep(0.32, 0.26, fleck))
    d = trail_distance(x, y)
    t = smoothstep(TRAIL_HALF_M + 0.4, TRAIL_HALF_M - 0.4, d + 0.6 * (mid - 0.5))
    # Trail: packed earth in two tones, darker ruts along the middle, scattered pebbles.
    ruts = fbm2(seed + np.uint64(4), x, y, 0.9, 3, fp)
    dirt = scale(mix((0.52, 0.43, 0.31), (0.38, 0.3, 0.21), ruts), 0.8 + 0.4 * fine)
    pebble = smoothstep(0.7, 0.76, fbm2(seed + np.uint64(5), x, y, 0.05, 2, fp)) * lod_weight(0.05, fp)
    dirt = mix(dirt, (0.66, 0.63, 0.58), 0.7 * pebble)
    return mix(c, dirt, t)


@njit(**NJIT)
def field_ground(seed: np.uint64, x: float, y: float, fp: float, c: float, g: float) -> RGB:
    """Farmland: plots of 3x3 cells with a crop each (meadow, rows, ploughed soil, wheat, pasture), tracks."""
    px = int(math.floor((x - g) / (3.0 * c)))
    py = int(math.floor((y - g) / (3.0 * c)))
    h = hash3(seed, px, py, 601)
    kind = int(u01(h) * 5.0)
    mid = fbm2(seed, x, y, 1.5, 4, fp)
    fine = fbm2(seed + np.uint64(3), x, y, 0.08, 3, fp)
    big = fbm2(seed + np.uint64(4), x, y, 20.0, 3, fp)
    across = y if (h >> np.uint64(8)) & np.uint64(1) else x
    if kind == 0:
        col = mix((0.30, 0.45, 0.16), (0.42, 0.52, 0.2), mid)
        flowers = smoothstep(0.72, 0.78, fbm2(seed + np.uint64(5), x, y, 0.15, 2, fp)) * lod_weight(0.15, fp)
        col = mix(col, (0.9, 0.85, 0.3) if (h >> np.uint64(12)) & np.uint64(1) else (0.85, 0.85, 0.9), 0.7 * flowers)
    elif kind == 1:
        row = lines(across, 0.75, 0.3, fp)
        col = mix((0.42, 0.32, 0.2), (0.25, 0.45, 0.14), row * (0.7 + 0.3 * mid))
    elif kind == 2:
        furrow = lines(across, 0.35, 0.15, fp)
        col = scale(mix((0.44, 0.33, 0.22), (0.32, 0.23, 0.15), furrow), 0.85 + 0.3 * mid)
    elif kind == 3:
        col = mix((0.72, 0.6, 0.3), (0.8, 0.7, 0.4), mid)
        col = scale(col, 0.9 + 0.2 * lines(across, 0.2, 0.1, fp))
    else:
        col = mix((0.36, 0.5, 0.2), (0.28, 0.4, 0.16), mid)
    col = scale(col, (0.85 + 0.3 * fine) * (0.9 + 0.2 * big))
    d = trail_distance(x, y)
    t = smoothstep(TRAIL_HALF_M + 0.3, TRAIL_HALF_M - 0.3, d + 0.4 * (mid - 0.5))
    track = scale((0.55, 0.47, 0.36), 0.85 + 0.3 * fine)
    track = mix(track, (0.35, 0.45, 0.2), 0.8 * smoothstep(0.35, 0.1, abs(d) / TRAIL_HALF_M))  # grass strip
    return mix(col, track, t)


@njit(**NJIT)
def floor_albedo(seed: np.uint64, family: int, params: np.ndarray, x: float, y: float, fp: float) -> RGB:
    """The ground plane z = 0 (indoor floors, roads, forest floor)."""
    c, g = params[P_CELL], params[P_ORIGIN]
    rx, ry = cell_of(x, c, g), cell_of(y, c, g)
    h = hash3(seed, rx, ry, 701)
    if family == F_STREET:
        return asphalt(seed, x, y, fp, c)
    if family == F_FOREST:
        return forest_floor(seed, x, y, fp)
    if family == F_FIELD:
        return field_ground(seed, x, y, fp, c, g)
    if family == F_WAREHOUSE:
        col = scale((0.6, 0.59, 0.56), mottle(seed, x, y, fp, 3.0, 0.12))
        stain = smoothstep(0.6, 0.75, fbm2(seed + np.uint64(8), x, y, 1.5, 4, fp))
        col = mix(col, (0.4, 0.38, 0.35), 0.4 * stain)
        joint = 1.0 - (1.0 - lines(x, 5.0, 0.01, fp)) * (1.0 - lines(y + 0.005, 5.0, 0.01, fp))
        col = mix(col, (0.3, 0.3, 0.3), 0.7 * joint)
        yr = y - (g + (ry + 0.5) * c)
        lane = lines(abs(yr) - 2.75, 100.0, 0.1, fp)
        return mix(col, (0.9, 0.75, 0.1), 0.9 * lane * (0.0 if rx % 4 == 0 else 1.0))
    if family == F_OFFICE:
        tcol = pal(PAL_FABRIC, hash3(seed, 0, 0, 702))
        tcol = mix(tcol, (0.45, 0.45, 0.46), 0.5)
        ti, tj = math.floor(x / 0.5), math.floor(y / 0.5)
        vert = (int(ti + tj) & 1) == 1
        pile = lines(y if vert else x, 0.02, 0.008, fp)
        tone = 1.0 + 0.1 * (rand(seed, int(ti), int(tj), 3) - 0.5) * lod_weight(0.5, fp)
        col = scale(tcol, tone * (0.92 + 0.12 * pile) * mottle(seed, x, y, fp, 2.0, 0.08))
        return mix(col, scale(tcol, 0.7), lines(x, 0.5, 0.006, fp) + lines(y, 0.5, 0.006, fp))
    if family == F_KITCHEN:
        kind = int(u01(h) * 3.0)
        if kind == 0:
            return tiles(seed, x, y, fp, (0.9, 0.89, 0.86), (0.15, 0.15, 0.16), 0.3, True)
        if kind == 1:
            return tiles(seed, x, y, fp, (0.7, 0.38, 0.24), (0.6, 0.32, 0.2), 0.25, False)
        return tiles(seed, x, y, fp, (0.62, 0.6, 0.56), (0.5, 0.48, 0.45), 0.6, False)
    # F_ROOM: boards, carpet or stone tiles per room.
    kind = int(u01(h) * 3.0)
    if kind == 0 or family != F_ROOM:
        wc = pal(PAL_WOOD, sub(h, 3))
        if (h >> np.uint64(7)) & np.uint64(1):
            return planks(seed, x, y, fp, wc, scale(wc, 0.6), 0.14 + 0.06 * u01(sub(h, 9)))
        return planks(seed, y, x, fp, wc, scale(wc, 0.6), 0.14 + 0.06 * u01(sub(h, 9)))
    if kind == 1:
        cc = pal(PAL_FABRIC, sub(h, 3))
        tuft = fbm2(seed, x, y, 0.01, 2, fp)
        cc = scale(cc, mottle(seed, x, y, fp, 0.8, 0.16) * (0.85 + 0.3 * tuft))
        # A woven lattice pattern, so a carpet is not a flat colour from a few metres away.
        lattice = clamp01(lines(x + y, 0.42, 0.05, fp) + lines(x - y + 100.0, 0.42, 0.05, fp))
        return mix(cc, scale(cc, 0.72), lattice)
    tc = pal(PAL_WALL, sub(h, 3))
    return tiles(seed, x, y, fp, scale(tc, 0.9), scale(tc, 0.7), 0.45, False)


@njit(**NJIT)
def ceiling_albedo(seed: np.uint64, family: int, params: np.ndarray, x: float, y: float,
                   fp: float) -> tuple[float, float, float, float]:
    """Underside of the ceiling plane: (r, g, b, emission)."""
    c, g = params[P_CELL], params[P_ORIGIN]
    if family == F_OFFICE:
        grid = 1.0 - (1.0 - lines(x, 0.6, 0.02, fp)) * (1.0 - lines(y, 0.6, 0.02, fp))
        col = scale((0.86, 0.86, 0.84), 0.9 + 0.2 * fbm2(seed, x, y, 0.02, 3, fp))
        col = mix(col, (0.7, 0.7, 0.72), grid)
        lx = x - 2.4 * math.floor(x / 2.4)
        ly = y - 2.4 * math.floor(y / 2.4)
        if 0.6 < lx < 1.8 and 0.9 < ly < 1.5:
            return 0.97, 0.97, 0.95, 0.9
        return col[0], col[1], col[2], 0.0
    if family == F_WAREHOUSE:
        col = scale((0.7, 0.71, 0.72), 0.9 + 0.2 * (0.5 + 0.5 * math.sin(2 * math.pi * y / 0.2)) * lod_weight(0.2, fp))
        col = mix(col, (0.3, 0.3, 0.32), lines(x, 4.0, 0.3, fp))
        if (x - g) - c * math.floor((x - g) / c) < 1.0:
            return 0.9, 0.93, 0.95, 0.8
        return col[0], col[1], col[2], 0.0
    col = scale((0.93, 0.92, 0.9), mottle(seed, x, y, fp, 1.0, 0.05))
    if family == F_KITCHEN:
        lx = x - 1.2 * math.floor(x / 1.2)
        ly = y - 1.2 * math.floor(y / 1.2)
        if (lx - 0.6) ** 2 + (ly - 0.6) ** 2 < 0.01:
            return 1.0, 0.97, 0.9, 0.9
    beam = lines(x + 0.1, 1.6, 0.2, fp) if family == F_ROOM and (hash3(seed, 0, 0, 703) & np.uint64(1)) else 0.0
    col = mix(col, (0.5, 0.38, 0.26), beam)
    return col[0], col[1], col[2], 0.0


@njit(**NJIT)
def roof_albedo(seed: np.uint64, family: int, params: np.ndarray, x: float, y: float, fp: float) -> RGB:
    """Top of the indoor families' flat roof (seen from above): gravel, membrane seams, tar patches;
    the warehouse roof shows its skylight strips (where the ceiling has them)."""
    c, g = params[P_CELL], params[P_ORIGIN]
    grain = fbm2(seed, x, y, 0.05, 3, fp)
    big = fbm2(seed + np.uint64(2), x, y, 6.0, 4, fp)
    col = scale((0.52, 0.5, 0.47), (0.8 + 0.4 * grain) * (0.8 + 0.4 * big))
    tar = smoothstep(0.7, 0.75, fbm2(seed + np.uint64(3), x, y, 8.0, 3, fp))
    col = mix(col, (0.25, 0.25, 0.26), 0.5 * tar)
    col = mix(col, (0.3, 0.3, 0.3), lines(x, 3.0, 0.05, fp))
    if family == F_WAREHOUSE:
        sx = (x - g) - c * math.floor((x - g) / c)
        glass = scale((0.35, 0.45, 0.55), 0.8 + 0.4 * fbm2(seed + np.uint64(4), x, y, 1.0, 3, fp))
        frame = lines(y, 2.0, 0.06, fp)
        sky = 1.0 - smoothstep(0.95, 1.05, sx)
        col = mix(col, mix(glass, (0.75, 0.75, 0.76), frame), sky)
    return col


@njit(**NJIT)
def sky_color(seed: np.uint64, dx: float, dy: float, dz: float, ang_fp: float) -> RGB:
    """Sky seen along the unit direction d: horizon haze to zenith blue, with soft clouds.

    A function of direction only (the sky is infinitely far in look, placed at a finite depth).
    """
    e = dz
    haze = (0.80, 0.85, 0.90)
    zenith = (0.32, 0.52, 0.82)
    if e <= 0.0:
        return mix(haze, (0.7, 0.72, 0.72), clamp01(-e * 8.0))
    col = mix(haze, zenith, math.sqrt(clamp01(e)))
    # Clouds on a plane at infinity: coordinates d.xy / d.z, footprint grows with 1 / d.z^2.
    inv = 1.0 / max(e, 0.02)
    u, v = dx * inv, dy * inv
    fp = ang_fp * inv * inv
    cl = fbm2(seed, u, v, 0.8, 6, fp)
    cover = smoothstep(0.5, 0.72, cl) * smoothstep(0.02, 0.15, e)
    return mix(col, (0.97, 0.97, 0.98), 0.85 * cover)
