"""gsplat's projection rules in plain float64 numpy, shared by the reference renderer and callers.

Everything here mirrors gsplat 1.5.3 (``rasterization(..., packed=False, rasterize_mode="classic")``
with the pinhole camera model); the CUDA sources it follows are named next to each rule so a
reader can check them (``gsplat/cuda/csrc/ProjectionEWA3DGSFused.cu``, ``include/Utils.cuh``,
``csrc/IntersectTile.cu``, ``csrc/RasterizeToPixels3DGSFwd.cu``, ``csrc/SphericalHarmonicsCUDA.cu``):

- view matrix = inverse(T_world_cam) (optical frame); camera centre = T_world_cam[:3, 3].
- Cull a Gaussian when its camera z < NEAR_PLANE_M or > FAR_PLANE_M (z == near is kept).
- EWA: cov2d = J R Sigma R^T J^T with the pinhole Jacobian J evaluated at the mean whose x/z and
  y/z are clamped to the field of view widened by 30 % on each side (gsplat's ``persp_proj``).
  The 2D mean itself is not clamped.
- ``eps2d`` = 0.3 px^2 is added to the diagonal (classic mode: no opacity compensation); a
  Gaussian whose blurred determinant is <= 0 is culled. Conic = inverse of the blurred cov2d.
- Radius (gsplat 1.5.3's CUDA kernel, not the older ``3 * sqrt(max eigenvalue)`` and not the
  fixed 3.33 of its pure-torch ``_fully_fused_projection``): per axis,
  ``ceil(extend * sqrt(cov2d[i, i]))`` with the opacity-aware ``extend = min(3.33,
  sqrt(2 ln(opacity * 255)))`` (arXiv 2402.00525, B.2); a Gaussian with opacity < 1/255 is culled.
  For opacity <= 1 the square root is at most sqrt(2 ln 255) = 3.329, so the cap never binds and
  the axis-aligned box contains every pixel where the Gaussian's alpha can reach 1/255; the tile
  rule below therefore never removes a contribution, it only bounds the work.
- Off-image: culled when ``mx + rx <= 0 or mx - rx >= W or my + ry <= 0 or my - ry >= H``.
- A Gaussian is composited only in the 16x16 tiles its box touches: tiles
  ``[floor(mx/16 - rx/16), ceil(mx/16 + rx/16))`` clamped to the tile grid (same for y).
- Order: front to back by the float32 camera z, ties broken by Gaussian index (gsplat's stable
  radix sort of (tile, float32 depth bits) keys over Gaussians in index order).
- Colour: SH evaluated at the normalized direction (mean - camera centre), then
  ``max(SH + 0.5, 0)``; degree 0 uses only the DC term.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import invert_transform
from srender_ros.core.ports.render import FAR_PLANE_M, NEAR_PLANE_M
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError

#: Added to the diagonal of every projected 2D covariance, px^2 (gsplat ``eps2d``).
EPS2D_PX2 = 0.3
#: Contributions below this alpha are skipped; Gaussians with lower opacity are culled.
ALPHA_THRESHOLD = 1.0 / 255.0
#: Per-Gaussian alpha cap.
MAX_ALPHA = 0.999
#: A pixel stops compositing when its transmittance would fall to this or below (exclusive).
TRANSMITTANCE_MIN = 1e-4
#: Box half-size in standard deviations before the opacity-aware cap (gsplat 1.5.3).
RADIUS_EXTEND_SIGMA = 3.33
#: gsplat's default tile edge, px: a Gaussian only reaches the pixels of the tiles its box touches.
TILE_SIZE_PX = 16
#: The Jacobian is evaluated with x/z, y/z clamped to the field of view widened by this fraction.
FOV_CLAMP_MARGIN = 0.3
#: Rotation parts of poses may deviate from orthonormal by this much (float32 round trips).
ROTATION_TOL = 1e-3

SH_C0 = 0.2820947917738781
SH_C1 = 0.48860251190292


def validate_poses(T_world_cam: NDArray[np.floating], what: str = "T_world_cam") -> NDArray[np.float64]:
    """Check a batch of camera-to-world poses and return it as float64.

    Args:
        T_world_cam: [B, 4, 4] (or one [4, 4]) rigid optical camera-to-world transforms.
        what: name used in error messages.
    Returns:
        [B, 4, 4] float64 poses.
    Raises:
        InputError: wrong shape, NaN/inf, a last row other than [0, 0, 0, 1] or a rotation part
            that is not orthonormal (naming the first bad pose).
    """
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.shape == (4, 4):
        T = T[None]
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise InputError(f"{what}: expected shape [B, 4, 4], got {list(T.shape)}")
    if T.shape[0] == 0:
        return T.copy()
    finite = np.isfinite(T).reshape(T.shape[0], -1).all(axis=1)
    if not finite.all():
        raise InputError(f"{what}: pose #{int(np.argmin(finite))} has NaN or inf values")
    bottom_ok = np.abs(T[:, 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1) <= 1e-6
    if not bottom_ok.all():
        raise InputError(f"{what}: pose #{int(np.argmin(bottom_ok))} has last row {T[int(np.argmin(bottom_ok)), 3].tolist()}, "
                         "expected [0, 0, 0, 1]")
    R = T[:, :3, :3]
    err = np.abs(np.einsum("bij,bkj->bik", R, R) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    rigid = (err <= ROTATION_TOL) & (det > 0)
    if not rigid.all():
        i = int(np.argmin(rigid))
        raise InputError(f"{what}: pose #{i} has a rotation part that is not a proper rotation "
                         f"(|R R^T - I| = {err[i]:.2g}, det = {det[i]:.3g}); pass rigid camera-to-world transforms")
    return T


def view_matrices(T_world_cam: NDArray[np.floating]) -> NDArray[np.float64]:
    """Camera-to-world poses -> gsplat ``viewmats`` (world-to-camera).

    Args:
        T_world_cam: [B, 4, 4] optical camera-to-world poses.
    Returns:
        [B, 4, 4] float64 world-to-camera transforms.
    """
    return invert_transform(validate_poses(T_world_cam))


def project_points(
    T_world_cam: NDArray[np.floating], intrinsics: Intrinsics, points: NDArray[np.floating]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pinhole projection of world points into a batch of cameras (no culling, no distortion).

    Args:
        T_world_cam: [B, 4, 4] optical camera-to-world poses (or one [4, 4]).
        intrinsics: the camera model.
        points: [N, 3] world points, metres.
    Returns:
        (uv [B, N, 2] pixel coordinates with pixel centres at integer + 0.5,
         z [B, N] camera z-depth in metres; points with z <= 0 get uv = NaN).
    """
    P = np.asarray(points, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != 3:
        raise InputError(f"points: expected shape [N, 3], got {list(P.shape)}")
    V = view_matrices(T_world_cam)
    pc = np.einsum("bij,nj->bni", V[:, :3, :3], P) + V[:, None, :3, 3]
    z = pc[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.fx_px * pc[..., 0] / z + intrinsics.cx_px
        v = intrinsics.fy_px * pc[..., 1] / z + intrinsics.cy_px
    uv = np.stack([u, v], axis=-1)
    uv[z <= 0] = np.nan
    return uv, z


def world_covariances(world: GaussianWorld) -> NDArray[np.float64]:
    """3D covariances R S S^T R^T of every Gaussian.

    Returns:
        [N, 3, 3] float64 covariances in the world frame, m^2.
    """
    q = world.quats_wxyz.astype(np.float64)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    R = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(-1, 3, 3)
    M = R * np.exp(world.log_scales.astype(np.float64))[:, None, :]
    return np.einsum("nij,nkj->nik", M, M)


def opacities_f64(world: GaussianWorld) -> NDArray[np.float64]:
    """[N] peak opacities sigmoid(logit) in float64."""
    return 1.0 / (1.0 + np.exp(-world.opacity_logits.astype(np.float64)))


def sh_to_rgb(sh: NDArray[np.floating], dirs: NDArray[np.floating]) -> NDArray[np.float64]:
    """View-dependent colour from SH coefficients, as gsplat's ``spherical_harmonics`` + clamp.

    Args:
        sh: [N, K, 3] coefficients, K = (degree + 1) ** 2 with degree 0..3.
        dirs: [N, 3] viewing directions (Gaussian mean - camera centre), any length > 0.
    Returns:
        [N, 3] float64 colours max(SH(dir) + 0.5, 0).
    """
    c = np.asarray(sh, dtype=np.float64)
    k = c.shape[1]
    out = SH_C0 * c[:, 0]
    if k > 1:
        d = np.asarray(dirs, dtype=np.float64)
        d = d / np.linalg.norm(d, axis=1, keepdims=True)
        x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
        out = out + SH_C1 * (-y * c[:, 1] + z * c[:, 2] - x * c[:, 3])
        if k > 4:
            z2 = z * z
            t0b = -1.092548430592079 * z
            fc1 = x * x - y * y
            fs1 = 2.0 * x * y
            out = out + (0.5462742152960395 * fs1 * c[:, 4] + t0b * y * c[:, 5]
                         + (0.9461746957575601 * z2 - 0.3153915652525201) * c[:, 6]
                         + t0b * x * c[:, 7] + 0.5462742152960395 * fc1 * c[:, 8])
            if k > 9:
                t0c = -2.285228997322329 * z2 + 0.4570457994644658
                t1b = 1.445305721320277 * z
                fc2 = x * fc1 - y * fs1
                fs2 = x * fs1 + y * fc1
                out = out + (-0.5900435899266435 * fs2 * c[:, 9] + t1b * fs1 * c[:, 10] + t0c * y * c[:, 11]
                             + z * (1.865881662950577 * z2 - 1.119528997770346) * c[:, 12]
                             + t0c * x * c[:, 13] + t1b * fc1 * c[:, 14] - 0.5900435899266435 * fc2 * c[:, 15])
    return np.maximum(out + 0.5, 0.0)


class ProjectedGaussians(NamedTuple):
    """One view's projection of N Gaussians (float64; entries where ``valid`` is False are junk).

    Attributes:
        valid: [N] bool, True where gsplat keeps the Gaussian (radii > 0).
        mean2d_px: [N, 2] projected centres, px.
        conic: [N, 3] inverse blurred 2D covariance (a, b, c) = (inv[0,0], inv[0,1], inv[1,1]).
        depth_m: [N] camera z, metres.
        radius_px: [N, 2] integer box half-sizes (rx, ry), px.
        opacity: [N] peak opacities.
        tile_rect: [N, 4] int tiles [x0, y0, x1, y1) the box touches (TILE_SIZE_PX tiles).
    """

    valid: NDArray[np.bool_]
    mean2d_px: NDArray[np.float64]
    conic: NDArray[np.float64]
    depth_m: NDArray[np.float64]
    radius_px: NDArray[np.float64]
    opacity: NDArray[np.float64]
    tile_rect: NDArray[np.int64]


def ewa_project(world: GaussianWorld, intrinsics: Intrinsics, viewmat: NDArray[np.float64]) -> ProjectedGaussians:
    """gsplat's fused EWA projection for one view, float64 (see the module docstring for the rules).

    Args:
        world: N Gaussians.
        intrinsics: the camera.
        viewmat: [4, 4] world-to-camera transform (inverse of the optical T_world_cam).
    Returns:
        The per-Gaussian projection.
    """
    W, H = intrinsics.width_px, intrinsics.height_px
    fx, fy, cx, cy = intrinsics.fx_px, intrinsics.fy_px, intrinsics.cx_px, intrinsics.cy_px
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    p = world.means.astype(np.float64) @ R.T + t
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    cov_c = np.einsum("ij,njk,lk->nil", R, world_covariances(world), R)
    opacity = opacities_f64(world)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lim_x_pos = (W - cx) / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
        lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
        lim_y_pos = (H - cy) / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
        lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
        rz = 1.0 / z
        tx = z * np.minimum(lim_x_pos, np.maximum(-lim_x_neg, x * rz))
        ty = z * np.minimum(lim_y_pos, np.maximum(-lim_y_neg, y * rz))
        J = np.zeros((len(z), 2, 3))
        J[:, 0, 0] = fx * rz
        J[:, 0, 2] = -fx * tx * rz * rz
        J[:, 1, 1] = fy * rz
        J[:, 1, 2] = -fy * ty * rz * rz
        cov2d = np.einsum("nij,njk,nlk->nil", J, cov_c, J)
        mean2d = np.stack([fx * x * rz + cx, fy * y * rz + cy], axis=-1)
        a = cov2d[:, 0, 0] + EPS2D_PX2
        b = cov2d[:, 0, 1]
        c = cov2d[:, 1, 1] + EPS2D_PX2
        det = a * c - b * b
        conic = np.stack([c / det, -b / det, a / det], axis=-1)
        extend = np.minimum(RADIUS_EXTEND_SIGMA, np.sqrt(2.0 * np.log(np.maximum(opacity, 1e-300) / ALPHA_THRESHOLD)))
        rx = np.ceil(extend * np.sqrt(a))
        ry = np.ceil(extend * np.sqrt(c))
    valid = (z >= NEAR_PLANE_M) & (z <= FAR_PLANE_M) & (det > 0) & (opacity >= ALPHA_THRESHOLD)
    valid &= ~((rx <= 0) & (ry <= 0))
    mx, my = mean2d[:, 0], mean2d[:, 1]
    valid &= ~((mx + rx <= 0) | (mx - rx >= W) | (my + ry <= 0) | (my - ry >= H))
    tw = (W + TILE_SIZE_PX - 1) // TILE_SIZE_PX
    th = (H + TILE_SIZE_PX - 1) // TILE_SIZE_PX
    ts = float(TILE_SIZE_PX)
    rect = np.zeros((len(z), 4), np.int64)
    if valid.any():
        v = valid
        rect[v, 0] = np.clip(np.floor(mx[v] / ts - rx[v] / ts), 0, tw)
        rect[v, 1] = np.clip(np.floor(my[v] / ts - ry[v] / ts), 0, th)
        rect[v, 2] = np.clip(np.ceil(mx[v] / ts + rx[v] / ts), 0, tw)
        rect[v, 3] = np.clip(np.ceil(my[v] / ts + ry[v] / ts), 0, th)
    return ProjectedGaussians(valid, mean2d, conic, z, np.stack([rx, ry], -1), opacity, rect)
