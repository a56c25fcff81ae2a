"""Generators (trajectory_gen) and resampling / world-up normalization (resample)."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core import geometry as g
from srender_ros.core.resample import (
    WORLD_UP_AXES,
    interpolate_pose,
    normalize_world_up,
    parse_world_up,
    resample,
    rotation_zup_from_world,
)
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.trajectory_gen import GENERATORS, car, drone, make_trajectory, orbit, rotations_from_ypr
from srender_ros.errors import TrajectoryError

RANDOM = ("walk", "random_smooth", "drone", "car", "drive", "handheld")


def _rot_angle(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """[N] angles (rad) between rotation stacks."""
    c = (np.einsum("nji,nji->n", Ra, Rb) - 1.0) / 2.0
    return np.arccos(np.clip(c, -1.0, 1.0))


# ---------------------------------------------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------------------------------------------


def test_registry_has_every_generator() -> None:
    assert set(GENERATORS) == {"orbit", "walk", "pan", "figure_eight", "random_smooth", "drone", "car", "drive",
                               "handheld"}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_generator_rate_duration_and_upright(name: str) -> None:
    t = make_trajectory(name, fps=15.0, duration_s=4.0, seed=3, start_ns=1_000)
    assert isinstance(t, Trajectory) and len(t) == 60
    assert int(t.stamps_ns[0]) == 1_000
    assert set(np.diff(t.stamps_ns).tolist()) <= {66_666_666, 66_666_667}
    R = t.T_world_cam[:, :3, :3]
    # Never upside down: the image's down axis (optical y) points down in the z-up world.
    assert (R[:, 2, 1] < -0.5).all()
    # Roughly horizontal view (drone looks 10 degrees down, orbit looks at a point below the camera).
    assert (np.abs(R[:, 2, 2]) < np.sin(np.radians(30))).all()


@pytest.mark.parametrize("name", RANDOM)
def test_random_generators_are_seeded(name: str) -> None:
    a = make_trajectory(name, fps=10.0, duration_s=3.0, seed=1)
    b = make_trajectory(name, fps=10.0, duration_s=3.0, seed=1)
    c = make_trajectory(name, fps=10.0, duration_s=3.0, seed=2)
    np.testing.assert_array_equal(a.T_world_cam, b.T_world_cam)
    assert not np.allclose(a.T_world_cam, c.T_world_cam)


@pytest.mark.parametrize(("name", "max_deg"), [("walk", 45.0), ("figure_eight", 1.0), ("random_smooth", 25.0),
                                               ("drone", 3.0), ("car", 3.0)])
def test_camera_looks_along_the_motion(name: str, max_deg: float) -> None:
    t = make_trajectory(name, fps=30.0, duration_s=10.0, seed=0)
    v = np.gradient(t.positions_m, axis=0)[:, :2]
    fwd = t.T_world_cam[:, :2, 2]
    cos = np.sum(v * fwd, axis=1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(fwd, axis=1))
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < max_deg


def test_orbit_looks_at_its_centre() -> None:
    t = orbit(fps=20.0, duration_s=5.0, radius_m=4.0, height_m=2.0, target_height_m=0.5, center_xy_m=(1.0, -2.0))
    to_centre = np.array([1.0, -2.0, 0.5]) - t.positions_m
    to_centre /= np.linalg.norm(to_centre, axis=1, keepdims=True)
    np.testing.assert_allclose(np.sum(t.T_world_cam[:, :3, 2] * to_centre, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(t.positions_m[:, :2] - [1.0, -2.0], axis=1), 4.0)
    np.testing.assert_allclose(t.positions_m[:, 2], 2.0)


def test_pan_rotates_in_place() -> None:
    t = make_trajectory("pan", fps=10.0, duration_s=4.0, sweep_deg=90.0, height_m=1.2)
    np.testing.assert_allclose(t.positions_m, np.tile([0.0, 0.0, 1.2], (40, 1)))
    yaw = np.degrees(np.unwrap(np.arctan2(t.T_world_cam[:, 1, 2], t.T_world_cam[:, 0, 2])))
    np.testing.assert_allclose(np.diff(yaw), 90.0 / 40, atol=1e-9)


def test_drone_banks_into_turns() -> None:
    t = drone(fps=30.0, duration_s=30.0, seed=5, max_turn_rate_dps=20.0)
    assert (t.positions_m[:, 2] > 10.0).all()
    fwd = t.T_world_cam[:, :3, 2]
    yaw_rate = np.gradient(np.unwrap(np.arctan2(fwd[:, 1], fwd[:, 0])))
    right_up = t.T_world_cam[:, 2, 0]  # z component of the image's right axis
    left, right = yaw_rate > 1e-3, yaw_rate < -1e-3
    assert left.any() and right.any()
    assert (right_up[left] > 0).all() and (right_up[right] < 0).all()


def test_car_drives_500_m_on_the_ground() -> None:
    t = car(fps=10.0, duration_s=42.0, seed=0)
    length = np.linalg.norm(np.diff(t.positions_m, axis=0), axis=1).sum()
    assert 495.0 < length < 510.0
    np.testing.assert_allclose(t.positions_m[:, 2], 1.4)


def test_handheld_stays_small_like_freiburg1_xyz() -> None:
    t = make_trajectory("handheld", fps=30.0, duration_s=20.0, seed=0)
    span = t.positions_m.max(axis=0) - t.positions_m.min(axis=0)
    assert (span < 0.45).all() and (span > 0.05).all()
    assert (t.T_world_cam[:, 0, 2] > 0.9).all()  # keeps looking ahead (+x)


@pytest.mark.parametrize("world_up", WORLD_UP_AXES)
def test_world_up_argument_expresses_the_same_path(world_up: str) -> None:
    zup = make_trajectory("walk", fps=10.0, duration_s=2.0, seed=4)
    other = make_trajectory("walk", fps=10.0, duration_s=2.0, seed=4, world_up=world_up)
    back, _ = normalize_world_up(other, world_up)
    np.testing.assert_allclose(back.T_world_cam, zup.T_world_cam, atol=1e-12)
    up = np.zeros(3)
    up["xyz".index(world_up[1])] = 1.0 if world_up[0] == "+" else -1.0
    # The image's down axis points against that world's up.
    assert (other.T_world_cam[:, :3, 1] @ up < -0.5).all()


def test_rotations_from_ypr_conventions() -> None:
    R = rotations_from_ypr(np.array([0.0, np.pi / 2, 0.0]), np.array([0.0, 0.0, 0.3]), np.array([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(R[0], g.R_BODY_OPTICAL, atol=1e-12)  # yaw 0: looks along +x, like the REP 103 body
    np.testing.assert_allclose(R[1][:, 2], [0, 1, 0], atol=1e-12)  # yaw 90 deg: looks along +y
    assert R[2][2, 2] == pytest.approx(np.sin(0.3))  # positive pitch looks up


def test_generator_bad_arguments() -> None:
    with pytest.raises(TrajectoryError, match="unknown trajectory generator 'spiral'; valid: orbit, walk"):
        make_trajectory("spiral")
    with pytest.raises(TrajectoryError, match="generator 'orbit' has no parameter speed_mps; valid: radius_m"):
        make_trajectory("orbit", speed_mps=3.0)
    with pytest.raises(TrajectoryError, match=r"fps: 0\.0 must be a positive number"):
        make_trajectory("walk", fps=0.0)
    with pytest.raises(TrajectoryError, match="duration_s: nan must be a positive number"):
        make_trajectory("pan", duration_s=float("nan"))
    with pytest.raises(TrajectoryError, match="radius_m: -1"):
        make_trajectory("figure-eight", radius_m=-1.0)
    with pytest.raises(TrajectoryError, match="world_up: 'up' is not an axis"):
        make_trajectory("orbit", world_up="up")
    # Shorter than one frame still gives the one pose a renderer needs.
    assert len(make_trajectory("orbit", fps=10.0, duration_s=0.01)) == 1


# ---------------------------------------------------------------------------------------------------------------
# Resampling and world up
# ---------------------------------------------------------------------------------------------------------------


def test_resample_100hz_orbit_to_30hz_and_back() -> None:
    src = orbit(fps=100.0, duration_s=20.0, radius_m=3.0)
    r30 = resample(src, rate_hz=30.0)
    assert int(r30.stamps_ns[0]) == 0 and len(r30) == 600
    inside = src.stamps_ns <= r30.stamps_ns[-1]
    back = resample(r30, stamps_ns=src.stamps_ns[inside])
    # Chords of a 3 m circle at 30 Hz (one turn in 20 s) sag by 3 * (1 - cos(pi / 600)) = 4e-5 m.
    assert np.abs(back.positions_m - src.positions_m[inside]).max() < 1e-4
    assert _rot_angle(back.T_world_cam[:, :3, :3], src.T_world_cam[inside, :3, :3]).max() < 1e-4
    with pytest.raises(TrajectoryError, match=r"stamp #1997 \(19970000000 ns\) is outside the trajectory's span"):
        resample(r30, stamps_ns=src.stamps_ns)
    clamped = resample(r30, stamps_ns=src.stamps_ns, clamp=True)
    np.testing.assert_allclose(clamped.T_world_cam[-1], r30.T_world_cam[-1], atol=1e-12)


def test_interpolate_pose_hits_samples_and_slerps_midpoint() -> None:
    R1 = g.quat_wxyz_to_matrix(np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]))  # 90 deg about z
    T = np.stack([np.eye(4), g.make_transform(R1, [2.0, 0, 0])])
    t = Trajectory(np.array([1_000, 3_000]), T)
    out = interpolate_pose(t, np.array([1_000, 2_000, 3_000, 1_500]))
    np.testing.assert_allclose(out[[0, 2]], T, atol=1e-12)
    R_half = g.quat_wxyz_to_matrix(np.array([np.cos(np.pi / 8), 0, 0, np.sin(np.pi / 8)]))
    np.testing.assert_allclose(out[1], g.make_transform(R_half, [1.0, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(out[3, :3, 3], [0.5, 0, 0])
    with pytest.raises(TrajectoryError, match="outside the trajectory's span"):
        interpolate_pose(t, np.array([999]))
    with pytest.raises(TrajectoryError, match="integer nanoseconds"):
        interpolate_pose(t, np.array([1.5e3]))


def test_resample_arguments_and_single_pose() -> None:
    t = make_trajectory("pan", fps=10.0, duration_s=1.0)
    with pytest.raises(TrajectoryError, match="exactly one of rate_hz or stamps_ns"):
        resample(t)
    with pytest.raises(TrajectoryError, match="exactly one of rate_hz or stamps_ns"):
        resample(t, rate_hz=5.0, stamps_ns=t.stamps_ns)
    with pytest.raises(TrajectoryError, match=r"rate_hz: -5\.0 is not a positive rate"):
        resample(t, rate_hz=-5.0)
    one = t.subset([3])
    r = resample(one, rate_hz=30.0)
    assert len(r) == 1
    np.testing.assert_allclose(r.T_world_cam, one.T_world_cam)
    # Exact multiples keep the last stamp: 0.9 s at 10 Hz -> 10 poses, at 20 Hz -> 19.
    assert len(resample(t, rate_hz=10.0)) == 10 and len(resample(t, rate_hz=20.0)) == 19


@pytest.mark.parametrize("world_up", WORLD_UP_AXES)
def test_world_up_rotations_are_proper_and_map_up_to_z(world_up: str) -> None:
    R = rotation_zup_from_world(world_up)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    up = np.zeros(3)
    up["xyz".index(world_up[1])] = 1.0 if world_up[0] == "+" else -1.0
    np.testing.assert_allclose(R @ up, [0, 0, 1])


def test_kitti_style_world_normalizes_to_ros_axes() -> None:
    # A camera at the KITTI world origin (optical = world axes) looks along +z_kitti with y_kitti down;
    # in the z-up frame it must look along +x with its image down along -z: the REP 103 body-to-optical rotation.
    t = Trajectory(np.array([0]), np.eye(4)[None])
    zup, R = normalize_world_up(t, "-y")
    np.testing.assert_allclose(R, g.R_BODY_OPTICAL)
    np.testing.assert_allclose(zup.T_world_cam[0, :3, :3], g.R_BODY_OPTICAL, atol=1e-12)
    assert parse_world_up("Y") == "+y" and parse_world_up(" -z ") == "-z"
