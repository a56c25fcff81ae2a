"""Procedural textures of the object materials (numba): albedo in [0, 1] plus an emission weight.

Every texture is a function of the world-space hit point (and the primitive it belongs to), never of
the viewing direction, so the world looks the same from every view. Each mixes several scales
(large mottling, mid-scale pattern such as bricks or planks, fine grain) and band-limits itself to
the sample footprint ``fp`` (see :mod:`.noise`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.materials import (
    M_BARK,
    M_BOOKS,
    M_BRICK,
    M_CABINET,
    M_CAR,
    M_CARDBOARD,
    M_CONCRETE,
    M_FABRIC,
    M_FACADE,
    M_FOLIAGE,
    M_HAY,
    M_LAMP,
    M_METAL,
    M_PICTURE,
    M_ROCK,
    M_SCREEN,
    M_SIDEWALK,
    M_STONE,
    M_TILE,
    M_WOOD,
    M_WRAP,
    T_BOX,
    T_CYL,
)
from srender_ros.backends.generators.procedural.noise import (
    NJIT,
    RGB_T,
    clamp01,
    fbm2,
    fbm3,
    hash3,
    lines,
    lod_weight,
    rand,
    smoothstep,
    sub,
    u01,
    value2,
)

RGB = tuple[float, float, float]


@njit(**NJIT)
def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear blend a -> b."""
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


@njit(**NJIT)
def scale(a: RGB, s: float) -> RGB:
    """Colour times a scalar."""
    return (a[0] * s, a[1] * s, a[2] * s)


@njit(**NJIT)
def mottle(seed: np.uint64, u: float, v: float, fp: float, wl: float, amount: float) -> float:
    """Multiplicative variation around 1 (+-amount), four octaves from wavelength ``wl`` down."""
    return 1.0 + amount * (2.0 * fbm2(seed, u, v, wl, 4, fp) - 1.0)


@njit(**NJIT)
def planar(px: float, py: float, pz: float, nx: float, ny: float, nz: float) -> tuple[float, float, int]:
    """(u, v, axis): in-plane coordinates of a hit on an axis-aligned face; axis of its normal (0 x, 1 y, 2 z)."""
    ax, ay, az = abs(nx), abs(ny), abs(nz)
    if az >= ax and az >= ay:
        return px, py, 2
    if ax >= ay:
        return py, pz, 0
    return px, pz, 1


@njit(**NJIT)
def brick(seed: np.uint64, u: float, v: float, fp: float, base: RGB, course_m: float) -> RGB:
    """Running-bond bricks: per-brick tone, mortar lines, surface grain."""
    bl = course_m * 3.2
    row = math.floor(v / course_m)
    off = 0.5 * bl * (int(row) & 1)
    col = math.floor((u + off) / bl)
    h = hash3(seed, int(col), int(row), 77)
    w = lod_weight(course_m, fp)
    tone = 1.0 + w * 0.34 * (u01(h) - 0.5)
    warm = 1.0 + w * 0.12 * (rand(seed, int(col), int(row), 78) - 0.5)
    g = mottle(seed, u, v, fp, 0.3, 0.12)
    c = (base[0] * tone * warm * g, base[1] * tone * g, base[2] * tone / warm * g)
    mw = course_m * 0.14
    m = 1.0 - (1.0 - lines(v, course_m, mw, fp)) * (1.0 - lines(u + off, bl, mw, fp))
    return mix(c, (0.72, 0.70, 0.66), m)


@njit(**NJIT)
def wood(seed: np.uint64, along: float, across: float, fp: float, a: RGB, b: RGB) -> RGB:
    """Wood grain: stripes across, stretched noise along, slow tone variation."""
    d = fbm2(seed, along * 0.25, across, 0.25, 3, fp)
    w = lod_weight(0.01, fp)
    s = 0.5 + 0.5 * math.sin(2.0 * math.pi * (across / 0.011 + 9.0 * d))
    streak = fbm2(seed + np.uint64(5), along * 0.08, across, 0.03, 3, fp)
    t = clamp01(0.25 + 0.35 * (s - 0.5) * w + 0.9 * (streak - 0.5) + 0.6 * (d - 0.5))
    return scale(mix(a, b, t), mottle(seed, along, across, fp, 1.2, 0.08))


