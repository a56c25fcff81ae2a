"""The srender ROS 2 node: paths and poses in; camera images, CameraInfo and depth out.

Threads: the executor runs only quick callbacks (validate, enqueue, parameter checks). A path
worker drains a bounded keep-latest queue of path requests (schedule, generate, lift, render,
publish); a view worker serves the keep-latest ``camera_pose`` slot, so online views and status are
answered while a path request is generating keyframes. See docs/node.md.
"""

from __future__ import annotations

import itertools
import logging
import signal
import sys
import threading
import time
from typing import Any, NamedTuple

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Path
from numpy.typing import NDArray
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy_impl
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from srender_ros.core.camera import Intrinsics
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.pipeline import RenderJob
from srender_ros.errors import InputError, SrenderError
from srender_ros.msg import KeyframeSchedule, RenderRequest, WorldStatus
from srender_ros.ros.action_server import RenderActionServer
from srender_ros.ros.backend import GENERATOR_FIELDS, Backend, WorldSummary, intrinsics_of, pipeline_config
from srender_ros.ros.compression import CompressedPublishers
from srender_ros.ros.config import PARAM_NAMES, PARAM_SPECS, NodeConfig, ParamSpec
from srender_ros.ros.conversions import (
    camera_info_from_intrinsics,
    depth_to_image_msg,
    ns_to_stamp,
    path_request_from_msg,
    pose_stamped_to_optical,
    rgb_to_image_msg,
    trajectory_from_path,
)
from srender_ros.ros.diagnostics import CameraStats, DiagnosticsPublisher, GeneratorDiagnostics, SensorDiagnostics
from srender_ros.ros.sensor_cameras import CameraStats as SensorCameraStats
from srender_ros.ros.sensor_cameras import SensorCameras
from srender_ros.ros.viewer_bridge import NodeViewer
from srender_ros.ros.worker import KeepLatestQueue, QueueClosed, Worker
from srender_ros.ros.world_sync import WorldSync

NODE_NAME = "srender"
#: Status messages kept for late joiners (one per environment is what they need; a few spare).
STATUS_HISTORY = 10
#: How long a path's publishing waits for reliable subscribers to acknowledge frames (see _wait_acked).
ACK_TIMEOUT_S = 2.0
#: How long shutdown waits for a request in progress (a diffusion keyframe may take this long).
SHUTDOWN_WAIT_S = 30.0


class PathJob(NamedTuple):
    """A validated path request waiting for the path worker (config snapshot taken at receipt)."""

    request_id: str
    environment: str
    trajectory: Trajectory
    intrinsics: Intrinsics
    initial_image: NDArray[np.float32] | None
    received_ns: int
    config: NodeConfig


class ViewJob(NamedTuple):
    """One camera_pose request: an optical pose to render now."""

    stamp_ns: int
    T_world_cam: NDArray[np.float64]
    environment: str
    intrinsics: Intrinsics
    config: NodeConfig


