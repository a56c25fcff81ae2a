"""Cell builders of the indoor families: room, office, kitchen, warehouse.

Indoor cells are rooms (or rack bays) centred on the grid cell. Each cell owns the walls on its
-x and -y sides (so every wall is built exactly once and lies inside its cell); every wall has a
doorway at its middle, so paths along the axes through the origin (room centres) stay free. Items
stand in the four quadrants and leave a cross-shaped corridor (|dx|, |dy| < ~0.8 m from the room
centre) clear.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.cellkit import (
    PAL_CABINET,
    PAL_CARDBOARD,
    PAL_COUNTER,
    PAL_FABRIC,
    PAL_LEAF,
    PAL_METAL,
    PAL_PAINT_DARK,
    PAL_POT,
    PAL_WHITE,
    PAL_WOOD,
    choice,
    nxt,
    pick,
    put_box,
    put_cyl,
    put_ell,
    slot_box,
    slot_len,
    slot_xy,
    stream,
    uni,
)
from srender_ros.backends.generators.procedural.materials import (
    M_BOOKS,
    M_CABINET,
    M_CARDBOARD,
    M_CONCRETE,
    M_FABRIC,
    M_FOLIAGE,
    M_LAMP,
    M_METAL,
    M_PICTURE,
    M_PLASTIC,
    M_ROOMWALL,
    M_SCREEN,
    M_STONE,
    M_WOOD,
    M_WRAP,
)
from srender_ros.backends.generators.procedural.noise import NJIT, REC_T, ST_T

WALL_T = 0.15
DOOR_H = 2.1
CORRIDOR = 0.8
_NONE = (0.0, 0.0, 0.0)
_LAMP = (1.0, 0.95, 0.82)


@njit(f"int64({REC_T}, int64, float64, float64, float64, float64, float64, boolean, boolean)", **NJIT)
def walls(rec: np.ndarray, n: int, x0: float, y0: float, c: float, h: float, door_w: float, west: bool,
          south: bool) -> int:
    """The cell's -x (west) and -y (south) walls with a centred doorway each."""
    cx = x0 + 0.5 * c
    cy = y0 + 0.5 * c
    if west:
        n = put_box(rec, n, x0, y0, 0.0, x0 + WALL_T, cy - 0.5 * door_w, h, M_ROOMWALL, _NONE, _NONE, 0.0, 0.0)
        n = put_box(rec, n, x0, cy + 0.5 * door_w, 0.0, x0 + WALL_T, y0 + c, h, M_ROOMWALL, _NONE, _NONE, 0.0, 0.0)
        n = put_box(rec, n, x0, cy - 0.5 * door_w, DOOR_H, x0 + WALL_T, cy + 0.5 * door_w, h, M_ROOMWALL, _NONE, _NONE,
                    0.0, 0.0)
    if south:
        n = put_box(rec, n, x0, y0, 0.0, cx - 0.5 * door_w, y0 + WALL_T, h, M_ROOMWALL, _NONE, _NONE, 0.0, 0.0)
        n = put_box(rec, n, cx + 0.5 * door_w, y0, 0.0, x0 + c, y0 + WALL_T, h, M_ROOMWALL, _NONE, _NONE, 0.0, 0.0)
        n = put_box(rec, n, cx - 0.5 * door_w, y0, DOOR_H, cx + 0.5 * door_w, y0 + WALL_T, h, M_ROOMWALL, _NONE, _NONE,
                    0.0, 0.0)
    return n


@njit(**NJIT)
def quadrant_slot(x0: float, y0: float, c: float, q: int, st: np.ndarray) -> tuple[float, float, float, float, int]:
    """Floor rectangle of quadrant q (0..3) between the corridor and the walls, with a random back wall."""
    cx = x0 + 0.5 * c
    cy = y0 + 0.5 * c
    sx = 1 if q & 1 else -1
    sy = 1 if q & 2 else -1
    if sx > 0:
        ax0, ax1 = cx + CORRIDOR, x0 + c - 0.05
    else:
        ax0, ax1 = x0 + WALL_T + 0.05, cx - CORRIDOR
    if sy > 0:
        ay0, ay1 = cy + CORRIDOR, y0 + c - 0.05
    else:
        ay0, ay1 = y0 + WALL_T + 0.05, cy - CORRIDOR
    if nxt(st) < 0.5:
        side = 1 if sx > 0 else 0
    else:
        side = 3 if sy > 0 else 2
    return (ax0, ay0, ax1, ay1, side)


