"""Two robots (two nodes in namespaces) generating keyframes into one environment and one world_dir
at the same time: the stored world ends up with every keyframe both nodes made, and each node picks
up the other's."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("tf2_msgs")
from sensor_helpers import NodeProc, Robot, wait_for  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from srender_ros.core.store import WorldStore  # noqa: E402

pytestmark = pytest.mark.ros

ENV = "a yard shared by two robots"


def test_two_nodes_on_one_world_dir_keep_every_keyframe(tmp_path: Path) -> None:
    worlds = tmp_path / "worlds"
    nodes = []
    robot = Robot(rate_hz=50.0, prefixes=("r1/", "r2/"))
    try:
        for name in ("r1", "r2"):
            (tmp_path / f"{name}.yaml").write_text(f"""
/**:
  ros__parameters:
    environment: "{ENV}"
    renderer: "cpu"
    world_frame: "odom"
    sensor_generate: true
    coverage_threshold: 0.02
    cameras: ["front"]
    front: {{frame_id: "{name}/camera_link", optical_frame_id: "{name}/front_optical_frame", rate_hz: 5.0,
            width: 64, height: 48, fov_deg: 90.0}}
""")
            robot.subscribe(Image, f"/{name}/front/image_raw")
            nodes.append(NodeProc(tmp_path / f"{name}.log", tmp_path / f"{name}.yaml",
                                  ["-r", f"__ns:=/{name}", "-p", f"world_dir:={worlds}"]))
        for name, node in zip(("r1", "r2"), nodes, strict=True):
            assert wait_for(lambda n=name: len(robot.msgs(f"/{n}/front/image_raw")) >= 5, 600.0), \
                node.output()[-3000:]
        time.sleep(8.0)  # both keep driving, generating and saving
    finally:
        codes = [n.stop() for n in nodes]
        robot.close()
    logs = [n.output() for n in nodes]
    assert codes == [0, 0], "\n".join(log[-2000:] for log in logs)
    made = [len(re.findall(r"keyframe at pose -1 \(online view", log)) for log in logs]
    assert all(m >= 1 for m in made), made
    state = WorldStore(worlds).get(ENV)
    assert state is not None
    assert len(state.keyframes) == sum(made), (made, len(state.keyframes))
    # Each robot's keyframes are its own views (the second robot faces the other way).
    assert any("merged" in log or "picked up another writer" in log for log in logs)
