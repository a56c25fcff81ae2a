"""Rotations, rigid transforms and the two camera pose conventions.

Conventions (CONTRACT, see docs/conventions.md):
- Quaternions inside srender are (w, x, y, z) and named ``*_wxyz``; ROS messages and TUM files are
  (x, y, z, w) and named ``*_xyzw``. Convert at the boundary.
- ``T_a_b`` is a 4x4 homogeneous transform taking points in frame b to frame a
  (``p_a = T_a_b @ p_b``); ``T_world_cam`` is the camera-to-world pose.
- Camera frames: *optical* (x right, y down, z forward; OpenCV, TUM, KITTI, image frame_id) and
  *body* (ROS REP 103: x forward, y left, z up). All rendering uses optical poses.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

FloatArray = NDArray[np.floating]

#: Rotation of the optical frame expressed in the body frame: columns are the optical x (right),
#: y (down) and z (forward) axes written in body coordinates (x forward, y left, z up).
R_BODY_OPTICAL: NDArray[np.float64] = np.array(
    [[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], dtype=np.float64
)
T_BODY_OPTICAL: NDArray[np.float64] = np.eye(4)
T_BODY_OPTICAL[:3, :3] = R_BODY_OPTICAL

#: Quaternions whose norm differs from 1 by more than this are worth a warning (then normalized).
QUAT_NORM_WARN_TOL = 1e-3


class PoseFrame(str, Enum):
    """Which camera axes a pose's rotation describes."""

    OPTICAL = "optical"
    BODY = "body"


def quat_wxyz_to_matrix(q_wxyz: FloatArray) -> NDArray[np.float64]:
    """Unit quaternions -> rotation matrices.

    Args:
        q_wxyz: [..., 4] quaternions (w, x, y, z); normalized here.
    Returns:
        [..., 3, 3] rotation matrices (float64).
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    R = np.empty(q.shape[:-1] + (3, 3), dtype=np.float64)
    R[..., 0, 0] = 1 - 2 * (y * y + z * z)
    R[..., 0, 1] = 2 * (x * y - w * z)
    R[..., 0, 2] = 2 * (x * z + w * y)
    R[..., 1, 0] = 2 * (x * y + w * z)
    R[..., 1, 1] = 1 - 2 * (x * x + z * z)
    R[..., 1, 2] = 2 * (y * z - w * x)
    R[..., 2, 0] = 2 * (x * z - w * y)
    R[..., 2, 1] = 2 * (y * z + w * x)
    R[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return R


def matrix_to_quat_wxyz(R: FloatArray) -> NDArray[np.float64]:
    """Rotation matrices -> unit quaternions with w >= 0.

    Args:
        R: [..., 3, 3] rotation matrices.
    Returns:
        [..., 4] quaternions (w, x, y, z), float64.
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    # Shepperd's method, vectorized: pick the largest of 4 candidates for numerical stability.
    cand = np.stack(
        [1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22],
        axis=-1,
    )
    k = np.argmax(cand, axis=-1)
    s = np.sqrt(np.maximum(np.take_along_axis(cand, k[..., None], -1)[..., 0], 1e-300)) * 2
    q = np.empty(R.shape[:-2] + (4,), dtype=np.float64)
    r = R
    q0 = np.stack([s / 4, (r[..., 2, 1] - r[..., 1, 2]) / s, (r[..., 0, 2] - r[..., 2, 0]) / s,
                   (r[..., 1, 0] - r[..., 0, 1]) / s], -1)
    q1 = np.stack([(r[..., 2, 1] - r[..., 1, 2]) / s, s / 4, (r[..., 0, 1] + r[..., 1, 0]) / s,
                   (r[..., 0, 2] + r[..., 2, 0]) / s], -1)
    q2 = np.stack([(r[..., 0, 2] - r[..., 2, 0]) / s, (r[..., 0, 1] + r[..., 1, 0]) / s, s / 4,
                   (r[..., 1, 2] + r[..., 2, 1]) / s], -1)
    q3 = np.stack([(r[..., 1, 0] - r[..., 0, 1]) / s, (r[..., 0, 2] + r[..., 2, 0]) / s,
                   (r[..., 1, 2] + r[..., 2, 1]) / s, s / 4], -1)
    q = np.choose(k[..., None], [q0, q1, q2, q3])
    q = q * np.where(q[..., :1] < 0, -1.0, 1.0)
    return np.asarray(q / np.linalg.norm(q, axis=-1, keepdims=True), dtype=np.float64)