@njit(**NJIT)
def plant(rec: np.ndarray, n: int, x: float, y: float, scale: float, st: np.ndarray) -> int:
    """A potted plant: pot cylinder + foliage ellipsoid."""
    pot = pick(PAL_POT, st)
    leaf = pick(PAL_LEAF, st)
    n = put_cyl(rec, n, x, y, 0.17 * scale, 0.0, 0.34 * scale, M_PLASTIC, pot, pot, 0.0, nxt(st))
    r = uni(st, 0.28, 0.4) * scale
    return put_ell(rec, n, x, y, 0.34 * scale + r * 0.9, r, r, r * 1.1, M_FOLIAGE, leaf, (0.45, 0.62, 0.22), 0.0, nxt(st))


@njit(**NJIT)
def chair(rec: np.ndarray, n: int, x: float, y: float, back_dx: float, back_dy: float, col: tuple[float, float, float],
          st: np.ndarray) -> int:
    """Seat slab, central post and a backrest on the side (back_dx, back_dy) (unit axis vector)."""
    s = 0.23
    n = put_box(rec, n, x - 0.03, y - 0.03, 0.0, x + 0.03, y + 0.03, 0.43, M_METAL, (0.2, 0.2, 0.2), _NONE, 1.0, 0.0)
    n = put_box(rec, n, x - s, y - s, 0.43, x + s, y + s, 0.48, M_PLASTIC, col, col, 0.0, nxt(st))
    bx, by = x + back_dx * (s - 0.03), y + back_dy * (s - 0.03)
    hx = 0.03 if back_dx != 0.0 else s
    hy = 0.03 if back_dy != 0.0 else s
    return put_box(rec, n, bx - hx, by - hy, 0.48, bx + hx, by + hy, 0.95, M_PLASTIC, col, col, 0.0, nxt(st))


@njit(f"int64({REC_T}, int64, float64, float64, float64, float64, float64, boolean, {ST_T})", **NJIT)
def table(rec: np.ndarray, n: int, x: float, y: float, lx: float, ly: float, top: float, chairs: bool,
          st: np.ndarray) -> int:
    """A table of size lx x ly centred at (x, y), 4 legs, optional chairs on the long sides."""
    wood = pick(PAL_WOOD, st)
    dark = (wood[0] * 0.6, wood[1] * 0.6, wood[2] * 0.6)
    n = put_box(rec, n, x - lx / 2, y - ly / 2, top - 0.04, x + lx / 2, y + ly / 2, top, M_WOOD, wood, dark, 0.0, nxt(st))
    for i in range(4):
        sx = -1.0 if i & 1 else 1.0
        sy = -1.0 if i & 2 else 1.0
        px, py = x + sx * (lx / 2 - 0.06), y + sy * (ly / 2 - 0.06)
        n = put_box(rec, n, px - 0.03, py - 0.03, 0.0, px + 0.03, py + 0.03, top - 0.04, M_WOOD, dark, dark, 0.0, 0.0)
    if chairs:
        col = pick(PAL_FABRIC, st)
        if lx >= ly:
            n = chair(rec, n, x, y - ly / 2 - 0.3, 0.0, -1.0, col, st)
            n = chair(rec, n, x, y + ly / 2 + 0.3, 0.0, 1.0, col, st)
        else:
            n = chair(rec, n, x - lx / 2 - 0.3, y, -1.0, 0.0, col, st)
            n = chair(rec, n, x + lx / 2 + 0.3, y, 1.0, 0.0, col, st)
    return n


