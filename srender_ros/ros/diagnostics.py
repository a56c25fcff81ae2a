"""/diagnostics for the srender node: statuses collected from providers, published once a second.

A provider is anything with ``diagnostics() -> list[Status]`` (plain values, no rclpy), so camera
pipelines (the ``camera_pose``/path camera here, sensor cameras riding on TF frames elsewhere) and
the generator each report their own. :class:`DiagnosticsPublisher` turns them into one
``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` (what rqt_robot_monitor and Foxglove read).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol


class Level(IntEnum):
    """diagnostic_msgs/DiagnosticStatus levels."""

    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3


@dataclass(frozen=True)
class Status:
    """One DiagnosticStatus as a plain value.

    Attributes:
        name: e.g. ``srender: camera`` (rqt groups by the part before ':').
        level: OK / WARN / ERROR.
        message: one line a person understands ("achieved 12.0 Hz of 30.0 Hz asked").
        hardware_id: what it is about (node name, camera frame).
        values: (key, value) pairs shown beside it.
    """

    name: str
    level: Level
    message: str
    hardware_id: str = ""
    values: tuple[tuple[str, str], ...] = ()


class DiagnosticsProvider(Protocol):
    """Anything that reports statuses (called from the publisher's timer; keep it quick)."""

    def diagnostics(self) -> list[Status]: ...


class CameraStats:
    """Rates and latencies of one camera pipeline over a sliding window (thread-safe, no rclpy).

    Args:
        name: status name, e.g. ``srender: camera``.
        hardware_id: the camera's frame id.
        window_s: window of the rates, seconds.
        min_rate_fraction: below this fraction of the asked rate the status is WARN.
    """

    def __init__(self, name: str, hardware_id: str, window_s: float = 5.0, min_rate_fraction: float = 0.8) -> None:
        self.name, self.hardware_id = name, hardware_id
        self._window_s, self._min_fraction = window_s, min_rate_fraction
        self._lock = threading.Lock()
        self._asked: deque[float] = deque()
        self._published: deque[float] = deque()
        self._latency_s: deque[tuple[float, float]] = deque()
        self.frames_total = 0
        self.frames_skipped = 0
        self.last_error = ""

    def asked(self, n: int = 1) -> None:
        """``n`` frames were requested now (a camera_pose, a path's poses)."""
        now = time.monotonic()
        with self._lock:
            self._asked.extend([now] * n)

    def published(self, latency_s: float, n: int = 1) -> None:
        """``n`` frames went out now, ``latency_s`` after they were requested (or rendering began)."""
        now = time.monotonic()
        with self._lock:
            self._published.extend([now] * n)
            self._latency_s.append((now, latency_s))
            self.frames_total += n

    def skipped(self, n: int = 1) -> None:
        """``n`` requested frames were dropped (a newer pose replaced them before rendering)."""
        with self._lock:
            self.frames_skipped += n

    def _trim(self, now: float) -> None:
        for q in (self._asked, self._published):
            while q and q[0] < now - self._window_s:
                q.popleft()
        while self._latency_s and self._latency_s[0][0] < now - self._window_s:
            self._latency_s.popleft()

    def diagnostics(self) -> list[Status]:
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            asked_hz = len(self._asked) / self._window_s
            achieved_hz = len(self._published) / self._window_s
            lat = [v for _, v in self._latency_s]
            skipped, total, error = self.frames_skipped, self.frames_total, self.last_error
        lat_ms = 1000.0 * (sum(lat) / len(lat)) if lat else 0.0
        lat_max_ms = 1000.0 * max(lat) if lat else 0.0
        if error:
            level, msg = Level.ERROR, error
        elif asked_hz > 0 and achieved_hz < self._min_fraction * asked_hz:
            level, msg = Level.WARN, (f"falling behind: achieved {achieved_hz:.1f} Hz of {asked_hz:.1f} Hz asked "
                                      f"(render latency {lat_ms:.0f} ms)")
        elif asked_hz == 0 and achieved_hz == 0:
            level, msg = Level.OK, "idle: no frames asked in the last few seconds"
        else:
            level, msg = Level.OK, f"{achieved_hz:.1f} Hz, render latency {lat_ms:.0f} ms"
        values = (("asked rate (Hz)", f"{asked_hz:.2f}"), ("achieved rate (Hz)", f"{achieved_hz:.2f}"),
                  ("render latency mean (ms)", f"{lat_ms:.1f}"), ("render latency max (ms)", f"{lat_max_ms:.1f}"),
                  ("frames published", str(total)), ("frames skipped", str(skipped)))
        return [Status(self.name, level, msg, self.hardware_id, values)]


def to_msg(statuses: list[Status], stamp: Any) -> Any:
    """A diagnostic_msgs/DiagnosticArray of ``statuses`` with header stamp ``stamp``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    arr = DiagnosticArray()
    arr.header.stamp = stamp
    for s in statuses:
        arr.status.append(DiagnosticStatus(level=bytes([int(s.level)]), name=s.name, message=s.message,
                                           hardware_id=s.hardware_id,
                                           values=[KeyValue(key=k, value=v) for k, v in s.values]))
    return arr


class DiagnosticsPublisher:
    """Publishes every provider's statuses on ``/diagnostics`` each ``period_s`` (ROS timer).

    A provider that raises is reported as one ERROR status instead of breaking the others.
    """

    def __init__(self, node: Any, providers: list[DiagnosticsProvider], period_s: float = 1.0) -> None:
        from diagnostic_msgs.msg import DiagnosticArray

        self._node = node
        self.providers = list(providers)
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(period_s, self.publish)

    def add(self, provider: DiagnosticsProvider) -> None:
        """Add a provider (e.g. a sensor camera created later)."""
        self.providers.append(provider)

    def collect(self) -> list[Status]:
        out: list[Status] = []
        for p in list(self.providers):
            try:
                out.extend(p.diagnostics())
            except Exception as exc:
                out.append(Status(f"srender: {type(p).__name__}", Level.ERROR,
                                  f"diagnostics failed: {type(exc).__name__}: {exc}"))
        return out

    def publish(self) -> None:
        try:
            self._node._publish(self._pub, to_msg(self.collect(), self._node.get_clock().now().to_msg()))
        except Exception:  # shutting down or inactive (lifecycle): nothing to report to
            pass


class GeneratorDiagnostics:
    """Status of the node's generator and worlds: ERROR while the generator cannot be built.

    Reads the node through its small public surface (current_config, backend, render_lock) and the
    backend's remembered build error; keeps no state of its own.
    """

    def __init__(self, node: Any) -> None:
        self._node = node

    def diagnostics(self) -> list[Status]:
        node = self._node
        cfg = node.current_config
        backend = node.backend
        error = getattr(backend, "_generator_error", None)
        generating = bool(getattr(getattr(backend, "_generator", None), "_lock", threading.Lock()).locked())
        info = node._world_info.get(cfg.environment)
        memory_mb = backend.store.memory_bytes / 2**20
        waiting = node.requests_waiting
        values = (("generator", cfg.generator), ("environment", cfg.environment),
                  ("world id", info.world_id if info else ""), ("world Gaussians", str(info.gaussians if info else 0)),
                  ("world keyframes", str(info.keyframes if info else 0)),
                  ("keyframe being generated", "yes" if generating else "no"),
                  ("requests waiting", str(waiting)), ("worlds loaded", str(len(backend.store.loaded_ids()))),
                  ("world memory (MiB)", f"{memory_mb:.1f}"), ("memory budget (MiB)", str(cfg.memory_budget_mb)))
        if error is not None:
            level, msg = Level.ERROR, f"generator {cfg.generator!r} unavailable: {error}"
        elif memory_mb > 0.9 * cfg.memory_budget_mb:
            level, msg = Level.WARN, (f"worlds use {memory_mb:.0f} of {cfg.memory_budget_mb} MiB: older worlds will be "
                                      "unloaded (raise memory_budget_mb)")
        elif waiting >= cfg.queue_depth:
            level, msg = Level.WARN, f"{waiting} requests waiting (queue_depth {cfg.queue_depth}): the node is saturated"
        elif generating or node.render_lock.locked():
            level, msg = Level.OK, "serving a path" + (" (generating a keyframe)" if generating else "")
        else:
            level, msg = Level.OK, "idle"
        return [Status("srender: generator", level, msg, node.get_fully_qualified_name(), values)]


class SensorDiagnostics:
    """One status per sensor camera (``SensorCameras.stats()``), for /diagnostics.

    Args:
        stats: returns the sensor cameras' current statistics (plain values with the fields of
            ``srender_ros.ros.sensor_cameras.CameraStats``).
        min_rate_fraction: below this fraction of the asked rate a camera is WARN.
    """

    def __init__(self, stats: Any, min_rate_fraction: float = 0.8) -> None:
        self._stats = stats
        self.min_rate_fraction = min_rate_fraction

    def diagnostics(self) -> list[Status]:
        out = []
        for s in self._stats():
            values = (("rate asked Hz", f"{s.rate_asked_hz:.2f}"), ("rate achieved Hz", f"{s.rate_achieved_hz:.2f}"),
                      ("latency p50 ms", f"{s.latency_p50_ms:.1f}"), ("latency p95 ms", f"{s.latency_p95_ms:.1f}"),
                      ("published", str(s.published)), ("skipped ticks", str(s.skipped_ticks)),
                      ("tf failures", str(s.tf_failures)), ("generation pending", str(bool(s.generation_pending))))
            if s.last_error:
                level, msg = Level.ERROR, s.last_error
            elif s.published >= 2 and s.rate_achieved_hz < self.min_rate_fraction * s.rate_asked_hz:
                level, msg = Level.WARN, (f"falling behind: achieved {s.rate_achieved_hz:.1f} Hz of "
                                          f"{s.rate_asked_hz:.1f} Hz asked ({s.skipped_ticks} ticks skipped)")
            elif s.generation_pending:
                level, msg = Level.OK, "a keyframe for this view is being generated; publishing what the world shows"
            else:
                level, msg = Level.OK, f"{s.rate_achieved_hz:.1f} Hz, latency p50 {s.latency_p50_ms:.0f} ms"
            out.append(Status(f"srender: sensor camera {s.name}", level, msg, s.name, values))
        return out
