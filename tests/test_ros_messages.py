"""Our custom messages cross a process boundary over real DDS and arrive field for field."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402

from srender_ros.msg import KeyframeSchedule, RenderRequest, WorldStatus  # noqa: E402

pytestmark = pytest.mark.ros

# The publisher process: fills one message of each type and republishes every 0.2 s, so discovery
# order cannot lose it; it exits when its stdin closes.
PUBLISHER = textwrap.dedent("""
    import sys, threading
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, DurabilityPolicy
    from geometry_msgs.msg import PoseStamped
    from srender_ros.msg import KeyframeSchedule, RenderRequest, WorldStatus

    rclpy.init()
    node = rclpy.create_node("srender_msg_pub")
    req = RenderRequest(request_id="req-7", environment="a sunlit atrium", has_camera=True, has_initial_image=True)
    req.header.frame_id = "map"
    req.trajectory.header.frame_id = "map"
    for i in range(3):
        ps = PoseStamped()
        ps.header.stamp.sec = 100 + i
        ps.pose.position.x = 0.5 * i
        ps.pose.orientation.w = 1.0
        req.trajectory.poses.append(ps)
    req.camera.width, req.camera.height = 64, 48
    req.camera.k = [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    img = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3)
    req.initial_image.height, req.initial_image.width, req.initial_image.encoding = 4, 2, "rgb8"
    req.initial_image.step = 6
    req.initial_image.data = img.tobytes()
    sched = KeyframeSchedule(request_id="req-7", environment="a sunlit atrium", scheduler="coverage",
                             coverage=[0.0, 0.5, 1.0], keyframe_indices=[0, 2],
                             reasons=["new world", "uncovered 0.31 > tau 0.02"], predicted_count=-1,
                             coverage_threshold=0.02)
    status = WorldStatus(environment="a sunlit atrium", world_id="0123456789abcdef", gaussians=2**40 + 5,
                         keyframes=3, state=WorldStatus.STATE_READY, last_error="", last_request_id="req-7")
    pubs = [(node.create_publisher(type(m), "srender_test/" + type(m).__name__, 10), m) for m in (req, sched, status)]
    threading.Thread(target=lambda: (sys.stdin.read(), rclpy.try_shutdown()), daemon=True).start()
    while rclpy.ok():
        for pub, m in pubs:
            try:
                pub.publish(m)
            except Exception:
                pass
        try:
            rclpy.spin_once(node, timeout_sec=0.2)
        except Exception:
            break
""")


def test_custom_messages_round_trip_between_processes() -> None:
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("srender_msg_sub", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    got: dict[str, object] = {}
    for cls in (RenderRequest, KeyframeSchedule, WorldStatus):
        node.create_subscription(cls, "srender_test/" + cls.__name__, lambda m, n=cls.__name__: got.setdefault(n, m), 10)
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30.0
        while len(got) < 3 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        try:  # communicate closes the publisher's stdin: it shuts down
            err = proc.communicate(timeout=10)[1].decode(errors="replace")
        except subprocess.TimeoutExpired:
            proc.kill()
            err = proc.communicate()[1].decode(errors="replace")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    assert set(got) == {"RenderRequest", "KeyframeSchedule", "WorldStatus"}, f"publisher stderr:\n{err}"

    req = got["RenderRequest"]
    assert isinstance(req, RenderRequest)
    assert (req.request_id, req.environment, req.header.frame_id) == ("req-7", "a sunlit atrium", "map")
    assert req.has_camera and req.has_initial_image
    assert [p.header.stamp.sec for p in req.trajectory.poses] == [100, 101, 102]
    assert [p.pose.position.x for p in req.trajectory.poses] == [0.0, 0.5, 1.0]
    assert list(req.camera.k) == [50.0, 0.0, 32.0, 0.0, 50.0, 24.0, 0.0, 0.0, 1.0]
    assert (req.initial_image.width, req.initial_image.height, req.initial_image.encoding) == (2, 4, "rgb8")
    assert bytes(req.initial_image.data) == bytes(range(24))

    sched = got["KeyframeSchedule"]
    assert isinstance(sched, KeyframeSchedule)
    assert list(sched.coverage) == [0.0, 0.5, 1.0] and list(sched.keyframe_indices) == [0, 2]
    assert list(sched.reasons) == ["new world", "uncovered 0.31 > tau 0.02"]
    assert (sched.scheduler, sched.predicted_count) == ("coverage", -1)
    assert sched.coverage_threshold == pytest.approx(0.02)

    status = got["WorldStatus"]
    assert isinstance(status, WorldStatus)
    assert (status.world_id, status.gaussians, status.keyframes) == ("0123456789abcdef", 2**40 + 5, 3)
    assert status.state == WorldStatus.STATE_READY and status.last_request_id == "req-7"