@njit(**NJIT)
def sofa(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """Three-seat sofa against the slot's back wall."""
    length, _ = slot_len(slot)
    L = min(2.3, length - 0.3)
    a = uni(st, 0.1, max(0.11, length - L - 0.1))
    col = pick(PAL_FABRIC, st)
    dark = (col[0] * 0.7, col[1] * 0.7, col[2] * 0.7)
    n = slot_box(rec, n, slot, a, a + L, 0.05, 0.95, 0.08, 0.45, M_FABRIC, col, dark, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a, a + L, 0.05, 0.3, 0.45, 0.9, M_FABRIC, col, dark, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a, a + 0.2, 0.05, 0.95, 0.45, 0.65, M_FABRIC, col, dark, 0.0, nxt(st))
    return slot_box(rec, n, slot, a + L - 0.2, a + L, 0.05, 0.95, 0.45, 0.65, M_FABRIC, col, dark, 0.0, nxt(st))


@njit(**NJIT)
def bookshelf(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], h: float, st: np.ndarray) -> int:
    """One or two tall bookcases and a plant."""
    length, _ = slot_len(slot)
    wood = pick(PAL_WOOD, st)
    k = 1 + choice(st, 2)
    w = min(1.0, (length - 0.7) / k)
    for i in range(k):
        n = slot_box(rec, n, slot, 0.1 + i * w, 0.1 + (i + 1) * w - 0.02, 0.02, 0.38, 0.0, min(h - 0.3, 2.1), M_BOOKS,
                     wood, _NONE, 0.0, nxt(st))
    x, y = slot_xy(slot, min(length - 0.3, 0.15 + k * w + 0.25), 0.3)
    return plant(rec, n, x, y, uni(st, 0.9, 1.5), st)