@njit(f"{RGB_T}(uint64, float64, float64, float64, {RGB_T}, {RGB_T}, float64, boolean)", **NJIT)
def tiles(seed: np.uint64, u: float, v: float, fp: float, a: RGB, b: RGB, size: float, checker: bool) -> RGB:
    """Square tiles with grout, per-tile tone and optional checkerboard."""
    iu, iv = math.floor(u / size), math.floor(v / size)
    w = lod_weight(size, fp)
    base = b if checker and (int(iu + iv) & 1) else a
    if checker:
        base = mix(mix(a, b, 0.5), base, w)
    tone = 1.0 + w * 0.14 * (rand(seed, int(iu), int(iv), 31) - 0.5)
    c = scale(base, tone * mottle(seed, u, v, fp, 0.4, 0.07))
    gw = max(0.003, size * 0.02)
    m = 1.0 - (1.0 - lines(u, size, gw, fp)) * (1.0 - lines(v, size, gw, fp))
    return mix(c, (0.55, 0.54, 0.5), 0.85 * m)


@njit(**NJIT)
def rgb_at(row: np.ndarray, i: int) -> RGB:
    """The colour stored at row[i:i + 3], as float64."""
    return float(row[i]), float(row[i + 1]), float(row[i + 2])


@njit(**NJIT)
def box_extent(row: np.ndarray) -> tuple[float, float, float]:
    """Sizes (x, y, z) of a box primitive."""
    return row[4] - row[1], row[5] - row[2], row[6] - row[3]


@njit(**NJIT)
def face_local(row: np.ndarray, px: float, py: float, pz: float, axis: int) -> tuple[float, float, float, float]:
    """(s, t, width, height): position on a box's vertical face from its lower-left corner, and the face size."""
    if axis == 0:
        return py - row[2], pz - row[3], row[5] - row[2], row[6] - row[3]
    if axis == 1:
        return px - row[1], pz - row[3], row[4] - row[1], row[6] - row[3]
    return px - row[1], py - row[2], row[4] - row[1], row[5] - row[2]


