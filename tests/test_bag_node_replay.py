"""Node replay: the srender node with use_sim_time follows a bag played with ``ros2 bag play --clock``.

``ros2 bag`` is not available here, so this test plays the bag's part itself: it publishes /clock
and a nav_msgs/Path (what a recorded bag would replay), runs the real ``srender_node`` in a
subprocess with ``use_sim_time:=true`` and ``publish_mode:=paced``, and checks that every frame is
stamped with its path pose's stamp and comes out only once /clock has reached that stamp.

The check is causal, not timed: the clock is held, then stepped; a frame published before the
clock reached its stamp fails the test however fast or slow the machine is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.ros]

S = 1_000_000_000
PATH_STAMPS_NS = [101 * S, 101 * S + S // 2, 102 * S, 102 * S + S // 2, 103 * S]
START_TIMEOUT_S = 600.0  # the node imports torch and warms the renderer up (numba compiles on a fresh clone)
FRAME_TIMEOUT_S = 600.0  # first request: a keyframe of a new world (cold numba caches compile here), then the render


@pytest.fixture
def node_process(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "node.log").open("wb")
    cmd = [sys.executable, "-m", "srender_ros.ros.node", "--ros-args",
           "--params-file", str(REPO_ROOT / "config" / "srender.yaml"),
           "-p", "use_sim_time:=true", "-p", "publish_mode:=paced",
           "-p", "width:=32", "-p", "height:=24", "-p", "publish_depth:=false",
           "-p", "renderer:=cpu", "-p", "device:=cpu", "-p", "generator:=procedural",
           "-p", f"world_dir:={tmp_path / 'worlds'}", "-p", "environment:=a small test room"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=tmp_path)
    yield proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


def test_node_follows_sim_time_of_a_replayed_bag(node_process: subprocess.Popen[bytes], tmp_path: Path) -> None:
    rclpy = pytest.importorskip("rclpy")
    from geometry_msgs.msg import PoseStamped
    from nav_msgs.msg import Path as PathMsg
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from srender_ros.ros.conversions import ns_to_stamp

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bag_player_stand_in", context=ctx)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    clock_pub = node.create_publisher(Clock, "/clock", 10)
    path_pub = node.create_publisher(PathMsg, "/trajectory", reliable)
    sim_now = {"ns": 0}
    frames: list[tuple[int, int, str, int, int]] = []  # (stamp, sim clock when received, frame_id, w, h)

    def on_image(msg: Image) -> None:
        stamp = msg.header.stamp.sec * S + msg.header.stamp.nanosec
        frames.append((stamp, sim_now["ns"], msg.header.frame_id, msg.width, msg.height))

    node.create_subscription(Image, "/camera/image_raw", on_image, reliable)

    def set_clock(ns: int) -> None:
        sim_now["ns"] = ns
        clock_pub.publish(Clock(clock=ns_to_stamp(ns)))

    def spin_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not cond():
            if node_process.poll() is not None:
                pytest.fail(f"srender_node exited with {node_process.returncode}:\n{(tmp_path / 'node.log').read_text()[-3000:]}")
            if time.monotonic() > end:
                pytest.fail(f"timed out waiting for {what}; node log:\n{(tmp_path / 'node.log').read_text()[-3000:]}")
            set_clock(sim_now["ns"])  # like `ros2 bag play --clock`, keep /clock flowing
            executor.spin_once(timeout_sec=0.05)

    def spin_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            set_clock(sim_now["ns"])
            executor.spin_once(timeout_sec=0.05)

    try:
        set_clock(100 * S)  # the "bag" starts at 100 s of sim time
        spin_until(lambda: path_pub.get_subscription_count() > 0 and clock_pub.get_subscription_count() > 0
                   and node.count_publishers("/camera/image_raw") > 0, START_TIMEOUT_S, "the node to come up")
        spin_for(1.0)  # let the node's clock take /clock before the path arrives
        path = PathMsg()
        path.header.frame_id = "odom"
        path.header.stamp = ns_to_stamp(100 * S)
        for k, st in enumerate(PATH_STAMPS_NS):
            p = PoseStamped()
            p.header.frame_id = "odom"
            p.header.stamp = ns_to_stamp(st)
            p.pose.position.x = 0.2 * k  # body convention: driving forward along x, camera 1.2 m up
            p.pose.position.z = 1.2
            p.pose.orientation.w = 1.0
            path.poses.append(p)
        path_pub.publish(path)

        # Held at 100 s, before every stamp: a paced node on sim time publishes nothing.
        spin_for(3.0)
        assert frames == [], "frames came out although /clock had not reached their stamps"
        set_clock(101 * S + S // 5)  # 101.2 s: only the first pose (101.0 s) is due
        spin_until(lambda: len(frames) >= 1, FRAME_TIMEOUT_S, "the first frame")
        spin_for(1.0)
        assert [f[0] for f in frames] == PATH_STAMPS_NS[:1]
        set_clock(102 * S + S // 5)  # 102.2 s: 101.5 and 102.0 are due
        spin_until(lambda: len(frames) >= 3, FRAME_TIMEOUT_S, "frames 2 and 3")
        spin_for(0.5)
        assert [f[0] for f in frames] == PATH_STAMPS_NS[:3]
        set_clock(110 * S)
        spin_until(lambda: len(frames) >= 5, FRAME_TIMEOUT_S, "the last frames")
        spin_for(0.3)
    finally:
        node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown(context=ctx)

    assert [f[0] for f in frames] == PATH_STAMPS_NS  # every pose once, in order, stamped with its pose's stamp
    for stamp, clock_ns, frame_id, w, h in frames:
        assert clock_ns >= stamp, f"frame {stamp} ns published while /clock was at {clock_ns} ns"
        assert (frame_id, w, h) == ("camera_optical_frame", 32, 24)
