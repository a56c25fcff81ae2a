"""Keep the world proportional to the surface it has seen: what a merged keyframe makes redundant goes.

:func:`~srender_ros.engine.lifting.merge_keyframe` (the one entry point) calls :func:`prune_for_keyframe`
after lifting a keyframe; it selects, among the Gaussians the world had before the keyframe,

- **redundant** ones: on the keyframe's surface (centre inside its image, z within
  ``occlusion_margin`` of the keyframe's depth at that pixel), inside a region the keyframe is
  lifting anyway (at least ``cover_fraction`` of the pixels within 1.5 footprints of the centre
  got a new Gaussian; none within three footprints of the image border) and no finer than the new
  Gaussians there (footprint >= ``detail_ratio`` x theirs). merge_keyframe then lifts the
  keyframe's pixels under their footprints too (:func:`footprint_pixels`), so the keyframe's own
  Gaussians draw that surface alone: without this rule a surface lifted again where the world
  rendered it thin (gaps between the rows of a road seen at a grazing angle, partly covered
  borders) or a little off in depth keeps both layers;
- **hidden for good**: behind the surface of every keyframe whose image contains the centre (the
  new one included, by more than ``occlusion_margin`` past the farthest depth of the 3x3 pixels
  around it, so silhouettes stay). A Gaussian lifted from a keyframe lies on that keyframe's
  surface, so with a consistent generator only content that no keyframe sees any more qualifies
  (a surface a later keyframe showed nearer, Gaussians moved by refinement);
- **near-transparent** ones: peak opacity below ``min_opacity`` (refinement can fade Gaussians;
  lifting makes them at 0.98);
- **floating** ones: centre inside the keyframe's image and clearly in front of what the keyframe
  sees there (z below ``1 - floating_margin`` times the nearest depth of the 3x3 pixels around its
  projection, so silhouettes of thin objects stay; pixels without depth say nothing). The keyframe
  sees through them to a farther surface: they are floaters (coarse Gaussians lifted from far away,
  stretched road Gaussians hanging over a dip, ghosts of a thin object seen from a bad angle).
  merge_keyframe lifts the keyframe's pixels under them as for redundant ones. Only Gaussians of
  earlier keyframes are tested (the new keyframe's own lie on its surface by construction).

Everything here works on centres projected through the keyframes' pinhole cameras and their depth
maps (numpy only, no renderer), in O(N) per keyframe plus O(candidates x keyframes) for the hidden test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.resolution import surface_size_m
from srender_ros.errors import InputError

__all__ = [
    "DedupConfig",
    "KeyframeView",
    "PruneResult",
    "floating_gaussians",
    "footprint_pixels",
    "hidden_for_good",
    "prune_for_keyframe",
    "redundant_gaussians",
    "transparent_gaussians",
]


@dataclass(frozen=True)
class DedupConfig:
    """How a merged keyframe prunes the world (engine/dedup.py; docs/pipeline.md has the rule).

    Attributes:
        redundant: remove old Gaussians the keyframe's new ones replace (same surface, not finer).
        cover_fraction: share of the pixels within 1.5 footprints of an old Gaussian's centre that
            must have been lifted by the keyframe for it to be replaced.
        detail_ratio: an old Gaussian is replaced when its footprint is at least this times the
            new Gaussians' footprint at its pixel ("coarser or equal detail"; a little below 1
            counts equal detail as equal despite rounding).
        hidden: prune Gaussians behind the surface of every keyframe that sees their place.
        min_opacity: prune Gaussians whose peak opacity is below this (0 = off).
        floating: prune Gaussians the keyframe sees through (clearly in front of its depth).
        floating_margin: "clearly in front": z < (1 - floating_margin) x the nearest keyframe depth
            of the 3x3 pixels around the centre's projection.
    """

    redundant: bool = True
    cover_fraction: float = 0.9
    detail_ratio: float = 0.9
    hidden: bool = True
    min_opacity: float = 0.02
    floating: bool = True
    floating_margin: float = 0.3

    def __post_init__(self) -> None:
        if not 0.0 < self.cover_fraction <= 1.0:
            raise InputError(f"DedupConfig.cover_fraction={self.cover_fraction}: must be in (0, 1]")
        if not self.detail_ratio > 0.0:
            raise InputError(f"DedupConfig.detail_ratio={self.detail_ratio}: must be > 0")
        if not 0.0 <= self.min_opacity < 1.0:
            raise InputError(f"DedupConfig.min_opacity={self.min_opacity}: must be in [0, 1)")
        if not 0.0 < self.floating_margin < 1.0:
            raise InputError(f"DedupConfig.floating_margin={self.floating_margin}: must be in (0, 1)")


class KeyframeView(Protocol):
    """What the hidden test needs of a keyframe (``Keyframe`` and ``KeyframeRecord`` both have it)."""

    @property
    def depth_m(self) -> NDArray[np.float32]: ...  # [H, W] z-depth, NaN where unknown
    @property
    def T_world_cam(self) -> NDArray[np.float64]: ...  # [4, 4] optical camera-to-world
    @property
    def intrinsics(self) -> Intrinsics: ...


class PruneResult(NamedTuple):
    """[N] masks over the old world's Gaussians (disjoint; any of them set: remove)."""

    redundant: NDArray[np.bool_]
    hidden: NDArray[np.bool_]
    transparent: NDArray[np.bool_]
    floating: NDArray[np.bool_]

    @property
    def remove(self) -> NDArray[np.bool_]:
        return self.redundant | self.hidden | self.transparent | self.floating

    def counts(self) -> dict[str, int]:
        """Removed Gaussians by reason."""
        return {"redundant": int(self.redundant.sum()), "hidden": int(self.hidden.sum()),
                "transparent": int(self.transparent.sum()), "floating": int(self.floating.sum())}


