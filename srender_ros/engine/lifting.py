"""Lifting: an RGB-D keyframe + its camera -> pixel-aligned 3D Gaussians, merged where the world is empty.

:func:`merge_keyframe` is the one entry point the pipeline uses (drop what the keyframe makes
coarse, lift, correct colours); :func:`lift_keyframe` is the per-pixel lifting under it.

Each kept pixel becomes one flat Gaussian on the surface it sees:
- position: the pixel centre back-projected to its z-depth;
- orientation and shape: a thin disc in the local surface plane (normal from depth gradients),
  sized to the pixel footprint ``stride * z / f`` and stretched along the tilt direction by
  ``1 / cos(angle between ray and normal)`` so grazing surfaces stay closed;
- colour: the pixel (SH degree 0), opacity ``LiftConfig.opacity``.

Depth edges: a pixel whose 3x3 neighbourhood spans a large relative depth range is a "mixed" pixel
(anti-aliased depth averages foreground and background). Its depth is snapped to the nearer of the
neighbourhood's min/max, and it gets an isotropic footprint, so no Gaussians float in the gap
between foreground and background.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import matrix_to_quat_wxyz
from srender_ros.core.ports.generate import Keyframe
from srender_ros.core.ports.render import RenderOutput
from srender_ros.core.world import SH_C0, GaussianWorld, num_sh_coeffs, rgb_to_sh_dc
from srender_ros.engine.dedup import DedupConfig, KeyframeView, footprint_pixels, prune_for_keyframe
from srender_ros.engine.resolution import coarse_visible_gaussians, grazing_stretch, surface_size_m
from srender_ros.errors import InputError


@dataclass(frozen=True)
class LiftConfig:
    """How keyframes become Gaussians.

    Attributes:
        stride_px: keep one pixel in ``stride_px`` along each axis (1 = every pixel).
        footprint_scale: Gaussian sigma as a fraction of the pixel footprint (spacing) on the surface.
        thickness_ratio: sigma along the normal relative to the in-plane sigma.
        max_stretch: cap of the grazing-angle stretch factor 1/cos. Lower caps leave gaps between
            the rows of a floor or ceiling seen at grazing angles (stripes when seen from nearer);
            the coarse, long Gaussians of a full stretch are replaced by the keyframe made when the
            camera comes close (``PipelineConfig.max_footprint_px``).
        opacity: peak opacity of new Gaussians.
        empty_alpha: world alpha below which a keyframe pixel counts as "not yet in the world".
        occlusion_margin: also add a pixel when the keyframe sees a surface this much (relative)
            nearer than the world's rendered depth there (new foreground the world lacks).
        edge_rel_depth: relative second difference of inverse depth above which a pixel is a depth
            edge (planes, however tilted, have none).
        max_depth_m: pixels farther than this are not lifted (None: no limit).
        colour_iterations: passes of colour correction after lifting (see :func:`correct_colours`).
        colour_step: step size of each pass (1 = full residual).
    """

    stride_px: int = 1
    footprint_scale: float = 0.5
    thickness_ratio: float = 0.15
    max_stretch: float = 12.0
    opacity: float = 0.98
    empty_alpha: float = 0.5
    occlusion_margin: float = 0.15
    edge_rel_depth: float = 0.1
    max_depth_m: float | None = None
    colour_iterations: int = 1
    colour_step: float = 0.5

    def __post_init__(self) -> None:
        if self.stride_px < 1:
            raise InputError(f"LiftConfig.stride_px={self.stride_px}: must be >= 1")
        if not 0 < self.opacity < 1:
            raise InputError(f"LiftConfig.opacity={self.opacity}: must be in (0, 1)")
        if self.footprint_scale <= 0 or self.thickness_ratio <= 0:
            raise InputError("LiftConfig.footprint_scale and thickness_ratio must be > 0")


def _window_min_max(depth: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """3x3 min and max of depth [H, W] (NaN treated as missing), edge-replicated."""
    pad = np.pad(depth, 1, mode="edge")
    H, W = depth.shape
    stack = np.stack([pad[dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)])
    with np.errstate(invalid="ignore"):
        return np.nanmin(np.where(np.isnan(stack), np.inf, stack), axis=0), np.nanmax(
            np.where(np.isnan(stack), -np.inf, stack), axis=0)


def snap_depth_edges(depth_m: NDArray[np.floating], edge_rel_depth: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Find depth discontinuities and snap mixed pixels on them to the nearer side.

    A plane has inverse depth affine in the pixel coordinates, so its second differences of
    inverse depth vanish, however steeply it is seen (a floor at a grazing angle). A pixel is an
    edge where a second difference (horizontal or vertical) exceeds ``edge_rel_depth`` times its own
    inverse depth. An edge pixel whose depth lies between its 3x3 neighbourhood's min and max is
    snapped to the nearer of the two, so it lands on the foreground or the background, not between.

    Args:
        depth_m: [H, W] z-depth, NaN where unknown.
        edge_rel_depth: relative second-difference threshold.
    Returns:
        ([H, W] snapped depth, [H, W] bool edge mask).
    """
    d = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = 1.0 / d
    pad = np.pad(inv, 1, mode="edge")
    centre = pad[1:-1, 1:-1]
    d2x = np.abs(pad[1:-1, :-2] + pad[1:-1, 2:] - 2 * centre)
    d2y = np.abs(pad[:-2, 1:-1] + pad[2:, 1:-1] - 2 * centre)
    with np.errstate(invalid="ignore"):
        curvature = np.fmax(np.nan_to_num(d2x, nan=0.0), np.nan_to_num(d2y, nan=0.0))
        edge = np.isfinite(d) & (curvature > edge_rel_depth * inv)
    lo, hi = _window_min_max(d)
    snapped = d.copy()
    mixed = edge & np.isfinite(lo) & np.isfinite(hi)
    to_lo = mixed & (np.abs(d - lo) <= np.abs(hi - d))
    snapped[to_lo] = lo[to_lo]
    to_hi = mixed & ~to_lo
    snapped[to_hi] = hi[to_hi]
    return snapped, edge