def xyzw_to_wxyz(q_xyzw: FloatArray) -> NDArray[np.float64]:
    """[..., 4] (x, y, z, w) -> (w, x, y, z)."""
    q = np.asarray(q_xyzw, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def wxyz_to_xyzw(q_wxyz: FloatArray) -> NDArray[np.float64]:
    """[..., 4] (w, x, y, z) -> (x, y, z, w)."""
    q = np.asarray(q_wxyz, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def slerp_wxyz(q0_wxyz: FloatArray, q1_wxyz: FloatArray, t: FloatArray) -> NDArray[np.float64]:
    """Spherical linear interpolation along the shorter arc.

    Args:
        q0_wxyz, q1_wxyz: [..., 4] unit quaternions.
        t: [...] interpolation weights in [0, 1] (0 -> q0).
    Returns:
        [..., 4] unit quaternions.
    """
    q0 = np.asarray(q0_wxyz, dtype=np.float64)
    q1 = np.asarray(q1_wxyz, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-8
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    q = w0 * q0 + w1 * q1
    return np.asarray(q / np.linalg.norm(q, axis=-1, keepdims=True), dtype=np.float64)


def make_transform(R: FloatArray, t: FloatArray) -> NDArray[np.float64]:
    """[..., 3, 3] rotations and [..., 3] translations -> [..., 4, 4] transforms."""
    R = np.asarray(R, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    T = np.zeros(R.shape[:-2] + (4, 4), dtype=np.float64)
    T[..., :3, :3] = R
    T[..., :3, 3] = t
    T[..., 3, 3] = 1.0
    return T


def invert_transform(T: FloatArray) -> NDArray[np.float64]:
    """Inverse of rigid [..., 4, 4] transforms (uses R^T, not a general inverse)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    Rt = np.swapaxes(R, -1, -2)
    t = T[..., :3, 3]
    return make_transform(Rt, -np.einsum("...ij,...j->...i", Rt, t))


def to_optical(T_world_cam: FloatArray, frame: PoseFrame | str) -> NDArray[np.float64]:
    """Camera poses in ``frame`` convention -> optical-frame poses.

    Args:
        T_world_cam: [..., 4, 4] camera-to-world poses whose rotation describes ``frame`` axes.
        frame: PoseFrame.BODY (REP 103) or PoseFrame.OPTICAL.
    Returns:
        [..., 4, 4] T_world_optical.
    """
    frame = PoseFrame(frame)
    T = np.asarray(T_world_cam, dtype=np.float64)
    if frame is PoseFrame.OPTICAL:
        return T.copy()
    return T @ T_BODY_OPTICAL


def from_optical(T_world_optical: FloatArray, frame: PoseFrame | str) -> NDArray[np.float64]:
    """Inverse of :func:`to_optical`: [..., 4, 4] optical poses -> poses in ``frame`` convention."""
    frame = PoseFrame(frame)
    T = np.asarray(T_world_optical, dtype=np.float64)
    if frame is PoseFrame.OPTICAL:
        return T.copy()
    return T @ invert_transform(T_BODY_OPTICAL)


def validate_quaternions_wxyz(q_wxyz: FloatArray, what: str = "quaternion") -> tuple[NDArray[np.float64], int]:
    """Check and normalize quaternions.

    Args:
        q_wxyz: [N, 4] quaternions.
        what: name used in error messages.
    Returns:
        ([N, 4] unit quaternions, number of inputs whose norm was off by more than
        QUAT_NORM_WARN_TOL, for the caller to warn about).
    Raises:
        InputError: non-finite values or a (near) zero quaternion, naming the first bad row.
    """
    q = np.asarray(q_wxyz, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4:
        raise InputError(f"{what}: expected shape [N, 4], got {list(q.shape)}")
    bad = ~np.isfinite(q).all(axis=1)
    if bad.any():
        raise InputError(f"{what} #{int(np.argmax(bad))} is not finite: {q[np.argmax(bad)].tolist()}")
    norm = np.linalg.norm(q, axis=1)
    zero = norm < 1e-8
    if zero.any():
        raise InputError(f"{what} #{int(np.argmax(zero))} is zero; a rotation needs a unit quaternion "
                         "(identity is w=1, x=y=z=0)")
    off = int(np.sum(np.abs(norm - 1.0) > QUAT_NORM_WARN_TOL))
    return q / norm[:, None], off
