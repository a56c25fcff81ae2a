"""The ``render`` action over real DDS, the node in a subprocess (one node for the module).

Covers feedback and result, cancel (stops at the next frame, keyframes kept and saved), goals
beyond queue_depth rejected with a reason, and bad goals aborted with the reason in the result
while the server keeps serving.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")
from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from test_ros_node import ENV_MAIN, TIMEOUT_S, NodeProc, Probe, _path, wait_for  # noqa: E402

from srender_ros.action import RenderTrajectory  # noqa: E402
from srender_ros.core.store import world_id_for_prompt  # noqa: E402

pytestmark = pytest.mark.ros
Feedback = RenderTrajectory.Feedback


class Goal:
    """One goal sent by the probe: its feedback, handle and (eventually) result."""

    def __init__(self, client: ActionClient, goal: Any) -> None:
        self.feedback: list[Any] = []
        self.sent = client.send_goal_async(goal, feedback_callback=lambda m: self.feedback.append(m.feedback))
        assert wait_for(self.sent.done, 30.0), "no goal response"
        self.handle = self.sent.result()
        self._result: Any = None
        if self.handle.accepted:
            self._result = self.handle.get_result_async()

    def result(self, timeout_s: float = TIMEOUT_S) -> tuple[int, Any]:
        assert self._result is not None, "goal was rejected"
        assert wait_for(self._result.done, timeout_s), "no result"
        r = self._result.result()
        return r.status, r.result

    def cancel(self) -> None:
        fut = self.handle.cancel_goal_async()
        assert wait_for(fut.done, 20.0)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProc]:
    tmp = tmp_path_factory.mktemp("srender_action")
    proc = NodeProc(tmp / "worlds", tmp / "node.log", extra=["-p", "chunk_size:=10"])
    yield proc
    if proc.proc.poll() is None:
        proc.proc.send_signal(signal.SIGTERM)
        try:
            proc.proc.wait(timeout=60)
        except Exception:
            proc.proc.kill()
            proc.proc.wait()
    proc.log.close()


@pytest.fixture(scope="module")
def probe(node: NodeProc) -> Iterator[tuple[Probe, ActionClient]]:
    p = Probe()
    client = ActionClient(p.node, RenderTrajectory, "/render")
    p.wait_connected(60.0)
    assert client.wait_for_server(timeout_sec=60.0), "the render action server never appeared"
    yield p, client
    client.destroy()
    p.close()


def _goal(env: str, n: int, start_ns: int, dt_ns: int = 33_333_333) -> Any:
    return RenderTrajectory.Goal(environment=env, trajectory=_path(n, start_ns, dt_ns))


def test_goal_reports_progress_every_chunk_and_a_full_result(node: NodeProc, probe: tuple[Probe, ActionClient]) -> None:
    p, client = probe
    p.clear()
    goal = Goal(client, _goal(ENV_MAIN, 30, 1_000 * 10**9))
    assert goal.handle.accepted
    status, res = goal.result()
    assert status == GoalStatus.STATUS_SUCCEEDED, (res.error, node.output()[-3000:])
    assert res.error == "" and (res.frames, res.frames_total) == (30, 30)
    assert res.keyframes >= 1 and len(res.keyframe_indices) == res.keyframes and res.keyframe_indices[0] == 0
    assert res.world_id == world_id_for_prompt(ENV_MAIN) and res.gaussians > 0
    assert res.seconds_total > 0 and res.seconds_render > 0 and res.seconds_generate > 0
    assert wait_for(lambda: len(p.msgs("image")) >= 30, 20.0)  # frames went out on the camera topics
    phases = [f.phase for f in goal.feedback]
    assert phases[0] == Feedback.PHASE_SCHEDULING and Feedback.PHASE_GENERATING in phases
    rendering = [f.frames_done for f in goal.feedback if f.phase == Feedback.PHASE_RENDERING]
    assert rendering == [10, 20, 30], rendering  # one per chunk (chunk_size 10)
    gen = next(f for f in goal.feedback if f.phase == Feedback.PHASE_GENERATING)
    assert gen.phase_text == "generating keyframe 1 at pose 0" and gen.frames_total == 30


def test_cancel_stops_at_the_next_frame_and_keeps_the_keyframes(node: NodeProc,
                                                                 probe: tuple[Probe, ActionClient]) -> None:
    p, client = probe
    p.clear()
    assert p.set(publish_mode="paced").successful
    try:
        env = "a long corridor"
        # Paced, stamped in the future at 10 Hz: the goal would take ~6 s.
        goal = Goal(client, _goal(env, 60, time.time_ns() + 500_000_000, dt_ns=100_000_000))
        assert goal.handle.accepted
        assert wait_for(lambda: any(f.phase == Feedback.PHASE_RENDERING for f in goal.feedback)
                        or len(p.msgs("image")) >= 3, TIMEOUT_S)
        goal.cancel()
        status, res = goal.result(60.0)
    finally:
        assert p.set(publish_mode="fast").successful
    assert status == GoalStatus.STATUS_CANCELED, (res.error, node.output()[-3000:])
    assert 0 < res.frames < 60 and "canceled after" in res.error
    assert res.keyframes >= 1
    wdir = node.world_dir / f"w-{world_id_for_prompt(env)}"
    assert any(wdir.rglob("*.ply")), f"the canceled goal's world was not saved: {sorted(node.world_dir.iterdir())}"


def test_goals_beyond_the_queue_depth_are_rejected(node: NodeProc, probe: tuple[Probe, ActionClient]) -> None:
    p, client = probe
    assert p.set(queue_depth=1, publish_mode="paced").successful
    goals: list[Goal] = []
    try:
        n0 = len(p.msgs("status"))
        for i in range(3):
            goals.append(Goal(client, _goal(ENV_MAIN, 40, time.time_ns() + 10**9 + i, dt_ns=100_000_000)))
        assert [g.handle.accepted for g in goals] == [True, True, False]
        assert wait_for(lambda: any("queue_depth=1" in m.last_error for m in p.msgs("status")[n0:]), 10.0)
    finally:
        for g in goals[:2]:
            g.cancel()
        assert p.set(queue_depth=2, publish_mode="fast").successful
    assert goals[0].result(60.0)[0] == GoalStatus.STATUS_CANCELED
    status, res = goals[1].result(60.0)
    assert status == GoalStatus.STATUS_CANCELED and res.error == "canceled before it started"


def test_bad_goals_abort_with_the_reason_and_the_server_keeps_serving(node: NodeProc, tmp_path: Path,
                                                                       probe: tuple[Probe, ActionClient]) -> None:
    p, client = probe

    def aborted(goal: Any) -> str:
        g = Goal(client, goal)
        assert g.handle.accepted
        status, res = g.result(60.0)
        assert status == GoalStatus.STATUS_ABORTED, res
        return str(res.error)

    empty = _goal(ENV_MAIN, 3, 7_000 * 10**9)
    empty.trajectory.poses = []
    assert "empty" in aborted(empty)
    nan = _goal(ENV_MAIN, 5, 7_000 * 10**9)
    nan.trajectory.poses[2].pose.position.y = math.nan
    assert "pose #2: position" in aborted(nan)
    distorted = _goal(ENV_MAIN, 5, 7_000 * 10**9)
    distorted.has_camera = True
    distorted.camera.width, distorted.camera.height = 64, 48
    distorted.camera.k = [32.0, 0.0, 32.0, 0.0, 32.0, 24.0, 0.0, 0.0, 1.0]
    distorted.camera.d = [0.1, 0.0, 0.0, 0.0, 0.0]
    assert "distortion" in aborted(distorted)
    assert "environment is empty" in aborted(_goal("  ", 5, 7_000 * 10**9))

    # An unseen environment while the generator cannot make worlds (model folders without models).
    (tmp_path / "model").mkdir()
    (tmp_path / "depth").mkdir()
    assert p.set(generator="diffusers", model_path=str(tmp_path / "model"),
                 depth_model_path=str(tmp_path / "depth")).successful
    try:
        assert str(tmp_path / "model") in aborted(_goal("an unseen cave", 5, 7_000 * 10**9))
    finally:
        assert p.set(generator="procedural").successful

    g = Goal(client, _goal(ENV_MAIN, 10, 8_000 * 10**9))
    status, res = g.result()
    assert status == GoalStatus.STATUS_SUCCEEDED and res.frames == 10, res
    assert node.proc.poll() is None


def test_diagnostics_report_the_camera_and_the_generator(node: NodeProc, tmp_path: Path,
                                                         probe: tuple[Probe, ActionClient]) -> None:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    p, client = probe
    arrays: list[Any] = []
    sub = p.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, 10)
    try:
        def status(name: str, pred: Any = lambda s: True) -> Any:
            found = [s for a in list(arrays) for s in a.status if s.name == name and pred(s)]
            return found[-1] if found else None

        assert wait_for(lambda: status("srender: generator") is not None and status("srender: camera") is not None,
                        30.0), "no /diagnostics from the node"
        gen = status("srender: generator")
        values = {kv.key: kv.value for kv in gen.values}
        assert gen.level == DiagnosticStatus.OK and values["environment"] == ENV_MAIN
        assert int(values["world Gaussians"]) > 0 and float(values["world memory (MiB)"]) > 0
        cam = {kv.key: kv.value for kv in status("srender: camera").values}
        assert int(cam["frames published"]) > 0 and "render latency mean (ms)" in cam

        # A generator that cannot be built is an ERROR with the reason, until fixed.
        (tmp_path / "model").mkdir()
        (tmp_path / "depth").mkdir()
        assert p.set(generator="diffusers", model_path=str(tmp_path / "model"),
                     depth_model_path=str(tmp_path / "depth")).successful
        try:
            g = Goal(client, _goal("another unseen cave", 3, 9_000 * 10**9))
            assert g.result(60.0)[0] == GoalStatus.STATUS_ABORTED
            assert wait_for(lambda: status("srender: generator", lambda s: s.level == DiagnosticStatus.ERROR)
                            is not None, 10.0)
            err = status("srender: generator", lambda s: s.level == DiagnosticStatus.ERROR)
            assert "unavailable" in err.message and str(tmp_path / "model") in err.message
        finally:
            assert p.set(generator="procedural").successful
        g = Goal(client, _goal(ENV_MAIN, 3, 9_100 * 10**9))
        assert g.result()[0] == GoalStatus.STATUS_SUCCEEDED
        n = len(arrays)
        assert wait_for(lambda: any(s.name == "srender: generator" and s.level == DiagnosticStatus.OK
                                    for a in arrays[n:] for s in a.status), 10.0)
    finally:
        p.node.destroy_subscription(sub)


def test_compressed_topics_decode_with_opencv_and_quality_is_validated(node: NodeProc,
                                                                       probe: tuple[Probe, ActionClient]) -> None:
    import cv2
    import numpy as np
    from sensor_msgs.msg import CompressedImage

    from srender_ros.ros.compression import decode_depth
    from srender_ros.ros.conversions import image_msg_to_array, stamp_to_ns

    p, client = probe
    for bad in ({"jpeg_quality": 0}, {"jpeg_quality": 101}, {"compressed_format": "webp"}):
        res = p.set(**bad)
        assert not res.successful and next(iter(bad)) in res.reason, res.reason
    got: dict[str, list[Any]] = {"jpeg": [], "depth": []}
    subs = [p.node.create_subscription(CompressedImage, "/camera/image_raw/compressed", got["jpeg"].append, 50),
            p.node.create_subscription(CompressedImage, "/camera/depth/image_raw/compressedDepth",
                                       got["depth"].append, 50)]
    try:
        assert wait_for(lambda: all(s.get_publisher_count() > 0 for s in subs), 20.0)
        time.sleep(0.5)
        p.clear()
        assert Goal(client, _goal(ENV_MAIN, 4, 9_500 * 10**9)).result()[0] == GoalStatus.STATUS_SUCCEEDED
        assert wait_for(lambda: len(got["jpeg"]) >= 4 and len(got["depth"]) >= 4 and len(p.msgs("image")) >= 4, 20.0)
        raw = {stamp_to_ns(m.header.stamp): image_msg_to_array(m) for m in p.msgs("image")}
        depth = {stamp_to_ns(m.header.stamp): image_msg_to_array(m) for m in p.msgs("depth")}
        for m in got["jpeg"][:4]:
            assert m.format == "rgb8; jpeg compressed bgr8" and m.header.frame_id == "camera_optical_frame"
            bgr = cv2.imdecode(np.frombuffer(m.data, np.uint8), cv2.IMREAD_COLOR)
            ref = raw[stamp_to_ns(m.header.stamp)]
            assert bgr.shape == ref.shape
            assert np.abs(bgr[..., ::-1].astype(float) - ref).mean() < 8.0  # JPEG at quality 80
        for m in got["depth"][:4]:
            assert m.format == "32FC1; compressedDepth png"
            z, ref = decode_depth(bytes(m.data)), depth[stamp_to_ns(m.header.stamp)]
            both = np.isfinite(ref) & (ref < 10.0)
            assert both.any() and np.allclose(z[both], ref[both], rtol=0.02)
        # png is lossless
        assert p.set(compressed_format="png").successful
        got["jpeg"].clear()
        p.clear()
        assert Goal(client, _goal(ENV_MAIN, 2, 9_600 * 10**9)).result()[0] == GoalStatus.STATUS_SUCCEEDED
        assert wait_for(lambda: len(got["jpeg"]) >= 2 and len(p.msgs("image")) >= 2, 20.0)
        m = got["jpeg"][0]
        assert m.format == "rgb8; png compressed bgr8"
        ref = {stamp_to_ns(x.header.stamp): image_msg_to_array(x) for x in p.msgs("image")}[stamp_to_ns(m.header.stamp)]
        assert np.array_equal(cv2.imdecode(np.frombuffer(m.data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1], ref)
    finally:
        assert p.set(compressed_format="jpeg").successful
        for s in subs:
            p.node.destroy_subscription(s)
