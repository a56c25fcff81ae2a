"""The renderer protocol every backend (gsplat, cpu) implements."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.world import GaussianWorld

#: Depth is reported only where the accumulated alpha reaches this; elsewhere it is NaN (REP 118).
DEPTH_MIN_ALPHA = 0.5
#: gsplat's near plane, metres: Gaussians with camera z below it are culled.
NEAR_PLANE_M = 0.01
FAR_PLANE_M = 1e10


class RenderOutput(NamedTuple):
    """A batch of rendered views.

    Attributes:
        rgb: [B, H, W, 3] float32 in [0, 1] (composited over ``background_rgb``).
        depth_m: [B, H, W] float32 z-depth along the optical axis, metres: the alpha-normalized
            expected depth sum(w_i z_i) / sum(w_i); NaN where alpha < DEPTH_MIN_ALPHA.
        alpha: [B, H, W] float32 accumulated opacity in [0, 1].
    """

    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32]
    alpha: NDArray[np.float32]


class Renderer(Protocol):
    """Renders a GaussianWorld from a batch of optical-frame camera poses."""

    name: str

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha.

        Args:
            world: the Gaussians.
            intrinsics: one camera model shared by the batch.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        """
        ...

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """Alpha only, for many poses at once (the scheduler's signal; pass low-res intrinsics).

        Args:
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
        Returns:
            [B, H, W] float32 accumulated alpha.
        """
        ...