@njit(**NJIT)
def facade(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float) -> RGB:
    """Building: walls (brick / plaster / concrete panels) with a window grid and a shop-front ground floor."""
    wall = rgb_at(row, 8)
    glass = rgb_at(row, 11)
    style = int(row[14])
    bseed = hash3(seed, int(row[15] * 1e6), 0, 90)
    if axis == 2:
        g = fbm2(seed, px, py, 2.0, 7, fp)
        return scale((0.45, 0.44, 0.42), 0.8 + 0.4 * g)
    s, t, width, _ = face_local(row, px, py, pz, axis)
    if style == 0:
        c = brick(seed, s, t, fp, wall, 0.085)
    elif style == 1:
        c = scale(wall, mottle(seed, s + 3.1 * axis, t, fp, 1.5, 0.12) * (0.96 + 0.08 * fbm2(seed, s, t, 0.04, 3, fp)))
    else:
        c = scale(wall, mottle(seed, s, t, fp, 0.8, 0.1))
        c = mix(c, scale(wall, 0.7), 0.8 * (1.0 - (1.0 - lines(s, 1.5, 0.02, fp)) * (1.0 - lines(t, 3.2, 0.02, fp))))
    floor_h = 3.2
    spacing = 2.2 + 1.4 * u01(bseed)
    win_w = spacing * (0.4 + 0.3 * u01(sub(bseed, 8)))
    # Windows centred in equal bays across the face width.
    nbay = max(1, int(width / spacing))
    bay = width / nbay
    bi = math.floor(s / bay)
    bs = s - bi * bay - 0.5 * bay
    fl = math.floor((t - 0.15) / floor_h)
    ft = (t - 0.15) - fl * floor_h
    if fl < 1:
        # Ground floor: wide shop windows under a fascia.
        inside = abs(bs) < 0.42 * bay and 0.35 < ft < 2.6
        if ft > 2.7 and ft < 3.1:
            return scale(glass, 1.6 + 0.6 * fbm2(bseed, s, t, 0.5, 3, fp))
        frame = abs(bs) < 0.42 * bay + 0.06 and 0.29 < ft < 2.66
    else:
        inside = abs(bs) < 0.5 * win_w and 0.9 < ft < 2.5
        frame = abs(bs) < 0.5 * win_w + 0.07 and 0.83 < ft < 2.57
    if inside:
        lit = rand(bseed, int(bi), int(fl), 3)
        g = 0.75 + 0.5 * fbm2(bseed, s * 0.5, t, 1.0, 3, fp) + 0.25 * (t / 40.0)
        gl = scale(glass, g)
        if lit < 0.15:
            gl = mix(gl, (0.9, 0.8, 0.55), 0.6)
        elif lit < 0.4:
            gl = mix(gl, (0.75, 0.72, 0.66), 0.5 * smoothstep(1.4, 2.4, ft))
        return gl
    if frame:
        return (0.82, 0.82, 0.8)
    return c


@njit(**NJIT)
def books(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float) -> RGB:
    """Bookcase: shelf boards and book spines of varying colour and height on the long vertical faces."""
    wood_c = rgb_at(row, 8)
    ex, ey, _ = box_extent(row)
    front = (axis == 1 and ex >= ey) or (axis == 0 and ey > ex)
    if not front:
        return wood(seed, pz, px + py, fp, wood_c, scale(wood_c, 0.6))
    s, t, width, height = face_local(row, px, py, pz, axis)
    shelf_h = 0.36
    k = math.floor(t / shelf_h)
    tt = t - k * shelf_h
    if tt < 0.025 or s < 0.025 or s > width - 0.025 or t > height - 0.03:
        return wood(seed, s, t, fp, wood_c, scale(wood_c, 0.6))
    sw = 0.022 + 0.03 * rand(seed, int(k), 0, int(row[15] * 1e6))
    bi = math.floor(s / sw)
    h = hash3(seed, int(bi), int(k), int(row[15] * 1e6))
    w = lod_weight(sw, fp)
    top = 0.6 + 0.35 * u01(sub(h, 3))
    hue = u01(h)
    col = (0.25 + 0.55 * u01(sub(h, 9)), 0.2 + 0.45 * u01(sub(h, 17)), 0.15 + 0.5 * hue)
    avg = (0.42, 0.34, 0.3)
    col = mix(avg, col, w)
    if tt > top * shelf_h:
        return mix((0.08, 0.06, 0.05), avg, 0.3 * (1.0 - w))
    band = lines(tt, 0.11, 0.012, fp) * 0.5
    return scale(mix(col, (0.85, 0.75, 0.4), band), 1.0 - 0.4 * lines(s, sw, 0.002, fp))


