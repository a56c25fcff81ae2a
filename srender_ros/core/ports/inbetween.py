"""What a 2D in-between interpolator (the FusionFrames / RIFE-style baseline) is given and returns.

With ``inbetween = interpolate`` the pipeline still picks and makes keyframes exactly as with 3D
rendering, but the frames between two keyframes come from a 2D interpolator fed with the two
keyframe images (as the request camera sees them) instead of from the Gaussian world.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.ports.render import RenderOutput


class InbetweenFrame(NamedTuple):
    """One keyframe as the request camera sees it.

    Attributes:
        rgb: [H, W, 3] float32 in [0, 1].
        depth_m: [H, W] float32 z-depth, metres (NaN where unknown); warped alongside the colours.
    """

    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32]


class InbetweenPair(Protocol):
    """Two keyframes prepared for interpolation (e.g. with their optical flow computed once)."""

    def at(self, t: NDArray[np.floating]) -> RenderOutput:
        """Frames at fractions ``t`` [N] in [0, 1] of the way from the first keyframe to the second.

        Returns:
            RenderOutput: rgb [N, H, W, 3], depth_m [N, H, W] (NaN where no keyframe sees the pixel),
            alpha [N, H, W] (1 where at least one keyframe's warp lands inside its image, else 0).
            t = 0 and t = 1 give the keyframes exactly (alpha 1).
        """
        ...


class Inbetweener(Protocol):
    """Makes in-between frames from two neighbouring keyframes."""

    name: str

    def pair(self, first: InbetweenFrame, second: InbetweenFrame) -> InbetweenPair:
        """Prepare the interpolation from ``first`` (t = 0) to ``second`` (t = 1); same [H, W]."""
        ...
