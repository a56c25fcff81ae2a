"""The srender node in a subprocess, over real DDS, started with the shipped params file.

One node serves the whole module (tests run in file order; the last one stops it with SIGTERM).
Sizes are tiny (64x48) so the CPU renderer keeps the module quick.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import wait_for

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Path as PathMsg  # noqa: E402
from rcl_interfaces.srv import SetParametersAtomically  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from srender_ros.core.store import world_id_for_prompt  # noqa: E402
from srender_ros.msg import KeyframeSchedule, RenderRequest, WorldStatus  # noqa: E402
from srender_ros.ros.conversions import (  # noqa: E402
    image_msg_to_array,
    ns_to_stamp,
    path_from_arrays,
    stamp_to_ns,
)

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
ENV_MAIN = "a small test room"
W, H = 64, 48
FRAME = "camera_optical_frame"
#: Waits, not speed assertions: a fresh checkout compiles the numba kernels on first use (minutes).
TIMEOUT_S = 600.0


def _poses(n: int, step_m: float = 0.02) -> np.ndarray:
    """[n, 4, 4] optical poses: a camera at 1.5 m height looking along world +x, drifting forward."""
    from srender_ros.core.geometry import to_optical

    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = np.arange(n) * step_m
    T[:, 2, 3] = 1.5
    return to_optical(T, "body")


def _path(n: int, start_ns: int, dt_ns: int = 33_333_333, frame_id: str = "map") -> PathMsg:
    return path_from_arrays(start_ns + np.arange(n, dtype=np.int64) * dt_ns, _poses(n), frame_id, "body")


class Probe:
    """A test-side node: subscribes to every output, publishes requests, calls parameter services."""

    def __init__(self) -> None:
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("srender_test_probe", context=self.ctx)
        self.lock = threading.Lock()
        self.got: dict[str, list[tuple[int, Any]]] = {k: [] for k in ("image", "info", "depth", "status", "schedule")}
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=500, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.subs = [
            self.node.create_subscription(Image, "/camera/image_raw", self._keep("image"), reliable),
            self.node.create_subscription(CameraInfo, "/camera/camera_info", self._keep("info"), reliable),
            self.node.create_subscription(Image, "/camera/depth/image_raw", self._keep("depth"), reliable),
            self.node.create_subscription(WorldStatus, "/srender/world_status", self._keep("status"), latched),
            self.node.create_subscription(KeyframeSchedule, "/srender/keyframe_schedule", self._keep("schedule"), reliable),
        ]
        self.pub_path = self.node.create_publisher(PathMsg, "/trajectory", 10)
        self.pub_request = self.node.create_publisher(RenderRequest, "/render_request", 10)
        self.pub_pose = self.node.create_publisher(PoseStamped, "/camera_pose", 10)
        self.set_params = self.node.create_client(SetParametersAtomically, "/srender/set_parameters_atomically")
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def _keep(self, key: str) -> Callable[[Any], None]:
        def cb(msg: Any) -> None:
            with self.lock:
                self.got[key].append((time.time_ns(), msg))
        return cb

    def msgs(self, key: str) -> list[Any]:
        with self.lock:
            return [m for _, m in self.got[key]]

    def timed(self, key: str) -> list[tuple[int, Any]]:
        with self.lock:
            return list(self.got[key])

    def clear(self) -> None:
        with self.lock:
            for v in self.got.values():
                v.clear()

    def wait_connected(self, timeout_s: float) -> None:
        ok = wait_for(lambda: all(p.get_subscription_count() > 0 for p in (self.pub_path, self.pub_request, self.pub_pose))
                      and all(s.get_publisher_count() > 0 for s in self.subs)
                      and self.set_params.service_is_ready(), timeout_s)
        assert ok, "the node's topics and parameter service never appeared"
        time.sleep(0.5)  # the node's side of the match may complete a moment after ours

    def set(self, **values: Any) -> Any:
        """Set parameters in one atomic call; returns the SetParametersResult."""
        req = SetParametersAtomically.Request(parameters=[Parameter(k, value=v).to_parameter_msg()
                                                          for k, v in values.items()])
        fut = self.set_params.call_async(req)
        assert wait_for(fut.done, 20.0), "set_parameters_atomically timed out"
        return fut.result().result

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


class NodeProc:
    def __init__(self, world_dir: Path, log_path: Path, extra: list[str] | None = None,
                 flags: tuple[str, ...] = ()) -> None:
        self.world_dir = world_dir
        self.log_path = log_path
        cmd = [sys.executable, "-m", "srender_ros.ros.node", *flags, "--ros-args",
               "--params-file", str(REPO / "config" / "srender.yaml"),
               "-p", f"world_dir:={world_dir}", "-p", f"width:={W}", "-p", f"height:={H}",
               "-p", f"environment:={ENV_MAIN}", *(extra or [])]
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=os.environ.copy())

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    tmp = tmp_path_factory.mktemp("srender_node")
    proc = NodeProc(tmp / "worlds", tmp / "node.log")
    yield proc
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()
    proc.log.close()


@pytest.fixture(scope="module")
def probe(node: NodeProc) -> Iterator[Probe]:
    p = Probe()
    p.wait_connected(60.0)
    yield p
    p.close()


def _last_status(probe: Probe, pred: Callable[[Any], bool]) -> Any | None:
    found = [m for m in probe.msgs("status") if pred(m)]
    return found[-1] if found else None


def _wait_frames(probe: Probe, n: int, node: NodeProc) -> None:
    ok = wait_for(lambda: min(len(probe.msgs(k)) for k in ("image", "info", "depth")) >= n, TIMEOUT_S)
    assert ok, (f"got {[len(probe.msgs(k)) for k in ('image', 'info', 'depth')]} of {n} frames; node log:\n"
                + node.output()[-3000:])


def test_path_of_60_poses_gives_60_images_infos_and_depths_in_order(node: NodeProc, probe: Probe) -> None:
    probe.clear()
    path = _path(60, start_ns=1_000 * 10**9)
    stamps = [stamp_to_ns(p.header.stamp) for p in path.poses]
    probe.pub_path.publish(path)
    _wait_frames(probe, 60, node)
    time.sleep(0.3)  # anything beyond 60 would be a bug: give it a moment to show up
    images, infos, depths = probe.msgs("image"), probe.msgs("info"), probe.msgs("depth")
    assert [stamp_to_ns(m.header.stamp) for m in images] == stamps
    assert [stamp_to_ns(m.header.stamp) for m in infos] == stamps
    assert [stamp_to_ns(m.header.stamp) for m in depths] == stamps
    assert {m.header.frame_id for m in images + infos + depths} == {FRAME}
    assert {(m.width, m.height, m.encoding) for m in images} == {(W, H, "rgb8")}
    assert {(m.width, m.height, m.encoding) for m in depths} == {(W, H, "32FC1")}
    K = np.reshape(infos[0].k, (3, 3))
    assert {(m.width, m.height) for m in infos} == {(W, H)} and K[0, 0] == pytest.approx(W / 2)  # fov 90 deg
    rgb = image_msg_to_array(images[30])
    depth = image_msg_to_array(depths[30])
    assert rgb.std() > 1.0, "the rendered image is flat: nothing was drawn"
    valid = depth[np.isfinite(depth)]
    assert valid.size > 0 and (valid > 0).all()

    assert wait_for(lambda: len(probe.msgs("schedule")) >= 1, 10.0)
    sched = probe.msgs("schedule")[-1]
    assert len(sched.coverage) == 60 and sched.environment == ENV_MAIN
    assert len(sched.keyframe_indices) >= 1 and sched.keyframe_indices[0] == 0
    assert len(sched.reasons) == len(sched.keyframe_indices)
    status = _last_status(probe, lambda m: m.last_request_id == sched.request_id and m.state == WorldStatus.STATE_READY)
    assert status is not None and status.environment == ENV_MAIN and status.last_error == ""
    assert status.world_id == world_id_for_prompt(ENV_MAIN) and status.gaussians > 0 and status.keyframes >= 1

    # The same path again through the now known world: frames, but no new keyframe.
    probe.clear()
    probe.pub_path.publish(_path(60, start_ns=2_000 * 10**9))
    _wait_frames(probe, 60, node)
    assert wait_for(lambda: len(probe.msgs("schedule")) >= 1, 10.0)
    assert list(probe.msgs("schedule")[-1].keyframe_indices) == []
    again = _last_status(probe, lambda m: m.state == WorldStatus.STATE_READY and m.environment == ENV_MAIN)
    assert again is not None and again.gaussians == status.gaussians


def test_render_request_for_a_second_environment_with_its_own_camera(node: NodeProc, probe: Probe) -> None:
    probe.clear()
    env = "a quiet library"
    req = RenderRequest(request_id="lib-1", environment=env, trajectory=_path(10, start_ns=3_000 * 10**9),
                        has_camera=True)
    req.camera.width, req.camera.height = 40, 30
    req.camera.k = [30.0, 0.0, 20.0, 0.0, 30.0, 15.0, 0.0, 0.0, 1.0]
    probe.pub_request.publish(req)
    _wait_frames(probe, 10, node)
    assert {(m.width, m.height) for m in probe.msgs("image") + probe.msgs("depth") + probe.msgs("info")} == {(40, 30)}
    assert list(probe.msgs("info")[0].k) == list(req.camera.k)
    assert wait_for(lambda: _last_status(probe, lambda m: m.last_request_id == "lib-1"
                                         and m.state == WorldStatus.STATE_READY) is not None, 10.0)
    status = _last_status(probe, lambda m: m.last_request_id == "lib-1")
    assert status.environment == env and status.world_id == world_id_for_prompt(env) and status.gaussians > 0
    sched = probe.msgs("schedule")[-1]
    assert (sched.request_id, sched.environment) == ("lib-1", env)


def test_camera_pose_is_answered_with_its_stamp(node: NodeProc, probe: Probe) -> None:
    probe.clear()
    msg = PoseStamped()
    msg.header.frame_id = "map"
    msg.header.stamp = ns_to_stamp(4_000 * 10**9 + 7)
    msg.pose.position.z = 1.5
    msg.pose.orientation.w = 1.0

    def answered() -> bool:
        if not any(stamp_to_ns(m.header.stamp) == 4_000 * 10**9 + 7 for m in probe.msgs("image")):
            probe.pub_pose.publish(msg)  # best-effort input: repeat until one arrives
            time.sleep(0.3)
            return False
        return True

    assert wait_for(answered, TIMEOUT_S), node.output()[-3000:]
    img = next(m for m in probe.msgs("image") if stamp_to_ns(m.header.stamp) == 4_000 * 10**9 + 7)
    assert (img.width, img.height, img.header.frame_id) == (W, H, FRAME)
    assert wait_for(lambda: any(stamp_to_ns(m.header.stamp) == 4_000 * 10**9 + 7 for m in probe.msgs("depth")), 5.0)


def test_camera_pose_is_answered_while_a_path_is_being_served(node: NodeProc, probe: Probe) -> None:
    assert probe.set(publish_mode="paced").successful
    probe.clear()
    start_ns = time.time_ns() + 1_000_000_000
    path = _path(40, start_ns=start_ns, dt_ns=100_000_000)  # the path worker stays busy for ~5 s
    last_stamp = stamp_to_ns(path.poses[-1].header.stamp)
    probe.pub_path.publish(path)
    assert wait_for(lambda: len(probe.msgs("image")) >= 1, TIMEOUT_S)  # the path is being served now
    msg = PoseStamped()
    msg.header.frame_id = "map"
    msg.header.stamp = ns_to_stamp(4_500 * 10**9)
    msg.pose.position.z = 1.5
    msg.pose.orientation.w = 1.0

    def view_arrived() -> bool:
        if any(stamp_to_ns(m.header.stamp) == 4_500 * 10**9 for m in probe.msgs("image")):
            return True
        probe.pub_pose.publish(msg)
        time.sleep(0.2)
        return False

    assert wait_for(view_arrived, TIMEOUT_S)
    order = [stamp_to_ns(m.header.stamp) for m in probe.msgs("image")]
    assert last_stamp not in order[: order.index(4_500 * 10**9)], "the view waited for the whole path"
    _wait_frames(probe, 41, node)
    assert probe.set(publish_mode="fast").successful


def test_parameters_change_at_run_time_and_bad_values_are_refused(node: NodeProc, probe: Probe) -> None:
    bad = probe.set(width=0)
    assert not bad.successful and bad.reason
    bad = probe.set(publish_mode="slowly")
    assert not bad.successful and "publish_mode" in bad.reason
    bad = probe.set(image_qos="sensor_data")
    assert not bad.successful  # read-only: fixed at start-up
    bad = probe.set(generator="diffusers", model_path="/no/such/model", depth_model_path="/no/such/depth")
    assert not bad.successful and "no such folder" in bad.reason

    env = "a rainy street"
    ok = probe.set(environment=env, publish_mode="paced")
    assert ok.successful, ok.reason
    assert wait_for(lambda: _last_status(probe, lambda m: m.environment == env) is not None, 10.0)
    probe.clear()
    start_ns = time.time_ns() + 1_500_000_000  # a path in the future: paced frames go out at their stamps
    probe.pub_path.publish(_path(5, start_ns=start_ns, dt_ns=100_000_000))
    _wait_frames(probe, 5, node)
    for received_ns, img in probe.timed("image"):
        assert received_ns >= stamp_to_ns(img.header.stamp), "a paced frame went out before its stamp"
    assert wait_for(lambda: _last_status(probe, lambda m: m.environment == env and m.state == WorldStatus.STATE_READY)
                    is not None, 10.0)
    assert probe.set(publish_mode="fast", environment=ENV_MAIN).successful


def _expect_refusal(probe: Probe, publish: Callable[[], None], fragment: str) -> None:
    n0 = len(probe.msgs("status"))
    publish()
    ok = wait_for(lambda: any(fragment in m.last_error for m in probe.msgs("status")[n0:]), 20.0)
    errors = [m.last_error for m in probe.msgs("status")[n0:]]
    assert ok, f"no WorldStatus.last_error containing {fragment!r}; got {errors}"


def test_bad_input_is_refused_and_the_next_request_is_served_in_full(node: NodeProc, probe: Probe, tmp_path: Path) -> None:
    probe.clear()
    empty = PathMsg()
    empty.header.frame_id = "map"
    _expect_refusal(probe, lambda: probe.pub_path.publish(empty), "empty")

    nan = _path(5, 5_000 * 10**9)
    nan.poses[3].pose.position.x = math.nan
    _expect_refusal(probe, lambda: probe.pub_path.publish(nan), "pose #3: position")

    inf = _path(5, 5_000 * 10**9)
    inf.poses[1].pose.position.z = math.inf
    _expect_refusal(probe, lambda: probe.pub_path.publish(inf), "pose #1: position")

    zero_q = _path(5, 5_000 * 10**9)
    o = zero_q.poses[2].pose.orientation
    o.x = o.y = o.z = o.w = 0.0
    _expect_refusal(probe, lambda: probe.pub_path.publish(zero_q), "#2 is zero")

    no_frame = _path(5, 5_000 * 10**9, frame_id="")
    _expect_refusal(probe, lambda: probe.pub_path.publish(no_frame), "frame_id is empty")

    mixed = _path(5, 5_000 * 10**9)
    mixed.poses[4].header.frame_id = "odom"
    _expect_refusal(probe, lambda: probe.pub_path.publish(mixed), "differs from the path's")

    absurd = RenderRequest(request_id="absurd", environment=ENV_MAIN, trajectory=_path(5, 5_000 * 10**9), has_camera=True)
    absurd.camera.width, absurd.camera.height = 64, 48
    absurd.camera.k = [0.001, 0.0, 32.0, 0.0, 0.001, 24.0, 0.0, 0.0, 1.0]
    _expect_refusal(probe, lambda: probe.pub_request.publish(absurd), "field of view")

    bad_pose = PoseStamped()  # no frame id, zero quaternion
    _expect_refusal(probe, lambda: probe.pub_pose.publish(bad_pose), "camera_pose: header.frame_id is empty")

    no_env = RenderRequest(request_id="noenv", environment="  ", trajectory=_path(5, 5_000 * 10**9))
    _expect_refusal(probe, lambda: probe.pub_request.publish(no_env), "environment is empty")

    # A model folder that exists but holds no model: accepted as a parameter, refused when loaded.
    (tmp_path / "model").mkdir()
    (tmp_path / "depth").mkdir()
    assert probe.set(generator="diffusers", model_path=str(tmp_path / "model"),
                     depth_model_path=str(tmp_path / "depth")).successful
    unseen = RenderRequest(request_id="cave", environment="an unseen cave", trajectory=_path(5, 5_000 * 10**9))
    _expect_refusal(probe, lambda: probe.pub_request.publish(unseen), str(tmp_path / "model"))
    failed = _last_status(probe, lambda m: m.last_request_id == "cave")
    assert failed.state == WorldStatus.STATE_ERROR
    assert probe.set(generator="procedural").successful

    probe.clear()
    path = _path(20, start_ns=6_000 * 10**9)
    probe.pub_path.publish(path)
    _wait_frames(probe, 20, node)
    want = [stamp_to_ns(p.header.stamp) for p in path.poses]
    for key in ("image", "info", "depth"):
        assert [stamp_to_ns(m.header.stamp) for m in probe.msgs(key)] == want
    assert wait_for(lambda: _last_status(probe, lambda m: m.state == WorldStatus.STATE_READY and m.last_error == "")
                    is not None, 10.0)
    assert node.proc.poll() is None


def test_sigterm_exits_cleanly_and_saves_worlds(node: NodeProc, probe: Probe) -> None:
    node.proc.send_signal(signal.SIGTERM)
    code = node.proc.wait(timeout=60)
    out = node.output()
    assert code == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for env in (ENV_MAIN, "a quiet library", "a rainy street"):
        wdir = node.world_dir / f"w-{world_id_for_prompt(env)}"
        assert wdir.is_dir(), f"world of {env!r} not saved: {sorted(p.name for p in node.world_dir.iterdir())}"
        assert any(wdir.rglob("*.ply")) and any(wdir.glob("*.json"))  # cells/*.ply since issue 15
