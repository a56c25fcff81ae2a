"""Trajectory: stamped optical-frame camera poses, validated once at the boundary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import TrajectoryError


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A camera path. Always optical convention inside srender (convert with core.geometry.to_optical).

    Attributes:
        stamps_ns: [N] int64 nanoseconds, strictly increasing.
        T_world_cam: [N, 4, 4] float64 optical camera-to-world poses with orthonormal rotations.
        frame_id: name of the world frame the poses are expressed in.
    """

    stamps_ns: NDArray[np.int64]
    T_world_cam: NDArray[np.float64]
    frame_id: str = "world"

    def __post_init__(self) -> None:
        stamps = np.asarray(self.stamps_ns)
        T = np.asarray(self.T_world_cam, dtype=np.float64)
        if stamps.ndim != 1 or len(stamps) == 0:
            raise TrajectoryError("trajectory is empty: it needs at least one pose")
        if T.shape != (len(stamps), 4, 4):
            raise TrajectoryError(f"trajectory: {len(stamps)} stamps but poses of shape {list(T.shape)}; "
                                  "expected [N, 4, 4]")
        if not np.isfinite(T).all():
            i = int(np.argmax(~np.isfinite(T).reshape(len(T), -1).all(axis=1)))
            raise TrajectoryError(f"trajectory pose #{i} has NaN or infinite values")
        d = np.diff(stamps.astype(np.int64))
        if (d <= 0).any():
            i = int(np.argmax(d <= 0)) + 1
            kind = "duplicate" if d[i - 1] == 0 else "decreasing"
            raise TrajectoryError(f"trajectory stamps must increase strictly: pose #{i} has a {kind} stamp "
                                  f"({int(stamps[i])} ns after {int(stamps[i - 1])} ns)")
        R = T[:, :3, :3]
        err = np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max(axis=(1, 2))
        if (err > 1e-4).any():
            raise TrajectoryError(f"trajectory pose #{int(np.argmax(err > 1e-4))} has a non-orthonormal rotation")
        object.__setattr__(self, "stamps_ns", stamps.astype(np.int64))
        object.__setattr__(self, "T_world_cam", T)
        self.stamps_ns.setflags(write=False)
        self.T_world_cam.setflags(write=False)

    def __len__(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def positions_m(self) -> NDArray[np.float64]:
        """[N, 3] camera centres in the world frame."""
        return self.T_world_cam[:, :3, 3]

    @property
    def duration_s(self) -> float:
        return float(self.stamps_ns[-1] - self.stamps_ns[0]) * 1e-9

    def subset(self, indices: NDArray[np.integer] | list[int]) -> Trajectory:
        """The poses at ``indices`` (ascending)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Trajectory(self.stamps_ns[idx], self.T_world_cam[idx], self.frame_id)