class _Projection(NamedTuple):
    z: NDArray[np.float64]       # [N] camera z (<= 0 behind)
    row: NDArray[np.int64]       # [N] pixel row (clipped)
    col: NDArray[np.int64]       # [N] pixel column (clipped)
    inside: NDArray[np.bool_]    # [N] in front and inside the image


def _project(means: NDArray[np.floating], K: Intrinsics, T_world_cam: NDArray[np.floating]) -> _Projection:
    T = np.asarray(T_world_cam, dtype=np.float64)
    p = (np.asarray(means, dtype=np.float64) - T[:3, 3]) @ T[:3, :3]   # world -> camera: R^T (x - t)
    z = p[:, 2]
    front = z > 1e-6
    zs = np.where(front, z, 1.0)
    u = K.fx_px * p[:, 0] / zs + K.cx_px
    v = K.fy_px * p[:, 1] / zs + K.cy_px
    W, H = K.width_px, K.height_px
    inside = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    return _Projection(z, np.clip(v, 0, H - 1).astype(np.int64), np.clip(u, 0, W - 1).astype(np.int64), inside)


def _window_max(depth: NDArray[np.float64]) -> NDArray[np.float64]:
    """3x3 max of depth [H, W], NaN where every neighbour is unknown."""
    H, W = depth.shape
    pad = np.pad(np.where(np.isfinite(depth), depth, -np.inf), 1, mode="edge")
    m = np.max(np.stack([pad[dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)]), axis=0)
    return np.where(np.isfinite(m), m, np.nan)


def _window_min(depth: NDArray[np.float64]) -> NDArray[np.float64]:
    """3x3 min of the valid (finite, > 0) depths of [H, W], NaN where no neighbour has one."""
    H, W = depth.shape
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    pad = np.pad(np.where(valid, depth, np.inf), 1, mode="edge")
    m = np.min(np.stack([pad[dy:dy + H, dx:dx + W] for dy in range(3) for dx in range(3)]), axis=0)
    return np.where(np.isfinite(m), m, np.nan)


def _box_fraction(mask: NDArray[np.bool_], row: NDArray[np.int64], col: NDArray[np.int64],
                  radius: NDArray[np.int64]) -> NDArray[np.float64]:
    """[n] share of True pixels of ``mask`` [H, W] in the square of ``radius`` around each (row, col)."""
    H, W = mask.shape
    ii = np.zeros((H + 1, W + 1), np.int64)
    ii[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0), axis=1)
    r0, r1 = np.clip(row - radius, 0, H), np.clip(row + radius + 1, 0, H)
    c0, c1 = np.clip(col - radius, 0, W), np.clip(col + radius + 1, 0, W)
    total = ii[r1, c1] - ii[r0, c1] - ii[r1, c0] + ii[r0, c0]
    area = np.maximum((r1 - r0) * (c1 - c0), 1)
    return total / area


def _dilate(mask: NDArray[np.bool_], radius: int) -> NDArray[np.bool_]:
    """[H, W] pixels with a True pixel of ``mask`` within the square of ``radius`` around them."""
    H, W = mask.shape
    rows, cols = np.mgrid[0:H, 0:W]
    frac = _box_fraction(mask, rows.ravel(), cols.ravel(), np.full(H * W, radius, dtype=np.int64))
    out: NDArray[np.bool_] = frac.reshape(H, W) > 0
    return out


