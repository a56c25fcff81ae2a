"""How much detail the world has where a camera looks: the pixel footprint of its Gaussians.

Alpha alone says whether a view is covered, not whether it is covered *well*: a wall lifted from a
keyframe 8 m away is made of Gaussians about 8x coarser than the pixels of a camera standing 1 m
from it, and renders as a blur with full alpha. The scheduler therefore also asks how large the
world's Gaussians appear in each pixel, and treats content that is too coarse as uncovered; the
keyframe made there replaces the coarse Gaussians it sees with its own finer ones.

The footprint of a Gaussian is measured with a view-independent size, the geometric mean of its
two largest standard deviations (for a lifted Gaussian: the pixel's footprint on the surface,
``sigma / sqrt(cos)`` at grazing angles), divided by its depth and multiplied by the focal
length: pixels in the camera's own resolution. (The middle axis alone ignores the grazing-angle
stretch and lets long floor and ceiling Gaussians pass as fine; docs/pipeline.md has the
measurement.) It is rendered through any ``Renderer`` as a
colour, so every backend (CPU, gsplat) measures it the same way.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.world import GaussianWorld, rgb_to_sh_dc

#: Sizes are encoded as colour size / SIZE_RANGE_M in [0, 1]; larger Gaussians read as this size.
SIZE_RANGE_M = 4.0


def surface_size_m(world: GaussianWorld) -> NDArray[np.float32]:
    """[N] geometric mean of each Gaussian's two largest standard deviations, metres."""
    s = np.sort(world.scales_m, axis=1)
    return np.sqrt(s[:, 1] * s[:, 2]).astype(np.float32)


def size_world(world: GaussianWorld) -> GaussianWorld:
    """The world with every Gaussian's colour replaced by its encoded size (geometry untouched).

    Rendering it gives, per pixel, the alpha-weighted size times alpha in the red channel.
    """
    size = np.clip(surface_size_m(world) / SIZE_RANGE_M, 0.0, 1.0)
    rgb = np.repeat(size[:, None], 3, axis=1)
    sh = rgb_to_sh_dc(rgb)[:, None, :]
    return GaussianWorld(world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, sh)


def pixel_footprint_px(size_rgb: NDArray[np.floating], alpha: NDArray[np.floating], depth_m: NDArray[np.floating],
                       focal_px: float) -> NDArray[np.float64]:
    """Per-pixel Gaussian footprint from a render of ``size_world``.

    Args:
        size_rgb: [..., H, W, 3] the render's colour (black background).
        alpha: [..., H, W] its alpha. depth_m: [..., H, W] its z-depth (NaN where empty).
        focal_px: focal length of the camera the footprint is expressed in (pass the full-resolution
            focal length when the render was made at a reduced coverage resolution).
    Returns:
        [..., H, W] footprint in pixels, NaN where nothing is rendered.
    """
    a = np.asarray(alpha, dtype=np.float64)
    z = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        size_m = np.asarray(size_rgb, dtype=np.float64)[..., 0] * SIZE_RANGE_M / a
        fp = focal_px * size_m / z
    return np.where((a > 1e-3) & np.isfinite(fp) & (z > 0), fp, np.nan)


def coarse_visible_gaussians(world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
                             depth_m: NDArray[np.floating], max_footprint_px: float,
                             occlusion_margin: float = 0.15) -> NDArray[np.bool_]:
    """[N] Gaussians a keyframe sees on its surfaces at a footprint above ``max_footprint_px``.

    A Gaussian is selected when its centre projects inside the keyframe image with a border of
    three of its footprints (so that none reaches far outside the view it is replaced from), lies on the
    keyframe's surface there (z within ``occlusion_margin`` of the keyframe depth: not occluded,
    not floating in front), and appears coarser than ``max_footprint_px``.

    Args:
        world: the Gaussians. intrinsics: the keyframe camera.
        T_world_cam: [4, 4] optical keyframe pose.
        depth_m: [H, W] the keyframe's z-depth (NaN/<= 0 where unknown: nothing selected there).
        max_footprint_px: footprint (px, the keyframe's resolution) above which a Gaussian is coarse.
        occlusion_margin: relative depth tolerance of "on the surface".
    """
    n = len(world)
    out = np.zeros(n, dtype=bool)
    if n == 0:
        return out
    T = np.asarray(T_world_cam, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    p_cam = (world.means.astype(np.float64) - t) @ R     # world -> camera: R^T (x - t)
    z = p_cam[:, 2]
    front = z > 1e-6
    zs = np.where(front, z, 1.0)
    u = intrinsics.fx_px * p_cam[:, 0] / zs + intrinsics.cx_px
    v = intrinsics.fy_px * p_cam[:, 1] / zs + intrinsics.cy_px
    fp = np.sqrt(intrinsics.fx_px * intrinsics.fy_px) * surface_size_m(world) / zs
    border = 3.0 * fp
    W, H = intrinsics.width_px, intrinsics.height_px
    inside = front & (u >= border) & (u < W - border) & (v >= border) & (v < H - border)
    cand = np.nonzero(inside & (fp > max_footprint_px))[0]
    if len(cand) == 0:
        return out
    d = np.asarray(depth_m, dtype=np.float64)
    col = np.clip(u[cand].astype(np.int64), 0, W - 1)
    row = np.clip(v[cand].astype(np.int64), 0, H - 1)
    dk = d[row, col]
    with np.errstate(invalid="ignore"):
        on_surface = np.isfinite(dk) & (dk > 0) & (np.abs(z[cand] - dk) <= occlusion_margin * dk)
    out[cand[on_surface]] = True
    return out
