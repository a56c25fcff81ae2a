"""Deterministic hashing and band-limited value noise for the procedural world (numba).

Everything here is a pure function of integer lattice coordinates and a 64-bit seed, so the same
prompt gives bit-identical worlds on every machine and in every process (no global RNG state).

Anti-aliasing: the noise and pattern functions take a footprint ``fp`` (metres covered by one
sample at the hit point). Octaves whose wavelength is below ~2 footprints fade to their mean, and
periodic lines are box-filtered exactly over the footprint. This is what a pixel integral of the
texture would give, so distant or grazing surfaces do not shimmer in the ground truth.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from srender_ros.backends.generators.procedural.jitcache import NJIT

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_KX = np.uint64(0x9E3779B97F4A7C15)
_KY = np.uint64(0xC2B2AE3D27D4EB4F)
_KZ = np.uint64(0x165667B19E3779F9)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S29 = np.uint64(29)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0


# Explicit signatures for the functions callers pass integer or boolean constants to. Without one,
# numba compiles a separate specialization for every constant value (Literal[int]) and the first,
# uncached compile of the world takes minutes instead of seconds.
RGB_T = "UniTuple(float64, 3)"
REC_T = "float32[:, ::1]"
ST_T = "uint64[::1]"


@njit(**NJIT)
def mix64(x: np.uint64) -> np.uint64:
    """splitmix64 finalizer: a well-mixed uint64 from any uint64."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


@njit("uint64(uint64, int64, int64, int64)", **NJIT)
def hash3(seed: np.uint64, a: int, b: int, c: int) -> np.uint64:
    """uint64 hash of a seed and three (possibly negative) integers."""
    h = seed ^ (np.uint64(a) * _KX) ^ (np.uint64(b) * _KY) ^ (np.uint64(c) * _KZ)
    return mix64(h)


@njit("uint64(uint64, int64)", **NJIT)
def sub(h: np.uint64, k: int) -> np.uint64:
    """An independent hash derived from h (never shift a hash before u01: that shrinks its range)."""
    return mix64(h + np.uint64(k) * _KX)


@njit(**NJIT)
def u01(h: np.uint64) -> float:
    """Uniform float in [0, 1) from a hash."""
    return float(h >> _S11) * _INV53


@njit("float64(uint64, int64, int64, int64)", **NJIT)
def rand(seed: np.uint64, a: int, b: int, c: int) -> float:
    """Uniform float in [0, 1) keyed by (seed, a, b, c)."""
    return u01(hash3(seed, a, b, c))


