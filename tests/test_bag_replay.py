"""Bag replay: pose sources from bags written here (MCAP and sqlite3), safe output, errors, end to end."""

from __future__ import annotations

import errno
import math
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.rosbag2 import Reader, Writer
from rosbags.typesys import get_types_from_msg

from srender_ros.bag import messages as m
from srender_ros.bag.pose_sources import (
    choose_convention,
    optical_frame_name,
    parse_extrinsic,
    track_from_pose_topic,
    track_from_tf,
)
from srender_ros.bag.reader import InputBag
from srender_ros.bag.replay import ReplayConfig, plan_replay, render_stamps
from srender_ros.bag.writer import OutputBag, Storage
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import R_BODY_OPTICAL, T_BODY_OPTICAL, PoseFrame, make_transform, to_optical
from srender_ros.engine.tf_buffer import OutsidePolicy
from srender_ros.errors import BagError, InputError

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a realistic epoch, so stamps need all 64 bits
STORAGES = [Storage.MCAP, Storage.SQLITE3]
CUSTOM_MSG = "my_robot_msgs/msg/Battery"
CUSTOM_DEF = "float32 voltage\nstring[] cells\n"


def yaw(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def base_pose(t_s: float) -> np.ndarray:
    """odom <- base_link: a robot driving along x while turning slowly (linear + constant yaw rate)."""
    return make_transform(yaw(0.2 + 0.15 * t_s), [1.0 + 0.5 * t_s, -0.3 + 0.1 * t_s, 0.0])


T_BASE_MAST = make_transform(np.eye(3), [0.1, 0.0, 0.6])
T_MAST_CAM = make_transform(yaw(0.1), [0.05, 0.0, 0.4])  # camera_link: a body frame
T_CAM_OPT = make_transform(R_BODY_OPTICAL, [0, 0, 0])


class BagBuilder:
    """Messages to write into a test bag with rosbags: (topic, type, log time, value or raw bytes)."""

    def __init__(self) -> None:
        self.store = m.make_typestore()
        self.store.register(get_types_from_msg(CUSTOM_DEF, CUSTOM_MSG))
        self.records: list[tuple[str, str, int, Any]] = []

    def add(self, topic: str, msgtype: str, log_ns: int, msg: Any) -> None:
        self.records.append((topic, msgtype, log_ns, msg))

    def tf(self, topic: str, stamp_ns: int, parent: str, child: str, T: np.ndarray, log_ns: int | None = None) -> None:
        msg = m.tf_message(self.store, stamp_ns, parent, child, T)
        self.add(topic, m.TF_MESSAGE, stamp_ns if log_ns is None else log_ns, msg)

    def pose_stamped(self, stamp_ns: int, frame: str, T: np.ndarray) -> Any:
        return self.store.types["geometry_msgs/msg/PoseStamped"](header=m.header(self.store, stamp_ns, frame),
                                                                 pose=self.pose(T))

    def pose(self, T: np.ndarray) -> Any:
        tr = m.matrix_to_transform_msg(self.store, T)
        P = self.store.types
        return P["geometry_msgs/msg/Pose"](
            position=P["geometry_msgs/msg/Point"](x=tr.translation.x, y=tr.translation.y, z=tr.translation.z),
            orientation=tr.rotation)

    def write(self, path: Path, storage: Storage) -> Path:
        with Writer(path, version=9, storage_plugin=storage.plugin) as w:
            conns: dict[tuple[str, str], Any] = {}
            for topic, msgtype, log_ns, msg in sorted(self.records, key=lambda r: r[2]):
                key = (topic, msgtype)
                if key not in conns:
                    conns[key] = w.add_connection(topic, msgtype, typestore=self.store)
                data = msg if isinstance(msg, bytes) else self.store.serialize_cdr(msg, msgtype)
                w.write(conns[key], log_ns, data)
        return path


def robot_bag(tmp_path: Path, storage: Storage, name: str = "in") -> Path:
    """/tf odom->base_link at 10 Hz for 4 s, /tf_static base_link->mast->camera_link->camera_optical_frame,
    a custom-typed /battery topic and a /chatter String."""
    b = BagBuilder()
    b.tf("/tf_static", T0, "base_link", "mast", T_BASE_MAST)
    b.tf("/tf_static", T0, "mast", "camera_link", T_MAST_CAM)
    b.tf("/tf_static", T0, "camera_link", "camera_optical_frame", T_CAM_OPT)
    for k in range(41):
        t = k * 0.1
        b.tf("/tf", T0 + int(round(t * S)), "odom", "base_link", base_pose(t), log_ns=T0 + int(round(t * S)) + 3_000_000)
    Battery = b.store.types[CUSTOM_MSG]
    for k in range(5):
        b.add("/battery", CUSTOM_MSG, T0 + k * S + 1, Battery(voltage=np.float32(12.0 - k), cells=[f"c{k}", "x"]))
    b.add("/chatter", "std_msgs/msg/String", T0 + 2 * S, b.store.types["std_msgs/msg/String"](data="hello"))
    return b.write(tmp_path / name, storage)


def expected_optical(t_s: float) -> np.ndarray:
    return base_pose(t_s) @ T_BASE_MAST @ T_MAST_CAM @ T_CAM_OPT


# -- pose sources ----------------------------------------------------------------------------
@pytest.mark.parametrize("storage", STORAGES)
def test_tf_source_composes_the_chain_and_interpolates(tmp_path: Path, storage: Storage) -> None:
    path = robot_bag(tmp_path, storage)
    store = m.make_typestore()
    with InputBag(path) as bag:
        track = track_from_tf(bag, store, "odom", "camera_optical_frame")
        body = track_from_tf(bag, store, "odom", "camera_link")
    assert track.convention is PoseFrame.OPTICAL and track.optical_frame == "camera_optical_frame"
    assert track.static_link is None
    assert track.span_ns == (T0, T0 + 4 * S) and len(track.natural_stamps_ns) == 41
    times = np.array([0.0, 0.05, 1.234, 3.99, 4.0])
    st = T0 + np.rint(times * S).astype(np.int64)
    T = track.poses(st)
    for i, t in enumerate(times):
        np.testing.assert_allclose(T[i], expected_optical(t), atol=1e-6)
    # camera_link is a body frame: by default converted to optical, which is the same camera here.
    assert body.convention is PoseFrame.BODY and body.optical_frame == "camera_optical_frame"
    np.testing.assert_allclose(body.poses(st), T, atol=1e-9)
    assert body.static_link is None  # camera_optical_frame is already in the TF tree
    with pytest.raises(BagError, match=r"no data at .*--outside clamp"):
        track.poses(np.array([T0 - 1]))
    np.testing.assert_allclose(track.poses(np.array([T0 + 9 * S]), "clamp")[0], expected_optical(4.0), atol=1e-6)


def test_tf_source_with_extrinsic_and_derived_optical_frame(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.MCAP)
    ext = "0.2 0.0 1.0 0 0 0.3"  # x y z roll pitch yaw
    with InputBag(path) as bag:
        track = track_from_tf(bag, m.make_typestore(), "odom", "base_link", parse_extrinsic(ext), camera_name="front")
    assert track.convention is PoseFrame.BODY and track.optical_frame == "front_optical_frame"
    T_ext = make_transform(yaw(0.3), [0.2, 0.0, 1.0])
    np.testing.assert_allclose(track.poses(np.array([T0 + S]))[0], base_pose(1.0) @ T_ext @ T_BODY_OPTICAL, atol=1e-6)
    parent, child, T_link = track.static_link  # type: ignore[misc]
    assert (parent, child) == ("base_link", "front_optical_frame")
    np.testing.assert_allclose(T_link, T_ext @ T_BODY_OPTICAL, atol=1e-12)


def test_extrinsic_parsing_and_convention_choice() -> None:
    np.testing.assert_allclose(parse_extrinsic("1 2 3 0 0 0 1"), make_transform(np.eye(3), [1, 2, 3]))
    np.testing.assert_allclose(parse_extrinsic("1,2,3, 0,0,1.5707963267948966")[:3, :3], yaw(math.pi / 2), atol=1e-12)
    # roll-pitch-yaw is fixed-axis XYZ, as static_transform_publisher: R = Rz(yaw) Ry(pitch) Rx(roll)
    T = parse_extrinsic("0 0 0 0.1 0.2 0.3")
    q = m.matrix_to_transform_msg(m.make_typestore(), T).rotation
    np.testing.assert_allclose(parse_extrinsic(f"0 0 0 {q.x} {q.y} {q.z} {q.w}"), T, atol=1e-12)
    ca, sa = math.cos(0.2), math.sin(0.2)
    Ry = np.array([[ca, 0, sa], [0, 1, 0], [-sa, 0, ca]])
    cr, sr = math.cos(0.1), math.sin(0.1)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    np.testing.assert_allclose(T[:3, :3], yaw(0.3) @ Ry @ Rx, atol=1e-12)
    for bad in ("1 2 3", "a b c d e f", "0 0 0 0 0 0 0", "1 2 3 4 5 nan"):
        with pytest.raises(InputError, match="--extrinsic"):
            parse_extrinsic(bad)
    assert choose_convention("camera_color_optical_frame", False, None) is PoseFrame.OPTICAL
    assert choose_convention("camera_link", False, None) is PoseFrame.BODY
    assert choose_convention("camera_optical_frame", True, None) is PoseFrame.BODY
    assert choose_convention("camera_link", False, "optical") is PoseFrame.OPTICAL
    assert optical_frame_name("camera_link") == "camera_optical_frame"
    assert optical_frame_name("base_footprint") == "base_footprint_optical_frame"


def pose_topic_bag(tmp_path: Path, storage: Storage, kind: str) -> tuple[Path, list[float]]:
    """A bag whose /pose topic has poses of base_pose(t) in 'odom' as message type ``kind``."""
    b = BagBuilder()
    P = b.store.types
    times = [0.0, 0.4, 1.0, 1.6, 2.0]
    if kind == "nav_msgs/msg/Path":
        poses = [b.pose_stamped(T0 + int(t * S), "odom", base_pose(t)) for t in times]
        # Two Path messages: the second re-plans the last two poses; a later message wins on equal stamps.
        b.add("/pose", kind, T0, P[kind](header=m.header(b.store, T0, "odom"), poses=poses[:3] +
                                         [b.pose_stamped(T0 + int(t * S), "odom", np.eye(4)) for t in times[3:]]))
        b.add("/pose", kind, T0 + S, P[kind](header=m.header(b.store, T0 + S, "odom"), poses=poses[3:]))
    for t in times if kind != "nav_msgs/msg/Path" else []:
        st, T = T0 + int(t * S), base_pose(t)
        hdr = m.header(b.store, st, "odom")
        if kind == "nav_msgs/msg/Odometry":
            cov = P["geometry_msgs/msg/PoseWithCovariance"](pose=b.pose(T), covariance=np.zeros(36))
            tw = P["geometry_msgs/msg/TwistWithCovariance"](
                twist=P["geometry_msgs/msg/Twist"](linear=P["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                                                   angular=P["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
                covariance=np.zeros(36))
            msg = P[kind](header=hdr, child_frame_id="base_link", pose=cov, twist=tw)
        elif kind == "geometry_msgs/msg/PoseStamped":
            msg = b.pose_stamped(st, "odom", T)
        elif kind == "geometry_msgs/msg/PoseWithCovarianceStamped":
            msg = P[kind](header=hdr, pose=P["geometry_msgs/msg/PoseWithCovariance"](pose=b.pose(T), covariance=np.zeros(36)))
        else:
            msg = P[kind](header=hdr, child_frame_id="base_link", transform=m.matrix_to_transform_msg(b.store, T))
        b.add("/pose", kind, st + 1000, msg)
    return b.write(tmp_path / "pose_in", storage), times


POSE_KINDS = ["nav_msgs/msg/Odometry", "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped",
              "geometry_msgs/msg/TransformStamped", "nav_msgs/msg/Path"]


@pytest.mark.parametrize("kind", POSE_KINDS)
def test_pose_topic_sources(tmp_path: Path, kind: str) -> None:
    storage = STORAGES[POSE_KINDS.index(kind) % 2]
    path, times = pose_topic_bag(tmp_path, storage, kind)
    T_ext = parse_extrinsic("0.3 0 0.9 0 0 0 1")
    with InputBag(path) as bag:
        track = track_from_pose_topic(bag, m.make_typestore(), "/pose", None, T_ext)
    assert track.fixed_frame == "odom" and track.convention is PoseFrame.BODY
    assert track.optical_frame == "camera_optical_frame"
    np.testing.assert_array_equal(track.natural_stamps_ns, [T0 + int(t * S) for t in times])
    st = np.array([T0, T0 + int(0.7 * S), T0 + 2 * S])
    expect = np.stack([to_optical(base_pose(t) @ T_ext, "body") for t in (0.0, 0.7, 2.0)])
    np.testing.assert_allclose(track.poses(st), expect, atol=1e-6)
    has_child = kind in ("nav_msgs/msg/Odometry", "geometry_msgs/msg/TransformStamped")
    assert (track.static_link is not None) == has_child


def test_pose_topic_errors(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.MCAP)
    store = m.make_typestore()
    with InputBag(path) as bag:
        with pytest.raises(BagError) as exc:
            track_from_pose_topic(bag, store, "/odom")
        assert "/odom" in str(exc.value) and "/tf (tf2_msgs/msg/TFMessage)" in str(exc.value) and "/battery" in str(exc.value)
        with pytest.raises(BagError, match="for TF use --fixed-frame and --camera-frame"):
            track_from_pose_topic(bag, store, "/tf")
        with pytest.raises(BagError, match="std_msgs/msg/String"):
            track_from_pose_topic(bag, store, "/chatter")
    path2, _ = pose_topic_bag(tmp_path, Storage.MCAP, "geometry_msgs/msg/PoseStamped")
    with InputBag(path2) as bag, pytest.raises(BagError, match="differs from the frame"):
        track_from_pose_topic(bag, store, "/pose", fixed_frame="map")
    # A Path whose poses are not stamped in order (e.g. all zero) cannot be a camera path.
    b = BagBuilder()
    poses = [b.pose_stamped(0, "odom", np.eye(4)) for _ in range(3)]
    b.add("/plan", "nav_msgs/msg/Path", T0, b.store.types["nav_msgs/msg/Path"](header=m.header(b.store, T0, "odom"),
                                                                              poses=poses))
    with InputBag(b.write(tmp_path / "zero_path", Storage.MCAP)) as bag, pytest.raises(BagError, match="strictly increasing"):
        track_from_pose_topic(bag, store, "/plan")


def test_frame_errors_from_a_bag(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.SQLITE3)
    with InputBag(path) as bag:
        with pytest.raises(BagError) as exc:
            track_from_tf(bag, m.make_typestore(), "map", "camera_link")
    msg = str(exc.value)
    assert "'map' is not in the TF data" in msg and "base_link, camera_link, camera_optical_frame, mast, odom" in msg


# -- reading bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("storage", STORAGES)
def test_corrupt_input_bags_give_a_bag_error_naming_the_file(tmp_path: Path, storage: Storage) -> None:
    path = robot_bag(tmp_path, storage)
    data_file = next(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[:64] + b"\x00garbage" * 50)
    with pytest.raises(BagError) as exc:
        with InputBag(path) as bag:
            list(bag.messages())
    assert str(path) in str(exc.value)
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9")
    with pytest.raises(BagError, match=str(path)):
        InputBag(path)
    with pytest.raises(BagError, match="does not exist"):
        InputBag(tmp_path / "nope")


# -- render times --------------------------------------------------------------------------
def test_render_stamps_rate_window_and_outside(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.MCAP)
    with InputBag(path) as bag:
        track = track_from_tf(bag, m.make_typestore(), "odom", "camera_optical_frame")
        span = bag.span_ns
    st = render_stamps(track, span, 2.0, None, None, OutsidePolicy.REFUSE)
    np.testing.assert_array_equal(st, T0 + np.arange(9) * S // 2)
    st = render_stamps(track, span, None, 1.0, 2.0, OutsidePolicy.REFUSE)
    np.testing.assert_array_equal(st, track.natural_stamps_ns[10:21])
    with pytest.raises(BagError, match=r"outside the pose data, which covers \[0, 4.000\] s"):
        render_stamps(track, span, 10.0, -0.5, None, OutsidePolicy.REFUSE)
    st = render_stamps(track, span, 10.0, -0.5, 4.5, OutsidePolicy.CLAMP)
    assert st[0] == T0 - S // 2 and st[-1] == T0 + 4 * S + S // 2 and len(st) == 51
    with pytest.raises(BagError, match="no pose messages"):
        render_stamps(track, span, None, 1.01, 1.09, OutsidePolicy.REFUSE)


def test_plan_replay_per_message_and_config_checks(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.MCAP)
    K = Intrinsics.from_fov(16, 12, 60.0)
    cfg = ReplayConfig(path, tmp_path / "out", "a warehouse", K, fixed_frame="odom", camera_frame="camera_optical_frame")
    plan = plan_replay(cfg)
    assert len(plan.trajectory) == 41 and plan.trajectory.frame_id == "odom"
    np.testing.assert_allclose(plan.trajectory.T_world_cam[7], expected_optical(0.7), atol=1e-6)
    assert plan.input_messages == 3 + 41 + 5 + 1
    with pytest.raises(InputError, match="either --camera-frame"):
        ReplayConfig(path, tmp_path / "o", "p", K, camera_frame="a", pose_topic="/b")
    with pytest.raises(InputError, match="--rate"):
        ReplayConfig(path, tmp_path / "o", "p", K, camera_frame="a", rate_hz=0.0)


# -- writing --------------------------------------------------------------------------------
def read_all(path: Path) -> list[tuple[str, str, int, bytes]]:
    with Reader(path) as r:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in r.messages()]


@pytest.mark.parametrize("storage", STORAGES)
def test_output_bag_passes_input_through_unchanged(tmp_path: Path, storage: Storage) -> None:
    src = robot_bag(tmp_path, Storage.SQLITE3 if storage is Storage.MCAP else Storage.MCAP)
    out_path = tmp_path / "copy"
    store = m.make_typestore()  # knows nothing of my_robot_msgs: the custom type must still survive
    assert CUSTOM_MSG not in store.types
    with InputBag(src) as bag, OutputBag(out_path, store, storage) as out:
        for c, t, raw in bag.messages():
            out.write_raw(out.add_passthrough(c), t, raw)
    assert read_all(out_path) == read_all(src)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    with Reader(out_path) as r:
        conn = next(c for c in r.connections if c.topic == "/battery")
        assert conn.msgdef.data.strip() == CUSTOM_DEF.strip() and conn.digest.startswith("RIHS01_")
        reader_store = m.make_typestore()
        reader_store.register(get_types_from_msg(conn.msgdef.data, CUSTOM_MSG))
        raw = next(d for c, _, d in r.messages([conn]))
        assert reader_store.deserialize_cdr(raw, CUSTOM_MSG).cells == ["c0", "x"]


def test_output_refused_when_it_exists_or_is_the_input(tmp_path: Path) -> None:
    src = robot_bag(tmp_path, Storage.MCAP)
    (tmp_path / "taken").mkdir()
    with pytest.raises(BagError, match="--overwrite"):
        OutputBag(tmp_path / "taken", m.make_typestore())
    cfg = ReplayConfig(src, src, "p", Intrinsics.from_fov(8, 6, 60.0), camera_frame="base_link", overwrite=True)
    from srender_ros.bag.writer import check_output_path

    with pytest.raises(BagError, match="overwrite or nest inside input"):
        check_output_path(cfg.output, [cfg.input], True)


@pytest.mark.parametrize("storage", STORAGES)
def test_failure_midway_leaves_no_bag_and_keeps_the_old_one(tmp_path: Path, storage: Storage,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = robot_bag(tmp_path, Storage.MCAP)
    out_path = tmp_path / "out"
    old = robot_bag(tmp_path, Storage.SQLITE3, name="out")  # a complete bag already at the output path
    before = {p.name: p.read_bytes() for p in old.iterdir()}
    calls = {"n": 0}
    real_write = Writer.write

    def full_disk(self: Writer, conn: Any, t: int, data: bytes) -> None:
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, conn, t, data)

    monkeypatch.setattr(Writer, "write", full_disk)
    with pytest.raises(BagError, match="disk is full"):
        with InputBag(src) as bag, OutputBag(out_path, m.make_typestore(), storage, overwrite=True) as out:
            for c, t, raw in bag.messages():
                out.write_raw(out.add_passthrough(c), t, raw)
    assert calls["n"] == 21
    assert {p.name: p.read_bytes() for p in out_path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    # Without an old bag: nothing at all appears.
    shutil.rmtree(out_path)
    calls["n"] = 0
    with pytest.raises(BagError):
        with InputBag(src) as bag, OutputBag(out_path, m.make_typestore(), storage) as out:
            for c, t, raw in bag.messages():
                out.write_raw(out.add_passthrough(c), t, raw)
    assert not out_path.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_overwrite_replaces_a_complete_bag(tmp_path: Path) -> None:
    src = robot_bag(tmp_path, Storage.MCAP)
    robot_bag(tmp_path, Storage.SQLITE3, name="out")
    with InputBag(src) as bag, OutputBag(tmp_path / "out", m.make_typestore(), Storage.MCAP, overwrite=True) as out:
        for c, t, raw in bag.messages():
            out.write_raw(out.add_passthrough(c), t, raw)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metadata.yaml", "out.mcap"]
    assert read_all(tmp_path / "out") == read_all(src)


def test_our_messages_serialize_and_decode() -> None:
    store = m.make_typestore()
    depth = np.array([[1.5, np.nan], [2.0, 3.25]], np.float32)
    img = store.deserialize_cdr(store.serialize_cdr(m.image_depth32(store, depth, T0 + 5, "cam"), m.IMAGE), m.IMAGE)
    assert img.encoding == "32FC1" and img.header.frame_id == "cam" and m.stamp_to_ns(img.header.stamp) == T0 + 5
    np.testing.assert_array_equal(m.decode_image(img), depth)
    rgb = (np.arange(2 * 3 * 3).reshape(2, 3, 3) * 9).astype(np.uint8)
    out = store.deserialize_cdr(store.serialize_cdr(m.image_rgb8(store, rgb, 0, "cam"), m.IMAGE), m.IMAGE)
    np.testing.assert_array_equal(m.decode_image(out), rgb)
    K = Intrinsics.from_fov(64, 48, 90.0)
    info = m.camera_info(store, K, 7, "cam")
    assert info.distortion_model == "plumb_bob" and list(info.k) == K.K.reshape(-1).tolist() and info.p[3] == 0.0
    # The definition we write for KeyframeSchedule hashes like rosidl's generated one (where built).
    digest = store.hash_rihs01(m.KEYFRAME_SCHEDULE)
    generated = Path(sys.prefix) / "share" / "srender_ros" / "msg" / "KeyframeSchedule.json"
    if generated.is_file():
        assert digest in generated.read_text()
    assert m.find_msg_file("KeyframeSchedule").is_file() and digest.startswith("RIHS01_")


# -- end to end: the real pipeline (procedural world, CPU renderer), tiny images ---------------
def run_cli(argv: list[str]) -> int:
    from srender_ros.cli.main import main

    return main(["bag", *argv, "--width", "64", "--height", "48", "--renderer", "cpu", "--no-progress"])


def decoded(store: Any, conn: Any, raw: bytes) -> Any:
    return store.deserialize_cdr(raw, conn.msgtype)


def check_output(out: Path, src: Path, n_frames: int, optical_frame: str, extra_tf_static: int) -> list[Any]:
    """Input messages all present and unchanged, camera topics complete and consistent; returns the images."""
    inputs = read_all(src)
    with Reader(out) as r:
        got = [(c.topic, c.msgtype, t, bytes(d), c) for c, t, d in r.messages()]
        assert r.message_count == len(got)
    log_times = [g[2] for g in got]
    assert log_times == sorted(log_times)  # one merged stream in time order
    camera = {"/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw", "/camera/keyframe_schedule"}
    passed = [g[:4] for g in got if g[0] not in camera]
    added_static = [p for p in passed if p not in inputs]
    assert len(added_static) == extra_tf_static and all(p[0] == "/tf_static" for p in added_static)
    assert [p for p in passed if p in inputs] == inputs  # same messages, bytes and log times, same order
    store = m.make_typestore()
    by_topic: dict[str, list[tuple[int, Any]]] = {}
    for topic, _, t, raw, conn in got:
        if topic in camera:
            by_topic.setdefault(topic, []).append((t, decoded(store, conn, raw)))
    images, infos, depths = (by_topic[f"/camera/{k}"] for k in ("image_raw", "camera_info", "depth/image_raw"))
    assert len(images) == len(infos) == len(depths) == n_frames and len(by_topic["/camera/keyframe_schedule"]) == 1
    stamps = [m.stamp_to_ns(msg.header.stamp) for _, msg in images]
    assert (np.diff(stamps) > 0).all()
    for (t_img, img), (_, info), (_, dep) in zip(images, infos, depths):
        st = m.stamp_to_ns(img.header.stamp)
        assert t_img == st == m.stamp_to_ns(info.header.stamp) == m.stamp_to_ns(dep.header.stamp)
        assert img.header.frame_id == info.header.frame_id == dep.header.frame_id == optical_frame
        rgb, depth = m.decode_image(img), m.decode_image(dep)
        assert rgb.shape == (48, 64, 3) and depth.shape == (48, 64) and (info.width, info.height) == (64, 48)
        finite = depth[np.isfinite(depth)]
        assert finite.size > 0 and (finite > 0).all()
    sched = by_topic["/camera/keyframe_schedule"][0][1]
    assert len(sched.coverage) == n_frames and len(sched.keyframe_indices) == len(sched.reasons) >= 1
    assert m.stamp_to_ns(sched.header.stamp) == stamps[0]
    return [m.decode_image(img) for _, img in images]


@pytest.mark.parametrize("storage", STORAGES)
def test_end_to_end_from_tf_with_a_camera_several_links_away(tmp_path: Path, storage: Storage,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = robot_bag(tmp_path, Storage.SQLITE3 if storage is Storage.MCAP else Storage.MCAP)
    out = tmp_path / "out"
    code = run_cli(["--input", str(src), "--output", str(out), "--fixed-frame", "odom", "--camera-frame", "camera_link",
                    "--rate", "2", "--storage", storage.value, "--world-dir", str(tmp_path / "worlds")])
    assert code == 0
    text = capsys.readouterr().out
    assert "9 frames" in text and "50 input messages unchanged" in text
    rgb = check_output(out, src, 9, "camera_optical_frame", extra_tf_static=0)
    assert not all(np.array_equal(rgb[0], x) for x in rgb[1:])  # the camera moves: the views differ
    with Reader(out) as r:
        conn = next(c for c in r.connections if c.topic == "/battery")
        assert conn.msgtype == CUSTOM_MSG and conn.msgdef.data.strip() == CUSTOM_DEF.strip()
        assert {c.topic for c in r.connections} >= {"/camera/image_raw", "/tf", "/tf_static", "/chatter"}
    # The output exists now: a second run is refused unless --overwrite, and the error names the fix.
    assert run_cli(["--input", str(src), "--output", str(out), "--camera-frame", "camera_link", "--rate", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_end_to_end_from_a_pose_topic_one_frame_per_message(tmp_path: Path) -> None:
    src, times = pose_topic_bag(tmp_path, Storage.MCAP, "nav_msgs/msg/Odometry")
    out = tmp_path / "out"
    assert run_cli(["--input", str(src), "--output", str(out), "--pose-topic", "/pose", "--extrinsic", "0.2 0 1.0 0 0 0",
                    "--world-dir", str(tmp_path / "worlds")]) == 0
    # Odometry names base_link: the added /tf_static puts camera_optical_frame under it for viewers.
    check_output(out, src, len(times), "camera_optical_frame", extra_tf_static=1)


def test_cli_errors_name_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = robot_bag(tmp_path, Storage.MCAP)
    out = tmp_path / "out"
    assert run_cli(["--input", str(src), "--output", str(out), "--camera-frame", "camera", "--rate", "1"]) == 2
    err = capsys.readouterr().err
    assert "'camera' is not in the TF data" in err and "camera_link" in err
    assert run_cli(["--input", str(src), "--output", str(out), "--pose-topic", "/odom"]) == 2
    assert "topics present" in capsys.readouterr().err
    assert run_cli(["--input", str(src), "--output", str(out), "--camera-frame", "camera_link", "--rate", "1",
                    "--end", "9"]) == 2
    assert "--outside clamp" in capsys.readouterr().err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    # An input that already has the camera topics: rendered and recorded streams must not mix.
    b = BagBuilder()
    b.tf("/tf", T0, "odom", "base_link", np.eye(4))
    b.add("/camera/image_raw", m.IMAGE, T0, m.image_rgb8(b.store, np.zeros((2, 2, 3), np.uint8), T0, "cam"))
    clash = b.write(tmp_path / "clash", Storage.MCAP)
    assert run_cli(["--input", str(clash), "--output", str(out), "--camera-frame", "base_link"]) == 2
    assert "already has /camera/image_raw; pick another --topic-prefix" in capsys.readouterr().err


def test_a_single_storage_file_as_input(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Storage.MCAP)
    cfg = ReplayConfig(path / "in.mcap", tmp_path / "out", "p", Intrinsics.from_fov(8, 6, 60.0),
                       camera_frame="camera_link", rate_hz=1.0)
    plan = plan_replay(cfg)
    assert len(plan.trajectory) == 5 and plan.input_messages == 50 and plan.track.optical_frame == "camera_optical_frame"


def test_the_real_tf_example_bag(shared_data: Path, tmp_path: Path) -> None:
    """evo's tf_example (sqlite3; /tf odom->base_footprint, /tf_static base_footprint->base_link)."""
    src = shared_data / "tf_example_bag"
    if not src.is_dir():
        pytest.skip("tf_example_bag not in ../shared/data")
    out = tmp_path / "tf_cam"
    assert run_cli(["--input", str(src), "--output", str(out), "--fixed-frame", "odom", "--camera-frame", "base_link",
                    "--extrinsic", "0 0 1.0 0 0 0", "--rate", "0.2", "--world-dir", str(tmp_path / "worlds")]) == 0
    with InputBag(src) as bag:
        track = track_from_tf(bag, m.make_typestore(), "odom", "base_link")
        span_s = (track.span_ns[1] - track.span_ns[0]) / S  # type: ignore[index]
    n = int(np.floor(span_s * 0.2 + 1e-9)) + 1
    check_output(out, src, n, "camera_optical_frame", extra_tf_static=1)
    with Reader(out) as r:
        assert sum(c.msgcount for c in r.connections if c.topic == "/tf") == 517


@pytest.mark.parametrize("storage", STORAGES)
def test_unknown_type_without_a_definition_still_passes_through(tmp_path: Path, storage: Storage) -> None:
    from srender_ros.bag.writer import UNKNOWN_RIHS01

    src = tmp_path / "legacy"
    payload = b"\x00\x01\x00\x00" + bytes(range(40))
    with Writer(src, version=9, storage_plugin=storage.plugin) as w:
        c = w.add_connection("/legacy", "old_pkg/msg/Thing", msgdef="", rihs01=UNKNOWN_RIHS01)
        w.write(c, T0, payload)
        w.write(c, T0 + 1, payload[::-1])
    with InputBag(src) as bag, OutputBag(tmp_path / "out", m.make_typestore(), storage) as out:
        for conn, t, raw in bag.messages():
            out.write_raw(out.add_passthrough(conn), t, raw)
    assert read_all(tmp_path / "out") == [("/legacy", "old_pkg/msg/Thing", T0, payload),
                                          ("/legacy", "old_pkg/msg/Thing", T0 + 1, payload[::-1])]
