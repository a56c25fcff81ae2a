"""Conversions between ROS messages and numpy / srender values, the node config and its worker queue."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path as PathMsg
from sensor_msgs.msg import CameraInfo, Image

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import PoseFrame, make_transform, quat_wxyz_to_matrix, to_optical
from srender_ros.errors import InputError, SrenderError, TrajectoryError
from srender_ros.ros import conversions as cv
from srender_ros.ros.config import PARAM_NAMES, PARAM_SPECS, NodeConfig
from srender_ros.ros.worker import KeepLatestQueue, QueueClosed, Worker

REPO = Path(__file__).resolve().parents[1]


def _random_poses(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, 4))
    return make_transform(quat_wxyz_to_matrix(q), rng.uniform(-5, 5, size=(n, 3)))


# ---- images ---------------------------------------------------------------------------------
def test_rgb_round_trip_exact_for_uint8_and_quantized_for_float() -> None:
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    msg = cv.rgb_to_image_msg(u8, 1_500_000_123, "cam", use_cv_bridge=False)
    assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == ("rgb8", 7, 5, 21, 0)
    assert msg.header.stamp.sec == 1 and msg.header.stamp.nanosec == 500_000_123 and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(cv.image_msg_to_array(msg), u8)
    f = np.array([[[0.0, 0.5, 1.0], [2.0, -1.0, np.nan]]], np.float32)
    back = cv.image_msg_to_array(cv.rgb_to_image_msg(f, 0, "cam", use_cv_bridge=False))
    np.testing.assert_array_equal(back, [[[0, 128, 255], [255, 0, 0]]])


def test_bgr_and_padded_rows_are_read_as_rgb() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr = rgb[..., ::-1]
    step = 3 * 3 + 4  # padded rows
    data = np.zeros((2, step), np.uint8)
    data[:, :9] = bgr.reshape(2, 9)
    msg = Image(height=2, width=3, encoding="bgr8", step=step, data=data.tobytes())
    np.testing.assert_array_equal(cv.image_msg_to_array(msg), rgb)
    np.testing.assert_allclose(cv.image_msg_to_rgb_float(msg), rgb / 255.0)


def test_depth_round_trip_keeps_nan_and_metres() -> None:
    d = np.array([[1.25, np.nan], [np.inf, 0.001]], np.float32)
    msg = cv.depth_to_image_msg(d, 7, "cam")
    assert (msg.encoding, msg.step) == ("32FC1", 8)
    np.testing.assert_array_equal(cv.image_msg_to_array(msg), d)


def test_bad_images_are_refused_with_a_reason() -> None:
    with pytest.raises(InputError, match="encoding 'yuv422'"):
        cv.image_msg_to_array(Image(height=1, width=1, encoding="yuv422", step=2, data=b"\0\0"))
    with pytest.raises(InputError, match="data has 5 bytes"):
        cv.image_msg_to_array(Image(height=2, width=1, encoding="rgb8", step=3, data=b"\0" * 5))
    with pytest.raises(InputError, match="colour image"):
        cv.image_msg_to_rgb_float(Image(height=1, width=1, encoding="mono8", step=1, data=b"\0"))
    with pytest.raises(InputError, match=r"\[H, W, 3\]"):
        cv.to_uint8_rgb(np.zeros((2, 2)))


# ---- cameras --------------------------------------------------------------------------------
def test_camera_info_round_trip_and_fields() -> None:
    intr = Intrinsics(64, 48, 50.0, 51.0, 31.5, 24.5)
    msg = cv.camera_info_from_intrinsics(intr, 42, "cam_optical")
    assert msg.distortion_model == "plumb_bob" and list(msg.d) == [0.0] * 5
    np.testing.assert_array_equal(np.reshape(msg.k, (3, 3)), intr.K)
    np.testing.assert_array_equal(np.reshape(msg.r, (3, 3)), np.eye(3))
    P = np.reshape(msg.p, (3, 4))
    np.testing.assert_array_equal(P[:, :3], intr.K)
    np.testing.assert_array_equal(P[:, 3], 0)
    assert (msg.width, msg.height, msg.header.frame_id, cv.stamp_to_ns(msg.header.stamp)) == (64, 48, "cam_optical", 42)
    assert cv.intrinsics_from_camera_info(msg) == intr


@pytest.mark.parametrize(("k", "d", "size", "match"), [
    ([0, 0, 32, 0, 0, 24, 0, 0, 1], [], (64, 48), "focal"),
    ([1e-3, 0, 32, 0, 1e-3, 24, 0, 0, 1], [], (64, 48), "field of view"),
    ([50, 0, 32, 0, 50, 24, 0, 0, 1], [], (0, 48), "width_px"),
    ([50, 0, 32, 0, 50, 24, 0, 0, 1], [], (100000, 48), "width_px"),
    ([50, 0, 32, 0, 50, 24, 0, 0, 2], [], (64, 48), "pinhole camera matrix"),
    ([math.nan, 0, 32, 0, 50, 24, 0, 0, 1], [], (64, 48), "pinhole camera matrix"),
    ([50, 0, 32, 0, 50, 24, 0, 0, 1], [0.1, 0, 0, 0, 0], (64, 48), "distortion"),
])
def test_absurd_camera_info_is_refused(k: list[float], d: list[float], size: tuple[int, int], match: str) -> None:
    msg = CameraInfo(width=size[0], height=size[1], k=[float(v) for v in k], d=[float(v) for v in d])
    with pytest.raises(InputError, match=match):
        cv.intrinsics_from_camera_info(msg)


# ---- poses and paths ------------------------------------------------------------------------
@pytest.mark.parametrize("frame", [PoseFrame.BODY, PoseFrame.OPTICAL])
def test_path_round_trip_in_both_conventions(frame: PoseFrame) -> None:
    T = _random_poses(6)
    stamps = np.arange(6, dtype=np.int64) * 33_333_333 + 5 * 10**9
    msg = cv.path_from_arrays(stamps, T, "map", frame)
    assert msg.header.frame_id == "map" and len(msg.poses) == 6
    traj = cv.trajectory_from_path(msg, frame)
    np.testing.assert_array_equal(traj.stamps_ns, stamps)
    np.testing.assert_allclose(traj.T_world_cam, T, atol=1e-12)
    assert traj.frame_id == "map"


def test_body_pose_maps_to_optical_axes() -> None:
    # Identity body pose: camera looks along world +x, so optical z (forward) must be world +x.
    msg = PathMsg()
    msg.header.frame_id = "world"
    ps = PoseStamped()
    ps.pose.orientation.w = 1.0
    ps.header.stamp.sec = 3
    msg.poses = [ps]
    T = cv.trajectory_from_path(msg, "body").T_world_cam[0]
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0], atol=1e-12)  # optical x (right) = -body y (left)
    np.testing.assert_allclose(T, to_optical(np.eye(4), "body"))


def test_equal_stamps_are_synthesized_at_path_rate() -> None:
    T = _random_poses(4)
    msg = cv.path_from_arrays(np.zeros(4, np.int64), T, "map")
    msg.header.stamp.sec = 10
    traj = cv.trajectory_from_path(msg, "optical", rate_hz=10.0)
    np.testing.assert_array_equal(traj.stamps_ns, 10 * 10**9 + np.arange(4) * 100_000_000)


def _path(n: int = 3) -> PathMsg:
    return cv.path_from_arrays(np.arange(n, dtype=np.int64) * 10**8 + 10**9, _random_poses(n), "map")


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda p: setattr(p, "poses", []), "empty"),
    (lambda p: setattr(p.poses[1].pose.position, "y", math.nan), "pose #1: position"),
    (lambda p: setattr(p.poses[2].pose.position, "x", math.inf), "pose #2: position"),
    (lambda p: [setattr(p.poses[0].pose.orientation, a, 0.0) for a in "xyzw"], "#0 is zero"),
    (lambda p: setattr(p.poses[1].pose.orientation, "w", math.nan), "#1 is not finite"),
    (lambda p: setattr(p.header, "frame_id", ""), "frame_id is empty"),
    (lambda p: setattr(p.poses[2].header, "frame_id", "odom"), "pose #2: frame_id 'odom' differs"),
    (lambda p: setattr(p.poses[2].header.stamp, "sec", 0), "stamps must increase"),
])
def test_bad_paths_are_refused_naming_the_problem(mutate, match: str) -> None:  # type: ignore[no-untyped-def]
    msg = _path()
    mutate(msg)
    with pytest.raises(TrajectoryError, match=match):
        cv.trajectory_from_path(msg, "body")


def test_world_frame_is_enforced_when_set() -> None:
    msg = _path()
    assert cv.trajectory_from_path(msg, "body", world_frame_id="/map").frame_id == "map"
    with pytest.raises(TrajectoryError, match="not the world frame 'world'"):
        cv.trajectory_from_path(msg, "body", world_frame_id="world")


def test_pose_stamped_round_trip_and_errors() -> None:
    T = _random_poses(1)[0]
    msg = cv.pose_stamped_from_optical(123, T, "map", "body")
    stamp, T_back, frame = cv.pose_stamped_to_optical(msg, "body")
    assert (stamp, frame) == (123, "map")
    np.testing.assert_allclose(T_back, T, atol=1e-12)
    msg.pose.orientation.x = msg.pose.orientation.y = msg.pose.orientation.z = msg.pose.orientation.w = 0.0
    with pytest.raises(TrajectoryError, match="zero"):
        cv.pose_stamped_to_optical(msg, "body")
    msg.header.frame_id = ""
    with pytest.raises(TrajectoryError, match="frame_id is empty"):
        cv.pose_stamped_to_optical(msg, "body")


def test_negative_and_large_stamps_round_trip() -> None:
    for ns in (0, 1, 999_999_999, 1_700_000_000_123_456_789, -1):
        assert cv.stamp_to_ns(cv.ns_to_stamp(ns)) == ns


# ---- config ---------------------------------------------------------------------------------
def test_yaml_lists_every_parameter_with_its_default() -> None:
    doc = yaml.safe_load((REPO / "config" / "srender.yaml").read_text())
    params = doc["/**"]["ros__parameters"]
    from srender_ros.ros.sensor_config import SENSOR_PARAMS

    assert tuple(params) == PARAM_NAMES + tuple(SENSOR_PARAMS)
    assert NodeConfig.from_params({k: params[k] for k in PARAM_NAMES}) == NodeConfig()
    assert {k: params[k] for k in SENSOR_PARAMS} == {k: v[0] for k, v in SENSOR_PARAMS.items()}


@pytest.mark.parametrize(("changes", "match"), [
    ({"width": 0}, "width"),
    ({"fov_deg": 200.0}, "fov_deg"),
    ({"publish_mode": "slow"}, r"publish_mode.*fast"),
    ({"pose_frame": "camera"}, "pose_frame"),
    ({"environment": "  "}, "environment"),
    ({"device": "gpu"}, "device"),
    ({"generator": "diffusers"}, "model_path"),
    ({"coverage_threshold": math.nan}, "finite"),
    ({"width": 64.0}, "expected a int"),
    ({"publish_depth": 1}, "expected a bool"),
    ({"no_such": 1}, "unknown parameter"),
])
def test_config_refuses_bad_values_naming_the_parameter(changes: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        NodeConfig().with_changes(changes)


def test_node_doc_lists_every_parameter() -> None:
    doc = (REPO / "docs" / "node.md").read_text()
    rows = {line.split("|")[1].strip().strip("`") for line in doc.splitlines() if line.startswith("| `")}
    from srender_ros.ros.sensor_config import CAMERA_KEYS, SENSOR_PARAMS

    assert set(PARAM_NAMES) | set(SENSOR_PARAMS) <= rows
    assert {f"<name>.{k}" for k in CAMERA_KEYS} <= rows


def test_config_specs_have_descriptions_and_coerce_ints_to_floats() -> None:
    assert all(s.description for s in PARAM_SPECS)
    cfg = NodeConfig.from_params({"fov_deg": 60, "width": 64})
    assert isinstance(cfg.fov_deg, float) and cfg.fov_deg == 60.0


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    cfg = NodeConfig(generator="diffusers", model_path=str(tmp_path / "nope"), depth_model_path=str(tmp_path))
    with pytest.raises(InputError, match=r"model_path.*no such folder"):
        cfg.check_model_folders()
    NodeConfig(generator="diffusers", model_path=str(tmp_path), depth_model_path=str(tmp_path)).check_model_folders()
    with pytest.raises(InputError, match="depth_model_path"):
        NodeConfig(generator="diffusers", model_path=str(tmp_path))


# ---- worker ---------------------------------------------------------------------------------
def test_keep_latest_queue_drops_oldest_and_closes() -> None:
    q: KeepLatestQueue[int] = KeepLatestQueue(2)
    assert q.put(1) is None and q.put(2) is None
    assert q.put(3) == 1
    assert q.get(0) == 2 and q.get(0) == 3 and q.get(0.01) is None
    q.put(4)
    q.put(5)
    assert q.set_maxlen(1) == [4]
    assert q.close() == [5]
    with pytest.raises(QueueClosed):
        q.get()
    with pytest.raises(QueueClosed):
        q.put(6)


def test_worker_survives_errors_and_reports_them() -> None:
    q: KeepLatestQueue[int] = KeepLatestQueue(10)
    handled: list[int] = []
    errors: list[tuple[int, str]] = []
    done = threading.Event()

    def handle(item: int) -> None:
        if item == 1:
            raise InputError("bad one")
        if item == 2:
            raise ZeroDivisionError("bug")
        handled.append(item)
        if item == 3:
            done.set()

    w: Worker[int] = Worker("t", q, handle, lambda item, exc: errors.append((item, str(exc))))
    w.start()
    for i in (1, 2, 3):
        q.put(i)
    assert done.wait(10)
    q.close()
    assert w.join(10)
    assert handled == [3]
    assert errors == [(1, "bad one"), (2, "bug")]
    assert isinstance(InputError("x"), SrenderError)
