"""Bag replay from ROS 1 bags written here with rosbags' ROS 1 writer: pose sources, type conversion,
bad input (unindexed, truncated, corrupt, unconvertible types), compressed chunks, end to end."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rosbags.interfaces import ConnectionExtRosbag2, QosDurability
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Reader as Reader2
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from srender_ros.bag import messages as m
from srender_ros.bag.pose_sources import parse_extrinsic, track_from_pose_topic, track_from_tf
from srender_ros.bag.reader import InputBag, is_ros1_bag, open_input_bag
from srender_ros.bag.replay import ReplayConfig, plan_replay
from srender_ros.bag.ros1 import Conversion, Ros1InputBag
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import R_BODY_OPTICAL, PoseFrame, make_transform, to_optical
from srender_ros.errors import BagError

S = 1_000_000_000
T0 = 1_700_000_000 * S
TF2 = "tf2_msgs/msg/TFMessage"
TF1_LEGACY = "tf/msg/tfMessage"  # pre-tf2 bags (e.g. TUM RGB-D) record /tf with this type
TRANSFORMS_DEF = "geometry_msgs/TransformStamped[] transforms\n"
BATTERY = "my_robot_msgs/msg/Battery"
BATTERY_DEF = "Header header\nfloat32 voltage\nstring[] cells\n"
COMPRESSIONS = [None, Writer1.CompressionFormat.BZ2, Writer1.CompressionFormat.LZ4]


def yaw(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def base_pose(t_s: float) -> np.ndarray:
    """odom <- base_link: driving along x while turning slowly (the same motion as test_bag_replay)."""
    return make_transform(yaw(0.2 + 0.15 * t_s), np.array([1.0 + 0.5 * t_s, -0.3 + 0.1 * t_s, 0.0]))


T_BASE_CAM = make_transform(yaw(0.1), np.array([0.15, 0.0, 1.0]))  # static camera mount: base_link -> camera_link (body)
T_CAM_OPT = make_transform(R_BODY_OPTICAL, np.zeros(3))


def expected_optical(t_s: float) -> np.ndarray:
    return base_pose(t_s) @ T_BASE_CAM @ T_CAM_OPT


class Ros1BagBuilder:
    """Messages for a ROS 1 bag, typed with the ROS 1 noetic store (Header with seq, CameraInfo's D K R P)."""

    def __init__(self) -> None:
        self.store = get_typestore(Stores.ROS1_NOETIC)
        self.store.register(get_types_from_msg(TRANSFORMS_DEF, TF2))
        self.store.register(get_types_from_msg(TRANSFORMS_DEF, TF1_LEGACY))
        self.store.register(get_types_from_msg(BATTERY_DEF, BATTERY))
        self.records: list[tuple[str, str, int, Any, int | None, str]] = []
        self.seq = 0
        self.ros2 = m.make_typestore()

    def header(self, stamp_ns: int, frame: str) -> Any:
        self.seq += 1
        sec, nsec = divmod(stamp_ns, S)
        return self.store.types["std_msgs/msg/Header"](seq=self.seq, stamp=self.store.types["builtin_interfaces/msg/Time"](
            sec=sec, nanosec=nsec), frame_id=frame)

    def add(self, topic: str, msgtype: str, log_ns: int, msg: Any, latching: int | None = None,
            callerid: str = "/recorder") -> None:
        self.records.append((topic, msgtype, log_ns, msg, latching, callerid))

    def transform(self, T: np.ndarray) -> Any:
        tr = m.matrix_to_transform_msg(self.ros2, T)
        P = self.store.types
        return P["geometry_msgs/msg/Transform"](
            translation=P["geometry_msgs/msg/Vector3"](x=tr.translation.x, y=tr.translation.y, z=tr.translation.z),
            rotation=P["geometry_msgs/msg/Quaternion"](x=tr.rotation.x, y=tr.rotation.y, z=tr.rotation.z, w=tr.rotation.w))

    def tf(self, topic: str, stamp_ns: int, parent: str, child: str, T: np.ndarray, log_ns: int | None = None,
           msgtype: str = TF2, callerid: str = "/recorder") -> None:
        ts = self.store.types["geometry_msgs/msg/TransformStamped"](header=self.header(stamp_ns, parent),
                                                                   child_frame_id=child, transform=self.transform(T))
        self.add(topic, msgtype, stamp_ns if log_ns is None else log_ns, self.store.types[msgtype](transforms=[ts]),
                 latching=1 if topic == "/tf_static" else None, callerid=callerid)

    def pose_stamped(self, stamp_ns: int, frame: str, T: np.ndarray) -> Any:
        tr = self.transform(T)
        P = self.store.types
        pose = P["geometry_msgs/msg/Pose"](position=P["geometry_msgs/msg/Point"](
            x=tr.translation.x, y=tr.translation.y, z=tr.translation.z), orientation=tr.rotation)
        return P["geometry_msgs/msg/PoseStamped"](header=self.header(stamp_ns, frame), pose=pose)

    def write(self, path: Path, compression: Writer1.CompressionFormat | None = None) -> Path:
        w = Writer1(path)
        if compression is not None:
            w.set_compression(compression)
        w.chunk_threshold = 4096  # several chunks even for a small bag, so truncation hits message data
        with w:
            conns: dict[tuple[str, str, str], Any] = {}
            for topic, msgtype, log_ns, msg, latching, callerid in sorted(self.records, key=lambda r: r[2]):
                key = (topic, msgtype, callerid)  # ROS 1 records one connection per publisher
                if key not in conns:
                    conns[key] = w.add_connection(topic, msgtype, typestore=self.store, latching=latching, callerid=callerid)
                w.write(conns[key], log_ns, msg if isinstance(msg, bytes) else
                        self.store.serialize_ros1(msg, msgtype))
        return path


def robot_bag(tmp_path: Path, compression: Writer1.CompressionFormat | None = None, name: str = "run.bag") -> Path:
    """The run of :func:`robot_bag_builder`, written with rosbags' ROS 1 writer."""
    return robot_bag_builder().write(tmp_path / name, compression)


def robot_bag_builder() -> Ros1BagBuilder:
    """A ROS 1 run: /tf odom->base_link at 10 Hz for 4 s; latched /tf_static base_link->camera_link->
    camera_optical_frame (two publishers, so two connections); /slam/pose PoseStamped at 5 Hz; /rosout
    (rosgraph_msgs/Log: no ROS 2 type); /front/camera_info (CameraInfo: ROS 2 renamed its fields);
    /battery (a custom type); /markers (visualization_msgs/Marker: ROS 2 added fields)."""
    b = Ros1BagBuilder()
    b.tf("/tf_static", T0, "base_link", "camera_link", T_BASE_CAM)
    b.tf("/tf_static", T0, "camera_link", "camera_optical_frame", T_CAM_OPT, callerid="/camera_tf")
    for k in range(41):
        st = T0 + k * S // 10
        b.tf("/tf", st, "odom", "base_link", base_pose(k / 10), log_ns=st + 2_000_000)
    for k in range(21):
        st = T0 + k * S // 5
        b.add("/slam/pose", "geometry_msgs/msg/PoseStamped", st + 5_000_000, b.pose_stamped(st, "odom", base_pose(k / 5)))
    P = b.store.types
    b.add("/rosout", "rosgraph_msgs/msg/Log", T0 + S, P["rosgraph_msgs/msg/Log"](
        header=b.header(T0 + S, ""), level=2, name="/planner", msg="goal reached", file="p.py", function="f", line=7,
        topics=["/cmd_vel"]))
    roi = P["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    b.add("/front/camera_info", "sensor_msgs/msg/CameraInfo", T0 + 2 * S, P["sensor_msgs/msg/CameraInfo"](
        header=b.header(T0 + 2 * S, "front_optical"), height=480, width=640, distortion_model="plumb_bob",
        D=np.array([0.1, -0.2, 0.0, 0.0, 0.01]), K=np.arange(9.0), R=np.eye(3).ravel(), P=np.arange(12.0),
        binning_x=0, binning_y=0, roi=roi))
    b.add("/battery", BATTERY, T0 + 3 * S, P[BATTERY](header=b.header(T0 + 3 * S, "base_link"),
                                                    voltage=np.float32(11.5), cells=["a", "b"]))
    marker = b.store.types["visualization_msgs/msg/Marker"]
    zero = {"x": 0.0, "y": 0.0, "z": 0.0}
    b.add("/markers", "visualization_msgs/msg/Marker", T0 + S // 2, marker(
        header=b.header(T0 + S // 2, "odom"), ns="goals", id=4, type=2, action=0,
        pose=P["geometry_msgs/msg/Pose"](position=P["geometry_msgs/msg/Point"](x=1.0, y=2.0, z=3.0),
                                         orientation=P["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0)),
        scale=P["geometry_msgs/msg/Vector3"](**zero), color=P["std_msgs/msg/ColorRGBA"](r=1.0, g=0.0, b=0.0, a=1.0),
        lifetime=P["builtin_interfaces/msg/Duration"](sec=0, nanosec=0), frame_locked=False, points=[], colors=[],
        text="goal", mesh_resource="", mesh_use_embedded_materials=False))
    return b


N_MESSAGES = 2 + 41 + 21 + 4


def comp_id(c: Writer1.CompressionFormat | None) -> str:
    return "none" if c is None else c.name.lower()


# -- pose sources ---------------------------------------------------------------------------
@pytest.mark.parametrize("compression", COMPRESSIONS, ids=comp_id)
def test_tf_route_reads_the_known_motion(tmp_path: Path, compression: Writer1.CompressionFormat | None) -> None:
    path = robot_bag(tmp_path, compression)
    assert is_ros1_bag(path)
    store = m.make_typestore()
    with open_input_bag(path) as bag:
        assert isinstance(bag, Ros1InputBag)
        assert bag.message_count == N_MESSAGES and bag.span_ns == (T0, T0 + 4 * S + 5_000_000)
        track = track_from_tf(bag, store, "odom", "camera_link")
    assert track.convention is PoseFrame.BODY and track.optical_frame == "camera_optical_frame"
    assert track.span_ns == (T0, T0 + 4 * S) and len(track.natural_stamps_ns) == 41
    times = np.array([0.0, 0.05, 1.234, 3.99, 4.0])
    T = track.poses(T0 + np.rint(times * S).astype(np.int64))
    for i, t in enumerate(times):
        np.testing.assert_allclose(T[i], expected_optical(t), atol=1e-6)


def test_pose_topic_route_reads_the_known_motion(tmp_path: Path) -> None:
    path = robot_bag(tmp_path, Writer1.CompressionFormat.LZ4)
    T_ext = parse_extrinsic("0.3 0 0.9 0 0 0 1")
    with open_input_bag(path) as bag:
        track = track_from_pose_topic(bag, m.make_typestore(), "/slam/pose", None, T_ext)
    assert track.fixed_frame == "odom" and len(track.natural_stamps_ns) == 21
    st = np.array([T0, T0 + int(0.7 * S), T0 + 4 * S])
    expect = np.stack([to_optical(base_pose(t) @ T_ext, "body") for t in (0.0, 0.7, 4.0)])
    np.testing.assert_allclose(track.poses(st), expect, atol=1e-6)


def test_plan_replay_from_a_ros1_bag(tmp_path: Path) -> None:
    path = robot_bag(tmp_path)
    K = Intrinsics.from_fov(16, 12, 60.0)
    plan = plan_replay(ReplayConfig(path, tmp_path / "out", "p", K, fixed_frame="odom", camera_frame="camera_optical_frame",
                                    rate_hz=4.0))
    assert len(plan.trajectory) == 17 and plan.input_messages == N_MESSAGES
    for i, t in enumerate(np.arange(17) / 4.0):
        np.testing.assert_allclose(plan.trajectory.T_world_cam[i], expected_optical(float(t)), atol=1e-6)
    plan2 = plan_replay(ReplayConfig(path, tmp_path / "out", "p", K, pose_topic="/slam/pose"))
    np.testing.assert_allclose(plan2.trajectory.T_world_cam[3], to_optical(base_pose(0.6), "body"), atol=1e-6)


# -- conversion ------------------------------------------------------------------------------
def test_messages_come_out_as_ros2_types_and_cdr(tmp_path: Path) -> None:
    path = robot_bag(tmp_path)
    with Ros1InputBag(path) as bag:
        types = bag.topics
        kinds = {t.ros1_type: t.kind for t in bag.conversions.values()}
        conns = {c.topic: c for c in bag.connections}
        msgs = [(c, t, raw) for c, t, raw in bag.messages()]
        notes = bag.notes
    assert types == {"/tf": TF2, "/tf_static": TF2, "/slam/pose": "geometry_msgs/msg/PoseStamped",
                     "/rosout": "rosgraph_msgs/msg/Log", "/front/camera_info": "sensor_msgs/msg/CameraInfo",
                     "/battery": BATTERY, "/markers": "visualization_msgs/msg/Marker"}
    assert kinds == {TF2: Conversion.SAME, "geometry_msgs/msg/PoseStamped": Conversion.SAME,
                     "sensor_msgs/msg/CameraInfo": Conversion.SAME, "rosgraph_msgs/msg/Log": Conversion.KEPT,
                     BATTERY: Conversion.KEPT, "visualization_msgs/msg/Marker": Conversion.MIGRATED}
    assert any("kept as is" in n and "rosgraph_msgs/msg/Log" in n and BATTERY in n for n in notes)
    assert any("migrated" in n and "visualization_msgs/msg/Marker" in n for n in notes)
    # Latched ROS 1 topics become transient-local in ROS 2, so `ros2 bag play` latches /tf_static too.
    ext = conns["/tf_static"].ext
    assert isinstance(ext, ConnectionExtRosbag2) and ext.offered_qos_profiles[0].durability is QosDurability.TRANSIENT_LOCAL
    assert isinstance(conns["/tf"].ext, ConnectionExtRosbag2) and conns["/tf"].ext.offered_qos_profiles == []
    assert len(msgs) == N_MESSAGES and [t for _, t, _ in msgs] == sorted(t for _, t, _ in msgs)
    # Every message decodes with a plain ROS 2 store (plus the definitions the connections carry).
    store = m.make_typestore()
    for c in conns.values():
        if c.msgtype not in store.types:
            store.register(get_types_from_msg(c.msgdef.data, c.msgtype))
        assert c.digest == store.hash_rihs01(c.msgtype)
    decoded: dict[str, Any] = {c.topic: store.deserialize_cdr(raw, c.msgtype) for c, _, raw in msgs}
    info = decoded["/front/camera_info"]
    assert info.header.frame_id == "front_optical" and m.stamp_to_ns(info.header.stamp) == T0 + 2 * S
    np.testing.assert_array_equal(info.d, [0.1, -0.2, 0.0, 0.0, 0.01])
    np.testing.assert_array_equal(info.k, np.arange(9.0))
    np.testing.assert_array_equal(info.p, np.arange(12.0))
    log = decoded["/rosout"]
    assert (log.name, log.msg, log.line, log.topics) == ("/planner", "goal reached", 7, ["/cmd_vel"])
    assert decoded["/battery"].cells == ["a", "b"] and decoded["/battery"].voltage == np.float32(11.5)
    mk = decoded["/markers"]
    assert (mk.ns, mk.id, mk.text, mk.pose.position.z, mk.texture_resource) == ("goals", 4, "goal", 3.0, "")


def test_legacy_tf_message_type_is_renamed(tmp_path: Path) -> None:
    """Old bags record /tf as tf/tfMessage; it becomes tf2_msgs/msg/TFMessage and the TF route reads it."""
    b = Ros1BagBuilder()
    for k in range(11):
        st = T0 + k * S // 10
        b.tf("/tf", st, "/world", "/kinect", base_pose(k / 10), msgtype=TF1_LEGACY)
        b.tf("/tf", st, "/kinect", "/openni_rgb_optical_frame", T_BASE_CAM @ T_CAM_OPT, msgtype=TF1_LEGACY)
    path = b.write(tmp_path / "legacy.bag", Writer1.CompressionFormat.BZ2)
    with Ros1InputBag(path) as bag:
        assert bag.topics == {"/tf": TF2}
        assert "renamed: tf/msg/tfMessage -> tf2_msgs/msg/TFMessage" in bag.notes
        track = track_from_tf(bag, m.make_typestore(), "world", "openni_rgb_optical_frame")
    assert track.convention is PoseFrame.OPTICAL and track.optical_frame == "openni_rgb_optical_frame"
    np.testing.assert_allclose(track.poses(np.array([T0 + S // 2]))[0], expected_optical(0.5), atol=1e-6)


def test_a_type_that_cannot_be_converted_is_skipped_and_said(tmp_path: Path) -> None:
    """Two connections defining one type differently: the second is left out, never a crash."""
    b = Ros1BagBuilder()
    b.tf("/tf", T0, "odom", "base_link", np.eye(4))
    b.tf("/tf", T0 + S, "odom", "base_link", np.eye(4))
    path = tmp_path / "clash.bag"
    b.write(path)
    with Writer1(tmp_path / "clash2.bag") as w:
        c0 = w.add_connection("/tf", TF2, typestore=b.store, callerid="/a")
        c1 = w.add_connection("/thing_v1", "my_pkg/msg/Thing", msgdef="int32 a\n", md5sum="0" * 32)
        c2 = w.add_connection("/thing_v2", "my_pkg/msg/Thing", msgdef="float64 a\nstring b\n", md5sum="1" * 32)
        c3 = w.add_connection("/half", "my_pkg/msg/Half", msgdef="int32 a\nFoo b\n", md5sum="2" * 32)
        for _, t, raw in raw_ros1_messages(path):
            w.write(c0, t, raw)
        w.write(c1, T0, (5).to_bytes(4, "little"))
        w.write(c2, T0 + 1, bytes(8) + (1).to_bytes(4, "little") + b"x")
        w.write(c3, T0 + 2, bytes(8))
    with Ros1InputBag(tmp_path / "clash2.bag") as bag:
        assert sorted(bag.topics) == ["/tf", "/thing_v1"] and bag.message_count == 3
        assert "skipped /thing_v2 (my_pkg/msg/Thing, 1 messages): defined differently by another connection" in bag.notes
        assert ("skipped /half (my_pkg/msg/Half, 1 messages): its definition in the bag uses my_pkg/msg/Foo, which the "
                "bag does not define") in bag.notes
        got = [(c.topic, t) for c, t, _ in bag.messages()]
        assert ("/thing_v1", T0) in got and {tp for tp, _ in got} == {"/tf", "/thing_v1"}
        assert list(bag.messages([c for c in bag.connections if c.topic == "/thing_v1"])) != []


def raw_ros1_messages(path: Path) -> list[tuple[Any, int, bytes]]:
    from rosbags.rosbag1 import Reader

    with Reader(path) as r:
        return [(c, t, bytes(d)) for c, t, d in r.messages()]


# -- bad input -------------------------------------------------------------------------------
def test_unindexed_bag_says_how_to_reindex(tmp_path: Path) -> None:
    """A recording that was killed: chunks are there, index_pos in the bag header is still 0."""
    path = robot_bag(tmp_path)
    raw = bytearray(path.read_bytes())
    i = raw.index(b"index_pos=") + len(b"index_pos=")
    raw[i:i + 8] = bytes(8)
    active = tmp_path / "killed.bag.active"  # what `rosbag record` leaves behind: found by its magic bytes
    active.write_bytes(bytes(raw))
    for p in (active, tmp_path / "killed.bag"):
        p.write_bytes(bytes(raw))
        with pytest.raises(BagError) as exc:
            open_input_bag(p)
        msg = str(exc.value)
        assert str(p) in msg and "unindexed or truncated" in msg and f"`rosbag reindex {p}`" in msg


@pytest.mark.parametrize("compression", COMPRESSIONS, ids=comp_id)
def test_truncated_bag_names_the_file_and_the_fix(tmp_path: Path, compression: Writer1.CompressionFormat | None) -> None:
    path = robot_bag(tmp_path, compression)
    raw = path.read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BagError) as exc:
        with open_input_bag(cut) as bag:
            list(bag.messages())
    assert str(cut) in str(exc.value) and "rosbag reindex" in str(exc.value)
    # Index intact, message data corrupt (a bad sector, a botched copy): reading stops with the file named.
    with Ros1InputBag(path) as bag:
        first_chunk = min(bag._reader.chunks.values(), key=lambda ch: ch.datapos)
    bad = bytearray(raw)
    bad[first_chunk.datapos:first_chunk.datapos + first_chunk.datasize] = b"\xff" * first_chunk.datasize
    broken = tmp_path / "broken.bag"
    broken.write_bytes(bytes(bad))
    with pytest.raises(BagError) as exc2:
        with open_input_bag(broken) as bag:
            list(bag.messages())
    assert str(broken) in str(exc2.value) and "corrupt" in str(exc2.value)


def test_other_unreadable_inputs(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bag"
    empty.write_bytes(b"")
    with pytest.raises(BagError, match=r"empty\.bag .*empty"):
        open_input_bag(empty)
    junk = tmp_path / "junk.bag"
    junk.write_bytes(b"not a bag at all\n" * 10)
    with pytest.raises(BagError, match=r"junk\.bag cannot be read as a ROS 1 bag .*so it is no ROS 1 bag"):
        open_input_bag(junk)
    old = tmp_path / "old.bag"
    old.write_bytes(b"#ROSBAG V1.2\n" + bytes(100))
    with pytest.raises(BagError, match=r"format 2\.0"):
        open_input_bag(old)
    with pytest.raises(BagError, match="does not exist"):
        open_input_bag(tmp_path / "missing.bag")
    # A rosbag2 is still opened as one.
    assert not is_ros1_bag(tmp_path) and isinstance(open_input_bag(robot_bag(tmp_path)), Ros1InputBag)


# -- end to end: the CLI with the real pipeline (procedural world, CPU renderer), tiny images -----
def run_cli(argv: list[str]) -> int:
    from srender_ros.cli.main import main

    return main(["bag", *argv, "--width", "64", "--height", "48", "--renderer", "cpu", "--no-progress"])


def read_out(path: Path) -> tuple[list[tuple[str, str, int, Any]], Any]:
    store = m.make_typestore()
    with Reader2(path) as r:
        for c in r.connections:
            if c.msgtype not in store.types:
                store.register(get_types_from_msg(c.msgdef.data, c.msgtype))
        return [(c.topic, c.msgtype, t, store.deserialize_cdr(d, c.msgtype)) for c, t, d in r.messages()], store


def check_ros1_output(out: Path, n_frames: int, optical_frame: str) -> list[tuple[str, str, int, Any]]:
    """Every input message (converted) and the camera topics; each image's TF pose matches the motion."""
    got, _ = read_out(out)
    camera = {"/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw", "/camera/keyframe_schedule"}
    assert [g[2] for g in got] == sorted(g[2] for g in got)
    inputs = [g for g in got if g[0] not in camera]
    assert len(inputs) == N_MESSAGES
    tfs = [g for g in inputs if g[0] == "/tf"]
    assert len(tfs) == 41 and all(g[1] == TF2 for g in tfs)
    for k, (_, _, t_log, msg) in enumerate(tfs):  # same log times, same values as written
        tr = msg.transforms[0]
        assert t_log == T0 + k * S // 10 + 2_000_000 and m.stamp_to_ns(tr.header.stamp) == T0 + k * S // 10
        np.testing.assert_allclose(m.transform_to_matrix(tr.transform), base_pose(k / 10), atol=1e-12)
    images = [g for g in got if g[0] == "/camera/image_raw"]
    assert len(images) == n_frames and len([g for g in got if g[0] == "/camera/depth/image_raw"]) == n_frames
    # The output is a rosbag2 whose TF puts the camera where the known motion says, at every image stamp.
    with InputBag(out) as bag:
        track = track_from_tf(bag, m.make_typestore(), "odom", optical_frame)
    stamps = np.array([m.stamp_to_ns(g[3].header.stamp) for g in images])
    poses = track.poses(stamps)
    for st, T in zip(stamps, poses):
        np.testing.assert_allclose(T, expected_optical((st - T0) / S), atol=1e-6)
    assert all(g[3].header.frame_id == optical_frame and m.decode_image(g[3]).shape == (48, 64, 3) for g in images)
    return got


@pytest.mark.parametrize("compression", [Writer1.CompressionFormat.BZ2, Writer1.CompressionFormat.LZ4], ids=comp_id)
def test_end_to_end_tf_route(tmp_path: Path, compression: Writer1.CompressionFormat,
                             capsys: pytest.CaptureFixture[str]) -> None:
    src = robot_bag(tmp_path, compression)
    out = tmp_path / "out"
    code = run_cli(["--input", str(src), "--output", str(out), "--fixed-frame", "odom", "--camera-frame", "camera_link",
                    "--rate", "2", "--world-dir", str(tmp_path / "worlds")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"{N_MESSAGES} input messages" in text and "9 frames" in text
    assert "ROS 1 bag" in text and "kept as is" in text and "rosgraph_msgs/msg/Log" in text
    got = check_ros1_output(out, 9, "camera_optical_frame")
    assert not any(g[0] == "/tf_static" and g[2] != T0 for g in got)  # camera_optical_frame is in TF: nothing added
    assert sorted(p.name for p in out.iterdir()) == ["metadata.yaml", "out.mcap"]
    with Reader2(out) as r:  # the two ROS 1 publishers of /tf_static share one rosbag2 connection, latched
        static = [c for c in r.connections if c.topic == "/tf_static"]
        assert len(static) == 1 and static[0].msgcount == 2
        ext = static[0].ext
        assert isinstance(ext, ConnectionExtRosbag2) and ext.offered_qos_profiles[0].durability is QosDurability.TRANSIENT_LOCAL


def test_end_to_end_pose_topic_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = robot_bag(tmp_path)
    out = tmp_path / "out"
    code = run_cli(["--input", str(src), "--output", str(out), "--pose-topic", "/slam/pose", "--storage", "sqlite3",
                    "--extrinsic", "0.15 0 1.0 0 0 0.1", "--world-dir", str(tmp_path / "worlds")])
    assert code == 0, capsys.readouterr()
    got, _ = read_out(out)
    images = [g for g in got if g[0] == "/camera/image_raw"]
    assert len(images) == 21 and images[0][3].header.frame_id == "camera_optical_frame"
    assert len([g for g in got if g[0] not in {"/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw",
                                               "/camera/keyframe_schedule"}]) == N_MESSAGES
    # The extrinsic equals the TF mount, so the pose-topic camera is the TF camera: check it through the output's TF.
    with InputBag(out) as bag:
        track = track_from_tf(bag, m.make_typestore(), "odom", "camera_optical_frame")
    stamps = np.array([m.stamp_to_ns(g[3].header.stamp) for g in images])
    np.testing.assert_array_equal(stamps, T0 + np.arange(21) * S // 5)
    for st, T in zip(stamps, track.poses(stamps)):
        np.testing.assert_allclose(T, expected_optical((st - T0) / S), atol=1e-6)


def test_cli_errors_for_ros1_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = robot_bag(tmp_path)
    out = tmp_path / "out"
    assert run_cli(["--input", str(src), "--output", str(out), "--pose-topic", "/odom"]) == 2
    err = capsys.readouterr().err
    assert "topics present" in err and "/slam/pose (geometry_msgs/msg/PoseStamped)" in err
    raw = bytearray(src.read_bytes())
    i = raw.index(b"index_pos=") + len(b"index_pos=")
    raw[i:i + 8] = bytes(8)
    killed = tmp_path / "killed.bag"
    killed.write_bytes(bytes(raw))
    assert run_cli(["--input", str(killed), "--output", str(out), "--camera-frame", "camera_link"]) == 2
    assert f"rosbag reindex {killed}" in capsys.readouterr().err
    assert not out.exists()


def test_a_bag_with_the_tum_rgbd_layout(shared_data: Path, tmp_path: Path) -> None:
    """TUM RGB-D's ROS 1 bags: bz2 chunks, /tf as tf/tfMessage with mocap /world -> /kinect and the Kinect's
    frames below it. Here /world -> /kinect carries 2 s of the real freiburg1_xyz ground truth."""
    gt_file = shared_data / "tum_freiburg1_xyz_groundtruth.txt"
    if not gt_file.is_file():
        pytest.skip("tum_freiburg1_xyz_groundtruth.txt not in ../shared/data")
    rows = np.loadtxt(gt_file, comments="#")[:200]
    b = Ros1BagBuilder()
    stamps = np.rint(rows[:, 0] * 1e6).astype(np.int64) * 1000
    T_kinect_opt = make_transform(np.eye(3), np.array([0.0, -0.045, 0.0]))  # an rgb optical frame a little off the kinect origin
    ty = m.make_typestore().types
    poses = []
    for st, r in zip(stamps.tolist(), rows):
        T = m.transform_to_matrix(ty["geometry_msgs/msg/Transform"](
            translation=ty["geometry_msgs/msg/Vector3"](x=r[1], y=r[2], z=r[3]),
            rotation=ty["geometry_msgs/msg/Quaternion"](x=r[4], y=r[5], z=r[6], w=r[7])))
        poses.append(T)
        b.tf("/tf", st, "/world", "/kinect", T, msgtype=TF1_LEGACY)
        b.tf("/tf", st, "/kinect", "/openni_rgb_optical_frame", T_kinect_opt, msgtype=TF1_LEGACY)
    src = b.write(tmp_path / "rgbd_dataset_freiburg1_xyz.bag", Writer1.CompressionFormat.BZ2)
    out = tmp_path / "fr1_xyz_cam"
    assert run_cli(["--input", str(src), "--output", str(out), "--fixed-frame", "world", "--camera-frame",
                    "openni_rgb_optical_frame", "--topic-prefix", "srender", "--rate", "10",
                    "--world-dir", str(tmp_path / "worlds")]) == 0
    got, _ = read_out(out)
    images = [g for g in got if g[0] == "/srender/image_raw"]
    assert len(images) == int((stamps[-1] - stamps[0]) / 1e8 + 1e-9) + 1
    assert all(g[3].header.frame_id == "openni_rgb_optical_frame" for g in images)
    with InputBag(out) as bag:
        track = track_from_tf(bag, m.make_typestore(), "world", "openni_rgb_optical_frame")
    # At the ground-truth stamps themselves the output's TF gives the recorded pose exactly.
    np.testing.assert_allclose(track.poses(stamps[::37]), np.stack(poses[::37]) @ T_kinect_opt, atol=1e-9)