@njit(**NJIT)
def fade(t: float) -> float:
    """Quintic smoothstep (C2), Perlin's fade curve."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


@njit(**NJIT)
def _lattice(h: np.uint64) -> float:
    """Uniform [0, 1) from a lattice key (one multiply round: noise needs speed more than quality)."""
    h = (h ^ (h >> _S31)) * _M1
    h = h ^ (h >> _S29)
    return float(h >> _S11) * _INV53


@njit(**NJIT)
def value2(seed: np.uint64, x: float, y: float) -> float:
    """2D value noise in [0, 1], lattice spacing 1, C2-smooth."""
    fx = math.floor(x)
    fy = math.floor(y)
    tx = fade(x - fx)
    ty = fade(y - fy)
    hx0 = np.uint64(int(fx)) * _KX
    hx1 = hx0 + _KX
    hy0 = (np.uint64(int(fy)) * _KY) ^ seed
    hy1 = (np.uint64(int(fy)) * _KY + _KY) ^ seed
    a = _lattice(hx0 ^ hy0)
    b = _lattice(hx1 ^ hy0)
    c = _lattice(hx0 ^ hy1)
    d = _lattice(hx1 ^ hy1)
    return (a + (b - a) * tx) * (1.0 - ty) + (c + (d - c) * tx) * ty


@njit(**NJIT)
def value3(seed: np.uint64, x: float, y: float, z: float) -> float:
    """3D value noise in [0, 1], lattice spacing 1."""
    fx = math.floor(x)
    fy = math.floor(y)
    fz = math.floor(z)
    tx = fade(x - fx)
    ty = fade(y - fy)
    tz = fade(z - fz)
    hx0 = np.uint64(int(fx)) * _KX
    hx1 = hx0 + _KX
    acc = 0.0
    for dz in range(2):
        wz = tz if dz == 1 else 1.0 - tz
        hz = (np.uint64(int(fz) + dz) * _KZ) ^ seed
        for dy in range(2):
            wy = ty if dy == 1 else 1.0 - ty
            hyz = (np.uint64(int(fy) + dy) * _KY) ^ hz
            a = _lattice(hx0 ^ hyz)
            b = _lattice(hx1 ^ hyz)
            acc += wz * wy * (a + (b - a) * tx)
    return acc


@njit(**NJIT)
def lod_weight(wavelength_m: float, fp_m: float) -> float:
    """1 when a feature of this wavelength is resolved (>= 2 footprints), fading to 0 at 1 footprint."""
    r = wavelength_m / max(fp_m, 1e-9)
    if r >= 2.0:
        return 1.0
    if r <= 1.0:
        return 0.0
    return r - 1.0


@njit("float64(uint64, float64, float64, float64, int64, float64)", **NJIT)
def fbm2(seed: np.uint64, x: float, y: float, wavelength_m: float, octaves: int, fp_m: float) -> float:
    """Fractal value noise in [0, 1] (mean 0.5): ``octaves`` octaves from ``wavelength_m`` down, halving.

    Octaves finer than the footprint fade to their mean (0.5), so the result is band-limited.
    """
    acc = 0.0
    norm = 0.0
    amp = 1.0
    wl = wavelength_m
    for o in range(octaves):
        w = lod_weight(wl, fp_m)
        v = value2(seed + np.uint64(o * 7919), x / wl, y / wl) if w > 0.0 else 0.5
        acc += amp * (0.5 + (v - 0.5) * w)
        norm += amp
        amp *= 0.5
        wl *= 0.5
    return acc / norm


@njit("float64(uint64, float64, float64, float64, float64, int64, float64)", **NJIT)
def fbm3(seed: np.uint64, x: float, y: float, z: float, wavelength_m: float, octaves: int, fp_m: float) -> float:
    """3D fractal value noise in [0, 1] with the same footprint fading as :func:`fbm2`."""
    acc = 0.0
    norm = 0.0
    amp = 1.0
    wl = wavelength_m
    for o in range(octaves):
        w = lod_weight(wl, fp_m)
        v = value3(seed + np.uint64(o * 7919), x / wl, y / wl, z / wl) if w > 0.0 else 0.5
        acc += amp * (0.5 + (v - 0.5) * w)
        norm += amp
        amp *= 0.5
        wl *= 0.5
    return acc / norm


@njit(**NJIT)
def _pulse_integral(x: float, period: float, width: float) -> float:
    """Integral from 0 to x of the indicator of [k*period, k*period + width)."""
    k = math.floor(x / period)
    r = x - k * period
    return k * width + min(r, width)


@njit(**NJIT)
def lines(x: float, period: float, width: float, fp_m: float) -> float:
    """Coverage in [0, 1] of lines of ``width`` every ``period`` (starting at 0), box-filtered over ``fp_m``.

    Exact box filter, so the mean coverage width/period is reached smoothly as the footprint grows.
    """
    if fp_m < 1e-6:
        r = x - math.floor(x / period) * period
        return 1.0 if r < width else 0.0
    h = 0.5 * fp_m
    return (_pulse_integral(x + h, period, width) - _pulse_integral(x - h, period, width)) / fp_m


@njit(**NJIT)
def clamp01(v: float) -> float:
    """v clipped to [0, 1]."""
    return min(1.0, max(0.0, v))


@njit(**NJIT)
def smoothstep(e0: float, e1: float, x: float) -> float:
    """Hermite step from 0 at e0 to 1 at e1."""
    t = clamp01((x - e0) / (e1 - e0))
    return t * t * (3.0 - 2.0 * t)
