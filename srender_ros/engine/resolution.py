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
                             occlusion_margin: float = 0.15,
                             stretch: NDArray[np.floating] | None = None) -> NDArray[np.bool_]:
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
        stretch: [H, W] the keyframe's own grazing stretch (:func:`grazing_stretch`); a Gaussian is
            coarse above ``max_footprint_px * sqrt(stretch)`` at its pixel (None: a flat limit).
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
    if stretch is not None:
        on_surface &= fp[cand] > max_footprint_px * np.sqrt(np.asarray(stretch, dtype=np.float64)[row, col])
    out[cand[on_surface]] = True
    return out


def grazing_stretch(depth_m: NDArray[np.floating], intrinsics: Intrinsics, max_stretch: float,
                    edge_rel_depth: float = 0.1) -> NDArray[np.float64]:
    """[..., H, W] the grazing-angle stretch ``min(1 / cos, max_stretch)`` a keyframe here would lift each pixel with.

    The detail rule asks whether a keyframe made at this pose would bring finer Gaussians than the
    world has. A keyframe lifts a pixel at ``0.5 * sqrt(stretch)`` px of this measure (the size is
    the geometric mean of the in-plane axes, one of them stretched by ``1 / cos`` of the viewing
    angle), so a road or floor seen at a grazing angle is never finer than about 1.7 px however
    often it is lifted again. Comparing the world against ``max_footprint_px * sqrt(stretch)``
    instead of a flat limit asks for a new keyframe only where it would be ``max_footprint_px / 0.5``
    times finer: under a forward camera the road is then refreshed when the camera has come about
    2.5x closer, not at every metre. The normal is estimated from the rendered depth's neighbours;
    depth edges (second differences of inverse depth, as lifting finds them) and unknown depth get 1.

    Args:
        depth_m: [..., H, W] z-depth of the render (NaN where empty).
        intrinsics: the camera of the render (H, W must match).
        max_stretch: lifting's cap of the stretch (``LiftConfig.max_stretch``).
        edge_rel_depth: lifting's edge threshold.
    """
    d = np.asarray(depth_m, dtype=np.float64)
    rays = intrinsics.pixel_rays()                                    # [H, W, 3], z = 1
    p = rays * np.nan_to_num(d, nan=0.0)[..., None]                   # [..., H, W, 3]
    pad = [(0, 0)] * (p.ndim - 3) + [(1, 1), (1, 1), (0, 0)]
    pp = np.pad(p, pad, mode="edge")
    dx = pp[..., 1:-1, 2:, :] - pp[..., 1:-1, :-2, :]
    dy = pp[..., 2:, 1:-1, :] - pp[..., :-2, 1:-1, :]
    n = np.cross(dx, dy)
    n_norm = np.linalg.norm(n, axis=-1)
    r_norm = np.linalg.norm(rays, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.abs(np.sum(n * rays, axis=-1)) / (n_norm * r_norm)
        inv = 1.0 / d
    ipad = np.pad(inv, [(0, 0)] * (d.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    c = ipad[..., 1:-1, 1:-1]
    d2x = np.abs(ipad[..., 1:-1, :-2] + ipad[..., 1:-1, 2:] - 2 * c)
    d2y = np.abs(ipad[..., :-2, 1:-1] + ipad[..., 2:, 1:-1] - 2 * c)
    with np.errstate(invalid="ignore"):
        curv = np.fmax(np.nan_to_num(d2x, nan=np.inf), np.nan_to_num(d2y, nan=np.inf))
        ok = np.isfinite(d) & (d > 0) & (n_norm > 1e-12) & np.isfinite(cos) & ~(curv > edge_rel_depth * inv)
        stretch = np.clip(1.0 / np.maximum(cos, 1e-9), 1.0, max_stretch)
    return np.where(ok, stretch, 1.0)
