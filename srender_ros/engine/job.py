"""What one request is (a RenderJob), what it yields (FrameChunks) and what it cost (RunStats)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.render import RenderOutput
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import InputError

__all__ = ["FrameChunk", "RenderJob", "RunStats"]


@dataclass(frozen=True)
class RenderJob:
    """One request: render every pose of ``trajectory`` in the world of ``prompt``.

    Attributes:
        prompt: environment prompt (one world per normalized prompt).
        trajectory: optical-frame camera poses.
        intrinsics: the camera.
        initial_image: [H, W, 3] float32 in [0, 1], used as the first keyframe of a NEW world.
        request_id: echoed in logs and schedules.
    """

    prompt: str
    trajectory: Trajectory
    intrinsics: Intrinsics
    initial_image: NDArray[np.float32] | None = None
    request_id: str = ""

    def __post_init__(self) -> None:
        if not self.prompt or not self.prompt.strip():
            raise InputError("environment prompt is empty: name the environment, e.g. 'a cluttered warehouse aisle'")
        if self.initial_image is not None:
            img = np.asarray(self.initial_image)
            if img.ndim != 3 or img.shape[2] != 3:
                raise InputError(f"initial image: expected [H, W, 3], got {list(img.shape)}")


class FrameChunk(NamedTuple):
    """Consecutive rendered frames.

    Attributes:
        indices: [b] int64 pose indices (ascending; chunks arrive in pose order).
        stamps_ns: [b] int64 the poses' stamps.
        T_world_cam: [b, 4, 4] optical poses.
        render: rgb [b, H, W, 3], depth_m [b, H, W], alpha [b, H, W].
    """

    indices: NDArray[np.int64]
    stamps_ns: NDArray[np.int64]
    T_world_cam: NDArray[np.float64]
    render: RenderOutput


@dataclass
class RunStats:
    """What one request cost (seconds per stage) and produced."""

    seconds: dict[str, float] = field(
        default_factory=lambda: {"schedule": 0.0, "generate": 0.0, "lift": 0.0, "refine": 0.0, "render": 0.0,
                                 "total": 0.0})
    frames: int = 0
    keyframes: int = 0
    gaussians: int = 0
    gaussians_added: int = 0
    hole_fractions: list[float] = field(default_factory=list)
    #: inbetween = interpolate: poses before the first / after the last keyframe, which hold it.
    held_frames: int = 0

    @property
    def hole_fraction_mean(self) -> float:
        return float(np.mean(self.hole_fractions)) if self.hole_fractions else 0.0

    @property
    def render_fps(self) -> float:
        return self.frames / self.seconds["render"] if self.seconds["render"] > 0 else 0.0
