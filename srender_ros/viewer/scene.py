"""What the browser viewer draws, as plain arrays (numpy only; no viser here, so it is tested alone).

Conventions: world frame as stored (metres, +z up for srender worlds); camera poses are optical
camera-to-world transforms (x right, y down, z forward), which is also viser's frustum convention.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import matrix_to_quat_wxyz, quat_wxyz_to_matrix
from srender_ros.core.world import GaussianWorld, sh_dc_to_rgb
from srender_ros.errors import InputError

#: Default cap on the Gaussians sent to a browser. 300k splats are 9.6 MB on the wire (32 bytes each in
#: viser's buffer) and sort at interactive rates on a laptop GPU; software WebGL stays usable too.
DEFAULT_MAX_SPLATS = 300_000
#: Hard ceiling: viser's WebSocket messages are limited to 50 MB (32 bytes per splat).
MAX_SPLATS_LIMIT = 1_500_000


class SplatArrays(NamedTuple):
    """Gaussians in the form viser's ``add_gaussian_splats`` takes.

    Attributes:
        centers: [M, 3] float32 metres.
        covariances: [M, 3, 3] float32 metres², R diag(s²) Rᵀ.
        rgbs: [M, 3] float32 in [0, 1] (the SH DC colour; view-dependent terms are dropped).
        opacities: [M, 1] float32 in (0, 1).
        total: N, the world's Gaussian count before subsampling (M <= N).
    """

    centers: NDArray[np.float32]
    covariances: NDArray[np.float32]
    rgbs: NDArray[np.float32]
    opacities: NDArray[np.float32]
    total: int

    @property
    def shown(self) -> int:
        """M, the number of Gaussians kept."""
        return int(self.centers.shape[0])


def subsample_indices(n: int, cap: int, seed: int = 0) -> NDArray[np.int64]:
    """Sorted indices of a seeded uniform random subset of ``min(n, cap)`` out of ``n`` items."""
    if cap < 1:
        raise InputError(f"max splats {cap}: must be >= 1")
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size=cap, replace=False)).astype(np.int64)


def splats_for_browser(world: GaussianWorld, max_splats: int = DEFAULT_MAX_SPLATS, seed: int = 0) -> SplatArrays:
    """The world's Gaussians as viser splats, at most ``max_splats`` of them (a seeded uniform subset).

    A uniform subset keeps the density of every region proportional, so a subsampled world looks
    thinner everywhere rather than missing parts.
    """
    if max_splats > MAX_SPLATS_LIMIT:
        raise InputError(f"max splats {max_splats}: at most {MAX_SPLATS_LIMIT} fit in one browser message")
    idx = subsample_indices(len(world), max_splats, seed)
    R = quat_wxyz_to_matrix(world.quats_wxyz[idx])  # [M, 3, 3]
    s2 = np.exp(2.0 * world.log_scales[idx].astype(np.float64))  # [M, 3]
    cov = np.einsum("nij,nj,nkj->nik", R, s2, R)
    rgb = np.clip(sh_dc_to_rgb(world.sh[idx, 0]), 0.0, 1.0)
    opacity = 1.0 / (1.0 + np.exp(-world.opacity_logits[idx].astype(np.float64)))
    return SplatArrays(world.means[idx].astype(np.float32), cov.astype(np.float32), rgb.astype(np.float32),
                       opacity[:, None].astype(np.float32), len(world))


class CameraPose(NamedTuple):
    """A pose as viser takes it: wxyz [4] and position [3] of the optical camera in the world."""

    wxyz: NDArray[np.float64]
    position: NDArray[np.float64]


def camera_pose(T_world_cam: NDArray[np.floating]) -> CameraPose:
    """[4, 4] optical camera-to-world transform -> (wxyz, position)."""
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.shape != (4, 4) or not np.isfinite(T).all():
        raise InputError(f"camera pose: expected a finite [4, 4] transform, got shape {list(T.shape)}")
    return CameraPose(matrix_to_quat_wxyz(T[:3, :3]), T[:3, 3].copy())


def frustum_fov_aspect(intrinsics: Intrinsics) -> tuple[float, float]:
    """(vertical field of view in radians, width / height) of a camera, as viser's frustum takes them."""
    vfov = 2.0 * np.arctan(0.5 * intrinsics.height_px / intrinsics.fy_px)
    return float(vfov), intrinsics.width_px / intrinsics.height_px


def thumbnail(rgb: NDArray[np.floating], max_px: int) -> NDArray[np.uint8]:
    """[H, W, 3] float RGB in [0, 1] -> uint8, shrunk by an integer stride so its long side is <= max_px."""
    img = np.asarray(rgb)
    stride = max(1, int(np.ceil(max(img.shape[:2]) / max(1, max_px))))
    return np.round(np.clip(img[::stride, ::stride], 0.0, 1.0) * 255.0).astype(np.uint8)


def coverage_colours(covered: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[B] covered fraction in [0, 1] (NaN = unknown) -> [B, 3] uint8: red 0, yellow 0.5, green 1, grey NaN."""
    c = np.asarray(covered, dtype=np.float64)
    t = np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)
    red = np.where(t < 0.5, 1.0, 2.0 * (1.0 - t))
    green = np.where(t < 0.5, 2.0 * t, 1.0)
    rgb = np.stack([red, green, np.zeros_like(t)], axis=-1) * 220.0
    rgb[np.isnan(c)] = 128.0
    return np.round(rgb).astype(np.uint8)


def subsample_path(n: int, cap: int) -> NDArray[np.int64]:
    """Evenly spaced indices of at most ``cap`` poses out of ``n``, always including the first and last."""
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, n - 1, max(2, cap))).astype(np.int64))


def path_segments(positions: NDArray[np.floating], values: NDArray[np.uint8]) -> tuple[NDArray[np.float32],
                                                                                     NDArray[np.uint8]]:
    """Polyline through [B, 3] positions as viser line segments: points [B-1, 2, 3], colours [B-1, 2, 3].

    Each segment takes the colour of its two ends (``values`` [B, 3]).
    """
    p = np.asarray(positions, dtype=np.float32)
    if len(p) < 2:
        return np.zeros((0, 2, 3), np.float32), np.zeros((0, 2, 3), np.uint8)
    pts = np.stack([p[:-1], p[1:]], axis=1)
    cols = np.stack([values[:-1], values[1:]], axis=1)
    return pts, cols


def scene_bounds(world: GaussianWorld, poses: NDArray[np.floating] | None = None) -> tuple[NDArray[np.float64],
                                                                                            float]:
    """(centre [3], radius) of the world's Gaussians (robust: 2nd-98th percentile) and the given camera positions."""
    pts = [np.asarray(world.means, dtype=np.float64)]
    if poses is not None and len(poses):
        pts.append(np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)[:, :3, 3])
    allp = np.concatenate(pts) if sum(len(p) for p in pts) else np.zeros((1, 3))
    lo, hi = np.percentile(allp, 2, axis=0), np.percentile(allp, 98, axis=0)
    return (lo + hi) / 2.0, max(float(np.linalg.norm(hi - lo)) / 2.0, 0.5)
