"""Metric scale of a first keyframe from the camera's height above the ground.

A first keyframe has no world to align to, so its monocular depth is only known up to an affine
map in inverse depth. When the camera's height above the ground is known (a robot's mounting
height, a car's, a person's eye height), the ground seen in the lower part of the image fixes it.
Two ways, both searching the lower ``lower_fraction`` of the image:

1. **Gravity known** (``down_cam``, the world's down direction in the optical camera frame; the
   pipeline's worlds are z-up, so it comes with the pose, as an IMU gives it on a robot): a point
   on the ground at height h below the camera satisfies ``down . X = h`` with ``X = z r``,
   ``r = K^-1 [u, v, 1]``, so its true inverse depth is ``1 / z = (down . r) / h``: linear in the
   known ``s = (down . r) / h``. A monocular prediction is ``p = a / z + b``, so on the ground
   ``p = a s + b``: a robust line fit (least median of squares, then least squares on the inliers)
   of p against s over the lower image gives both the scale a and the shift b; the ground is its
   inlier set. Objects standing on the ground are nearer than the ground behind them (larger p at
   the same s), so the fit is then pulled to the lower envelope: points above the line by more
   than the noise seen below it are dropped and the line refitted (a few rounds). Metric inverse
   depth is then ``(p - b) / a``.
2. **Gravity unknown**: back-project the scale-free depth (the metric prior's) to 3D points
   (optical: x right, y down, z forward), fit a plane ``n . X = d`` by RANSAC, and scale depth by
   ``camera_height_m / d``. The prior's shift is kept (a plane cannot tell the shift apart from the
   camera's pitch), so this only fixes the scale.

A fit counts only if it is plausible: enough of the searched points on the ground, a positive
scale, and (way 2) a normal within ``max_tilt_deg`` of the image's down direction. Otherwise
:func:`ground_alignment` returns None and the caller keeps its metric prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.errors import InputError

__all__ = ["GroundFit", "GroundSettings", "down_in_camera", "ground_alignment", "ground_scale"]


@dataclass(frozen=True)
class GroundSettings:
    """How the ground plane is searched.

    Attributes:
        lower_fraction: the lower part of the image searched (0.5 = the lower half).
        max_depth_m: points at or beyond this depth (sky, the prior's far clip) are left out.
        max_tilt_deg: the plane's normal must lie within this angle of the image's down direction.
        inlier_tolerance: a point is on the plane within this fraction of the plane's distance.
        min_inlier_fraction: the plane must hold at least this fraction of the searched points.
        min_inliers: and at least this many points.
        hypotheses: RANSAC 3-point hypotheses.
        max_points: searched points at most (a deterministic subsample beyond).
        envelope_iterations: refits of the gravity line to the lower envelope (0 = symmetric fit only).
        envelope_sigmas: points more than this many noise sigmas (measured below the line) above
            it are not ground.
    """

    lower_fraction: float = 0.5
    max_depth_m: float = 99.0
    max_tilt_deg: float = 25.0
    inlier_tolerance: float = 0.04
    min_inlier_fraction: float = 0.15
    min_inliers: int = 50
    hypotheses: int = 300
    max_points: int = 6000
    envelope_iterations: int = 4
    envelope_sigmas: float = 1.0


class GroundFit(NamedTuple):
    """A ground plane found by :func:`ground_scale`.

    Attributes:
        scale: factor that makes the depth metric (``camera_height_m / distance``).
        normal: [3] unit normal in the camera's optical frame (pointing from the camera to the ground).
        distance: the plane's distance from the camera, in the input depth's units.
        inlier_fraction: share of the searched points on the plane.
    """

    scale: float
    normal: NDArray[np.float64]
    distance: float
    inlier_fraction: float


class GroundAlignment(NamedTuple):
    """Result of :func:`ground_alignment`: ``1 / depth_m = scale * pred + shift``.

    Attributes:
        scale, shift: the affine map from relative to metric inverse depth (1/m).
        inlier_fraction: share of the searched pixels on the ground.
        method: ``gravity`` (way 1, scale and shift) or ``plane`` (way 2, scale only).
    """

    scale: float
    shift: float
    inlier_fraction: float
    method: str


def down_in_camera(T_world_cam: NDArray[np.floating]) -> NDArray[np.float64]:
    """[3] the world's down direction (-z of a z-up world) in the optical frame of the pose [4, 4]."""
    R = np.asarray(T_world_cam, np.float64)[:3, :3]
    return np.asarray(R.T @ np.array([0.0, 0.0, -1.0]), np.float64)


def _check(camera_height_m: float, shape: tuple[int, ...], intrinsics: Intrinsics, what: str) -> None:
    """InputError for a camera height that is not > 0 or an [H, W] input not of the camera's size."""
    if not (math.isfinite(camera_height_m) and camera_height_m > 0):
        raise InputError(f"camera height {camera_height_m} m: must be > 0")
    if len(shape) != 2 or shape != (intrinsics.height_px, intrinsics.width_px):
        raise InputError(f"{what} {shape} does not match the camera {intrinsics.height_px}x{intrinsics.width_px}")


def _lower_rays(intrinsics: Intrinsics, lower_fraction: float) -> tuple[slice, NDArray[np.float64]]:
    """(rows of the searched lower image, their [n, 3] optical rays with z = 1, row-major)."""
    rows = slice(int(intrinsics.height_px * (1.0 - lower_fraction)), intrinsics.height_px)
    return rows, intrinsics.pixel_rays()[rows].reshape(-1, 3)


def _evenly(n: int, max_points: int) -> NDArray[np.int64] | slice:
    """Indices of at most ``max_points`` of ``n`` points, evenly spread (deterministic)."""
    return np.linspace(0, n - 1, max_points).astype(np.int64) if n > max_points else slice(None)


def ground_alignment(pred_inverse: NDArray[np.floating], intrinsics: Intrinsics, camera_height_m: float,
                     down_cam: NDArray[np.floating] | None, prior_scale_shift: tuple[float, float], seed: int = 0,
                     settings: GroundSettings = GroundSettings()) -> GroundAlignment | None:
    """Affine map of relative inverse depth to metres from the ground at ``camera_height_m``.

    Args:
        pred_inverse: [H, W] relative inverse depth (larger = nearer).
        intrinsics: the keyframe's camera (its size must match).
        camera_height_m: the camera's height above the ground, metres (> 0).
        down_cam: [3] the down direction in the optical camera frame (way 1), or None (way 2).
        prior_scale_shift: the metric prior's (scale, shift) for ``pred_inverse`` (way 2 scales it).
        seed: seed of the robust fits.
        settings: search parameters.
    Returns:
        :class:`GroundAlignment`, or None when no plausible ground is found.
    """
    p = np.asarray(pred_inverse, np.float64)
    _check(camera_height_m, p.shape, intrinsics, "ground_alignment: prediction")
    if down_cam is None:
        a0, b0 = prior_scale_shift
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = a0 * p + b0
            depth = np.where(inv > 0, 1.0 / inv, np.nan)
        fit = ground_scale(depth, intrinsics, camera_height_m, seed, settings)
        if fit is None:
            return None
        return GroundAlignment(a0 / fit.scale, b0 / fit.scale, fit.inlier_fraction, "plane")
    down = np.asarray(down_cam, np.float64)
    down = down / max(float(np.linalg.norm(down)), 1e-12)
    rows, r = _lower_rays(intrinsics, settings.lower_fraction)
    s = (r @ down) / camera_height_m                     # true inverse depth of ground at these pixels
    pv = p[rows].ravel()
    # below the horizon, and nearer than the far clip
    ok = np.isfinite(pv) & (s > 1.0 / settings.max_depth_m)
    s, pv = s[ok], pv[ok]
    if s.size < settings.min_inliers:
        return None
    keep = _evenly(s.size, settings.max_points)
    s, pv = s[keep], pv[keep]
    from srender_ros.backends.generators.diffusers_gen.depth import _lstsq_line, fit_scale_shift_robust  # depth.py imports us

    a, b, inliers = fit_scale_shift_robust(s, pv, seed=seed)
    # Things standing on the ground (furniture, trunks) are nearer than the ground behind them: in
    # (s, p) the ground is the lower envelope. Points above the line by more than the noise seen
    # below it are dropped and the line refitted, so clutter does not tilt it.
    for _ in range(settings.envelope_iterations):
        res = pv - (a * s + b)
        below = -res[inliers & (res < 0)]
        if below.size < settings.min_inliers:
            break
        cand = res <= settings.envelope_sigmas * 1.4826 * float(np.median(below))
        if cand.sum() < settings.min_inliers:
            break
        inliers = cand
        a, b = _lstsq_line(s[inliers], pv[inliers])
    frac = float(inliers.mean())
    if not (a > 0 and inliers.sum() >= settings.min_inliers and frac >= settings.min_inlier_fraction):
        return None
    # The ground's own spread of s must be real (not a sliver of pixels at one distance).
    if float(np.ptp(s[inliers])) < 0.25 * float(np.median(s[inliers])):
        return None
    return GroundAlignment(1.0 / a, -b / a, frac, "gravity")


def _plane(p: NDArray[np.float64]) -> tuple[NDArray[np.float64], float]:
    """Least-squares plane n . X = d through points [N, 3], oriented so d >= 0."""
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    n = vt[-1]
    d = float(n @ c)
    if d < 0:
        n, d = -n, -d
    return n, d


def ground_scale(depth_m: NDArray[np.floating], intrinsics: Intrinsics, camera_height_m: float, seed: int = 0,
                 settings: GroundSettings = GroundSettings()) -> GroundFit | None:
    """Scale that puts the ground seen in the lower image ``camera_height_m`` below the camera.

    Args:
        depth_m: [H, W] scale-free z-depth (finite > 0 where known; NaN / non-positive = unknown).
        intrinsics: the keyframe's camera (its size must match ``depth_m``).
        camera_height_m: the camera's height above the ground, metres (> 0).
        seed: seed of the RANSAC sampler (deterministic for a given seed).
        settings: search parameters.
    Returns:
        the :class:`GroundFit`, or None when no plausible ground plane is found.
    """
    z = np.asarray(depth_m, np.float64)
    _check(camera_height_m, z.shape, intrinsics, "ground_scale: depth")
    rows, r = _lower_rays(intrinsics, settings.lower_fraction)
    zz = z[rows].ravel()
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(zz) & (zz > 0) & (zz < settings.max_depth_m)
    r, zz = r[ok], zz[ok]
    if zz.size < settings.min_inliers:
        return None
    keep = _evenly(zz.size, settings.max_points)
    r, zz = r[keep], zz[keep]
    pts = r * zz[:, None]                                 # [n, 3] optical points (z = zz)
    n_pts = pts.shape[0]
    cos_tilt = math.cos(math.radians(settings.max_tilt_deg))
    rng = np.random.default_rng(seed)
    tri = rng.integers(0, n_pts, size=(settings.hypotheses, 3))
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    normals = np.cross(b - a, c - a)
    norm = np.linalg.norm(normals, axis=1)
    good = norm > 1e-12
    normals = normals[good] / norm[good, None]
    d = np.einsum("ij,ij->i", normals, a[good])
    flip = d < 0
    normals[flip], d[flip] = -normals[flip], -d[flip]
    plausible = (normals[:, 1] >= cos_tilt) & (d > 0)
    if not plausible.any():
        return None
    normals, d = normals[plausible], d[plausible]
    dist = np.abs(pts @ normals.T - d[None, :])                       # [N, hypotheses]
    counts = (dist <= settings.inlier_tolerance * d[None, :]).sum(axis=0)
    best = int(np.argmax(counts))
    n, dd = normals[best], float(d[best])
    inliers = np.abs(pts @ n - dd) <= settings.inlier_tolerance * dd
    for _ in range(2):  # refine on the inliers
        if inliers.sum() < 3:
            break
        n, dd = _plane(pts[inliers])
        inliers = np.abs(pts @ n - dd) <= settings.inlier_tolerance * dd
    frac = float(inliers.mean())
    if not (n[1] >= cos_tilt and dd > 0 and inliers.sum() >= settings.min_inliers
            and frac >= settings.min_inlier_fraction):
        return None
    return GroundFit(camera_height_m / dd, n, dd, frac)
