"""/tf and /tf_static into the shared TF buffer, with lookups that wait for TF to reach a stamp.

Subscribes with tf2's QoS (``/tf``: reliable, volatile, depth 100; ``/tf_static``: reliable,
transient local, so late joiners get every static transform). Absolute names as in tf2: remap
``/tf:=tf`` for per-robot TF in a namespace. Transforms with NaN/inf values or a zero quaternion
are dropped with a rate-limited warning naming the link; the rest of the message is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix
from srender_ros.engine.tf_buffer import NS_PER_S, TfBuffer
from srender_ros.errors import BackendUnavailableError, TfError

TF_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                    durability=DurabilityPolicy.VOLATILE)
TF_STATIC_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL)


class RateLimited:
    """Calls ``emit(text)`` at most once per ``period_s`` per key (other calls are counted, then summarized)."""

    def __init__(self, emit: Callable[[str], object], period_s: float = 5.0) -> None:
        self._emit = emit
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: str, text: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e18) < self._period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            n = self._suppressed.pop(key, 0)
        self._emit(text + (f" ({n} more like it in the last {self._period_s:g} s)" if n else ""))
        return True


class Lookup(NamedTuple):
    """Result of :meth:`TfListener.lookup`: ``T`` [N, 4, 4] when ``error`` is empty."""

    T: NDArray[np.float64] | None
    error: str
    kind: str  # "" | "wait" (TF has not reached the stamp yet) | "past" | "frame"


def transform_to_matrix(tf: Any) -> NDArray[np.float64]:
    """geometry_msgs/Transform -> [4, 4]; raises TfError for non-finite values or a zero quaternion."""
    t, r = tf.translation, tf.rotation
    vals = np.array([t.x, t.y, t.z, r.w, r.x, r.y, r.z], dtype=np.float64)
    if not np.isfinite(vals).all():
        raise TfError(f"values not finite: translation {vals[:3].tolist()}, rotation (w x y z) {vals[3:].tolist()}")
    q = vals[3:]
    n = float(np.linalg.norm(q))
    if n < 1e-6:
        raise TfError(f"zero quaternion (w x y z) {q.tolist()}")
    return make_transform(quat_wxyz_to_matrix(q / n), vals[:3])


class TfListener:
    """Feeds a :class:`TfBuffer` from /tf and /tf_static; thread-safe lookups.

    Args:
        node: subscribes on it (callbacks run on its executor).
        cache_s: seconds of moving TF kept.
        warn: where rate-limited warnings go (e.g. the node logger's ``warning``).
    """

    def __init__(self, node: Node, cache_s: float, warn: Callable[[str], object]) -> None:
        try:
            from tf2_msgs.msg import TFMessage
        except ImportError as exc:
            raise BackendUnavailableError(
                "sensor cameras read /tf but tf2_msgs is not importable: source your ROS 2 install, or run "
                "`make setup` (it generates tf2_msgs into the venv)") from exc
        self.buffer = TfBuffer(cache_s=cache_s)
        self._cond = threading.Condition()
        self._warn = RateLimited(warn)
        self.received = 0
        self.subscriptions = [
            node.create_subscription(TFMessage, "/tf", lambda m: self.add(m, static=False), TF_QOS),
            node.create_subscription(TFMessage, "/tf_static", lambda m: self.add(m, static=True), TF_STATIC_QOS),
        ]

    def add(self, msg: Any, static: bool) -> None:
        """Add every valid transform of a TFMessage (bad ones are warned about and skipped)."""
        with self._cond:
            for ts in msg.transforms:
                parent = ts.header.frame_id.strip().lstrip("/")
                child = ts.child_frame_id.strip().lstrip("/")
                try:
                    T = transform_to_matrix(ts.transform)
                    if static:
                        self.buffer.add_static(parent, child, T)
                    else:
                        stamp = int(ts.header.stamp.sec) * NS_PER_S + int(ts.header.stamp.nanosec)
                        self.buffer.add_dynamic(parent, child, stamp, T)
                    self.received += 1
                except TfError as exc:
                    topic = "/tf_static" if static else "/tf"
                    self._warn(f"bad:{parent}->{child}", f"{topic} transform {parent!r} -> {child!r} ignored: {exc}")
            self._cond.notify_all()

    @property
    def frames(self) -> list[str]:
        with self._cond:
            return self.buffer.frames

    def lookup(self, target: str, source: str, stamps_ns: list[int]) -> Lookup:
        """``T_target_source`` at each stamp, or why not (never raises for TF problems)."""
        with self._cond:
            try:
                span = self.buffer.span_ns(target, source)
            except TfError as exc:
                return Lookup(None, str(exc), "frame")
            lo, hi = min(stamps_ns), max(stamps_ns)
            if span is not None and hi > span[1]:
                return Lookup(None, f"TF {target!r} -> {source!r} has data only up to {span[1] / NS_PER_S:.3f} s, "
                              f"not yet at {hi / NS_PER_S:.3f} s", "wait")
            if span is not None and lo < span[0]:
                return Lookup(None, f"stamp {lo / NS_PER_S:.3f} s is older than the TF buffer from {target!r} to "
                              f"{source!r} (it holds [{span[0] / NS_PER_S:.3f}, {span[1] / NS_PER_S:.3f}] s; "
                              "parameter tf_cache_s)", "past")
            try:
                return Lookup(self.buffer.lookup(target, source, np.asarray(stamps_ns, dtype=np.int64)), "", "")
            except TfError as exc:  # pragma: no cover - span checked above
                return Lookup(None, str(exc), "frame")

    def wait_lookup(self, target: str, source: str, stamps_ns: list[int], deadline_monotonic: float,
                    stop: threading.Event) -> Lookup:
        """Like :meth:`lookup`, waiting (until ``deadline_monotonic``) while TF has not reached the stamps yet."""
        while True:
            res = self.lookup(target, source, stamps_ns)
            # Wait while TF lags behind the stamp; an unknown frame only before any TF has arrived
            # (afterwards it fails at once, so one bad camera never holds up the others).
            if not (res.kind == "wait" or (res.kind == "frame" and self.received == 0)) or stop.is_set():
                return res
            remaining = deadline_monotonic - time.monotonic()
            if remaining <= 0:
                return res
            with self._cond:
                self._cond.wait(min(remaining, 0.05))