class _Stopped(Exception):
    """The node is shutting down: abandon the current request quietly."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    kinds = {str: ParameterType.PARAMETER_STRING, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, bool: ParameterType.PARAMETER_BOOL}
    d = ParameterDescriptor(name=spec.name, type=kinds[spec.kind], description=spec.description,
                            additional_constraints=spec.range_text, read_only=not spec.runtime)
    if spec.kind is int and spec.min_value is not None and spec.max_value is not None:
        d.integer_range = [IntegerRange(from_value=int(spec.min_value), to_value=int(spec.max_value), step=0)]
    if spec.kind is float and spec.min_value is not None and spec.max_value is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.min_value), to_value=float(spec.max_value),
                                                     step=0.0)]
    return d


def _image_qos(cfg: NodeConfig) -> QoSProfile:
    reliability = ReliabilityPolicy.RELIABLE if cfg.image_qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


class SrenderNode(Node):
    """Node ``srender``. Construct after ``rclpy.init``; call :meth:`shutdown` before destroying it.

    Raises:
        SrenderError / rclpy ParameterException: bad parameters or an unusable world_dir/renderer.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self._config = self._declare_parameters()
        self._setup()

    def _setup(self) -> None:
        """Everything but the parameters: backend, publishers, subscriptions, workers, the action.

        The lifecycle variant (srender_ros/ros/lifecycle.py) calls it on configure instead.
        """
        self._backend = Backend(self._config)
        self._viewer = NodeViewer(self._config.viewer_port, self._backend.store, lambda: self._config.environment,
                                  announce=self.get_logger().info)
        self._stopping = threading.Event()
        self._seq = itertools.count(1)
        self._world_info: dict[str, WorldSummary] = {}
        self._last_pose_error_s = -1e9
        self._last_ack_warning_s = -1e9
        self._pose_refusal_reported = False  # see _refuse
        self._unacked = 0  # frames published since the last wait for acknowledgements (paths and views)

        image_qos = _image_qos(self._config)
        self._pub_image = self.create_publisher(Image, "camera/image_raw", image_qos)
        self._pub_info = self.create_publisher(CameraInfo, "camera/camera_info", image_qos)
        self._pub_depth = self.create_publisher(Image, "camera/depth/image_raw", image_qos)
        self._compressed = CompressedPublishers(self, image_qos)
        self._pub_schedule = self.create_publisher(KeyframeSchedule, "~/keyframe_schedule", 10)
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=STATUS_HISTORY,
                             reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub_status = self.create_publisher(WorldStatus, "~/world_status", latched)

        self._jobs: KeepLatestQueue[PathJob] = KeepLatestQueue(self._config.queue_depth)
        self._views: KeepLatestQueue[ViewJob] = KeepLatestQueue(1)
        self._path_worker = Worker("srender-paths", self._jobs, self._run_path_job, self._path_failed)
        self._view_worker = Worker("srender-views", self._views, self._run_view_job, self._view_failed)

        requests = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
        # Best effort matches reliable and best-effort publishers; depth 1 keeps only the newest pose.
        latest = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.create_subscription(Path, "trajectory", self._on_trajectory, requests)
        self.create_subscription(RenderRequest, "render_request", self._on_render_request, requests)
        self.create_subscription(PoseStamped, "camera_pose", self._on_camera_pose, latest)

        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        #: Held while a path (topic request or render goal) is served: one path renders at a time.
        self.render_lock = threading.Lock()
        self._action = RenderActionServer(self)
        #: /diagnostics: the camera pipeline's rates and latencies, the generator and its worlds.
        self.camera_stats = CameraStats("srender: camera", self._config.camera_frame_id)
        self.diagnostics = DiagnosticsPublisher(self, [self.camera_stats, GeneratorDiagnostics(self)])
        self._path_worker.start()
        self._view_worker.start()
        # Sensor cameras on TF frames (parameters world_frame, cameras; none by default): sensor_cameras.py.
        self._sensors = SensorCameras(self, self._backend.renderer, self._sensor_world, lambda: self._config,
                                      self._sensor_generate, self._sensor_status)
        self._sensors.start()
        self.diagnostics.add(SensorDiagnostics(self._sensors.stats))
        # Keyframes other nodes saved to the shared world_dir: picked up in the background (world_sync.py).
        self._world_sync = WorldSync(self._backend.store, lambda: self._config.environment,
                                     lambda env: self._sensor_status(env, False, "world_sync", ""))
        self._world_sync.start()
        threading.Thread(target=self._warm_up, name="srender-warmup", daemon=True).start()
        c = self._config
        self._check_depth(c)
        self.get_logger().info(f"ready: environment {c.environment!r}, generator {c.generator}, renderer "
                               f"{self._backend.renderer.name}, {c.width}x{c.height} fov {c.fov_deg} deg, worlds in "
                               f"{c.world_path}, publish_mode {c.publish_mode}, image_qos {c.image_qos}")

    # ---- parameters ---------------------------------------------------------------------------
    def _declare_parameters(self) -> NodeConfig:
        defaults = NodeConfig()
        for spec in PARAM_SPECS:
            self.declare_parameter(spec.name, getattr(defaults, spec.name), _descriptor(spec))
        return NodeConfig.from_params({name: self.get_parameter(name).value for name in PARAM_NAMES})

    def _validate_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in PARAM_NAMES}
        if not changes:
            return SetParametersResult(successful=True)
        try:
            cfg = self._config.with_changes(changes)
            pipeline_config(cfg)
            if any(name in changes for name in GENERATOR_FIELDS):
                cfg.check_model_folders()
        except SrenderError as exc:
            self.get_logger().warning(f"parameter change refused: {exc}")
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        changes = {p.name: p.value for p in params if p.name in PARAM_NAMES}
        if not changes:
            return
        self._config = self._config.with_changes(changes)
        if "chunk_size" in changes:
            self._check_depth(self._config)
        if "queue_depth" in changes:
            for job in self._jobs.set_maxlen(self._config.queue_depth):
                self.get_logger().warning(f"request {job.request_id} dropped: queue_depth lowered")
        self.get_logger().info("parameters changed: " + ", ".join(f"{k}={v!r}" for k, v in changes.items()))
        if "environment" in changes:
            # Loading a world from disk may take a while: not on the executor thread.
            threading.Thread(target=self._announce, args=(self._config.environment,), daemon=True).start()

    def _check_depth(self, cfg: NodeConfig) -> None:
        # A chunk is published in one burst; a KEEP_LAST history shorter than the burst lets
        # Fast DDS drop frames a reliable subscriber has not yet received (measured: docs/benchmarks.md).
        if cfg.image_qos == "reliable" and cfg.chunk_size > cfg.qos_depth:
            self.get_logger().warning(f"chunk_size {cfg.chunk_size} > qos_depth {cfg.qos_depth}: reliable "
                                      "subscribers may lose frames; raise qos_depth or lower chunk_size")

    # ---- inputs (executor thread: validate and enqueue only) ------------------------------------
    def _now_ns(self) -> int:
        return int(self.get_clock().now().nanoseconds)

    def _on_trajectory(self, msg: Path) -> None:
        cfg = self._config
        rid = f"trajectory-{next(self._seq)}"
        try:
            traj = trajectory_from_path(msg, cfg.pose_frame, cfg.path_rate_hz, cfg.world_frame_id, "trajectory")
            job = PathJob(rid, cfg.environment, traj, intrinsics_of(cfg), None, self._now_ns(), cfg)
        except SrenderError as exc:
            self._refuse(rid, cfg.environment, exc)
            return
        self._enqueue(job)

    def _on_render_request(self, msg: RenderRequest) -> None:
        cfg = self._config
        rid = msg.request_id.strip() or f"request-{next(self._seq)}"
        env = msg.environment.strip()
        try:
            env, traj, intr, image = path_request_from_msg(msg, cfg.pose_frame, cfg.path_rate_hz, cfg.world_frame_id,
                                                           intrinsics_of(cfg), "render_request")
            job = PathJob(rid, env, traj, intr, image, self._now_ns(), cfg)
        except SrenderError as exc:
            self._refuse(rid, env, exc)
            return
        self._enqueue(job)

    def _on_camera_pose(self, msg: PoseStamped) -> None:
        cfg = self._config
        try:
            stamp_ns, T, _ = pose_stamped_to_optical(msg, cfg.pose_frame, cfg.world_frame_id)
            job = ViewJob(stamp_ns or self._now_ns(), T, cfg.environment, intrinsics_of(cfg), cfg)
        except SrenderError as exc:
            self._refuse("camera_pose", cfg.environment, exc)
            return
        self.camera_stats.asked()
        try:
            if self._views.put(job) is not None:
                self.camera_stats.skipped()  # a newer pose replaced one not yet rendered
        except QueueClosed:
            pass

    def _enqueue(self, job: PathJob) -> None:
        self.get_logger().info(f"request {job.request_id}: {len(job.trajectory)} poses in {job.environment!r} queued")
        try:
            dropped = self._jobs.put(job)
        except QueueClosed:
            return
        if dropped is not None:
            self._refuse(dropped.request_id, dropped.environment,
                         InputError(f"dropped unserved: newer requests arrived while {self._config.queue_depth} "
                                    "were waiting (parameter queue_depth)"))

    # ---- path worker --------------------------------------------------------------------------
    def _run_path_job(self, job: PathJob) -> None:
        try:
            with self.render_lock:
                self._serve_path(job)
        except _Stopped:
            return

    def _serve_path(self, job: PathJob) -> None:
        if self._stopping.is_set():
            raise _Stopped
        if not self._has_camera_subscribers():
            raise InputError("nobody subscribes to camera/image_raw, camera/camera_info or camera/depth/image_raw; "
                             "not rendered (subscribe first)")
        cfg, env = job.config, job.environment
        pipeline = self._backend.pipeline(cfg)
        self._publish_status(env, WorldStatus.STATE_GENERATING, self._world_info.get(env), request_id=job.request_id)
        run = pipeline.run(RenderJob(env, job.trajectory, job.intrinsics, job.initial_image, job.request_id))
        traj = job.trajectory
        # paced: frame i goes out at stamp_i + max(0, receipt - stamp_0) on the node clock, i.e. at its
        # stamp when the path lies in the future, else with the path's timing starting at receipt.
        offset_ns = max(0, job.received_ns - int(traj.stamps_ns[0])) if cfg.publish_mode == "paced" else None
        chunks = iter(run)
        try:
            for chunk in chunks:
                self._viewer.camera_pose("trajectory", chunk.T_world_cam[-1], job.intrinsics)
                self._publish_frames(chunk.stamps_ns, chunk.render.rgb, chunk.render.depth_m, job.intrinsics, cfg,
                                     offset_ns, latency_s=run.stats.seconds["render"] / max(1, run.stats.frames))
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        sched = run.schedule
        self._publish(self._pub_schedule, KeyframeSchedule(
            request_id=job.request_id, environment=env, scheduler=sched.scheduler.value,
            coverage=np.nan_to_num(sched.coverage, nan=0.0).astype(np.float32).tolist(),
            keyframe_indices=[int(k.pose_index) for k in sched.keyframes], reasons=[k.reason for k in sched.keyframes],
            predicted_count=int(sched.predicted_count), coverage_threshold=float(sched.coverage_threshold),
            header=self._header(self._now_ns(), traj.frame_id)))
        info = self._backend.world_info(pipeline, env)
        self._world_info[env] = info
        self._publish_status(env, WorldStatus.STATE_READY, info, request_id=job.request_id)
        s = run.stats
        self.get_logger().info(
            f"request {job.request_id}: {s.frames} frames, {s.keyframes} new keyframes, {info.gaussians} Gaussians "
            f"in world {info.world_id}; {s.seconds['total']:.2f} s (generate {s.seconds['generate']:.2f}, render "
            f"{s.seconds['render']:.2f})")

    def _path_failed(self, job: PathJob, exc: Exception) -> None:
        # Refused input keeps the world's state; a failure part-way (a model that will not load,
        # a generator error) marks the world ERROR until a request succeeds.
        state = None if isinstance(exc, InputError) else WorldStatus.STATE_ERROR
        self._refuse(job.request_id, job.environment, exc, state)

    # ---- view worker --------------------------------------------------------------------------
    def _run_view_job(self, job: ViewJob) -> None:
        try:
            self._serve_view(job)
        except _Stopped:
            return

    def _serve_view(self, job: ViewJob) -> None:
        if self._stopping.is_set():
            raise _Stopped
        if (self._pub_image.get_subscription_count() == 0 and self._pub_depth.get_subscription_count() == 0
                and not any(self._compressed.wanted())):
            return  # render only for someone
        t0 = time.monotonic()
        pipeline = self._backend.pipeline(job.config)
        # While the path worker is busy it may hold the world's lock for a keyframe; render what the
        # world has instead of waiting for it.
        generate = job.config.camera_pose_generate and not self.render_lock.locked()
        out = pipeline.view(job.environment, job.intrinsics, job.T_world_cam, generate_if_uncovered=generate)
        self._viewer.camera_pose("camera_pose", job.T_world_cam, job.intrinsics)
        self._publish_frames(np.array([job.stamp_ns]), out.rgb, out.depth_m, job.intrinsics, job.config, None,
                             latency_s=time.monotonic() - t0)
        self._pose_refusal_reported = False
        if generate:  # the view may have added a keyframe: tell status listeners
            info = self._backend.stored_world(job.environment)
            if info is not None and info != self._world_info.get(job.environment):
                self._world_info[job.environment] = info
                self._publish_status(job.environment, WorldStatus.STATE_READY, info, request_id="camera_pose")

    def _view_failed(self, job: ViewJob, exc: Exception) -> None:
        self._refuse("camera_pose", job.environment, exc)

    # ---- outputs ------------------------------------------------------------------------------
    def _has_camera_subscribers(self) -> bool:
        return (any(p.get_subscription_count() > 0 for p in (self._pub_image, self._pub_info, self._pub_depth))
                or any(self._compressed.wanted()))

    def _publish_frames(self, stamps_ns: NDArray[np.int64], rgb: NDArray[np.float32], depth_m: NDArray[np.float32],
                        intrinsics: Intrinsics, cfg: NodeConfig, offset_ns: int | None, latency_s: float = 0.0) -> None:
        """Publish image, CameraInfo and depth for each frame, stamped with its pose's stamp.

        ``latency_s``: render time per frame, for /diagnostics.
        """
        frame = cfg.camera_frame_id
        want_image = self._pub_image.get_subscription_count() > 0
        want_info = self._pub_info.get_subscription_count() > 0
        want_depth = cfg.publish_depth and self._pub_depth.get_subscription_count() > 0
        want_jpeg, want_zdepth = self._compressed.wanted()
        want_zdepth = want_zdepth and cfg.publish_depth
        for k, stamp in enumerate(stamps_ns.tolist()):
            if offset_ns is not None:
                self._wait_until(stamp + offset_ns)
            if self._stopping.is_set():
                raise _Stopped
            if want_image:
                self._publish(self._pub_image, rgb_to_image_msg(rgb[k], stamp, frame))
            if want_info:
                self._publish(self._pub_info, camera_info_from_intrinsics(intrinsics, stamp, frame))
            if want_depth:
                self._publish(self._pub_depth, depth_to_image_msg(depth_m[k], stamp, frame))
            if want_jpeg or want_zdepth:
                header = self._header(stamp, frame)
                if want_jpeg:
                    self._publish(self._compressed.image,
                                  self._compressed.image_msg(rgb[k], header, cfg.compressed_format, cfg.jpeg_quality))
                if want_zdepth:
                    self._publish(self._compressed.depth, self._compressed.depth_msg(depth_m[k], header))
            if want_image or want_info or want_depth or want_jpeg or want_zdepth:
                self.camera_stats.published(latency_s)
            self._unacked += 1
            if cfg.image_qos == "reliable" and self._unacked >= max(1, cfg.qos_depth // 2):
                self._wait_acked()
                self._unacked = 0

    def _wait_acked(self) -> None:
        """Back-pressure for reliable publishing: wait until every reliable subscriber acknowledged what
        was sent, so a KEEP_LAST writer history never drops a frame it still holds for someone (a burst
        longer than ``qos_depth`` lost frames on a loaded machine). A subscriber that does not answer
        within ACK_TIMEOUT_S is given up on for this burst (warned about, rate limited)."""
        from rclpy.duration import Duration

        for pub in (self._pub_image, self._pub_info, self._pub_depth):
            if pub.get_subscription_count() == 0:
                continue
            if not pub.wait_for_all_acked(Duration(seconds=ACK_TIMEOUT_S)):
                now = time.monotonic()
                if now - self._last_ack_warning_s > 10.0:
                    self._last_ack_warning_s = now
                    self.get_logger().warning(
                        f"a reliable subscriber of {pub.topic_name} did not acknowledge frames within "
                        f"{ACK_TIMEOUT_S:g} s; publishing on (it may lose frames)")

    def _wait_until(self, target_ns: int) -> None:
        """Sleep until the node clock (sim time when use_sim_time) reaches ``target_ns``."""
        clock = self.get_clock()
        while not self._stopping.is_set():
            remaining_s = (target_ns - clock.now().nanoseconds) * 1e-9
            if remaining_s <= 0:
                return
            # Poll: under sim time the clock may run at any rate (or pause).
            self._stopping.wait(min(remaining_s, 0.02))
        raise _Stopped

    def _publish(self, publisher: Any, msg: Any) -> None:
        for attempt in range(3):
            try:
                publisher.publish(msg)
                return
            except Exception:
                if self._stopping.is_set() or not self.context.ok():
                    raise _Stopped from None
                if attempt == 2:
                    raise
                # Fast DDS occasionally refuses a reliable publish at full rate; a short pause clears it.
                time.sleep(0.005)

    def _header(self, stamp_ns: int, frame_id: str) -> Any:
        from std_msgs.msg import Header

        return Header(stamp=ns_to_stamp(stamp_ns), frame_id=frame_id)

    def _publish_status(self, environment: str, state: int, info: WorldSummary | None, last_error: str = "",
                        request_id: str = "") -> None:
        info = info or WorldSummary("", 0, 0)
        msg = WorldStatus(header=self._header(self._now_ns(), ""), environment=environment, world_id=info.world_id,
                          gaussians=int(info.gaussians), keyframes=int(info.keyframes), state=int(state),
                          last_error=last_error, last_request_id=request_id)
        try:
            self._publish(self._pub_status, msg)
        except _Stopped:
            pass

    def _refuse(self, request_id: str, environment: str, exc: Exception, state: int | None = None) -> None:
        """Log a refused or failed request and report it in WorldStatus.last_error."""
        text = str(exc) or type(exc).__name__
        if request_id == "camera_pose":
            # Poses may stream at control-loop rates: log at most once a second, and put only the first
            # refusal of a run of bad poses into the latched WorldStatus history (until a pose is served
            # again), so a flood never pushes the worlds' real entries out of the last STATUS_HISTORY.
            now = time.monotonic()
            if now - self._last_pose_error_s < 1.0:
                return
            self._last_pose_error_s = now
            self.get_logger().error(f"camera_pose refused: {text}")
            if self._pose_refusal_reported:
                return
            self._pose_refusal_reported = True
        else:
            self.get_logger().error(f"request {request_id} refused: {text}")
        info = self._world_info.get(environment) or WorldSummary(self._backend.world_id_of(environment), 0, 0)
        if state is None:
            state = WorldStatus.STATE_READY if info and info.gaussians > 0 else WorldStatus.STATE_EMPTY
        self._publish_status(environment, state, info, last_error=f"{request_id}: {text}", request_id=request_id)

    # ---- sensor cameras (the cameras themselves live in sensor_cameras.py) ----------------------
    def sensor_stats(self) -> list[SensorCameraStats]:
        """Per sensor camera: asked/achieved rate, latency p50/p95, skipped ticks, generation pending."""
        return self._sensors.stats()

    def _sensor_world(self, environment: str) -> Any:
        state = self._backend.store.get(environment)
        return None if state is None else state.world

    def _sensor_generate(self, environment: str, intrinsics: Intrinsics, T_world_cam: NDArray[np.float64]) -> None:
        if self._stopping.is_set():
            return
        pipeline = self._backend.pipeline(self._config)
        pipeline.view(environment, intrinsics, T_world_cam, generate_if_uncovered=True)

    def _sensor_status(self, environment: str, generating: bool, request_id: str, error: str) -> None:
        if error:
            self._refuse(request_id, environment, SrenderError(error), WorldStatus.STATE_ERROR)
            return
        if generating:
            self._publish_status(environment, WorldStatus.STATE_GENERATING, self._world_info.get(environment),
                                 request_id=request_id)
            return
        info = self._backend.stored_world(environment)
        if info is not None:
            self._world_info[environment] = info
        self._publish_status(environment, WorldStatus.STATE_READY, info, request_id=request_id)

    # ---- for the action server (srender_ros/ros/action_server.py) -----------------------------
    @property
    def current_config(self) -> NodeConfig:
        """The node's config now (parameters applied)."""
        return self._config

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def requests_waiting(self) -> int:
        """Path requests and render goals waiting behind the one being served."""
        return len(self._jobs) + self._action.waiting

    @property
    def accepting(self) -> bool:
        """Whether new requests and goals are taken (the lifecycle variant: only while active)."""
        return not self._stopping.is_set()

    def now_ns(self) -> int:
        """The node clock (sim time under use_sim_time), ns."""
        return self._now_ns()

    def publish_frames(self, stamps_ns: NDArray[np.int64], rgb: NDArray[np.float32], depth_m: NDArray[np.float32],
                       intrinsics: Intrinsics, cfg: NodeConfig, offset_ns: int | None, latency_s: float = 0.0) -> None:
        """Publish frames on the camera topics like a path request (see ``_publish_frames``)."""
        self._publish_frames(stamps_ns, rgb, depth_m, intrinsics, cfg, offset_ns, latency_s)

    def report_refusal(self, request_id: str, environment: str, exc: Exception, failed: bool = False) -> None:
        """Log a refused (or, ``failed``, broken) request and report it in WorldStatus.last_error."""
        self._refuse(request_id, environment, exc, WorldStatus.STATE_ERROR if failed else None)

    def publish_world_status(self, environment: str, state: int, request_id: str = "") -> None:
        """Publish WorldStatus of ``environment`` with its current counts."""
        try:
            info = self._backend.stored_world(environment)
        except SrenderError:
            info = None
        if info is not None:
            self._world_info[environment] = info
        self._publish_status(environment, state, info or self._world_info.get(environment), request_id=request_id)

    # ---- life cycle ---------------------------------------------------------------------------
    def _warm_up(self) -> None:
        """Build the generator (may load models) off the executor so the first request starts sooner,
        then announce the configured environment's world."""
        try:
            self._backend.pipeline(self._config)
        except SrenderError as exc:
            self.get_logger().error(f"generator {self._config.generator!r} unavailable: {exc}")
            self._publish_status(self._config.environment, WorldStatus.STATE_ERROR, None, last_error=str(exc))
            return
        try:
            self._backend.warm_up()
        except Exception as exc:  # requests will report it again; the node keeps running
            self.get_logger().error(f"renderer warm-up failed: {type(exc).__name__}: {exc}")
        self._announce(self._config.environment)

    def _announce(self, environment: str) -> None:
        """Publish WorldStatus for ``environment`` from memory or disk (never creates a world)."""
        try:
            info = self._backend.stored_world(environment)
        except SrenderError as exc:
            self._refuse("startup", environment, exc, WorldStatus.STATE_ERROR)
            return
        if info is not None:
            self._world_info[environment] = info
        ready = info is not None and info.gaussians > 0
        self._publish_status(environment, WorldStatus.STATE_READY if ready else WorldStatus.STATE_EMPTY,
                             info or WorldSummary(self._backend.world_id_of(environment), 0, 0))

    def shutdown(self) -> None:
        """Stop the workers (the request in progress stops at its next frame) and save every world."""
        self._stopping.set()
        # After Ctrl-C / SIGTERM the context is gone and the node's logger could not reach /rosout.
        log = self.get_logger() if self.context.ok() else get_logger(f"{NODE_NAME}.shutdown")
        for job in self._jobs.close():
            log.info(f"request {job.request_id} dropped: shutting down")
        self._views.close()
        self._sensors.close()
        self._world_sync.close()
        self._viewer.close()
        try:
            if not self._action.shutdown(SHUTDOWN_WAIT_S):
                log.warning(f"render goal in progress did not stop within {SHUTDOWN_WAIT_S:.0f} s")
            if not self._path_worker.join(SHUTDOWN_WAIT_S):
                log.warning(f"request in progress did not stop within {SHUTDOWN_WAIT_S:.0f} s")
            self._view_worker.join(5.0)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting, but still save
            log.warning("not waiting for the request in progress")
        try:
            n = self._backend.save_all()
            log.info(f"shut down; {n} changed world(s) saved")
        except SrenderError as exc:
            log.error(f"saving worlds failed: {exc}")


class _RosLogHandler(logging.Handler):
    """Forwards srender's Python log records (core, backends) to the node's ROS logger."""

    def __init__(self, node: Node) -> None:
        super().__init__()
        self._logger = node.get_logger()

    def emit(self, record: logging.LogRecord) -> None:
        text = f"[{record.name}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            self._logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._logger.warning(text)
        elif record.levelno >= logging.INFO:
            self._logger.info(text)
        else:
            self._logger.debug(text)


def _lifecycle_flag(argv: list[str]) -> tuple[bool, list[str]]:
    """(``--lifecycle`` given, argv without it); ``--lifecycle=true|false`` comes from the launch file."""
    rest, lifecycle = [], False
    ros_args = False
    for arg in argv:
        if arg == "--ros-args":
            ros_args = True
        if not ros_args and (arg == "--lifecycle" or arg.startswith("--lifecycle=")):
            lifecycle = arg.split("=", 1)[1].strip().lower() in ("true", "1") if "=" in arg else True
            continue
        rest.append(arg)
    return lifecycle, rest


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``srender_node`` (``ros2 run srender_ros srender_node [--lifecycle] --ros-args ...``).

    ``--lifecycle`` starts the managed variant (srender_ros/ros/lifecycle.py): it waits unconfigured
    for ``ros2 lifecycle set /srender configure`` and ``activate``.
    """
    lifecycle, argv = _lifecycle_flag(list(argv if argv is not None else sys.argv))
    rclpy.init(args=argv)
    node: SrenderNode | None = None
    code = 0
    log = logging.getLogger("srender_ros")
    try:
        if lifecycle:
            from srender_ros.ros.lifecycle import SrenderLifecycleNode

            node = SrenderLifecycleNode()
        else:
            node = SrenderNode()
        log.addHandler(_RosLogHandler(node))
        log.setLevel(logging.INFO)
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except _rclpy_impl.RCLError:
        # A SIGINT/SIGTERM landing while the executor builds its wait set shuts the context down under
        # it: rclpy then raises RCLError ("context is not valid") instead of ExternalShutdownException.
        # That is the same clean stop; an RCLError while the context is still valid is a real failure.
        if rclpy.ok():
            raise
    except (SrenderError, ParameterException) as exc:
        get_logger(NODE_NAME).fatal(f"cannot start: {exc}")
        code = 2
    finally:
        if threading.current_thread() is threading.main_thread():
            # Shutting down now: a second SIGINT (launch forwards one while the terminal or a test sends
            # its own to the process group) must not interrupt the orderly stop (the world is being
            # saved) nor the interpreter's exit with a KeyboardInterrupt traceback. SIGTERM and SIGKILL
            # still end a stop that hangs.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if node is not None:
                node.shutdown()
                node.destroy_node()
        except KeyboardInterrupt:
            pass
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
