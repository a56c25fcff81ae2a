"""The coverage probe: how much of each pose's view the world leaves empty or too coarse.

This is the scheduler's signal. A low-resolution render of the world at every pose gives alpha
(empty where alpha < ``coverage_alpha``); with the detail rule on (``max_footprint_px``), the
world's Gaussian sizes are rendered as a colour too (engine/resolution.py), and a covered pixel
whose Gaussians appear larger than ``max_footprint_px`` counts as coarse. The uncovered fraction of
a view is ``empty + coarse_weight * coarse``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.metrics import hole_fraction
from srender_ros.core.ports.render import Renderer, RenderOutput
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.resolution import grazing_stretch, pixel_footprint_px, size_world

__all__ = ["Coverage", "CoverageProbe"]


class Coverage(NamedTuple):
    """Coverage of B poses in one world.

    Attributes:
        empty: [B] fraction of pixels the world leaves empty (alpha below the threshold).
        coarse: [B] fraction of covered pixels whose content is coarser than the detail limit.
        world_empty: the world has no Gaussians at all.
    """

    empty: NDArray[np.float64]
    coarse: NDArray[np.float64]
    world_empty: bool

    def uncovered(self, coarse_weight: float) -> NDArray[np.float64]:
        """[B] the uncovered fraction: empty + ``coarse_weight`` x coarse."""
        return self.empty + coarse_weight * self.coarse


class CoverageProbe:
    """Measures coverage through a Renderer; caches the size world of the latest world it saw.

    Args:
        renderer: any Renderer backend.
        coverage_alpha: a pixel counts as covered from this alpha up.
        max_footprint_px: detail limit in pixels of the request camera (None: alpha only).
        coarse_weight: what a coarse pixel counts for, relative to an empty one.
        grazing_max_stretch: when set, a pixel is coarse above ``max_footprint_px * sqrt(stretch)``
            where ``stretch`` is the grazing stretch a keyframe here would lift it with (capped at
            this value, lifting's ``max_stretch``; engine/resolution.py ``grazing_stretch``).
            None: a flat limit.
    """

    def __init__(self, renderer: Renderer, coverage_alpha: float, max_footprint_px: float | None,
                 coarse_weight: float, grazing_max_stretch: float | None = None) -> None:
        self.grazing_max_stretch = grazing_max_stretch
        self.renderer = renderer
        self.coverage_alpha = coverage_alpha
        self.max_footprint_px = max_footprint_px
        self.coarse_weight = coarse_weight
        self._size_cache: tuple[GaussianWorld, GaussianWorld] | None = None

    def measure(self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.float64],
                focal_scale: float = 1.0) -> Coverage:
        """Coverage of each pose.

        Args:
            world: the world now.
            intrinsics: the coverage camera (usually the request camera scaled by ``coverage_scale``).
            T_world_cam: [B, 4, 4] optical poses.
            focal_scale: footprints are measured at this times the coverage camera's focal length
                (1 / coverage_scale: in pixels of the request camera, not of the low-resolution render).
        """
        B = len(T_world_cam)
        if len(world) == 0 or B == 0:
            return Coverage(np.ones(B, dtype=np.float64), np.zeros(B, dtype=np.float64), len(world) == 0)
        if self.max_footprint_px is None:
            alpha = self.renderer.coverage(world, intrinsics, T_world_cam)
            return Coverage(hole_fraction(alpha, self.coverage_alpha), np.zeros(B, dtype=np.float64), False)
        out, too_coarse = self.coarse_pixels(world, intrinsics, T_world_cam, focal_scale)
        empty = out.alpha < self.coverage_alpha
        coarse = ~empty & too_coarse
        return Coverage(hole_fraction(out.alpha, self.coverage_alpha),
                        coarse.reshape(B, -1).mean(axis=1).astype(np.float64), False)

    def coarse_pixels(self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.float64],
                      focal_scale: float = 1.0) -> tuple[RenderOutput, NDArray[np.bool_]]:
        """Render the world's Gaussian sizes; mark pixels whose footprint exceeds ``max_footprint_px``.

        Args:
            T_world_cam: [B, 4, 4] optical poses.
            focal_scale: footprints are measured at ``focal_scale`` times the render's focal length.
        Returns:
            (the size render: its alpha and depth_m [B, H, W] are the world's; [B, H, W] coarse mask).
        """
        if self.max_footprint_px is None:
            raise ValueError("coarse_pixels needs a detail limit (max_footprint_px)")
        out = self.renderer.render(self._size_world(world), intrinsics, T_world_cam)
        focal_px = float(np.sqrt(intrinsics.fx_px * intrinsics.fy_px)) * focal_scale
        fp = pixel_footprint_px(out.rgb, out.alpha, out.depth_m, focal_px)
        limit: float | NDArray[np.float64] = self.max_footprint_px
        if self.grazing_max_stretch is not None:
            limit = self.max_footprint_px * np.sqrt(grazing_stretch(out.depth_m, intrinsics, self.grazing_max_stretch))
        with np.errstate(invalid="ignore"):
            return out, fp > limit

    def _size_world(self, world: GaussianWorld) -> GaussianWorld:
        # Coverage asks for the same world's sizes once per chunk; building them costs a pass over it.
        cached = self._size_cache
        if cached is None or cached[0] is not world:
            cached = (world, size_world(world))
            self._size_cache = cached
        return cached[1]