def _normals_cam(points_cam: NDArray[np.float64]) -> NDArray[np.float64]:
    """[H, W, 3] camera-frame points -> [H, W, 3] unit normals facing the camera (central differences)."""
    p = np.pad(points_cam, ((1, 1), (1, 1), (0, 0)), mode="edge")
    dx = p[1:-1, 2:] - p[1:-1, :-2]
    dy = p[2:, 1:-1] - p[:-2, 1:-1]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, -1.0]))
    # Face the camera: the normal points against the viewing ray.
    flip = np.sum(n * points_cam, axis=-1, keepdims=True) > 0
    return np.where(flip, -n, n)


def lift_keyframe(
    rgb: NDArray[np.floating],
    depth_m: NDArray[np.floating],
    intrinsics: Intrinsics,
    T_world_cam: NDArray[np.floating],
    world_alpha: NDArray[np.floating] | None = None,
    world_depth_m: NDArray[np.floating] | None = None,
    config: LiftConfig = LiftConfig(),
    sh_degree: int = 0,
) -> tuple[GaussianWorld, tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """Gaussians for the keyframe pixels the world does not show yet, and the pixel of each.

    Args:
        rgb: [H, W, 3] colours in [0, 1].
        depth_m: [H, W] z-depth in metres; NaN/inf/<= 0 pixels are skipped.
        intrinsics: the keyframe camera (H, W must match).
        T_world_cam: [4, 4] optical camera-to-world pose.
        world_alpha: [H, W] the existing world's alpha at this pose, or None for an empty world.
        world_depth_m: [H, W] the existing world's z-depth at this pose (NaN where empty), or None.
        config: lifting parameters.
        sh_degree: SH degree of the returned Gaussians (higher terms zero).
    Returns:
        (the new Gaussians only — merge them with ``world.concat`` —, (rows [n], cols [n]) the
        keyframe pixel each one was lifted from).
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    depth = np.asarray(depth_m, dtype=np.float64)
    H, W = intrinsics.height_px, intrinsics.width_px
    if rgb.shape != (H, W, 3) or depth.shape != (H, W):
        raise InputError(f"lift_keyframe: rgb {list(rgb.shape)} / depth {list(depth.shape)} do not match the "
                         f"{W}x{H} camera")
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan)
    if config.max_depth_m is not None:
        depth = np.where(depth <= config.max_depth_m, depth, np.nan)
    depth, edge = snap_depth_edges(depth, config.edge_rel_depth)

    rays = intrinsics.pixel_rays()  # [H, W, 3], z = 1
    points_cam = rays * depth[..., None]
    normals = _normals_cam(np.nan_to_num(points_cam, nan=0.0))

    keep = np.isfinite(depth)
    if world_alpha is not None:
        empty = np.asarray(world_alpha) < config.empty_alpha
        if world_depth_m is not None:
            wd = np.asarray(world_depth_m, dtype=np.float64)
            with np.errstate(invalid="ignore"):
                nearer = np.isfinite(wd) & (depth < wd * (1.0 - config.occlusion_margin))
            empty = empty | nearer
        keep &= empty
    s = config.stride_px
    if s > 1:
        grid = np.zeros((H, W), dtype=bool)
        grid[s // 2::s, s // 2::s] = True
        keep &= grid
    rows, cols = np.nonzero(keep)
    idx = (rows, cols)
    n = len(rows)
    if n == 0:
        return GaussianWorld.empty(sh_degree), idx

    p_cam = points_cam[idx]                       # [n, 3]
    nrm = normals[idx]                            # [n, 3]
    z = depth[idx]
    is_edge = edge[idx]
    view = -p_cam / np.linalg.norm(p_cam, axis=1, keepdims=True)
    cos = np.clip(np.abs(np.sum(view * nrm, axis=1)), 1.0 / config.max_stretch, 1.0)
    cos = np.where(is_edge, 1.0, cos)
    sigma = config.footprint_scale * s * z / np.sqrt(intrinsics.fx_px * intrinsics.fy_px)

    # Local frame: axis 0 along the tilt (view ray projected into the plane), axis 2 = normal.
    t1 = view - np.sum(view * nrm, axis=1, keepdims=True) * nrm
    t1_norm = np.linalg.norm(t1, axis=1, keepdims=True)
    fallback = np.cross(nrm, np.array([1.0, 0.0, 0.0]))
    fallback_small = np.linalg.norm(fallback, axis=1, keepdims=True) < 1e-6
    fallback = np.where(fallback_small, np.cross(nrm, np.array([0.0, 1.0, 0.0])), fallback)
    t1 = np.where(t1_norm > 1e-6, t1 / np.maximum(t1_norm, 1e-12), fallback / np.linalg.norm(fallback, axis=1, keepdims=True))
    t2 = np.cross(nrm, t1)
    R_cam_g = np.stack([t1, t2, nrm], axis=-1)    # columns = local axes in camera frame
    scales = np.stack([sigma / cos, sigma, np.where(is_edge, sigma, sigma * config.thickness_ratio)], axis=1)

    T = np.asarray(T_world_cam, dtype=np.float64)
    R_wc, t_wc = T[:3, :3], T[:3, 3]
    means = p_cam @ R_wc.T + t_wc
    quats = matrix_to_quat_wxyz(R_wc @ R_cam_g)
    sh = np.zeros((n, num_sh_coeffs(sh_degree), 3), np.float32)
    sh[:, 0, :] = rgb_to_sh_dc(np.clip(rgb[idx], 0.0, 1.0))
    logit = np.log(config.opacity / (1 - config.opacity))
    return GaussianWorld(
        means.astype(np.float32),
        quats.astype(np.float32),
        np.log(scales).astype(np.float32),
        np.full(n, logit, np.float32),
        sh,
    ), idx


def correct_colours(
    world: GaussianWorld,
    n_new: int,
    pixels: tuple[NDArray[np.intp], NDArray[np.intp]],
    target_rgb: NDArray[np.floating],
    render_rgb: Callable[[GaussianWorld], NDArray[np.float32]],
    iterations: int,
    step: float,
) -> GaussianWorld:
    """Undo the rendering blur on the Gaussians just lifted from a keyframe (Van Cittert iterations).

    Rendered at its own keyframe, a pixel-aligned world is the keyframe blurred by the splat
    footprints, gsplat's 0.3 px^2 low-pass and the front-to-back overlap of neighbours. Each pass
    renders the keyframe view and moves every new Gaussian's colour by ``step`` times the residual at
    its own pixel; older Gaussians stay as they are.

    Args:
        world: the world whose last ``n_new`` Gaussians were lifted from ``pixels``.
        n_new: number of new Gaussians at the end of ``world``.
        pixels: (rows [n_new], cols [n_new]) keyframe pixel of each new Gaussian.
        target_rgb: [H, W, 3] the keyframe.
        render_rgb: renders ``world`` at the keyframe camera -> [H, W, 3].
        iterations: passes (0 = none).
        step: fraction of the residual applied per pass.
    Returns:
        The world with corrected DC colours of the new Gaussians.
    """
    if iterations <= 0 or n_new == 0:
        return world
    target = np.asarray(target_rgb, dtype=np.float32)[pixels]
    start = len(world) - n_new
    for _ in range(iterations):
        residual = target - render_rgb(world)[pixels]
        sh = world.sh.copy()
        # Keep colours inside what the renderer can show (RGB = 0.5 + SH_C0 * dc, clamped at 0).
        rgb_new = np.clip(sh[start:, 0, :] * SH_C0 + 0.5 + step * residual, -0.25, 1.25)
        sh[start:, 0, :] = (rgb_new - 0.5) / SH_C0
        world = GaussianWorld(world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, sh)
    return world


#: Renders a world at the keyframe camera: (world, intrinsics, T_world_cam [B, 4, 4]) -> RenderOutput.
RenderFn = Callable[[GaussianWorld, Intrinsics, NDArray[np.float64]], RenderOutput]
#: The detail rule's size render: (world, intrinsics, T [B, 4, 4]) -> (size render, [B, H, W] too-coarse mask).
CoarsePixelsFn = Callable[[GaussianWorld, Intrinsics, NDArray[np.float64]], tuple[RenderOutput, NDArray[np.bool_]]]


class MergeResult(NamedTuple):
    """A world with one keyframe merged in.

    Attributes:
        world: the new world (the kept old Gaussians first, then the new ones).
        added: Gaussians lifted from the keyframe.
        removed: Gaussians of the old world the keyframe removed (all reasons).
        removed_by: removed Gaussians by reason: ``coarse`` (the detail rule), and with
            deduplication on ``redundant``, ``hidden``, ``transparent``, ``floating`` (engine/dedup.py).
    """

    world: GaussianWorld
    added: int
    removed: int
    removed_by: dict[str, int] | None = None


def merge_keyframe(world: GaussianWorld, keyframe: Keyframe, world_view: RenderOutput | None, render: RenderFn,
                   config: LiftConfig, max_footprint_px: float | None = None,
                   coarse_pixels: CoarsePixelsFn | None = None, dedup: DedupConfig | None = None,
                   earlier: Sequence[KeyframeView] = (), grazing_max_stretch: float | None = None) -> MergeResult:
    """Merge one keyframe into a world.

    Where the keyframe sees content much finer than the world has it (detail rule on), the coarse
    Gaussians on its surfaces are dropped and its own pixels are lifted wherever what remains is
    still coarse; elsewhere only pixels the world leaves empty (or where the keyframe sees new
    foreground) are lifted. Then the new Gaussians' colours are corrected against the keyframe.

    Args:
        world: the world before the keyframe.
        keyframe: rgb [H, W, 3], depth_m [H, W], T_world_cam [4, 4], intrinsics (the keyframe camera).
        world_view: the world rendered at the keyframe camera before generation (B = 1), or None
            for an empty world.
        render: the renderer (used for colour correction at the keyframe camera).
        config: lifting settings.
        max_footprint_px: the detail limit (None: alpha only).
        coarse_pixels: the coverage probe's size render, needed with ``max_footprint_px``.
        dedup: prune what the keyframe makes redundant, hidden for good, near-transparent or shows to
            be floating in front of its surfaces (engine/dedup.py); None: keep every old Gaussian the detail rule keeps.
        earlier: the world's keyframes before this one (the hidden-for-good test looks at them).
        grazing_max_stretch: the detail rule's limit grows with the keyframe's own grazing stretch
            (engine/resolution.py ``grazing_stretch``; the probe behind ``coarse_pixels`` should use
            the same); None: a flat limit.
    """
    K, T = keyframe.intrinsics, np.asarray(keyframe.T_world_cam, dtype=np.float64)
    base = world
    lift_alpha = None if world_view is None else world_view.alpha[0]
    view_depth = None if world_view is None else world_view.depth_m[0]
    removed = 0
    if world_view is not None and max_footprint_px is not None:
        if coarse_pixels is None:
            raise ValueError("merge_keyframe: the detail rule needs coarse_pixels")
        stretch = None if grazing_max_stretch is None else grazing_stretch(
            np.asarray(keyframe.depth_m, dtype=np.float64), K, grazing_max_stretch, config.edge_rel_depth)
        coarse = coarse_visible_gaussians(base, K, T, keyframe.depth_m, max_footprint_px, config.occlusion_margin,
                                          stretch)
        if coarse.any():
            base = base.select(~coarse)
            removed = int(coarse.sum())
        if len(base):
            sized, too_coarse = coarse_pixels(base, K, T[None])
            view_depth = sized.depth_m[0]
            lift_alpha = np.where(too_coarse[0], 0.0, sized.alpha[0])
        else:
            lift_alpha, view_depth = None, None
    new, pixels = lift_keyframe(keyframe.rgb, keyframe.depth_m, K, T, lift_alpha, view_depth, config,
                                sh_degree=world.sh_degree)
    removed_by = {"coarse": removed}
    if dedup is not None and len(base):
        lifted = np.zeros((K.height_px, K.width_px), dtype=bool)
        lifted[pixels] = True
        new_fp = np.zeros((K.height_px, K.width_px), dtype=np.float64)
        if len(new):
            z_new = np.asarray(keyframe.depth_m, dtype=np.float64)[pixels]
            new_fp[pixels] = np.sqrt(K.fx_px * K.fy_px) * surface_size_m(new) / z_new
        pruned = prune_for_keyframe(base, K, T, keyframe.depth_m, lifted, new_fp, earlier, config.occlusion_margin,
                                    dedup)
        drop = pruned.remove
        replaced = pruned.redundant | pruned.floating
        if replaced.any() and lift_alpha is not None:
            # The keyframe also draws what the redundant Gaussians covered, and what it sees behind floating ones.
            under = footprint_pixels(base, replaced, K, T)
            new, pixels = lift_keyframe(keyframe.rgb, keyframe.depth_m, K, T, np.where(under, 0.0, lift_alpha),
                                        view_depth, config, sh_degree=world.sh_degree)
        if drop.any():
            base = base.select(~drop)
        removed_by.update(pruned.counts())
        removed += int(drop.sum())
    merged = correct_colours(base.concat(new), len(new), pixels, keyframe.rgb, lambda w: render(w, K, T[None]).rgb[0],
                             config.colour_iterations, config.colour_step)
    return MergeResult(merged, len(new), removed, removed_by)
