"""Poses at new stamps (linear positions, slerp rotations) and world-up normalization.

World up (CONTRACT for code that builds worlds): srender's procedural worlds are z-up. A trajectory
whose world has another up axis (KITTI and other camera-frame worlds: ``-y``; OpenGL/Blender-export
y-up worlds: ``+y``) is rotated into a z-up frame with :func:`normalize_world_up`, which also returns
``R_zup_world`` so results can be mapped back (``p_world = R_zup_world.T @ p_zup``). For ``-y`` that
rotation is geometry.R_BODY_OPTICAL: the camera-style world (x right, y down, z forward) becomes a
ROS-style one (x forward, y left, z up), exactly as an optical frame relates to a REP 103 body.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from srender_ros.core.geometry import make_transform, matrix_to_quat_wxyz, quat_wxyz_to_matrix, slerp_wxyz
from srender_ros.core.trajectory import Trajectory
from srender_ros.errors import TrajectoryError

#: Accepted values of ``world_up``: the world axis that points against gravity.
WORLD_UP_AXES = ("+z", "-z", "+y", "-y", "+x", "-x")

# Rows of R_zup_world: the z-up frame's x, y, z axes written in world coordinates. Each is a proper
# rotation whose third row is the up axis; the first row is a sensible "forward" for that convention.
_R_ZUP_WORLD: dict[str, NDArray[np.float64]] = {
    "+z": np.eye(3),
    "-z": np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),
    # camera-style world (x right, y down, z forward) -> x forward, y left, z up
    "-y": np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]),
    # OpenGL-style world (x right, y up, -z forward) -> x forward, y left, z up
    "+y": np.array([[0.0, 0, -1], [-1, 0, 0], [0, 1, 0]]),
    "+x": np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    "-x": np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
}


def parse_world_up(world_up: str) -> str:
    """'+z', 'z', '-Y', ... -> canonical '+z' / '-y' form.

    Raises:
        TrajectoryError: not one of WORLD_UP_AXES.
    """
    s = str(world_up).strip().lower()
    if len(s) == 1:
        s = "+" + s
    if s not in _R_ZUP_WORLD:
        raise TrajectoryError(f"world_up: {world_up!r} is not an axis; use one of {', '.join(WORLD_UP_AXES)} "
                              "(e.g. -y for KITTI, +z for ROS worlds)")
    return s


def rotation_zup_from_world(world_up: str) -> NDArray[np.float64]:
    """R_zup_world: [3, 3] rotation taking world coordinates to a frame whose +z is the world's up axis."""
    return _R_ZUP_WORLD[parse_world_up(world_up)].copy()


def normalize_world_up(trajectory: Trajectory, world_up: str) -> tuple[Trajectory, NDArray[np.float64]]:
    """Express a trajectory in a z-up world.

    Args:
        trajectory: optical poses in a world whose up axis is ``world_up``.
        world_up: one of WORLD_UP_AXES.
    Returns:
        (trajectory with T_zup_cam = [R_zup_world 0; 0 1] @ T_world_cam (same stamps and frame_id),
        [3, 3] R_zup_world). The camera frames are unchanged, only the world coordinates rotate.
    """
    R = rotation_zup_from_world(world_up)
    T = make_transform(R, np.zeros(3)) @ trajectory.T_world_cam
    return Trajectory(trajectory.stamps_ns, T, trajectory.frame_id), R


def interpolate_pose(trajectory: Trajectory, stamps_ns: ArrayLike, *, clamp: bool = False) -> NDArray[np.float64]:
    """Poses at arbitrary stamps: positions linearly, rotations by slerp between the neighbouring poses.

    Args:
        trajectory: the source poses.
        stamps_ns: [M] int64 nanoseconds, any order.
        clamp: hold the first/last pose for stamps outside the trajectory's span instead of raising.
    Returns:
        [M, 4, 4] optical T_world_cam.
    Raises:
        TrajectoryError: a stamp outside [first, last] stamp (unless clamp).
    """
    s = np.asarray(stamps_ns)
    if s.ndim != 1 or (s.size and not np.issubdtype(s.dtype, np.integer)):
        raise TrajectoryError(f"stamps_ns: expected [M] integer nanoseconds, got {s.dtype} of shape {list(s.shape)}")
    s = s.astype(np.int64)
    src = trajectory.stamps_ns
    outside = (s < src[0]) | (s > src[-1])
    if outside.any() and not clamp:
        i = int(np.argmax(outside))
        raise TrajectoryError(f"stamp #{i} ({int(s[i])} ns) is outside the trajectory's span "
                              f"[{int(src[0])}, {int(src[-1])}] ns; interpolation cannot extrapolate (or pass clamp=True)")
    if len(trajectory) == 1:
        return np.repeat(trajectory.T_world_cam[:1], len(s), axis=0)
    i0 = np.clip(np.searchsorted(src, s, side="right") - 1, 0, len(src) - 2)
    # Differences of int64 stamps are exact; only the ratio is floating point.
    t = np.clip((s - src[i0]).astype(np.float64) / (src[i0 + 1] - src[i0]).astype(np.float64), 0.0, 1.0)
    T = trajectory.T_world_cam
    q = matrix_to_quat_wxyz(T[:, :3, :3])
    p = T[i0, :3, 3] * (1.0 - t)[:, None] + T[i0 + 1, :3, 3] * t[:, None]
    R = quat_wxyz_to_matrix(slerp_wxyz(q[i0], q[i0 + 1], t))
    return make_transform(R, p)


def resample(trajectory: Trajectory, rate_hz: float | None = None, stamps_ns: ArrayLike | None = None,
             *, clamp: bool = False) -> Trajectory:
    """A trajectory at new stamps: a fixed camera rate over the original span, or given stamps.

    Args:
        trajectory: the source poses.
        rate_hz: new rate; stamps are first_stamp + round(k * 1e9 / rate_hz) up to the last stamp.
        stamps_ns: [M] strictly increasing int64 nanoseconds (exclusive with rate_hz).
        clamp: hold end poses for stamps outside the span instead of raising.
    Returns:
        Trajectory with the new stamps, same frame_id.
    """
    if (rate_hz is None) == (stamps_ns is None):
        raise TrajectoryError("resample: give exactly one of rate_hz or stamps_ns")
    if rate_hz is not None:
        rate = float(rate_hz)
        if not np.isfinite(rate) or rate <= 0:
            raise TrajectoryError(f"rate_hz: {rate_hz!r} is not a positive rate")
        step_ns = 1e9 / rate
        span_ns = int(trajectory.stamps_ns[-1] - trajectory.stamps_ns[0])
        # Tiny slack so a span that is an exact multiple of the step keeps its last sample despite rounding.
        k = np.arange(int(np.floor(span_ns / step_ns + 1e-9)) + 1)
        new = trajectory.stamps_ns[0] + np.round(k * step_ns).astype(np.int64)
        new = new[new <= trajectory.stamps_ns[-1]]
    else:
        new = np.asarray(stamps_ns)
        if new.ndim != 1 or len(new) == 0:
            raise TrajectoryError(f"stamps_ns: expected a non-empty [M] array, got shape {list(new.shape)}")
    return Trajectory(np.asarray(new, dtype=np.int64), interpolate_pose(trajectory, new, clamp=clamp), trajectory.frame_id)