@njit(**NJIT)
def cabinet(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float) -> RGB:
    """Cabinet fronts: doors or drawers with gaps and handles; fridges with a handle bar."""
    col = rgb_at(row, 8)
    ex, ey, _ = box_extent(row)
    plain = scale(col, mottle(seed, px + py, pz, fp, 0.5, 0.05))
    front = (axis == 1 and ex >= ey) or (axis == 0 and ey > ex)
    if axis == 2 or not front:
        return plain
    s, t, width, height = face_local(row, px, py, pz, axis)
    kind = int(row[14])
    if kind == 2:
        gap = lines(t - 1.146, 10.0, 0.008, fp)
        handle = 1.0 if (abs(s - 0.06) < 0.015 and (0.5 < t < 1.0 or 1.3 < t < 1.8)) else 0.0
        return mix(plain, (0.15, 0.15, 0.15), max(gap, handle))
    nd = max(1, int(width / 0.5 + 0.5))
    dw = width / nd
    if kind == 1:
        nh = max(1, int(height / 0.22 + 0.5))
        dh = height / nh
    else:
        dh = height + 1.0
    ds = s - math.floor(s / dw) * dw
    dt = t - math.floor(t / dh) * dh
    gap = 1.0 - (1.0 - lines(s + 0.003, dw, 0.006, fp)) * (1.0 - lines(t + 0.003, dh, 0.006, fp))
    inset = min(min(ds, dw - ds), min(dt, min(dh, height) - dt))
    panel = 0.08 * lines(inset + 0.06, 10.0, 0.012, fp)
    hz = min(dh, height) - 0.07 if kind == 0 and height < 1.2 else 0.5 * min(dh, height)
    handle = 1.0 if abs(ds - 0.5 * dw) < 0.07 and abs(dt - hz) < 0.012 else 0.0
    c = scale(plain, 1.0 - panel)
    return mix(c, (0.12, 0.12, 0.12), max(gap, 0.85 * handle))


@njit(**NJIT)
def cardboard(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float,
              wrap: bool) -> RGB:
    """Rows of cartons: seams every unit, per-carton tone, tape and labels; shrink wrap over it if ``wrap``."""
    base = rgb_at(row, 8)
    unit = max(0.3, row[14])
    ex, ey, _ = box_extent(row)
    along = px if ex >= ey else py
    a0 = row[1] if ex >= ey else row[2]
    s = along - a0
    k = math.floor(s / unit)
    us = s - k * unit
    h = hash3(seed, int(k), int(row[15] * 1e6), 55)
    w = lod_weight(unit, fp)
    tone = 1.0 + w * 0.22 * (u01(h) - 0.5)
    u, v, _ = planar(px, py, pz, 1.0 if axis == 0 else 0.0, 1.0 if axis == 1 else 0.0, 1.0 if axis == 2 else 0.0)
    c = scale(base, tone * mottle(seed, u, v, fp, 0.25, 0.1))
    seam = lines(s, unit, 0.012, fp)
    c = mix(c, scale(base, 0.45), 0.8 * seam)
    if axis == 2:
        tape = 1.0 if abs(us - 0.5 * unit) < 0.03 else 0.0
        c = mix(c, (0.75, 0.62, 0.42), 0.6 * tape * w)
    else:
        rel = (pz - row[3]) / max(1e-3, row[6] - row[3])
        if u01(sub(h, 7)) < 0.6 and abs(us - 0.5 * unit) < 0.3 * unit and 0.35 < rel < 0.65:
            bar = lines(us, 0.012, 0.005, fp) if rel < 0.45 else 0.0
            c = mix((0.92, 0.92, 0.9), (0.1, 0.1, 0.1), 0.7 * bar)
    if wrap:
        streak = fbm2(seed, u + v, v - u, 0.15, 4, fp)
        c = mix(c, (0.9, 0.92, 0.94), 0.45 + 0.25 * streak)
    return c