def redundant_gaussians(world: GaussianWorld, K: Intrinsics, T_world_cam: NDArray[np.floating],
                        depth_m: NDArray[np.floating], lifted: NDArray[np.bool_], new_footprint_px: NDArray[np.floating],
                        occlusion_margin: float, config: DedupConfig) -> NDArray[np.bool_]:
    """[N] Gaussians of ``world`` that the keyframe's newly lifted ones replace.

    Args:
        world: the Gaussians before the keyframe (those it already replaced for detail removed).
        K, T_world_cam: the keyframe camera and its [4, 4] optical pose.
        depth_m: [H, W] the keyframe's z-depth.
        lifted: [H, W] pixels that got a new Gaussian.
        new_footprint_px: [H, W] footprint (px, the size measure of engine/resolution.py) of the new
            Gaussian at each lifted pixel (anything elsewhere).
        occlusion_margin: relative depth tolerance of "on the keyframe's surface".
        config: the thresholds.
    """
    out = np.zeros(len(world), dtype=bool)
    if len(world) == 0 or not lifted.any():
        return out
    pr = _project(world.means, K, T_world_cam)
    d = np.asarray(depth_m, dtype=np.float64)
    # Lifted pixels within 4 px of the centre at all (a cheap first cut; the window test follows).
    near_lifted = _dilate(lifted, 4)
    cand = np.nonzero(pr.inside & near_lifted[pr.row, pr.col])[0]
    if len(cand) == 0:
        return out
    row, col, z = pr.row[cand], pr.col[cand], pr.z[cand]
    dk = d[row, col]
    with np.errstate(invalid="ignore"):
        on_surface = np.isfinite(dk) & (dk > 0) & (np.abs(z - dk) <= occlusion_margin * dk)
    fp_old = float(np.sqrt(K.fx_px * K.fy_px)) * surface_size_m(world)[cand] / z
    # Not near the image border (three footprints, as the detail rule): the keyframe must be able to
    # draw all of what a removed Gaussian covered.
    border = 3.0 * fp_old
    on_surface &= ((col >= border) & (col < K.width_px - border) & (row >= border) & (row < K.height_px - border))
    radius = np.clip(np.ceil(1.5 * fp_old), 1, 32).astype(np.int64)
    covered = _box_fraction(lifted, row, col, radius) >= config.cover_fraction
    not_finer = fp_old >= config.detail_ratio * np.asarray(new_footprint_px, dtype=np.float64)[row, col]
    out[cand[on_surface & covered & not_finer]] = True
    return out


def footprint_pixels(world: GaussianWorld, which: NDArray[np.bool_], K: Intrinsics,
                     T_world_cam: NDArray[np.floating]) -> NDArray[np.bool_]:
    """[H, W] pixels within one footprint (at least one pixel) of the centres of ``world[which]`` seen by ``K``.

    Where redundant Gaussians are removed, the keyframe lifts these pixels as well, so that what
    they covered is drawn by the keyframe's own Gaussians.
    """
    H, W = K.height_px, K.width_px
    out = np.zeros((H, W), dtype=bool)
    idx = np.nonzero(which)[0]
    if len(idx) == 0:
        return out
    sub = world.select(idx)
    pr = _project(sub.means, K, T_world_cam)
    fp = float(np.sqrt(K.fx_px * K.fy_px)) * surface_size_m(sub) / np.where(pr.z > 0, pr.z, 1.0)
    radius = np.clip(np.ceil(fp), 1, 32).astype(np.int64)
    for r in np.unique(radius[pr.inside]):
        sel = pr.inside & (radius == r)
        seeds = np.zeros((H, W), dtype=bool)
        seeds[pr.row[sel], pr.col[sel]] = True
        out |= _dilate(seeds, int(r))
    return out


