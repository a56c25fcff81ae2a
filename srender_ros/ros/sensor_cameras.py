"""Sensor cameras: images at a fixed rate from cameras riding on TF frames (issue 13).

Threads (none of them the executor):

- the **ticker** waits on the node clock (simulation time under ``use_sim_time``: it pauses with
  /clock) for each camera's next tick. Ticks lie on a fixed grid, ``k / rate_hz`` seconds, so
  cameras of the same rate share stamps (a stereo pair's left and right frames match). A tick goes
  into its camera's one-slot mailbox; if the previous tick is still waiting there, that one is
  *skipped* (counted): the backlog never grows beyond one tick per camera.
- the **render worker** takes the waiting tick of the camera it served longest ago, waits (up to
  ``tf_timeout_s``) until /tf reaches that stamp, looks up ``world_frame -> mount`` at the stamp,
  renders the world as it is (never waiting for generation), applies the camera's realism
  settings and publishes image, CameraInfo and depth, all stamped with the tick's stamp.
- the **generation worker** makes a keyframe when a camera's view is not covered (parameter
  ``sensor_generate``), one at a time, newest request first; cameras keep publishing what the
  world shows meanwhile and pick up the new Gaussians on their next frame.

:meth:`SensorCameras.stats` returns plain :class:`CameraStats` values for /diagnostics.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import matrix_to_quat_wxyz
from srender_ros.core.holes import fill_holes
from srender_ros.core.realism import LensMap, add_depth_noise, add_image_noise
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import SrenderError
from srender_ros.ros.config import NodeConfig
from srender_ros.ros.conversions import camera_info_from_intrinsics, depth_to_image_msg, ns_to_stamp, rgb_to_image_msg
from srender_ros.ros.sensor_config import CAMERA_KEYS, SENSOR_PARAMS, CameraSpec, parse_rig
from srender_ros.ros.tf_listener import RateLimited, TfListener
from srender_ros.ros.worker import KeepLatestQueue, QueueClosed, Worker

#: Frames whose latency and spacing the statistics look at.
STATS_WINDOW = 200
#: A pixel counts as covered from this rendered alpha up (as the pipeline's coverage rule).
COVERED_ALPHA = 0.5


@dataclass(frozen=True)
class CameraStats:
    """One camera's statistics (what /diagnostics reports).

    Attributes:
        name: camera name.
        rate_asked_hz: the ``rate_hz`` parameter.
        rate_achieved_hz: published frames per second of stamp time over the last frames (0 if < 2).
        latency_p50_ms, latency_p95_ms: node-clock time from a frame's stamp to its publication.
        published: frames published since start.
        skipped_ticks: ticks never published because the renderer was behind (or the ticker late).
        tf_failures: ticks dropped because TF had no pose for them (missing frame, stale or late TF).
        generation_pending: a keyframe this camera asked for is being made or waits to be.
        last_error: the latest problem of this camera ('' if none).
    """

    name: str
    rate_asked_hz: float
    rate_achieved_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    published: int
    skipped_ticks: int
    tf_failures: int
    generation_pending: bool
    last_error: str


class _GenJob(NamedTuple):
    camera: str
    environment: str
    intrinsics: Intrinsics
    T_world_cam: NDArray[np.float64]
    config: NodeConfig


class _Camera:
    """Run-time state of one camera (guarded by SensorCameras._cond unless noted)."""

    def __init__(self, spec: CameraSpec, node: Node, qos: QoSProfile) -> None:
        self.spec = spec
        self.lens = LensMap(spec.intrinsics, spec.realism.distortion) if spec.realism.distorted else None
        self.render_intrinsics = self.lens.render_intrinsics if self.lens else spec.intrinsics
        self.pub_image = node.create_publisher(Image, f"{spec.name}/image_raw", qos)
        self.pub_info = node.create_publisher(CameraInfo, f"{spec.name}/camera_info", qos)
        self.pub_depth = node.create_publisher(Image, f"{spec.name}/depth/image_raw", qos) if spec.depth else None
        self.next_ns = 0  # next grid stamp to tick (0: not started)
        self.pending: tuple[int, float] | None = None  # (stamp_ns, monotonic time of the tick)
        self.published = 0
        self.skipped = 0
        self.tf_failures = 0
        self.gen_pending = False
        self.last_served = 0.0  # monotonic time the render worker last took a tick of this camera
        self.last_error = ""
        self.latencies_ms: deque[float] = deque(maxlen=STATS_WINDOW)
        self.stamps: deque[int] = deque(maxlen=STATS_WINDOW)

    def camera_info(self, stamp_ns: int) -> CameraInfo:
        info = camera_info_from_intrinsics(self.spec.intrinsics, stamp_ns, self.spec.optical_frame_id)
        if self.spec.realism.distorted:
            info.d = [float(d) for d in self.spec.realism.distortion]
        if self.spec.baseline_m > 0:  # right camera of a stereo pair: P[0, 3] = -fx * baseline
            p = list(info.p)
            p[3] = -self.spec.intrinsics.fx_px * self.spec.baseline_m
            info.p = p
        return info


class SensorCameras:
    """The node's sensor cameras (none when the ``cameras`` parameter is empty).

    Args:
        node: the srender node (parameters are declared on it; publishers and subscriptions too).
        renderer: draws worlds (the node's backend renderer).
        worlds: ``environment -> GaussianWorld | None``: the world as it is now (never creates one).
        config: returns the node's current NodeConfig (environment, QoS, coverage threshold).
        generate: ``(environment, intrinsics, T_world_optical)``: make a keyframe if the view is not covered
            (runs on this object's generation worker).
        report: ``(environment, generating, request_id, error)``: world_status updates.
    """

    def __init__(self, node: Node, renderer: Any, worlds: Callable[[str], GaussianWorld | None],
                 config: Callable[[], NodeConfig], generate: Callable[[str, Intrinsics, NDArray[np.float64]], None],
                 report: Callable[[str, bool, str, str], None]) -> None:
        self._node = node
        self._log = node.get_logger()
        self._renderer = renderer
        self._worlds = worlds
        self._config = config
        self._generate = generate
        self._report = report
        self._warn = RateLimited(self._log.warning, 5.0)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._cams: list[_Camera] = []
        self._threads: list[threading.Thread] = []
        p = self._declare()
        self.world_frame: str = str(p["world_frame"]).strip().lstrip("/")
        self.sensor_generate: bool = bool(p["sensor_generate"])
        self.tf_timeout_s: float = float(p["tf_timeout_s"])
        names = list(p["cameras"] or [])
        if not names:
            self.tf: TfListener | None = None
            return
        specs, errors = parse_rig(names, self._camera_param)
        for line in errors:
            self._log.error(f"sensor camera refused: {line}")
        if not self.world_frame:
            self._log.error("parameter world_frame is empty: sensor cameras need the fixed TF frame the world lives "
                            "in (e.g. odom or map); no sensor camera will publish")
            specs = []
        cfg = config()
        reliability = ReliabilityPolicy.RELIABLE if cfg.image_qos == "reliable" else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=cfg.qos_depth, reliability=reliability,
                         durability=DurabilityPolicy.VOLATILE)
        for spec in specs:
            try:
                self._cams.append(_Camera(spec, node, qos))
            except SrenderError as exc:
                self._log.error(f"sensor camera refused: camera {spec.name!r}: {exc}")
        try:
            self.tf = TfListener(node, float(p["tf_cache_s"]), self._log.warning)
        except SrenderError as exc:
            self._log.error(f"no sensor camera will publish: {exc}")
            self._cams, self.tf = [], None
            return
        self._publish_static_tf()
        self._gen_queue: KeepLatestQueue[_GenJob] = KeepLatestQueue(1)
        self._gen_worker = Worker("srender-sensor-gen", self._gen_queue, self._run_generation, self._gen_failed)
        for c in self._cams:
            s = c.spec
            self._log.info(f"sensor camera {s.name!r}: {s.intrinsics.width_px}x{s.intrinsics.height_px} at "
                           f"{s.rate_hz:g} Hz on TF frame {s.frame_id!r} (world {self.world_frame!r}), images in "
                           f"{s.optical_frame_id!r}" + (f", stereo right of {s.stereo_left!r} (baseline "
                                                        f"{s.baseline_m:.3f} m)" if s.baseline_m > 0 else ""))

    # ---- parameters ---------------------------------------------------------------------------
    def _declare(self) -> dict[str, Any]:
        node, out = self._node, {}
        kinds = {bool: ParameterType.PARAMETER_BOOL, float: ParameterType.PARAMETER_DOUBLE,
                 str: ParameterType.PARAMETER_STRING}
        for name, (default, text) in SENSOR_PARAMS.items():
            if node.has_parameter(name):  # a lifecycle node configured again keeps its declarations
                out[name] = node.get_parameter(name).value if name != "cameras" else (
                    node.get_parameter(name).value or [])
                continue
            if name == "cameras":  # an empty list has no ROS type: declare without one, read None as []
                d = ParameterDescriptor(name=name, description=text, read_only=True, dynamic_typing=True)
                out[name] = node.declare_parameter(name, None, d).value or []
                continue
            d = ParameterDescriptor(name=name, type=kinds[type(default)], description=text, read_only=True)
            out[name] = node.declare_parameter(name, default, d).value
        return out

    def _camera_param(self, camera: str, key: str) -> Any:
        name = f"{camera}.{key}"
        kind = CAMERA_KEYS[key][0]
        d = ParameterDescriptor(name=name, description=f"sensor camera {camera}: {key} (docs/node.md)",
                                read_only=True, dynamic_typing=True)
        if not self._node.has_parameter(name):
            self._node.declare_parameter(name, None, d)
        value = self._node.get_parameter(name).value
        if kind is list and value is not None:
            value = list(value)
        return value

    # ---- life cycle ---------------------------------------------------------------------------
    @property
    def cameras(self) -> list[CameraSpec]:
        return [c.spec for c in self._cams]

    def start(self) -> None:
        if not self._cams:
            return
        self._gen_worker.start()
        for target, name in ((self._tick_loop, "srender-sensor-ticks"), (self._render_loop, "srender-sensor-render")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._cams:
            self._gen_queue.close()
        for t in self._threads:
            t.join(timeout_s)

    def _publish_static_tf(self) -> None:
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        statics = [c.spec for c in self._cams if c.spec.publishes_static_tf]
        if not statics:
            return
        latched = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self._pub_static = self._node.create_publisher(TFMessage, "/tf_static", latched)
        now = self._node.get_clock().now().nanoseconds
        msg = TFMessage()
        for s in statics:
            ts = TransformStamped()
            ts.header.stamp = ns_to_stamp(now)
            ts.header.frame_id = s.frame_id
            ts.child_frame_id = s.optical_frame_id
            t = s.T_mount_optical[:3, 3]
            q = matrix_to_quat_wxyz(s.T_mount_optical[None, :3, :3])[0]
            ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = map(float, t)
            ts.transform.rotation.w, ts.transform.rotation.x, ts.transform.rotation.y, ts.transform.rotation.z = map(
                float, q)
            msg.transforms.append(ts)
        self._pub_static.publish(msg)

    # ---- ticker -------------------------------------------------------------------------------
    def _tick_loop(self) -> None:
        clock = self._node.get_clock()
        while not self._stop.is_set():
            now = clock.now().nanoseconds
            if now <= 0:  # simulation time before the first /clock
                self._stop.wait(0.01)
                continue
            wake = None
            with self._cond:
                for c in self._cams:
                    period = c.spec.period_ns
                    if c.next_ns == 0 or now < c.next_ns - 2 * period:  # start, or the clock jumped back
                        c.next_ns = (now // period + 1) * period
                    if now >= c.next_ns:
                        due = now // period * period  # the newest grid stamp reached
                        late = (due - c.next_ns) // period  # grid stamps the ticker itself fell behind on
                        if late > 0:
                            c.skipped += int(late)
                        if c.pending is not None:
                            c.skipped += 1  # the renderer has not taken the previous tick: replace it
                        c.pending = (int(due), time.monotonic())
                        c.next_ns = due + period
                        self._cond.notify_all()
                    wake = c.next_ns if wake is None else min(wake, c.next_ns)
            assert wake is not None
            # Sleep until the earliest next tick; poll, since a simulation clock may jump or pause.
            self._stop.wait(min(max((wake - clock.now().nanoseconds) * 1e-9, 0.0), 0.005))

    # ---- render worker ------------------------------------------------------------------------
    def _render_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                waiting = [c for c in self._cams if c.pending is not None]
                if not waiting:
                    self._cond.wait(0.1)
                    continue
                # The camera served longest ago first: round robin when the renderer cannot keep up
                # (oldest-stamp-first starved the faster cameras, whose waiting ticks keep getting newer).
                cam = min(waiting, key=lambda c: c.last_served)
                cam.last_served = time.monotonic()
                assert cam.pending is not None
                stamp, t_tick = cam.pending
                cam.pending = None
            try:
                self._serve(cam, stamp, t_tick)
            except Exception as exc:  # never let the worker die
                if self._stop.is_set() or not self._node.context.ok():
                    return  # shutting down: publishers are gone
                cam.last_error = f"{type(exc).__name__}: {exc}"
                self._warn(f"err:{cam.spec.name}", f"sensor camera {cam.spec.name!r}: frame at "
                           f"{stamp * 1e-9:.3f} s failed: {cam.last_error}")

    def _wanted(self, cam: _Camera) -> bool:
        pubs = [cam.pub_image, cam.pub_info] + ([cam.pub_depth] if cam.pub_depth else [])
        return any(p.get_subscription_count() > 0 for p in pubs)

    def _serve(self, cam: _Camera, stamp: int, t_tick: float) -> None:
        spec = cam.spec
        cfg = self._config()
        if not self._wanted(cam):
            return  # render only for someone
        assert self.tf is not None
        blur = spec.realism.motion_blur_s
        stamps = [stamp] if blur <= 0 else [int(stamp - blur * 1e9 * (1 - k / (spec.realism.motion_blur_samples - 1)))
                                            for k in range(spec.realism.motion_blur_samples)]
        res = self.tf.wait_lookup(self.world_frame, spec.frame_id, stamps, t_tick + self.tf_timeout_s, self._stop)
        if res.T is None:
            if self._stop.is_set():
                return
            cam.tf_failures += 1
            cam.last_error = res.error
            hint = ""
            if res.kind == "frame" and "frames present" not in res.error:
                frames = self.tf.frames
                hint = f" (frames in TF now: {', '.join(frames) if frames else 'none: is anything publishing /tf?'})"
            self._warn(f"tf:{spec.name}:{res.kind}", f"sensor camera {spec.name!r}: no pose for the frame at "
                       f"{stamp * 1e-9:.3f} s: {res.error}{hint}")
            return
        T = res.T @ spec.T_mount_optical  # [N, 4, 4] world <- optical
        world = self._worlds(cfg.environment)
        if world is None:
            world = GaussianWorld.empty()
        rgb, depth, alpha = self._render(cam, world, T, stamp)
        self._publish(cam, stamp, rgb, depth)
        self._maybe_generate(cam, cfg, world, alpha, T[-1])

    def _render(self, cam: _Camera, world: GaussianWorld, T: NDArray[np.float64],
                stamp: int) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        out = self._renderer.render(world, cam.render_intrinsics, T)
        rgb = out.rgb if len(world) == 0 else fill_holes(out.rgb, out.alpha)
        frame_rgb = rgb.mean(axis=0) if len(T) > 1 else rgb[0]  # motion blur: mean over the exposure
        depth, alpha = out.depth_m[-1], out.alpha[-1]
        if cam.lens is not None:
            frame_rgb, depth, alpha = cam.lens.rgb(frame_rgb), cam.lens.depth(depth), cam.lens.depth(alpha)
        r = cam.spec.realism
        if r.noisy:
            rng = r.rng(stamp)
            if r.noise_stddev > 0 or r.noise_mean != 0:
                frame_rgb = add_image_noise(frame_rgb, r.noise_mean, r.noise_stddev, rng)
            if r.depth_noise_k > 0:
                depth = add_depth_noise(depth, r.depth_noise_k, rng)
        return np.asarray(frame_rgb, np.float32), np.asarray(depth, np.float32), np.asarray(alpha, np.float32)

    def _publish(self, cam: _Camera, stamp: int, rgb: NDArray[np.float32], depth: NDArray[np.float32]) -> None:
        frame = cam.spec.optical_frame_id
        if cam.pub_image.get_subscription_count() > 0:
            cam.pub_image.publish(rgb_to_image_msg(rgb, stamp, frame))
        if cam.pub_info.get_subscription_count() > 0:
            cam.pub_info.publish(cam.camera_info(stamp))
        if cam.pub_depth is not None and cam.pub_depth.get_subscription_count() > 0:
            cam.pub_depth.publish(depth_to_image_msg(depth, stamp, frame))
        latency_ms = (self._node.get_clock().now().nanoseconds - stamp) * 1e-6
        with self._cond:
            cam.published += 1
            cam.latencies_ms.append(latency_ms)
            cam.stamps.append(stamp)

    # ---- generation ---------------------------------------------------------------------------
    def _maybe_generate(self, cam: _Camera, cfg: NodeConfig, world: GaussianWorld, alpha: NDArray[np.floating],
                        T_world_optical: NDArray[np.float64]) -> None:
        if not self.sensor_generate or cfg.max_keyframes_per_request == 0:
            return
        uncovered = float(np.mean(alpha < COVERED_ALPHA))
        if len(world) > 0 and uncovered <= cfg.coverage_threshold:
            return
        with self._cond:
            if any(c.gen_pending for c in self._cams):
                return  # one keyframe at a time; the next frame asks again if still needed
            cam.gen_pending = True
        try:
            self._gen_queue.put(_GenJob(cam.spec.name, cfg.environment, cam.spec.intrinsics, T_world_optical, cfg))
        except QueueClosed:
            cam.gen_pending = False

    def _run_generation(self, job: _GenJob) -> None:
        try:
            self._report(job.environment, True, f"sensor:{job.camera}", "")
            self._generate(job.environment, job.intrinsics, job.T_world_cam)
            self._report(job.environment, False, f"sensor:{job.camera}", "")
        finally:
            with self._cond:
                for c in self._cams:
                    if c.spec.name == job.camera:
                        c.gen_pending = False

    def _gen_failed(self, job: _GenJob, exc: Exception) -> None:
        text = str(exc) or type(exc).__name__
        self._warn(f"gen:{job.camera}", f"sensor camera {job.camera!r}: keyframe generation failed: {text}")
        self._report(job.environment, False, f"sensor:{job.camera}", text)

    # ---- statistics ---------------------------------------------------------------------------
    def stats(self) -> list[CameraStats]:
        """Per-camera statistics now (cheap; safe from any thread)."""
        out = []
        with self._cond:
            for c in self._cams:
                lat = np.asarray(c.latencies_ms, dtype=np.float64)
                st = list(c.stamps)
                rate = (len(st) - 1) / ((st[-1] - st[0]) * 1e-9) if len(st) > 1 and st[-1] > st[0] else 0.0
                out.append(CameraStats(
                    name=c.spec.name, rate_asked_hz=c.spec.rate_hz, rate_achieved_hz=float(rate),
                    latency_p50_ms=float(np.percentile(lat, 50)) if len(lat) else float("nan"),
                    latency_p95_ms=float(np.percentile(lat, 95)) if len(lat) else float("nan"),
                    published=c.published, skipped_ticks=c.skipped, tf_failures=c.tf_failures,
                    generation_pending=c.gen_pending, last_error=c.last_error))
        return out

