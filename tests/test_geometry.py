from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core import geometry as g
from srender_ros.core.camera import Intrinsics
from srender_ros.errors import InputError


def test_quaternion_matrix_round_trip() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(200, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q *= np.where(q[:, :1] < 0, -1, 1)
    R = g.quat_wxyz_to_matrix(q)
    np.testing.assert_allclose(np.einsum("nij,nkj->nik", R, R), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    np.testing.assert_allclose(g.matrix_to_quat_wxyz(R), q, atol=1e-10)


def test_quaternion_convention_rotation_about_z() -> None:
    # 90 degrees about z maps x to y.
    q = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(g.quat_wxyz_to_matrix(q) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(g.xyzw_to_wxyz(g.wxyz_to_xyzw(q)), q)


def test_slerp_endpoints_and_midpoint() -> None:
    q0 = np.array([1.0, 0, 0, 0])
    q1 = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(g.slerp_wxyz(q0, q1, 0.0), q0, atol=1e-12)
    np.testing.assert_allclose(g.slerp_wxyz(q0, q1, 1.0), q1, atol=1e-12)
    mid = g.slerp_wxyz(q0, q1, 0.5)
    np.testing.assert_allclose(mid, [np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)], atol=1e-12)
    # shorter arc: -q1 is the same rotation
    np.testing.assert_allclose(g.quat_wxyz_to_matrix(g.slerp_wxyz(q0, -q1, 0.5)), g.quat_wxyz_to_matrix(mid), atol=1e-12)


def test_body_optical_axes() -> None:
    # A body pose looking along world +x (identity) has its optical z along world +x,
    # optical x (right) along world -y and optical y (down) along world -z.
    T = g.to_optical(np.eye(4), g.PoseFrame.BODY)
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0])
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0])
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1])
    np.testing.assert_allclose(g.from_optical(T, "body"), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(g.to_optical(np.eye(4), "optical"), np.eye(4))


def test_invert_transform() -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(10, 4))
    T = g.make_transform(g.quat_wxyz_to_matrix(q), rng.normal(size=(10, 3)))
    np.testing.assert_allclose(T @ g.invert_transform(T), np.broadcast_to(np.eye(4), T.shape), atol=1e-12)


def test_validate_quaternions() -> None:
    q, off = g.validate_quaternions_wxyz(np.array([[2.0, 0, 0, 0], [1, 0, 0, 0]]))
    assert off == 1
    np.testing.assert_allclose(q[0], [1, 0, 0, 0])
    with pytest.raises(InputError, match="#1 is zero"):
        g.validate_quaternions_wxyz(np.array([[1.0, 0, 0, 0], [0, 0, 0, 0]]))
    with pytest.raises(InputError, match="not finite"):
        g.validate_quaternions_wxyz(np.array([[np.nan, 0, 0, 0]]))


def test_intrinsics() -> None:
    K = Intrinsics.from_fov(320, 240, 90.0)
    assert K.fx_px == pytest.approx(160.0)
    assert K.hfov_deg == pytest.approx(90.0)
    small = K.scaled(0.25)
    assert (small.width_px, small.height_px) == (80, 60)
    assert small.hfov_deg == pytest.approx(90.0)
    rays = K.pixel_rays()
    assert rays.shape == (240, 320, 3)
    with pytest.raises(InputError, match="field of view"):
        Intrinsics(320, 240, 0.01, 0.01, 160, 120)
    with pytest.raises(InputError, match="width_px"):
        Intrinsics(0, 240, 100, 100, 0, 120)
    with pytest.raises(InputError, match="fov_deg"):
        Intrinsics.from_fov(320, 240, 200)