def hidden_for_good(world: GaussianWorld, keyframes: Sequence[KeyframeView], occlusion_margin: float,
                    candidates: NDArray[np.bool_] | None = None, candidates_hidden: bool = False) -> NDArray[np.bool_]:
    """[N] Gaussians behind the surface of every keyframe whose image contains their centre.

    "Behind" means farther than ``(1 + occlusion_margin)`` times the largest depth of the 3x3
    pixels around the projection; Gaussians no keyframe contains are kept (nothing says they are hidden).

    Args:
        world: the Gaussians.
        keyframes: the keyframes to test against (the newest first is cheapest: it narrows the candidates).
        occlusion_margin: relative depth margin.
        candidates: [N] only these are tested (None: all).
        candidates_hidden: the candidates are already known to be hidden in a keyframe not in ``keyframes``.
    """
    n = len(world)
    alive = np.ones(n, dtype=bool) if candidates is None else candidates.copy()
    seen_hidden = alive.copy() if candidates_hidden else np.zeros(n, dtype=bool)
    for kf in keyframes:
        idx = np.nonzero(alive)[0]
        if len(idx) == 0:
            break
        pr = _project(world.means[idx], kf.intrinsics, kf.T_world_cam)
        dmax = _window_max(np.asarray(kf.depth_m, dtype=np.float64))[pr.row, pr.col]
        with np.errstate(invalid="ignore"):
            behind = pr.inside & np.isfinite(dmax) & (pr.z > dmax * (1.0 + occlusion_margin))
        visible = pr.inside & ~behind
        alive[idx[visible]] = False
        seen_hidden[idx[behind]] = True
    return alive & seen_hidden


def floating_gaussians(world: GaussianWorld, K: Intrinsics, T_world_cam: NDArray[np.floating],
                       depth_m: NDArray[np.floating], margin: float) -> NDArray[np.bool_]:
    """[N] Gaussians whose centre the keyframe sees through: inside its image, in front of the camera and
    nearer than ``(1 - margin)`` times the nearest valid depth of the 3x3 pixels around the projection.

    Pixels without depth (NaN, sky) never make a Gaussian floating.
    """
    if len(world) == 0:
        return np.zeros(0, dtype=bool)
    pr = _project(world.means, K, T_world_cam)
    dmin = _window_min(np.asarray(depth_m, dtype=np.float64))[pr.row, pr.col]
    with np.errstate(invalid="ignore"):
        out: NDArray[np.bool_] = pr.inside & np.isfinite(dmin) & (pr.z < dmin * (1.0 - margin))
    return out


def transparent_gaussians(world: GaussianWorld, min_opacity: float) -> NDArray[np.bool_]:
    """[N] Gaussians whose peak opacity is below ``min_opacity``."""
    if min_opacity <= 0.0 or len(world) == 0:
        return np.zeros(len(world), dtype=bool)
    logit = np.log(min_opacity / (1.0 - min_opacity))
    return np.asarray(world.opacity_logits < logit)


def prune_for_keyframe(world: GaussianWorld, K: Intrinsics, T_world_cam: NDArray[np.floating],
                       depth_m: NDArray[np.floating], lifted: NDArray[np.bool_],
                       new_footprint_px: NDArray[np.floating], earlier: Sequence[KeyframeView],
                       occlusion_margin: float, config: DedupConfig) -> PruneResult:
    """What the old world loses when a keyframe is merged (see the module docstring).

    Args:
        world: the old Gaussians (after the detail rule's replacement; never the keyframe's own).
        K, T_world_cam, depth_m: the keyframe's camera, [4, 4] pose and [H, W] z-depth.
        lifted: [H, W] pixels the keyframe lifted. new_footprint_px: [H, W] their footprints.
        earlier: the world's keyframes before this one (for the hidden test).
        occlusion_margin: lifting's relative depth margin.
        config: the rule's settings.
    """
    n = len(world)
    transparent = transparent_gaussians(world, config.min_opacity)
    redundant = np.zeros(n, dtype=bool)
    if config.redundant:
        redundant = redundant_gaussians(world, K, T_world_cam, depth_m, lifted, new_footprint_px, occlusion_margin,
                                        config) & ~transparent
    hidden = np.zeros(n, dtype=bool)
    if config.hidden and n:
        # Only what the new keyframe hides can have become hidden for good by it: test those
        # against the earlier keyframes (newest first).
        pr = _project(world.means, K, T_world_cam)
        dmax = _window_max(np.asarray(depth_m, dtype=np.float64))[pr.row, pr.col]
        with np.errstate(invalid="ignore"):
            behind = pr.inside & np.isfinite(dmax) & (pr.z > dmax * (1.0 + occlusion_margin))
        behind &= ~(transparent | redundant)
        if behind.any():
            hidden = hidden_for_good(world, list(reversed(list(earlier))), occlusion_margin, behind,
                                     candidates_hidden=True)
    floating = np.zeros(n, dtype=bool)
    if config.floating and n:
        floating = floating_gaussians(world, K, T_world_cam, depth_m, config.floating_margin) & ~(
            transparent | redundant | hidden)
    return PruneResult(redundant, hidden, transparent, floating)