@njit(**NJIT)
def picture(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float) -> RGB:
    """A framed painting: an abstract landscape from a per-picture palette."""
    ex, ey, _ = box_extent(row)
    big = (axis == 0 and ey > ex) or (axis == 1 and ex >= ey)
    pid = int(row[15] * 1e6)
    frame_c = (0.2, 0.14, 0.1) if rand(seed, pid, 0, 1) < 0.6 else (0.7, 0.58, 0.3)
    if not big:
        return frame_c
    s, t, width, height = face_local(row, px, py, pz, axis)
    if min(s, width - s) < 0.045 or min(t, height - t) < 0.045:
        return frame_c
    if min(s, width - s) < 0.09 or min(t, height - t) < 0.09:
        return (0.92, 0.9, 0.86)
    hsh = np.uint64(hash3(seed, pid, 1, 2))
    sky = (0.4 + 0.5 * rand(hsh, 1, 0, 0), 0.5 + 0.4 * rand(hsh, 2, 0, 0), 0.6 + 0.35 * rand(hsh, 3, 0, 0))
    land = (0.2 + 0.5 * rand(hsh, 4, 0, 0), 0.25 + 0.4 * rand(hsh, 5, 0, 0), 0.1 + 0.3 * rand(hsh, 6, 0, 0))
    accent = (0.5 + 0.5 * rand(hsh, 7, 0, 0), 0.2 + 0.5 * rand(hsh, 8, 0, 0), 0.1 + 0.4 * rand(hsh, 9, 0, 0))
    ts = t / height
    horizon = 0.45 + 0.2 * (value2(hsh, s * 4.0, 0.5) - 0.5)
    n = fbm2(hsh, s, t, 0.12, 4, fp)
    c = mix(sky, (0.95, 0.92, 0.85), 0.4 * smoothstep(0.55, 0.8, n)) if ts > horizon else mix(land, accent, n)
    return scale(c, 0.9 + 0.2 * fbm2(hsh, s, t, 0.01, 2, fp))


@njit(**NJIT)
def car_tex(seed: np.uint64, row: np.ndarray, px: float, py: float, pz: float, axis: int, fp: float) -> RGB:
    """Car body paint with a trim line; cabin with glazing and pillars; dark underbody."""
    paint = rgb_at(row, 8)
    kind = int(row[14])
    if kind == 2:
        return scale(paint, 0.8 + 0.4 * fbm2(seed, px + py, pz, 0.1, 3, fp))
    if kind == 0:
        trim = 1.0 if abs(pz - 0.62) < 0.025 else 0.0
        c = scale(paint, mottle(seed, px + py, pz, fp, 0.6, 0.05))
        return mix(c, (0.1, 0.1, 0.1), 0.7 * trim)
    if axis == 2:
        return scale(paint, 0.95)
    s, t, width, height = face_local(row, px, py, pz, axis)
    edge = min(min(s, width - s), height - t)
    glass = rgb_at(row, 11)
    ex, ey, _ = box_extent(row)
    side = (axis == 1 and ex >= ey) or (axis == 0 and ey > ex)
    pillar = edge < 0.09 or t < 0.08 or (side and abs(s - 0.5 * width) < 0.06)
    if pillar:
        return paint
    return scale(glass, 0.8 + 0.5 * t / height + 0.2 * fbm2(seed, s, t, 0.3, 2, fp))


