"""No frames lost at the defaults: a reliable subscriber receives every frame of a 300-pose path
while four other processes keep both cores busy (the node is started with the shipped parameters)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from sensor_helpers import NodeProc, Robot, stamps_of, wait_for  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from srender_ros.core.geometry import to_optical  # noqa: E402
from srender_ros.ros.conversions import path_from_arrays  # noqa: E402

pytestmark = pytest.mark.ros

N = 300


def test_reliable_subscriber_gets_every_frame_of_a_300_pose_path_on_a_loaded_machine(tmp_path: Path) -> None:
    from nav_msgs.msg import Path as PathMsg

    (tmp_path / "p.yaml").write_text('/**:\n  ros__parameters:\n    environment: "a loaded machine test"\n'
                                     '    width: 64\n    height: 48\n    renderer: "cpu"\n')
    robot = Robot(rate_hz=1.0)  # only its node and subscriptions are used here
    robot.publish_tf = False
    for topic in ("/camera/image_raw", "/camera/depth/image_raw"):
        robot.subscribe(Image, topic, depth=1000)
    robot.subscribe(CameraInfo, "/camera/camera_info", depth=1000)
    pub = robot.node.create_publisher(PathMsg, "/trajectory", 10)
    node = NodeProc(tmp_path / "node.log", tmp_path / "p.yaml", ["-p", f"world_dir:={tmp_path / 'w'}"])
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        # Both sides of every match must be complete: a volatile reliable reader that has not yet
        # matched the writer skips what the writer sent before (DDS behaviour, not the node's).
        assert wait_for(lambda: pub.get_subscription_count() > 0
                        and all(sub.get_publisher_count() > 0 for sub in robot.subs.values()), 120.0), \
            node.output()[-2000:]
        time.sleep(1.0)
        T = np.tile(np.eye(4), (N, 1, 1))
        T[:, 0, 3] = np.arange(N) * 0.01
        T[:, 2, 3] = 1.5
        stamps = 10**12 + np.arange(N, dtype=np.int64) * 33_333_333
        pub.publish(path_from_arrays(stamps, to_optical(T, "body"), "map", "body"))
        topics = ("/camera/image_raw", "/camera/camera_info", "/camera/depth/image_raw")
        wait_for(lambda: min(len(robot.msgs(t)) for t in topics) >= N, 120.0)
        time.sleep(1.0)
        for t in topics:
            got = stamps_of(robot.msgs(t))
            missing = sorted(set(stamps.tolist()) - set(got))
            assert got == stamps.tolist(), (f"{t}: {len(got)} of {N} frames, missing indices "
                                            f"{[(m - int(stamps[0])) // 33_333_333 for m in missing][:20]}\n"
                                            + node.output()[-1500:])
    finally:
        for b in burners:
            b.kill()
            b.wait()
        code = node.stop()
        robot.close()
    assert code == 0
