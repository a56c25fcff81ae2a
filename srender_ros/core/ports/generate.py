"""What a keyframe generator is given and what it returns."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.render import RenderOutput


class Keyframe(NamedTuple):
    """One generated view, ready to be lifted into Gaussians.

    Attributes:
        rgb: [H, W, 3] float32 in [0, 1].
        depth_m: [H, W] float32 z-depth in metres (NaN where unknown, e.g. sky).
        T_world_cam: [4, 4] optical camera-to-world pose.
        intrinsics: camera of the keyframe.
        pose_index: index of the pose in its trajectory (-1 when not from a trajectory).
    """

    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32]
    T_world_cam: NDArray[np.float64]
    intrinsics: Intrinsics
    pose_index: int = -1


class KeyframeRequest(NamedTuple):
    """Everything a generator may use to make one keyframe.

    Attributes:
        prompt: the environment prompt.
        T_world_cam: [4, 4] optical pose of the keyframe.
        intrinsics: camera to generate for.
        world_view: the current world rendered at this pose and camera, UNBATCHED (rgb [H, W, 3],
            depth_m [H, W], alpha [H, W]); None for a new, empty world. A generator keeps pixels
            where world_view.alpha is high and fills the rest.
        initial_image: [H, W, 3] float32 user image for the first keyframe of a new world, or None.
        seed: seed for this keyframe (derived from the world seed and the keyframe count).
        pose_index: index of the pose in its trajectory.
        camera_height_m: the camera's height above the ground in metres, when known (None =
            unknown): what a generator with monocular depth scales a new world's first keyframe by.
    """

    prompt: str
    T_world_cam: NDArray[np.float64]
    intrinsics: Intrinsics
    world_view: RenderOutput | None
    initial_image: NDArray[np.float32] | None
    seed: int
    pose_index: int = -1
    camera_height_m: float | None = None


class KeyframeGenerator(Protocol):
    """Makes RGB-D keyframes for poses the world does not yet cover."""

    name: str

    def generate(self, request: KeyframeRequest) -> Keyframe:
        """Make one keyframe at ``request.T_world_cam``."""
        ...

    def settings(self) -> dict[str, object]:
        """JSON-able description (model folders, steps, seeds) recorded in the world manifest."""
        ...