@njit(**NJIT)
def bed(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """Bed with its head against the back wall: frame, mattress, blanket, pillows, headboard."""
    length, depth = slot_len(slot)
    w = min(1.6, length - 0.3)
    d = min(2.0, depth - 0.1)
    a = 0.5 * (length - w)
    wood = pick(PAL_WOOD, st)
    cover = pick(PAL_FABRIC, st)
    n = slot_box(rec, n, slot, a, a + w, 0.02, d, 0.0, 0.32, M_WOOD, wood, wood, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a - 0.04, a + w + 0.04, 0.02, 0.1, 0.0, 1.0, M_WOOD, wood, wood, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a + 0.03, a + w - 0.03, 0.1, d - 0.03, 0.32, 0.52, M_FABRIC, (0.9, 0.9, 0.88),
                 (0.8, 0.8, 0.78), 0.0, nxt(st))
    n = slot_box(rec, n, slot, a + 0.01, a + w - 0.01, 0.7, d - 0.01, 0.5, 0.56, M_FABRIC, cover,
                 (cover[0] * 0.6, cover[1] * 0.6, cover[2] * 0.6), 2.0, nxt(st))
    for i in range(2):
        px, py = slot_xy(slot, a + w * (0.27 + 0.46 * i), 0.35)
        n = put_ell(rec, n, px, py, 0.6, 0.32, 0.32, 0.09, M_FABRIC, (0.95, 0.95, 0.93), (0.85, 0.85, 0.8), 0.0, 0.0)
    return n


@njit(**NJIT)
def armchair_lamp(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """Armchair, floor lamp and a plant."""
    length, _ = slot_len(slot)
    col = pick(PAL_FABRIC, st)
    dark = (col[0] * 0.7, col[1] * 0.7, col[2] * 0.7)
    a = uni(st, 0.2, max(0.21, length - 1.7))
    n = slot_box(rec, n, slot, a, a + 0.9, 0.1, 0.95, 0.08, 0.45, M_FABRIC, col, dark, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a, a + 0.9, 0.1, 0.32, 0.45, 0.95, M_FABRIC, col, dark, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a, a + 0.16, 0.1, 0.95, 0.45, 0.65, M_FABRIC, col, dark, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a + 0.74, a + 0.9, 0.1, 0.95, 0.45, 0.65, M_FABRIC, col, dark, 0.0, nxt(st))
    lx, ly = slot_xy(slot, a + 1.2, 0.3)
    n = put_cyl(rec, n, lx, ly, 0.025, 0.0, 1.5, M_METAL, (0.15, 0.15, 0.15), _NONE, 0.0, 0.0)
    n = put_ell(rec, n, lx, ly, 1.55, 0.22, 0.22, 0.16, M_LAMP, _LAMP, _LAMP, 0.0, 0.0)
    px, py = slot_xy(slot, min(length - 0.3, a + 1.7), 0.35)
    return plant(rec, n, px, py, uni(st, 0.8, 1.4), st)


@njit(**NJIT)
def dresser(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """Chest of drawers with a screen or box on top, and a plant."""
    length, _ = slot_len(slot)
    col = pick(PAL_CABINET, st) if nxt(st) < 0.5 else pick(PAL_WOOD, st)
    L = min(1.6, length - 0.8)
    a = 0.15
    n = slot_box(rec, n, slot, a, a + L, 0.02, 0.5, 0.0, 0.85, M_CABINET, col, (0.15, 0.15, 0.15), 1.0, nxt(st))
    n = slot_box(rec, n, slot, a + 0.2, a + L - 0.2, 0.15, 0.2, 0.85, 1.45, M_SCREEN, (0.05, 0.05, 0.06),
                 (0.3, 0.5, 0.7), 0.0, nxt(st))
    px, py = slot_xy(slot, min(length - 0.3, a + L + 0.35), 0.35)
    return plant(rec, n, px, py, uni(st, 1.0, 1.8), st)


@njit(**NJIT)
def pictures(rec: np.ndarray, n: int, x0: float, y0: float, c: float, door_w: float, st: np.ndarray) -> int:
    """Framed pictures on the inner faces of the cell's own walls, clear of the doorway."""
    for wall in range(2):
        if nxt(st) < 0.25:
            continue
        w = uni(st, 0.5, 1.2)
        hgt = uni(st, 0.4, 0.9)
        zc = uni(st, 1.45, 1.7)
        span = 0.5 * c - 0.5 * door_w - WALL_T - 0.4
        off = WALL_T + 0.2 + uni(st, 0.0, max(0.0, span - w))
        if nxt(st) < 0.5:
            a0 = off
        else:
            a0 = 0.5 * c + 0.5 * door_w + 0.2 + uni(st, 0.0, max(0.0, span - w))
        if wall == 0:
            n = put_box(rec, n, x0 + WALL_T, y0 + a0, zc - hgt / 2, x0 + WALL_T + 0.03, y0 + a0 + w, zc + hgt / 2,
                        M_PICTURE, _NONE, _NONE, 0.0, nxt(st))
        else:
            n = put_box(rec, n, x0 + a0, y0 + WALL_T, zc - hgt / 2, x0 + a0 + w, y0 + WALL_T + 0.03, zc + hgt / 2,
                        M_PICTURE, _NONE, _NONE, 0.0, nxt(st))
    return n


@njit(**NJIT)
def build_room(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float, h: float) -> int:
    """A living room / bedroom: walls, rug, ceiling lamp, pictures, furniture in the quadrants."""
    st = stream(seed, ix, iy, 11)
    door_w = uni(st, 1.0, 1.5)
    n = walls(rec, 0, x0, y0, c, h, door_w, True, True)
    cx, cy = x0 + 0.5 * c + 0.5 * WALL_T, y0 + 0.5 * c + 0.5 * WALL_T
    rw, rl = uni(st, 1.4, 2.2), uni(st, 2.0, 3.2)
    rug = pick(PAL_FABRIC, st)
    if nxt(st) < 0.5:
        rw, rl = rl, rw
    n = put_box(rec, n, cx - rl / 2, cy - rw / 2, 0.0, cx + rl / 2, cy + rw / 2, 0.012, M_FABRIC, rug,
                pick(PAL_FABRIC, st), 1.0, nxt(st))
    n = put_ell(rec, n, cx, cy, h - 0.12, 0.3, 0.3, 0.12, M_LAMP, _LAMP, _LAMP, 0.0, 0.0)
    n = pictures(rec, n, x0, y0, c, door_w, st)
    for q in range(4):
        slot = quadrant_slot(x0, y0, c, q, st)
        kind = choice(st, 7)
        if kind == 0:
            n = sofa(rec, n, slot, st)
        elif kind == 1:
            xa, ya, xb, yb, _s = slot
            n = table(rec, n, 0.5 * (xa + xb), 0.5 * (ya + yb), uni(st, 1.0, 1.5), uni(st, 0.7, 0.9), 0.75, True, st)
        elif kind == 2:
            n = bookshelf(rec, n, slot, h, st)
        elif kind == 3:
            n = bed(rec, n, slot, st)
        elif kind == 4:
            n = armchair_lamp(rec, n, slot, st)
        elif kind == 5:
            n = dresser(rec, n, slot, st)
        else:
            xa, ya, xb, yb, _s = slot
            n = plant(rec, n, 0.5 * (xa + xb), 0.5 * (ya + yb), uni(st, 1.2, 2.2), st)
    return n


@njit(**NJIT)
def workstation(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """Desk with monitor and keyboard, a chair, and a fabric partition behind it."""
    length, depth = slot_len(slot)
    L = min(1.6, length - 0.2)
    a = 0.5 * (length - L)
    top = pick(PAL_WOOD, st) if nxt(st) < 0.5 else pick(PAL_WHITE, st)
    grey = (0.3, 0.31, 0.33)
    n = slot_box(rec, n, slot, a - 0.05, a + L + 0.05, 0.0, 0.05, 0.0, 1.35, M_FABRIC, pick(PAL_FABRIC, st), grey, 0.0,
                 nxt(st))
    n = slot_box(rec, n, slot, a, a + L, 0.05, 0.85, 0.71, 0.74, M_WOOD, top, top, 0.0, nxt(st))
    n = slot_box(rec, n, slot, a, a + 0.04, 0.08, 0.8, 0.0, 0.71, M_METAL, grey, grey, 0.0, 0.0)
    n = slot_box(rec, n, slot, a + L - 0.04, a + L, 0.08, 0.8, 0.0, 0.71, M_METAL, grey, grey, 0.0, 0.0)
    m = a + 0.5 * L + uni(st, -0.3, 0.3)
    n = slot_box(rec, n, slot, m - 0.3, m + 0.3, 0.2, 0.24, 0.84, 1.2, M_SCREEN, (0.05, 0.05, 0.06), (0.3, 0.5, 0.7),
                 0.0, nxt(st))
    n = slot_box(rec, n, slot, m - 0.04, m + 0.04, 0.22, 0.26, 0.74, 0.84, M_METAL, grey, grey, 0.0, 0.0)
    n = slot_box(rec, n, slot, m - 0.22, m + 0.22, 0.4, 0.55, 0.74, 0.76, M_PLASTIC, (0.15, 0.15, 0.16), grey, 0.0, 0.0)
    if depth > 1.4:
        cxx, cyy = slot_xy(slot, m, 1.15)
        bx, by = slot_xy(slot, m, 1.4)
        n = chair(rec, n, cxx, cyy, (bx - cxx) / 0.25, (by - cyy) / 0.25, pick(PAL_PAINT_DARK, st), st)
    return n


@njit(**NJIT)
def cabinets(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], st: np.ndarray) -> int:
    """A row of metal filing cabinets and a plant or printer."""
    length, _ = slot_len(slot)
    col = pick(PAL_CABINET, st)
    k = 2 + choice(st, 3)
    w = min(0.5, (length - 0.8) / k)
    hgt = uni(st, 0.75, 1.35)
    for i in range(k):
        n = slot_box(rec, n, slot, 0.1 + i * w, 0.1 + (i + 1) * w - 0.01, 0.02, 0.62, 0.0, hgt, M_CABINET, col,
                     (0.1, 0.1, 0.1), 1.0, nxt(st))
    px, py = slot_xy(slot, min(length - 0.3, 0.1 + k * w + 0.35), 0.4)
    if nxt(st) < 0.5:
        return plant(rec, n, px, py, uni(st, 1.2, 2.0), st)
    return put_box(rec, n, px - 0.3, py - 0.3, 0.0, px + 0.3, py + 0.3, 1.0, M_PLASTIC, (0.85, 0.85, 0.83),
                   (0.4, 0.4, 0.4), 0.0, nxt(st))


@njit(**NJIT)
def build_office(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float, h: float) -> int:
    """Open-plan office: corner pillars, some walls, desks with partitions, cabinets, meeting tables."""
    st = stream(seed, ix, iy, 12)
    door_w = uni(st, 1.4, 2.4)
    n = walls(rec, 0, x0, y0, c, h, door_w, nxt(st) < 0.45, nxt(st) < 0.45)
    n = put_box(rec, n, x0, y0, 0.0, x0 + 0.45, y0 + 0.45, h, M_CONCRETE, (0.7, 0.7, 0.68), _NONE, 0.0, nxt(st))
    n = pictures(rec, n, x0, y0, c, door_w, st)
    for q in range(4):
        slot = quadrant_slot(x0, y0, c, q, st)
        kind = choice(st, 6)
        if kind <= 2:
            n = workstation(rec, n, slot, st)
        elif kind == 3:
            n = cabinets(rec, n, slot, st)
        elif kind == 4:
            xa, ya, xb, yb, _s = slot
            n = table(rec, n, 0.5 * (xa + xb), 0.5 * (ya + yb), uni(st, 1.2, 1.8), uni(st, 0.8, 1.0), 0.74, True, st)
        else:
            xa, ya, xb, yb, _s = slot
            n = plant(rec, n, 0.5 * (xa + xb), 0.5 * (ya + yb), uni(st, 1.5, 2.5), st)
    return n


@njit(**NJIT)
def counter_run(rec: np.ndarray, n: int, slot: tuple[float, float, float, float, int], a0: float, a1: float,
                front: tuple[float, float, float], top: tuple[float, float, float], upper: bool, st: np.ndarray) -> int:
    """Base cabinets with a stone worktop and optional wall cabinets from a0 to a1 along the slot wall."""
    if a1 - a0 < 0.4:
        return n
    n = slot_box(rec, n, slot, a0, a1, 0.0, 0.6, 0.0, 0.87, M_CABINET, front, (0.12, 0.12, 0.12), 0.0, nxt(st))
    n = slot_box(rec, n, slot, a0, a1, 0.0, 0.63, 0.87, 0.91, M_STONE, top, (top[0] * 0.5, top[1] * 0.5, top[2] * 0.5),
                 0.0, nxt(st))
    if upper:
        n = slot_box(rec, n, slot, a0, a1, 0.0, 0.35, 1.5, 2.2, M_CABINET, front, (0.12, 0.12, 0.12), 0.0, nxt(st))
    return n


@njit(**NJIT)
def build_kitchen(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float, h: float) -> int:
    """Kitchen: counters with worktops and wall cabinets along the cell's walls, a fridge, an island or a table."""
    st = stream(seed, ix, iy, 13)
    door_w = uni(st, 1.0, 1.3)
    n = walls(rec, 0, x0, y0, c, h, door_w, True, True)
    front = pick(PAL_CABINET, st)
    top = pick(PAL_COUNTER, st)
    half = 0.5 * c - 0.5 * door_w - 0.1
    west = (x0 + WALL_T, y0 + WALL_T, x0 + c, y0 + c, 0)
    south = (x0 + WALL_T, y0 + WALL_T, x0 + c, y0 + c, 2)
    up = nxt(st) < 0.7
    n = counter_run(rec, n, west, 0.0, half - WALL_T, front, top, up, st)
    fridge = nxt(st) < 0.6
    n = counter_run(rec, n, west, c - half, c - WALL_T - (0.8 if fridge else 0.0), front, top, up, st)
    if fridge:
        n = slot_box(rec, n, west, c - WALL_T - 0.75, c - WALL_T - 0.05, 0.0, 0.7, 0.0, 1.95, M_CABINET,
                     (0.82, 0.83, 0.84), (0.3, 0.3, 0.3), 2.0, nxt(st))
    n = counter_run(rec, n, south, 0.65, half - WALL_T, front, top, up, st)
    n = counter_run(rec, n, south, c - half, c - WALL_T, front, top, up and nxt(st) < 0.5, st)
    cx, cy = x0 + 0.5 * c + 0.5 * WALL_T, y0 + 0.5 * c + 0.5 * WALL_T
    for q in range(4):
        sx = 1.0 if q & 1 else -1.0
        sy = 1.0 if q & 2 else -1.0
        if sx < 0 or sy < 0:
            continue  # the -x / -y quadrants hold the counters
        r = nxt(st)
        qx, qy = cx + sx * 1.9, cy + sy * 1.9
        if r < 0.5:
            n = put_box(rec, n, qx - 0.8, qy - 0.45, 0.0, qx + 0.8, qy + 0.45, 0.88, M_CABINET, front, (0.12, 0.12, 0.12),
                        0.0, nxt(st))
            n = put_box(rec, n, qx - 0.85, qy - 0.5, 0.88, qx + 0.85, qy + 0.5, 0.92, M_STONE, top,
                        (top[0] * 0.5, top[1] * 0.5, top[2] * 0.5), 0.0, nxt(st))
            for i in range(3):
                n = put_cyl(rec, n, qx - 0.55 + 0.55 * i, qy - 0.85, 0.17, 0.0, 0.68, M_WOOD, pick(PAL_WOOD, st),
                            (0.2, 0.15, 0.1), 0.0, nxt(st))
            n = put_ell(rec, n, qx, qy, h - 0.5, 0.2, 0.2, 0.14, M_LAMP, _LAMP, _LAMP, 0.0, 0.0)
        elif r < 0.85:
            n = table(rec, n, qx, qy, uni(st, 0.9, 1.3), uni(st, 0.7, 0.9), 0.75, True, st)
        else:
            n = plant(rec, n, qx + 0.6 * sx, qy + 0.6 * sy, uni(st, 1.2, 2.0), st)
    return n


@njit(**NJIT)
def build_warehouse(rec: np.ndarray, seed: np.uint64, ix: int, iy: int, x0: float, y0: float, c: float,
                    h: float) -> int:
    """Pallet racks along both y-edges of the cell (back to back with the neighbours), aisle in the middle.

    Every 4th column of cells is a cross aisle with loose pallets instead of racks.
    """
    st = stream(seed, ix, iy, 14)
    pal_st = stream(seed, 0, 0, 99)
    upright_col = pick(PAL_METAL, pal_st)
    beam_col = (0.9, 0.45, 0.08) if nxt(pal_st) < 0.6 else pick(PAL_METAL, pal_st)
    n = 0
    if ix % 4 == 0:
        for k in range(2):
            if nxt(st) < 0.6:
                px = x0 + uni(st, 1.0, c - 2.5)
                py = y0 + (uni(st, 0.5, 1.3) if k == 0 else c - uni(st, 1.3, 2.8))
                hh = uni(st, 0.6, 1.8)
                n = put_box(rec, n, px, py, 0.0, px + 1.2, py + 1.0, 0.14, M_WOOD, (0.6, 0.5, 0.35), (0.4, 0.32, 0.2),
                            0.0, nxt(st))
                mat = M_CARDBOARD if nxt(st) < 0.6 else M_WRAP
                n = put_box(rec, n, px + 0.05, py + 0.05, 0.14, px + 1.15, py + 0.95, 0.14 + hh, mat,
                            pick(PAL_CARDBOARD, st), (0.9, 0.9, 0.9), 0.0, nxt(st))
        n = put_box(rec, n, x0 + 0.5 * c - 0.25, y0, 0.0, x0 + 0.5 * c + 0.25, y0 + 0.5, h, M_CONCRETE, (0.72, 0.72, 0.7),
                    (0.9, 0.8, 0.1), 1.0, nxt(st))
        return n
    depth = 1.1
    levels = (0.0, 1.8, 3.6, 5.4)
    top_h = 7.4
    bay = c / 3.0
    for side in range(2):
        ya = y0 if side == 0 else y0 + c - depth
        yb = ya + depth
        for k in range(3):
            xu = x0 + k * bay
            n = put_box(rec, n, xu, ya, 0.0, xu + 0.1, yb, top_h, M_METAL, upright_col, upright_col, 1.0, nxt(st))
        for li in range(4):
            z = levels[li]
            if li > 0:
                n = put_box(rec, n, x0, ya, z, x0 + c, yb, z + 0.12, M_METAL, beam_col, beam_col, 0.0, nxt(st))
            zb = z + (0.12 if li > 0 else 0.0)
            zmax = (levels[li + 1] if li < 3 else top_h) - 0.1
            for k in range(3):
                if nxt(st) < 0.18:
                    continue
                hh = min(zmax - zb - 0.05, uni(st, 0.7, 1.65))
                xa = x0 + k * bay + 0.18
                xb = x0 + (k + 1) * bay - 0.08
                if nxt(st) < 0.3:
                    xb = xa + (xb - xa) * uni(st, 0.4, 0.75)
                inset = uni(st, 0.03, 0.12)
                mat = M_CARDBOARD if nxt(st) < 0.75 else M_WRAP
                n = put_box(rec, n, xa, ya + inset, zb, xb, yb - inset, zb + hh, mat, pick(PAL_CARDBOARD, st),
                            (0.9, 0.9, 0.9), uni(st, 0.35, 0.7), nxt(st))
    return n
