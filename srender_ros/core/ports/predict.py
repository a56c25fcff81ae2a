"""The keyframe-count port: how many keyframes a trajectory needs (the learned scheduler's model)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.trajectory import Trajectory

__all__ = ["CountPredictor"]


class CountPredictor(Protocol):
    """Predicts a trajectory's keyframe count."""

    def __call__(self, trajectory: Trajectory, intrinsics: Intrinsics,
                 first_view: NDArray[np.floating] | None = None) -> int:
        """Keyframes the coverage scheduler would make along ``trajectory``.

        Args:
            trajectory: optical camera poses. intrinsics: the camera.
            first_view: [H, W, 3] float in [0, 1], the world's view at the first pose, or None.
        """
        ...
