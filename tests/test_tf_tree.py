"""TfBuffer: composing static and moving links through a tree, interpolation, edges, errors."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core.geometry import invert_transform, make_transform
from srender_ros.engine.tf_buffer import OutsidePolicy, TfBuffer
from srender_ros.errors import BagError

S = 1_000_000_000


def rot(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues: [3, 3] rotation by ``angle`` rad about ``axis``."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


class Motion:
    """An analytic link: translation linear in t, rotation at constant rate about a fixed axis.

    Linear interpolation + slerp between any two samples of such a motion is exact, so lookups can be
    compared with the closed form at any time in between.
    """

    def __init__(self, t0: list[float], v: list[float], axis: list[float], R0_angle: float, w: float) -> None:
        self.t0, self.v = np.array(t0, float), np.array(v, float)
        self.axis, self.a0, self.w = np.array(axis, float), R0_angle, w

    def T(self, t_s: float) -> np.ndarray:
        return make_transform(rot(self.axis, self.a0 + self.w * t_s), self.t0 + self.v * t_s)


MAP_ODOM = Motion([1.0, -2.0, 0.0], [0.05, 0.02, 0.0], [0, 0, 1], 0.3, 0.1)
ODOM_BASE = Motion([0.5, 0.0, 0.0], [0.4, -0.1, 0.0], [0, 0, 1], -0.5, 0.35)
T_BASE_MAST = make_transform(rot(np.array([0, 1, 0]), 0.2), [0.1, 0.0, 0.8])
T_MAST_CAM = make_transform(rot(np.array([1, 0, 0]), -0.1), [0.05, 0.02, 0.3])
T_CAM_OPT = make_transform(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), [0, 0, 0])
T_BASE_LIDAR = make_transform(rot(np.array([1, 1, 0]), 0.4), [-0.2, 0.0, 0.5])


def robot_buffer() -> TfBuffer:
    """map -(moving)-> odom -(moving)-> base_link -> mast -> camera_link -> camera_optical_frame, base_link -> lidar."""
    buf = TfBuffer()
    # The two moving links are sampled at different, irregular times and given out of order.
    t_map = np.array([0.0, 1.0, 2.5, 4.0, 10.0])
    t_odom = np.array([0.5, 0.7, 1.9, 3.3, 6.0, 9.5])
    for t in t_map[::-1]:
        buf.add_dynamic("map", "odom", int(t * S), MAP_ODOM.T(t))
    for t in t_odom:
        buf.add_dynamic("odom", "base_link", int(t * S), ODOM_BASE.T(t))
    buf.add_static("base_link", "mast", T_BASE_MAST)
    buf.add_static("mast", "camera_link", T_MAST_CAM)
    buf.add_static("camera_link", "camera_optical_frame", T_CAM_OPT)
    buf.add_static("base_link", "lidar", T_BASE_LIDAR)
    return buf


def expected_map_cam(t: float) -> np.ndarray:
    return MAP_ODOM.T(t) @ ODOM_BASE.T(t) @ T_BASE_MAST @ T_MAST_CAM @ T_CAM_OPT


def test_lookup_through_the_tree_matches_the_analytic_pose_between_samples() -> None:
    buf = robot_buffer()
    times = np.array([0.5, 0.6, 1.23, 2.5, 3.0, 5.55, 9.5])
    T = buf.lookup("map", "camera_optical_frame", (times * S).astype(np.int64))
    assert T.shape == (len(times), 4, 4)
    for i, t in enumerate(times):
        np.testing.assert_allclose(T[i], expected_map_cam(t), atol=1e-9)


def test_reverse_lookup_and_sibling_frames() -> None:
    buf = robot_buffer()
    st = np.array([int(1.7 * S), int(4.2 * S)])
    T_cam_map = buf.lookup("camera_optical_frame", "map", st)
    np.testing.assert_allclose(T_cam_map, invert_transform(buf.lookup("map", "camera_optical_frame", st)), atol=1e-9)
    # lidar and camera share base_link: the moving links cancel, the result is static.
    T_lidar_cam = buf.lookup("lidar", "camera_optical_frame", st)
    expect = invert_transform(T_BASE_LIDAR) @ T_BASE_MAST @ T_MAST_CAM @ T_CAM_OPT
    np.testing.assert_allclose(T_lidar_cam, np.broadcast_to(expect, (2, 4, 4)), atol=1e-12)
    assert buf.chain("lidar", "camera_optical_frame") == (["camera_optical_frame", "camera_link", "mast"], ["lidar"])
    np.testing.assert_allclose(buf.lookup("mast", "mast", 0)[0], np.eye(4))


def test_span_is_the_intersection_of_the_moving_links() -> None:
    buf = robot_buffer()
    assert buf.span_ns("map", "camera_optical_frame") == (int(0.5 * S), int(9.5 * S))
    assert buf.span_ns("odom", "camera_link") == (int(0.5 * S), int(9.5 * S))
    assert buf.span_ns("map", "odom") == (0, 10 * S)
    assert buf.span_ns("base_link", "camera_optical_frame") is None  # all static


def test_edges_exact_and_outside_refused_or_clamped() -> None:
    buf = robot_buffer()
    ends = np.array([int(0.5 * S), int(9.5 * S)])
    T = buf.lookup("map", "camera_optical_frame", ends)
    np.testing.assert_allclose(T[0], expected_map_cam(0.5), atol=1e-9)
    np.testing.assert_allclose(T[1], expected_map_cam(9.5), atol=1e-9)
    with pytest.raises(BagError) as exc:
        buf.lookup("map", "camera_optical_frame", [int(9.5 * S) + 1])
    msg = str(exc.value)
    assert "'odom' -> 'base_link'" in msg and "9.500 s" in msg and "--outside clamp" in msg
    with pytest.raises(BagError):
        buf.lookup("map", "camera_optical_frame", [int(0.4 * S)], OutsidePolicy.REFUSE)
    # Clamping holds each moving link at its own nearest sample.
    T = buf.lookup("map", "camera_optical_frame", [int(-3 * S), int(12 * S)], "clamp")
    np.testing.assert_allclose(T[0], MAP_ODOM.T(0.0) @ ODOM_BASE.T(0.5) @ T_BASE_MAST @ T_MAST_CAM @ T_CAM_OPT, atol=1e-9)
    np.testing.assert_allclose(T[1], MAP_ODOM.T(10.0) @ ODOM_BASE.T(9.5) @ T_BASE_MAST @ T_MAST_CAM @ T_CAM_OPT, atol=1e-9)


def test_unknown_frame_lists_the_frames() -> None:
    buf = robot_buffer()
    with pytest.raises(BagError) as exc:
        buf.lookup("map", "camera_color_optical_frame", [S])
    msg = str(exc.value)
    assert "'camera_color_optical_frame'" in msg and "camera_optical_frame" in msg and "base_link" in msg


def test_unconnected_trees_name_the_missing_link() -> None:
    buf = robot_buffer()
    buf.add_static("world", "gps_antenna", np.eye(4))
    with pytest.raises(BagError) as exc:
        buf.lookup("world", "camera_optical_frame", [S])
    msg = str(exc.value)
    assert "root 'world'" in msg and "root 'map'" in msg and "connecting 'world' and 'map'" in msg


def test_a_frame_has_one_parent() -> None:
    buf = TfBuffer()
    buf.add_dynamic("odom", "base_link", 0, np.eye(4))
    with pytest.raises(BagError, match="two parents"):
        buf.add_dynamic("map", "base_link", 1, np.eye(4))
    with pytest.raises(BagError, match="static and a moving parent"):
        buf.add_static("odom", "base_link", np.eye(4))
    with pytest.raises(BagError, match="itself"):
        buf.add_static("a", "a", np.eye(4))
    buf.add_static("base_link", "cam", make_transform(np.eye(3), [1, 0, 0]))
    buf.add_static("base_link", "cam", make_transform(np.eye(3), [2, 0, 0]))  # a later static replaces
    np.testing.assert_allclose(buf.lookup("base_link", "cam", 5)[0, :3, 3], [2, 0, 0])


def test_duplicate_stamps_last_wins_and_single_sample_links() -> None:
    buf = TfBuffer()
    buf.add_dynamic("odom", "base", 2 * S, make_transform(np.eye(3), [9, 9, 9]))
    buf.add_dynamic("odom", "base", 0, make_transform(np.eye(3), [0, 0, 0]))
    buf.add_dynamic("odom", "base", 2 * S, make_transform(np.eye(3), [2, 0, 0]))
    np.testing.assert_allclose(buf.lookup("odom", "base", [S])[0, :3, 3], [1, 0, 0])
    np.testing.assert_array_equal(buf.link_stamps_ns("base"), [0, 2 * S])
    one = TfBuffer()
    one.add_dynamic("odom", "base", 5 * S, make_transform(np.eye(3), [1, 2, 3]))
    np.testing.assert_allclose(one.lookup("odom", "base", [5 * S])[0, :3, 3], [1, 2, 3])
    with pytest.raises(BagError, match="no data"):
        one.lookup("odom", "base", [5 * S + 1])
    np.testing.assert_allclose(one.lookup("odom", "base", [0], "clamp")[0, :3, 3], [1, 2, 3])


def test_rotation_takes_the_short_way_even_with_sign_flipped_quaternions() -> None:
    # 170 deg -> 190 deg yaw: the short way passes 180 deg, not back through 0.
    buf = TfBuffer()
    buf.add_dynamic("odom", "base", 0, make_transform(rot(np.array([0, 0, 1]), np.radians(170)), [0, 0, 0]))
    buf.add_dynamic("odom", "base", 2 * S, make_transform(rot(np.array([0, 0, 1]), np.radians(190)), [0, 0, 0]))
    R = buf.lookup("odom", "base", [S])[0, :3, :3]
    np.testing.assert_allclose(R, rot(np.array([0, 0, 1]), np.pi), atol=1e-9)


def test_moving_links_that_never_overlap_in_time() -> None:
    buf = TfBuffer()
    buf.add_dynamic("map", "odom", 0, np.eye(4))
    buf.add_dynamic("map", "odom", S, np.eye(4))
    buf.add_dynamic("odom", "base", 2 * S, np.eye(4))
    buf.add_dynamic("odom", "base", 3 * S, np.eye(4))
    with pytest.raises(BagError, match="no common time"):
        buf.span_ns("map", "base")


def test_no_transforms_at_all() -> None:
    with pytest.raises(BagError, match="none: no /tf"):
        TfBuffer().lookup("odom", "base_link", [0])