@njit(**NJIT)
def albedo_object(row: np.ndarray, seed: np.uint64, px: float, py: float, pz: float, nx: float, ny: float, nz: float,
                  fp: float) -> tuple[float, float, float, float]:
    """(r, g, b, emission) of an object hit. ``n`` faces the viewer; ``fp`` is the footprint in metres."""
    mat = int(row[7])
    typ = int(row[0])
    a = rgb_at(row, 8)
    b = rgb_at(row, 11)
    oseed = seed + np.uint64(int(row[15] * 1e6) * 131)
    u, v, axis = planar(px, py, pz, nx, ny, nz)
    if typ == T_CYL:
        ang = math.atan2(py - row[2], px - row[1])
        if axis == 2:
            u, v = px, py
        else:
            u, v = ang * row[3], pz
    if mat == M_LAMP:
        return a[0], a[1], a[2], 0.9
    if mat == M_WOOD:
        if typ == T_BOX:
            ex, ey, ez = box_extent(row)
            if ex >= ey:
                along, across = (px, py) if axis == 2 else ((px, pz) if axis == 1 else (pz, py))
            else:
                along, across = (py, px) if axis == 2 else ((py, pz) if axis == 0 else (pz, px))
            if ez > max(ex, ey):
                along, across = pz, u
        else:
            along, across = v, u
        c = wood(oseed, along, across, fp, a, b)
    elif mat == M_FABRIC:
        weave = 0.5 * (lines(u, 0.004, 0.002, fp) + lines(v, 0.004, 0.002, fp))
        c = scale(a, mottle(oseed, u, v, fp, 0.3, 0.1) * (0.92 + 0.12 * weave))
        kind = int(row[14])
        if kind == 1 and typ == T_BOX:
            s, t = px - row[1], py - row[2]
            w, h = row[4] - row[1], row[5] - row[2]
            edge = min(min(s, w - s), min(t, h - t))
            border = lines(edge, 10.0, 0.12, fp) - lines(edge, 10.0, 0.05, fp)
            diamond = lines(abs(s - 0.5 * w) + abs(t - 0.5 * h), 0.3, 0.08, fp)
            c = mix(c, b, clamp01(border + 0.8 * diamond * (1.0 if edge > 0.18 else 0.0)))
        elif kind == 2:
            c = mix(c, b, 0.7 * lines(u + v * 0.0, 0.25, 0.1, fp))
    elif mat == M_BOOKS:
        c = books(seed, row, px, py, pz, axis, fp)
    elif mat == M_CARDBOARD or mat == M_WRAP:
        c = cardboard(oseed, row, px, py, pz, axis, fp, mat == M_WRAP)
    elif mat == M_METAL:
        scratch = smoothstep(0.62, 0.75, fbm2(oseed, u * 0.2, v * 3.0, 0.05, 4, fp * 3.0))
        c = scale(a, mottle(oseed, u, v, fp, 0.5, 0.1))
        c = mix(c, (0.75, 0.75, 0.74), 0.35 * scratch)
        if int(row[14]) == 1 and axis != 2:
            holes = lines(v, 0.06, 0.02, fp) * lines(u + 0.03, 0.1, 0.03, fp)
            c = mix(c, (0.05, 0.05, 0.05), holes)
    elif mat == M_CONCRETE:
        pores = smoothstep(0.68, 0.76, fbm2(oseed, u, v, 0.02, 3, fp))
        c = scale(a, mottle(oseed, u, v, fp, 1.2, 0.16) * (1.0 - 0.3 * pores))
        if int(row[14]) == 1 and pz < 1.0 and axis != 2:
            stripe = lines(u + pz, 0.3, 0.15, fp)
            c = mix((0.9, 0.75, 0.1), (0.08, 0.08, 0.08), stripe)
    elif mat == M_FACADE:
        c = facade(seed, row, px, py, pz, axis, fp)
    elif mat == M_BRICK:
        c = brick(oseed, u, v, fp, a, 0.075)
    elif mat == M_BARK:
        if axis == 2 and typ == T_CYL:
            r = math.sqrt((px - row[1]) ** 2 + (py - row[2]) ** 2)
            c = mix((0.7, 0.58, 0.4), scale(a, 0.8), lines(r, 0.025, 0.008, fp))
        else:
            ridge = fbm2(oseed, u / 0.05, v / 0.5, 1.0, 4, fp / 0.05)
            c = mix(scale(b, 0.8), a, smoothstep(0.3, 0.7, ridge))
            c = scale(c, mottle(oseed, u, v, fp, 1.0, 0.15))
    elif mat == M_FOLIAGE:
        kind = int(row[14])
        big = fbm3(oseed, px, py, pz, 0.9, 3, fp)
        fine_wl = 0.06 if kind == 1 else 0.12
        leaves = fbm3(oseed + np.uint64(3), px, py, pz, fine_wl, 3, fp)
        c = mix(scale(a, 0.7), b, smoothstep(0.35, 0.8, big) * 0.6)
        holes = smoothstep(0.45, 0.3, leaves)
        c = scale(c, 0.75 + 0.6 * (leaves - 0.5) * lod_weight(fine_wl, fp) + 0.05)
        c = mix(c, scale(a, 0.35), 0.6 * holes * lod_weight(fine_wl, fp))
    elif mat == M_ROCK:
        g = fbm3(oseed, px, py, pz, 0.5, 6, fp)
        lichen = smoothstep(0.58, 0.66, fbm3(oseed + np.uint64(9), px, py, pz, 0.3, 3, fp))
        c = mix(scale(a, 0.7 + 0.6 * g), b, 0.7 * lichen * clamp01(nz + 0.3))
    elif mat == M_PICTURE:
        c = picture(seed, row, px, py, pz, axis, fp)
    elif mat == M_TILE:
        c = tiles(oseed, u, v, fp, a, b, max(0.05, row[14]), row[15] > 0.5)
    elif mat == M_STONE:
        speck = fbm2(oseed, u, v, 0.012, 2, fp)
        c = scale(a, mottle(oseed, u, v, fp, 0.3, 0.1))
        c = mix(c, b, smoothstep(0.62, 0.72, speck) * lod_weight(0.012, fp) + 0.1 * (1.0 - lod_weight(0.012, fp)))
        c = mix(c, (0.95, 0.95, 0.93), 0.5 * smoothstep(0.3, 0.22, speck) * lod_weight(0.012, fp))
    elif mat == M_CABINET:
        c = cabinet(oseed, row, px, py, pz, axis, fp)
    elif mat == M_SCREEN:
        s, t, width, height = face_local(row, px, py, pz, axis)
        ex, ey, _ = box_extent(row)
        front = (axis == 1 and ex >= ey) or (axis == 0 and ey > ex)
        if front and min(s, width - s) > 0.025 and min(t, height - t) > 0.025:
            bars = lines(t, 0.035, 0.012, fp)
            c = mix(b, (0.85, 0.88, 0.9), 0.6 * bars * (1.0 if s < 0.6 * width else 0.3))
            c = mix(c, (0.9, 0.4, 0.2), 1.0 if abs(s - 0.8 * width) < 0.05 and abs(t - 0.6 * height) < 0.05 else 0.0)
            return c[0], c[1], c[2], 0.5
        c = a
    elif mat == M_CAR:
        c = car_tex(oseed, row, px, py, pz, axis, fp)
    elif mat == M_HAY:
        if axis == 2 and typ == T_CYL:
            r = math.sqrt((px - row[1]) ** 2 + (py - row[2]) ** 2)
            c = mix(a, b, 0.5 * lines(r, 0.06, 0.02, fp) + 0.3 * fbm2(oseed, px, py, 0.05, 3, fp))
        else:
            streak = fbm2(oseed, u / 0.1, v / 0.01, 1.0, 4, fp / 0.01)
            c = mix(b, a, 0.3 + 0.7 * streak)
    elif mat == M_SIDEWALK:
        if axis == 2:
            kerb = min(min(px - row[1], row[4] - px), min(py - row[2], row[5] - py))
            if kerb < 0.3:
                c = scale((0.7, 0.69, 0.66), mottle(oseed, u, v, fp, 0.3, 0.1))
            else:
                c = tiles(oseed, u, v, fp, a, b, 0.5, False)
                c = scale(c, 1.0 - 0.15 * smoothstep(0.6, 0.8, fbm2(oseed, u, v, 3.0, 4, fp)))
        else:
            c = scale((0.66, 0.65, 0.62), mottle(oseed, u, v, fp, 0.3, 0.1))
    else:  # M_PLASTIC, M_PAINT and anything unknown
        c = scale(a, mottle(oseed, u, v, fp, 0.4, 0.08) * (0.95 + 0.1 * fbm2(oseed, u, v, 0.02, 2, fp)))
    return clamp01(c[0]), clamp01(c[1]), clamp01(c[2]), 0.0
