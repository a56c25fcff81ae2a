"""The node's ``viewer_port``: the node serves its current world in the browser and shows camera poses live.

A node subprocess over real DDS; the page is checked in headless Chromium when one is installed
(else only that it is served).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from srender_ros.core.store import WorldStore  # noqa: E402
from srender_ros.viewer.browser import HeadlessPage, find_chromium  # noqa: E402

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
ENV = "a node viewer test room"
TIMEOUT_S = 600.0  # a fresh checkout compiles the numba kernels on first use


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(pred: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return bool(pred())  # type: ignore[operator]


def test_node_serves_its_world_and_camera_poses(tmp_path: Path) -> None:
    from test_viewer import save_world  # tests/ is on sys.path under pytest

    save_world(tmp_path / "worlds", prompt=ENV, n=3000, keyframes=2)
    assert WorldStore(tmp_path / "worlds").get(ENV) is not None
    port = _free_port()
    log_path = tmp_path / "node.log"
    cmd = [sys.executable, "-m", "srender_ros.ros.node", "--ros-args",
           "--params-file", str(REPO / "config" / "srender.yaml"), "-p", f"world_dir:={tmp_path / 'worlds'}",
           "-p", "width:=32", "-p", "height:=24", "-p", f"environment:={ENV}", "-p", f"viewer_port:={port}",
           "-p", "camera_pose_generate:=false"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node("srender_viewer_probe", context=ctx)
    images: list[Image] = []
    probe.create_subscription(Image, "/camera/image_raw", images.append,
                              QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                         reliability=ReliabilityPolicy.RELIABLE))
    pub = probe.create_publisher(PoseStamped, "/camera_pose", 10)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        assert _wait(lambda: f"world viewer at http://127.0.0.1:{port}/" in log_path.read_text(), 120), \
            log_path.read_text()[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
            assert r.status == 200

        msg = PoseStamped()
        msg.header.frame_id = "map"
        msg.pose.position.x, msg.pose.position.z = 0.25, 1.5
        msg.pose.orientation.w = 1.0

        def answered() -> bool:
            if not images:
                pub.publish(msg)  # best-effort input: repeat until one is rendered
            return bool(images)

        assert _wait(answered, TIMEOUT_S), log_path.read_text()[-3000:]
        if find_chromium() is None:
            return
        with HeadlessPage(1024, 700) as page:
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for("document.body && document.body.innerText.includes('2 keyframes')", 90)
            assert "3,000 Gaussians" in page.body_text()
            # body frame (REP 103) in, optical frame drawn: same position
            page.wait_for("document.body.innerText.includes('camera_pose: (0.25, 0.00, 1.50) m')", 30)
    finally:
        executor.shutdown(timeout_sec=1.0)
        probe.destroy_node()
        rclpy.try_shutdown(context=ctx)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
