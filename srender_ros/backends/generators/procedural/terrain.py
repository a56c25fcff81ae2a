"""Rolling ground of the field family: two octaves of value noise below z = 0.

h(x, y) = -(0.8 A v1 + 0.2 A v2) with v1 on a lattice of 3 cells and v2 on a lattice of 1 cell,
both aligned with the cell grid. The terrain never rises above z = 0, so any camera above the
ground plane convention (z > 0) is above it, and its slope is bounded, which lets the ray caster
march with safe steps.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.noise import NJIT, value2

_SALT_T1 = np.uint64(0x7E11A1)
_SALT_T2 = np.uint64(0x7E11A2)
#: Lattice of the big octave, in cells.
BIG = 3


@njit(**NJIT)
def terrain_height(seed: np.uint64, x: float, y: float, cell_m: float, origin_m: float, amp_m: float) -> float:
    """Ground height at (x, y), metres, in [-amp_m, 0]."""
    u = (x - origin_m) / cell_m
    v = (y - origin_m) / cell_m
    return -amp_m * (0.8 * value2(seed ^ _SALT_T1, u / BIG, v / BIG) + 0.2 * value2(seed ^ _SALT_T2, u, v))


@njit(**NJIT)
def terrain_normal(seed: np.uint64, x: float, y: float, cell_m: float, origin_m: float,
                   amp_m: float) -> tuple[float, float, float]:
    """Unit upward normal of the terrain at (x, y) (central differences over 5 cm)."""
    e = 0.05
    hx = terrain_height(seed, x + e, y, cell_m, origin_m, amp_m) - terrain_height(seed, x - e, y, cell_m, origin_m, amp_m)
    hy = terrain_height(seed, x, y + e, cell_m, origin_m, amp_m) - terrain_height(seed, x, y - e, cell_m, origin_m, amp_m)
    nx, ny, nz = -hx / (2 * e), -hy / (2 * e), 1.0
    inv = 1.0 / math.sqrt(nx * nx + ny * ny + nz * nz)
    return nx * inv, ny * inv, nz * inv
