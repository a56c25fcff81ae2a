"""Test helpers for sensor cameras: a robot publishing /tf on a known path, a probe, a node process."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from conftest import wait_for  # noqa: F401  (re-exported for the sensor tests)
from geometry_msgs.msg import TransformStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from tf2_msgs.msg import TFMessage

from srender_ros.core.geometry import make_transform
from srender_ros.ros.conversions import ns_to_stamp, stamp_to_ns
from srender_ros.ros.sensor_config import rpy_to_matrix

REPO = Path(__file__).resolve().parents[1]
#: camera_link on base_link, as a robot description would put it (URDF joint origin).
CAMERA_LINK_XYZ = (0.2, 0.0, 0.5)


def base_pose(t_s: float, moving: bool = True) -> tuple[float, float, float]:
    """The robot's known path: (x, y, yaw) of base_link in odom at time ``t_s`` (bounded, smooth)."""
    if not moving:
        return 0.1, 0.0, 0.05
    return 0.4 * math.sin(0.6 * t_s), 0.1 * math.sin(0.4 * t_s), 0.15 * math.sin(0.5 * t_s)


def T_odom_base(x: float, y: float, yaw: float) -> np.ndarray:
    return make_transform(rpy_to_matrix(0.0, 0.0, yaw), np.array([x, y, 0.0]))


def _ts(parent: str, child: str, stamp_ns: int, T: np.ndarray) -> TransformStamped:
    from srender_ros.core.geometry import matrix_to_quat_wxyz

    ts = TransformStamped()
    ts.header.stamp = ns_to_stamp(stamp_ns)
    ts.header.frame_id, ts.child_frame_id = parent, child
    ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = map(float, T[:3, 3])
    q = matrix_to_quat_wxyz(T[None, :3, :3])[0]
    r = ts.transform.rotation
    r.w, r.x, r.y, r.z = map(float, q)
    return ts


class Robot:
    """A test-side node: publishes odom -> base_link on /tf at ``rate_hz`` (stamped with its clock)
    and base_link -> camera_link on /tf_static; subscribes to whatever the test asks for."""

    def __init__(self, rate_hz: float = 50.0, use_sim_time: bool = False, prefixes: tuple[str, ...] = ("",)) -> None:
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node(f"sensor_test_robot_{os.getpid()}_{id(self) % 9973}", context=self.ctx,
                                      parameter_overrides=[rclpy.parameter.Parameter("use_sim_time", value=use_sim_time)])
        self.lock = threading.Lock()
        self.moving = True
        self.publish_tf = True
        self.extra: list[TransformStamped] = []  # appended to every /tf message (bad input tests)
        self.sent: list[tuple[int, float, float, float]] = []  # (stamp_ns, x, y, yaw)
        self.got: dict[str, list[Any]] = {}
        self.subs: dict[str, Any] = {}
        self.pub_tf = self.node.create_publisher(TFMessage, "/tf", 100)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_static = self.node.create_publisher(TFMessage, "/tf_static", latched)
        self.prefixes = prefixes  # one robot per prefix ("r1/" -> r1/base_link); the k-th turned by k * 180 deg
        self.statics = [_ts(f"{p}base_link", f"{p}camera_link", 0, make_transform(np.eye(3), np.array(CAMERA_LINK_XYZ)))
                        for p in prefixes]
        self.pub_static.publish(TFMessage(transforms=self.statics))
        self.period_s = 1.0 / rate_hz
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._spin, daemon=True),
                        threading.Thread(target=self._tf_loop, daemon=True)]
        for t in self.threads:
            t.start()

    def add_static(self, ts: TransformStamped) -> None:
        self.statics.append(ts)
        self.pub_static.publish(TFMessage(transforms=self.statics))

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def _tf_loop(self) -> None:
        while not self._stop.is_set():
            now = self.node.get_clock().now().nanoseconds
            if self.publish_tf and now > 0:
                x, y, yaw = base_pose(now * 1e-9, self.moving)
                msg = TFMessage(transforms=[_ts("odom", f"{p}base_link", now, T_odom_base(x, y, yaw + k * math.pi))
                                            for k, p in enumerate(self.prefixes)] + self.extra)
                with self.lock:
                    self.sent.append((now, x, y, yaw))
                try:
                    self.pub_tf.publish(msg)
                except Exception:
                    return
            self._stop.wait(self.period_s)

    def pose_at(self, stamp_ns: int) -> np.ndarray:
        """T_odom_base at ``stamp_ns`` interpolated from what was sent (as the node's buffer does)."""
        with self.lock:
            a = np.array(self.sent, dtype=np.float64)
        st = a[:, 0]
        x, y, yaw = (float(np.interp(stamp_ns, st, a[:, k])) for k in (1, 2, 3))
        return T_odom_base(x, y, yaw)

    def subscribe(self, msg_type: Any, topic: str, depth: int = 200, latched: bool = False) -> None:
        self.got[topic] = []
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

        def cb(msg: Any) -> None:
            with self.lock:
                self.got[topic].append(msg)
        self.subs[topic] = self.node.create_subscription(msg_type, topic, cb, qos)

    def msgs(self, topic: str) -> list[Any]:
        with self.lock:
            return list(self.got[topic])

    def clear(self, topic: str) -> None:
        with self.lock:
            self.got[topic].clear()

    def close(self) -> None:
        self._stop.set()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


class NodeProc:
    """``srender_node`` in a subprocess with the shipped params file plus ``params`` (a YAML file)."""

    def __init__(self, log_path: Path, params_file: Path, extra: list[str] | None = None) -> None:
        self.log_path = log_path
        cmd = [sys.executable, "-m", "srender_ros.ros.node", "--ros-args",
               "--params-file", str(REPO / "config" / "srender.yaml"), "--params-file", str(params_file)]
        cmd += extra or []
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ.copy())

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)


def stamps_of(msgs: list[Any]) -> list[int]:
    return [stamp_to_ns(m.header.stamp) for m in msgs]
