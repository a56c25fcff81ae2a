"""Sensor cameras under simulation time (/clock), starting from an empty world (a node of its own:
no other robot may publish /tf meanwhile, so this is a module of its own)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs")
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_helpers import NodeProc, Robot, stamps_of, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from srender_ros.msg import WorldStatus  # noqa: E402
from srender_ros.ros.conversions import ns_to_stamp  # noqa: E402

pytestmark = pytest.mark.ros

W, H = 64, 48
RATE = 5.0


def _collect(robot: Robot, topic: str, seconds: float) -> list:
    robot.clear(topic)
    time.sleep(seconds)
    return robot.msgs(topic)


def test_sim_time_ticks_follow_a_paused_clock_and_generation_runs_off_the_publishing_path(
        tmp_path: Path) -> None:
    """Simulation time from /clock (starting at 1000 s), an empty world: the camera publishes from
    the first tick while a keyframe is made (WorldStatus GENERATING -> READY), stops while /clock
    is paused and resumes on the simulation grid."""
    (tmp_path / "rig.yaml").write_text(f"""
/**:
  ros__parameters:
    environment: "a sim time test yard"
    renderer: "cpu"
    world_frame: "odom"
    sensor_generate: true
    cameras: ["front"]
    front: {{frame_id: "camera_link", rate_hz: {RATE}, width: {W}, height: {H}}}
""")
    robot = Robot(rate_hz=50.0, use_sim_time=True)
    pub_clock = robot.node.create_publisher(Clock, "/clock", 10)
    sim = {"ns": 1000 * 10**9, "run": True, "stop": False}

    def clock_loop() -> None:
        while not sim["stop"]:
            if sim["run"]:
                sim["ns"] += 10_000_000
                pub_clock.publish(Clock(clock=ns_to_stamp(sim["ns"])))
            time.sleep(0.01)
    ticker = threading.Thread(target=clock_loop, daemon=True)
    ticker.start()
    robot.subscribe(Image, "/front/image_raw")
    robot.subscribe(WorldStatus, "/srender/world_status", depth=20, latched=True)
    node = NodeProc(tmp_path / "node.log", tmp_path / "rig.yaml",
                    ["-p", f"world_dir:={tmp_path / 'worlds'}", "-p", "use_sim_time:=true"])
    try:
        assert wait_for(lambda: len(robot.msgs("/front/image_raw")) >= 3, 600.0), node.output()[-3000:]
        assert wait_for(lambda: any(m.state == WorldStatus.STATE_READY and m.last_request_id == "sensor:front"
                                    for m in robot.msgs("/srender/world_status")), 120.0), node.output()[-3000:]
        states = [(m.state, m.last_request_id) for m in robot.msgs("/srender/world_status")]
        assert (WorldStatus.STATE_GENERATING, "sensor:front") in states
        ready = [m for m in robot.msgs("/srender/world_status") if m.state == WorldStatus.STATE_READY
                 and m.last_request_id == "sensor:front"][-1]
        assert ready.keyframes >= 1 and ready.gaussians > 0
        st = stamps_of(robot.msgs("/front/image_raw"))
        assert all(1000 * 10**9 <= s <= sim["ns"] for s in st), "stamps are simulation time"
        assert all(s % round(1e9 / RATE) == 0 for s in st) and all(b > a for a, b in itertools.pairwise(st))

        sim["run"] = False  # pause the simulation
        time.sleep(0.5)
        paused = _collect(robot, "/front/image_raw", 2.0)
        assert len(paused) == 0, f"{len(paused)} frames while /clock was paused"
        sim["run"] = True
        resumed = _collect(robot, "/front/image_raw", 3.0)
        assert len(resumed) >= 3
        assert all(b > a for a, b in zip(stamps_of(resumed), stamps_of(resumed)[1:]))
        assert max(stamps_of(resumed)) <= sim["ns"]
    finally:
        sim["stop"] = True
        code = node.stop()
        robot.close()
    assert code == 0, node.output()[-3000:]
