"""ROS 1 bags written by ROS 1's own rosbag library (its file layout, roslz4 / bz2 chunks), and the
`rosbag reindex` fix our error message names, run for real on a killed recording and a cut copy.

Needs Debian's python3-rosbag (`apt install python3-rosbag`: /usr/bin/rosbag and the `rosbag` module for
the system python3); skipped without it. Messages are serialized here with rosbags' ROS 1 noetic store and
handed to ROS 1's writer raw, so no ROS 1 message packages are needed.
"""

from __future__ import annotations

import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_bag_ros1 import N_MESSAGES, T0, Ros1BagBuilder, base_pose, expected_optical, robot_bag_builder

from srender_ros.bag import messages as m
from srender_ros.bag.pose_sources import track_from_pose_topic, track_from_tf
from srender_ros.bag.reader import open_input_bag
from srender_ros.errors import BagError

SYSTEM_PYTHON = "/usr/bin/python3"
S = 1_000_000_000


def _ros1_rosbag_available() -> bool:
    if shutil.which("rosbag") is None or not Path(SYSTEM_PYTHON).is_file():
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import rosbag, genpy"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _ros1_rosbag_available(),
                                reason="ROS 1 rosbag not installed (Debian: apt install python3-rosbag)")

# Runs under the system python3 with ROS 1's rosbag: writes the records, closes the bag or (kill) exits
# without closing it, as a recorder killed mid-run does (chunks on disk, no index, index_pos 0).
WRITER = r"""
import os, pickle, sys
import genpy, rosbag
records, out, compression, kill = pickle.load(open(sys.argv[1], "rb"))
bag = rosbag.Bag(out, "w", compression=compression, chunk_threshold=2048)
pytypes = {}
for topic, msgtype, md5, msgdef, t_ns, data, latching, callerid in records:
    py = pytypes.setdefault(msgtype, type("Raw", (), {"_type": msgtype, "_md5sum": md5, "_full_text": msgdef}))
    header = {"topic": topic, "type": msgtype, "md5sum": md5, "message_definition": msgdef, "callerid": callerid,
              "latching": "1" if latching else "0"}
    bag.write(topic, (msgtype, data, md5, py), genpy.Time(t_ns // 10**9, t_ns % 10**9), raw=True,
              connection_header=header)
if kill:
    bag._file.flush()
    os._exit(0)
bag.close()
"""


def write_with_ros1(b: Ros1BagBuilder, path: Path, compression: str = "none", kill: bool = False) -> Path:
    """Write ``b``'s records with ROS 1's rosbag (compression: none, bz2 or lz4)."""
    records = []
    for topic, msgtype, log_ns, msg, latching, callerid in sorted(b.records, key=lambda r: r[2]):
        msgdef, md5 = b.store.generate_msgdef(msgtype)
        ros1_name = msgtype.replace("/msg/", "/")
        records.append((topic, ros1_name, md5, msgdef, log_ns, bytes(b.store.serialize_ros1(msg, msgtype)),
                        latching, callerid))
    job = path.with_suffix(".pickle")
    job.write_bytes(pickle.dumps((records, str(path), compression, kill)))
    subprocess.run([SYSTEM_PYTHON, "-c", WRITER, str(job)], check=True, capture_output=True)
    job.unlink()
    return path


@pytest.mark.parametrize("compression", ["none", "bz2", "lz4"])
def test_a_bag_from_ros1_rosbag_reads_like_ours(tmp_path: Path, compression: str) -> None:
    path = write_with_ros1(robot_bag_builder(), tmp_path / "run.bag", compression)
    store = m.make_typestore()
    with open_input_bag(path) as bag:
        assert bag.message_count == N_MESSAGES and "/rosout" in bag.topics
        assert len(list(bag.messages())) == N_MESSAGES
        track = track_from_tf(bag, store, "odom", "camera_link")
        poses = track_from_pose_topic(bag, store, "/slam/pose")
    st = T0 + np.array([0, S // 3, 2 * S, 4 * S])
    for t, T in zip(st, track.poses(st)):
        np.testing.assert_allclose(T, expected_optical((t - T0) / S), atol=1e-6)
    np.testing.assert_allclose(poses.poses(st[2:3])[0][:3, 3], base_pose(2.0)[:3, 3], atol=1e-9)


def test_a_killed_recording_is_refused_then_reindexed_as_the_error_says(tmp_path: Path) -> None:
    path = write_with_ros1(robot_bag_builder(), tmp_path / "killed.bag", "bz2", kill=True)
    with pytest.raises(BagError) as exc:
        open_input_bag(path)
    msg = str(exc.value)
    assert str(path) in msg and "unindexed or truncated" in msg and "killed.orig.bag" in msg
    command = msg.split("`")[1]
    assert command == f"rosbag reindex {path}"
    subprocess.run(command.split(), check=True, capture_output=True)
    assert (tmp_path / "killed.orig.bag").is_file()
    with open_input_bag(path) as bag:
        n = bag.message_count
        track = track_from_tf(bag, m.make_typestore(), "odom", "camera_link")
    # Every chunk the recorder had flushed comes back; the one it was filling when killed is lost.
    assert 0.5 * N_MESSAGES < n <= N_MESSAGES
    assert track.span_ns is not None and track.span_ns[0] == T0
    t = np.array([track.span_ns[1]])
    np.testing.assert_allclose(track.poses(t)[0], expected_optical((t[0] - T0) / S), atol=1e-6)


def test_a_cut_copy_is_refused_then_reindexed(tmp_path: Path) -> None:
    full = write_with_ros1(robot_bag_builder(), tmp_path / "full.bag", "none")
    raw = full.read_bytes()
    cut = tmp_path / "cut.bag"
    cut.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(BagError, match=r"rosbag reindex .*cut\.bag"):
        with open_input_bag(cut) as bag:
            list(bag.messages())
    subprocess.run(["rosbag", "reindex", str(cut)], check=True, capture_output=True)
    with open_input_bag(cut) as bag:
        got = list(bag.messages())
    assert 0 < len(got) < N_MESSAGES and all(c.msgtype.count("/msg/") == 1 for c, _, _ in got)
