"""The ``render`` action (srender_ros/action/RenderTrajectory): a path request with progress and cancel.

Goals wait in a bounded FIFO (``queue_depth`` goals behind the running one; beyond it a goal is
rejected and the reason logged and reported in WorldStatus.last_error) and run one at a time on
their own worker thread, never on the executor: the executor keeps answering cancels, parameters
and the topic interfaces. A goal and a topic path request never render at once (they share the
node's ``render_lock``), so camera topics never interleave two paths.

Frames go out on the node's camera topics exactly as for a ``render_request``; feedback follows
every keyframe and every chunk; cancel stops before the next frame (or before the next keyframe),
and the keyframes already lifted stay in the world, which is saved at once.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup

from srender_ros.action import RenderTrajectory
from srender_ros.engine.pipeline import Pipeline, RenderJob
from srender_ros.errors import InputError, SrenderError
from srender_ros.msg import WorldStatus
from srender_ros.ros.backend import intrinsics_of
from srender_ros.ros.conversions import path_request_from_msg
from srender_ros.ros.worker import KeepLatestQueue, QueueClosed, Worker

if TYPE_CHECKING:
    from srender_ros.core.ports.generate import Keyframe, KeyframeGenerator, KeyframeRequest
    from srender_ros.ros.config import NodeConfig
    from srender_ros.ros.node import SrenderNode

ACTION_NAME = "render"
Feedback = RenderTrajectory.Feedback
Result = RenderTrajectory.Result


class GoalCanceled(Exception):
    """The client canceled the goal: stop now, keep what was made."""


@dataclass
class _Goal:
    handle: ServerGoalHandle[Any, Any, Any]
    request_id: str
    received_ns: int
    config: NodeConfig
    # Set by the worker, read by the executor when the goal ends.
    outcome: str = "abort"
    result: Any = field(default_factory=Result)


class _ProgressGenerator:
    """A keyframe generator that reports each keyframe before making it and checks for cancel.

    Raising before ``generate`` leaves the world as it was after the previous keyframe (a
    keyframe changes the world only after its image is made), so a cancel here is consistent.
    """

    def __init__(self, inner: KeyframeGenerator, on_keyframe: Any, canceled: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self._on_keyframe = on_keyframe
        self._canceled = canceled

    def generate(self, request: KeyframeRequest) -> Keyframe:
        if self._canceled():
            raise GoalCanceled
        self._on_keyframe(int(request.pose_index))
        return self.inner.generate(request)

    def settings(self) -> dict[str, object]:
        return self.inner.settings()


class RenderActionServer:
    """Serves ``render`` for ``node`` (a SrenderNode). Call :meth:`shutdown` before the node goes."""

    def __init__(self, node: SrenderNode) -> None:
        self._node = node
        self._seq = itertools.count(1)
        self._queue: KeepLatestQueue[_Goal] = KeepLatestQueue(1_000_000)  # bounded by goal_callback instead
        self._worker = Worker("srender-actions", self._queue, self._run, self._failed)
        self._server = ActionServer(node, RenderTrajectory, ACTION_NAME, execute_callback=self._finish,
                                    goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
                                    cancel_callback=lambda _request: CancelResponse.ACCEPT,
                                    callback_group=ReentrantCallbackGroup())
        self._worker.start()

    @property
    def waiting(self) -> int:
        """Goals accepted and not yet started."""
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """True while a goal is being served."""
        return self._worker.busy

    # ---- executor side: accept, reject, finish -------------------------------------------------
    def _on_goal(self, goal: Any) -> GoalResponse:
        cfg = self._node.current_config
        waiting = len(self._queue)
        if self._queue.closed or not self._node.accepting:
            self._node.get_logger().warning("render goal rejected: the node is not accepting requests (shutting "
                                            "down or not active)")
            return GoalResponse.REJECT
        if waiting >= cfg.queue_depth:
            reason = (f"render goal rejected: {waiting} goal(s) already wait behind the running one (parameter "
                      f"queue_depth={cfg.queue_depth}); wait for a result or cancel one")
            self._node.report_refusal("render", goal.environment.strip(), InputError(reason))
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_accepted(self, handle: ServerGoalHandle[Any, Any, Any]) -> None:
        goal = _Goal(handle, f"render-{next(self._seq)}", self._node.now_ns(), self._node.current_config)
        try:
            self._queue.put(goal)
        except QueueClosed:
            pass

    def _finish(self, handle: ServerGoalHandle[Any, Any, Any]) -> Any:
        """Runs on the executor once the worker is done: set the terminal state, return the result."""
        goal: _Goal = handle._srender_goal  # type: ignore[attr-defined]
        if goal.outcome == "succeed":
            handle.succeed()
        elif goal.outcome == "canceled" and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        return goal.result

    def _end(self, goal: _Goal) -> None:
        goal.handle._srender_goal = goal  # type: ignore[attr-defined]
        self._server.notify_execute(goal.handle, self._finish)

    # ---- worker side ---------------------------------------------------------------------------
    def _run(self, goal: _Goal) -> None:
        handle = goal.handle
        if handle.is_cancel_requested:
            goal.outcome, goal.result.error = "canceled", "canceled before it started"
            self._end(goal)
            return
        try:
            from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

            # ACCEPTED -> EXECUTING now (rclpy does this only inside its own execute(), which would
            # run the work on the executor).
            handle._update_state(_rclpy.GoalEvent.EXECUTE)
        except Exception:  # the goal went away (client gone, shutting down)
            return
        try:
            with self._node.render_lock:
                self._serve(goal)
            goal.outcome = "succeed"
        except GoalCanceled:
            goal.outcome = "canceled"
            goal.result.error = f"canceled after {goal.result.frames} of {goal.result.frames_total} frames"
            self._node.get_logger().info(f"goal {goal.request_id}: {goal.result.error}")
        except SrenderError as exc:
            goal.outcome, goal.result.error = "abort", str(exc)
            self._node.report_refusal(goal.request_id, handle.request.environment.strip(), exc,
                                      failed=not isinstance(exc, InputError))
        except Exception as exc:
            if not self._node.accepting:
                goal.outcome, goal.result.error = "abort", "the node stopped serving (shut down or deactivated)"
            else:  # a bug: the goal still gets an answer and the worker lives on
                goal.outcome, goal.result.error = "abort", f"{type(exc).__name__}: {exc}"
                self._node.get_logger().error(f"goal {goal.request_id} failed: {goal.result.error}")
        self._end(goal)

    def _failed(self, goal: _Goal, exc: Exception) -> None:  # pragma: no cover - _run catches everything
        goal.outcome, goal.result.error = "abort", str(exc)
        self._end(goal)

    def _serve(self, goal: _Goal) -> None:
        node, cfg, handle, res = self._node, goal.config, goal.handle, goal.result
        req = handle.request
        env, traj, intr, image = path_request_from_msg(req, cfg.pose_frame, cfg.path_rate_hz, cfg.world_frame_id,
                                                        intrinsics_of(cfg), "goal")
        n = len(traj)
        res.frames_total = n
        canceled = lambda: handle.is_cancel_requested or not node.accepting  # noqa: E731
        fb = Feedback(phase=Feedback.PHASE_SCHEDULING, phase_text="scheduling keyframes", frames_total=n)
        handle.publish_feedback(fb)

        def on_keyframe(pose_index: int) -> None:
            fb.phase, fb.keyframes_made = Feedback.PHASE_GENERATING, len(res.keyframe_indices)
            fb.phase_text = f"generating keyframe {fb.keyframes_made + 1} at pose {pose_index}"
            res.keyframe_indices.append(pose_index)
            handle.publish_feedback(fb)

        base = node.backend.pipeline(cfg)
        pipeline = Pipeline(base.store, base.renderer, _ProgressGenerator(base.generator, on_keyframe, canceled),
                            base.config, count_predictor=getattr(base, "_count_predictor", None))
        node.publish_world_status(env, WorldStatus.STATE_GENERATING, request_id=goal.request_id)
        log_prefix = f"goal {goal.request_id}"
        node.get_logger().info(f"{log_prefix}: {n} poses in {env!r}")
        t0 = time.perf_counter()
        run = pipeline.run(RenderJob(env, traj, intr, image, goal.request_id))
        offset_ns = max(0, goal.received_ns - int(traj.stamps_ns[0])) if cfg.publish_mode == "paced" else None
        chunks = iter(run)
        try:
            try:
                for chunk in chunks:
                    for k in range(len(chunk.indices)):
                        if canceled():
                            raise GoalCanceled
                        node.publish_frames(chunk.stamps_ns[k:k + 1], chunk.render.rgb[k:k + 1],
                                            chunk.render.depth_m[k:k + 1], intr, cfg, offset_ns,
                                            run.stats.seconds["render"] / max(1, run.stats.frames))
                        res.frames += 1
                    fb.phase, fb.frames_done, fb.keyframes_made = Feedback.PHASE_RENDERING, res.frames, run.stats.keyframes
                    fb.phase_text = f"rendering: {res.frames} of {n} frames"
                    handle.publish_feedback(fb)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
        finally:
            self._fill_result(res, run, node, env, t0)
            if res.frames < n:  # stopped early: keep what was lifted (the pipeline saves only at its end)
                state = base.store.get(env)
                if state is not None and state.dirty:
                    base.store.save(state)
        node.publish_world_status(env, WorldStatus.STATE_READY, request_id=goal.request_id)
        s = run.stats
        node.get_logger().info(f"{log_prefix}: {res.frames} frames, {s.keyframes} new keyframes, {res.gaussians} "
                               f"Gaussians in world {res.world_id}; {res.seconds_total:.2f} s")

    @staticmethod
    def _fill_result(res: Any, run: Any, node: SrenderNode, env: str, t0: float) -> None:
        s = run.stats
        res.keyframes = int(s.keyframes)
        # Only keyframes that were lifted (a canceled one was announced but never made).
        res.keyframe_indices = sorted(int(k.pose_index) for k in run.schedule.keyframes)
        res.world_id = run.world_id or node.backend.world_id_of(env)
        res.gaussians = int(s.gaussians)
        res.seconds_schedule = float(s.seconds["schedule"])
        res.seconds_generate = float(s.seconds["generate"])
        res.seconds_lift = float(s.seconds["lift"])
        res.seconds_render = float(s.seconds["render"])
        res.seconds_total = float(time.perf_counter() - t0)
        if not res.gaussians:
            info = node.backend.stored_world(env)
            res.gaussians = int(info.gaussians) if info is not None else 0

    def shutdown(self, timeout_s: float) -> bool:
        """Stop taking goals; waiting ones are dropped, the running one stops at its next frame."""
        self._queue.close()
        return self._worker.join(timeout_s)

    def destroy(self) -> None:
        """Remove the action server from the node (the lifecycle variant's cleanup)."""
        self._server.destroy()
