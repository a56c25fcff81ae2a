"""Node benchmark across processes: sustained RGB+depth rate and camera_pose -> image latency.

The srender node runs in a subprocess (real DDS, reliable QoS, FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA)
serving a world of ``--gaussians`` Gaussians built beforehand with the procedural generator. Per
image size it measures, in this (subscriber) process:

- fast: one path of ``--frames`` poses published as fast as the node renders: delivered RGB+depth
  frame pairs per second (first to last arrival) and frames lost (reliable QoS: should be 0);
- paced: the same path stamped at ``--paced-hz`` in the near future, publish_mode paced: frames
  lost and lateness (arrival - stamp) p50/p95;
- camera_pose: ``--poses`` single views, one at a time: publish -> image arrival latency p50/p95.

No new keyframes are generated while measuring (max_keyframes_per_request 0, camera_pose_generate
false), so these are rendering + transport numbers.

    .venv/bin/python benchmarks/bench_node.py [--sizes 320x240,640x480] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(101, 200)))
os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
PROMPT = "a cluttered warehouse aisle"


def build_world(world_dir: Path, n_gaussians: int) -> int:
    """A procedural world of exactly ``n_gaussians`` Gaussians (evenly thinned), saved in ``world_dir``."""
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix, to_optical
    from srender_ros.core.store import WorldStore
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig

    store = WorldStore(world_dir)
    pipe = Pipeline(store, get_renderer("cpu"), make_generator("procedural"), PipelineConfig())
    intr = Intrinsics.from_fov(320, 240, 90.0)
    state = store.get_or_create(PROMPT, pipe.generator.settings())
    for yaw in np.radians([0.0, 60.0, -60.0, 120.0, -120.0, 180.0]):
        if len(state.world) >= n_gaussians:
            break
        q = np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        T = to_optical(make_transform(quat_wxyz_to_matrix(q), np.array([0.0, 0.0, 1.5])), "body")
        pipe.view(PROMPT, intr, T, generate_if_uncovered=True)
    n = len(state.world)
    if n > n_gaussians:
        state.replace_world(state.world.select(np.linspace(0, n - 1, n_gaussians).round().astype(np.int64)))
    store.save(state)
    return len(state.world)


def poses(n: int) -> np.ndarray:
    """[n, 4, 4] body-convention poses: a slow forward walk with a gentle yaw sway, 1.5 m up."""
    from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix

    i = np.arange(n)
    yaw = 0.3 * np.sin(i / 40.0)
    q = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)
    t = np.stack([0.005 * i, 0 * yaw, np.full(n, 1.5)], -1)
    return make_transform(quat_wxyz_to_matrix(q), t)


class Bench:
    def __init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from srender_ros.ros.conversions import stamp_to_ns

        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node("srender_bench", context=self.ctx)
        self.lock = threading.Lock()
        self.arrivals: dict[str, dict[int, int]] = {"image": {}, "depth": {}}
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=ReliabilityPolicy.RELIABLE)

        def keep(key: str) -> Any:
            def cb(msg: Any) -> None:
                t = time.time_ns()
                with self.lock:
                    self.arrivals[key].setdefault(stamp_to_ns(msg.header.stamp), t)
            return cb

        from srender_ros.msg import KeyframeSchedule, WorldStatus

        self.schedules = 0  # one per served request: the end-of-request signal
        self.errors: list[str] = []

        def done(_: Any) -> None:
            with self.lock:
                self.schedules += 1

        def status(msg: Any) -> None:
            if msg.last_error:
                with self.lock:
                    self.errors.append(msg.last_error)

        self.subs = [self.node.create_subscription(Image, "/camera/image_raw", keep("image"), qos),
                     self.node.create_subscription(Image, "/camera/depth/image_raw", keep("depth"), qos),
                     self.node.create_subscription(KeyframeSchedule, "/srender/keyframe_schedule", done, 10)]
        self.node.create_subscription(WorldStatus, "/srender/world_status", status, 10)
        from geometry_msgs.msg import PoseStamped
        from nav_msgs.msg import Path as PathMsg
        from rcl_interfaces.srv import SetParametersAtomically

        self.pub_path = self.node.create_publisher(PathMsg, "/trajectory", 10)
        self.pub_pose = self.node.create_publisher(PoseStamped, "/camera_pose", 10)
        self.params = self.node.create_client(SetParametersAtomically, "/srender/set_parameters_atomically")
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        threading.Thread(target=self._spin, daemon=True).start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            pass

    def clear(self) -> None:
        with self.lock:
            for v in self.arrivals.values():
                v.clear()

    def both(self) -> dict[int, int]:
        """stamp -> arrival of the later of image and depth, for frames whose both parts arrived."""
        with self.lock:
            img, dep = self.arrivals["image"], self.arrivals["depth"]
            return {s: max(t, dep[s]) for s, t in img.items() if s in dep}

    def wait_connected(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.pub_path.get_subscription_count() and self.pub_pose.get_subscription_count()
                    and all(s.get_publisher_count() for s in self.subs) and self.params.service_is_ready()):
                time.sleep(1.0)
                return
            time.sleep(0.05)
        raise RuntimeError("the node never appeared")

    def set(self, **values: Any) -> None:
        from rcl_interfaces.srv import SetParametersAtomically
        from rclpy.parameter import Parameter

        fut = self.params.call_async(SetParametersAtomically.Request(
            parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()]))
        deadline = time.monotonic() + 20
        while not fut.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not fut.done() or not fut.result().result.successful:
            raise RuntimeError(f"set {values} failed")

    def run_path(self, stamps_ns: np.ndarray, timeout_s: float) -> dict[int, int]:
        from srender_ros.core.geometry import to_optical
        from srender_ros.ros.conversions import path_from_arrays

        self.clear()
        with self.lock:
            served, errors = self.schedules, len(self.errors)
        msg = path_from_arrays(stamps_ns, to_optical(poses(len(stamps_ns)), "body"), "map", "body")
        self.pub_path.publish(msg)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.both()) < len(stamps_ns):
            with self.lock:
                finished = self.schedules > served
                if len(self.errors) > errors:
                    raise RuntimeError(f"the node refused the benchmark path: {self.errors[-1]}")
            if finished:  # the node is done: whatever has not arrived once arrivals stop for 5 s was lost
                n, quiet_since = len(self.both()), time.monotonic()
                while time.monotonic() - quiet_since < 5.0 and n < len(stamps_ns):
                    time.sleep(0.1)
                    if len(self.both()) != n:
                        n, quiet_since = len(self.both()), time.monotonic()
                break
            time.sleep(0.05)
        return self.both()

    def pose_latency(self, n: int, timeout_s: float = 10.0) -> list[float]:
        from srender_ros.core.geometry import to_optical
        from srender_ros.ros.conversions import pose_stamped_from_optical

        T = poses(n)
        out = []
        for i in range(n):
            stamp = 9_000 * 10**9 + i
            msg = pose_stamped_from_optical(stamp, to_optical(T[i], "body"), "map", "body")
            t0 = time.time_ns()
            self.pub_pose.publish(msg)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                with self.lock:
                    t1 = self.arrivals["image"].get(stamp)
                if t1 is not None:
                    out.append((t1 - t0) * 1e-6)
                    break
                time.sleep(0.0005)
            time.sleep(0.02)
        return out

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.ctx)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def pct(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def bench_size(world_dir: Path, width: int, height: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "srender_ros.ros.node", "--ros-args", "--params-file", str(REPO / "config" / "srender.yaml"),
           "-p", f"world_dir:={world_dir}", "-p", f"environment:={PROMPT}", "-p", f"width:={width}",
           "-p", f"height:={height}", "-p", "max_keyframes_per_request:=0", "-p", "camera_pose_generate:=false",
           "-p", f"qos_depth:={args.qos_depth}", "-p", "renderer:=cpu"]
    log = open(world_dir.parent / f"node_{width}x{height}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    bench = Bench()
    try:
        bench.wait_connected()
        bench.run_path(np.arange(10, dtype=np.int64) * 33_333_333 + 10**9, 300.0)  # warm-up (compiled kernels)

        n = args.frames
        stamps = np.arange(n, dtype=np.int64) * 33_333_333 + 100 * 10**9
        t0, c0, s0 = time.monotonic(), cpu_s(proc.pid), time.process_time()
        got = bench.run_path(stamps, 600.0)
        node_cpu_ms, sub_cpu_ms = (cpu_s(proc.pid) - c0) / n * 1e3, (time.process_time() - s0) / n * 1e3
        arrivals = np.sort(np.array(list(got.values()), dtype=np.int64))
        fast_fps = (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) * 1e-9) if len(arrivals) > 1 else 0.0
        fast = {"frames": n, "received": len(got), "lost": n - len(got), "fps": fast_fps,
                "wall_s": time.monotonic() - t0, "node_cpu_ms_per_frame": node_cpu_ms,
                "subscriber_cpu_ms_per_frame": sub_cpu_ms, "lost_indices": [i for i, s in enumerate(stamps) if int(s) not in got]}

        bench.set(publish_mode="paced")
        period = int(1e9 / args.paced_hz)
        start = time.time_ns() + 2 * 10**9
        stamps = start + np.arange(n, dtype=np.int64) * period
        got = bench.run_path(stamps, 600.0)
        late_ms = [(t - s) * 1e-6 for s, t in got.items()]
        paced = {"hz": args.paced_hz, "frames": n, "received": len(got), "lost": n - len(got),
                 "lost_indices": [i for i, s in enumerate(stamps) if int(s) not in got],
                 "late_p50_ms": pct(late_ms, 50), "late_p95_ms": pct(late_ms, 95), "late_max_ms": max(late_ms or [0.0])}
        bench.set(publish_mode="fast")

        lat = bench.pose_latency(args.poses)
        pose = {"requests": args.poses, "answered": len(lat), "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95)}
    finally:
        bench.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return {"size": f"{width}x{height}", "fast": fast, "paced": paced, "camera_pose": pose}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="320x240,640x480")
    ap.add_argument("--gaussians", type=int, default=50_000)
    ap.add_argument("--frames", type=int, default=300, help="poses per path")
    ap.add_argument("--paced-hz", type=float, default=30.0)
    ap.add_argument("--poses", type=int, default=100, help="camera_pose requests")
    ap.add_argument("--qos-depth", type=int, default=30, help="the node's image publisher history depth")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="srender_bench_node_") as tmp:
        world_dir = Path(tmp) / "worlds"
        n = build_world(world_dir, args.gaussians)
        print(f"world: {n} Gaussians; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        results = []
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.lower().split("x"))
            r = bench_size(world_dir, w, h, args)
            results.append(r)
            f, p, c = r["fast"], r["paced"], r["camera_pose"]
            print(f"{r['size']}: fast {f['fps']:.1f} fps, lost {f['lost']}/{f['frames']}, node CPU "
                  f"{f['node_cpu_ms_per_frame']:.0f} ms/frame, subscriber CPU {f['subscriber_cpu_ms_per_frame']:.1f} "
                  f"ms/frame | paced {p['hz']:.0f} Hz: lost "
                  f"{p['lost']}/{p['frames']}, late p50 {p['late_p50_ms']:.1f} ms p95 {p['late_p95_ms']:.1f} ms | "
                  f"camera_pose p50 {c['p50_ms']:.1f} ms p95 {c['p95_ms']:.1f} ms ({c['answered']}/{c['requests']})",
                  flush=True)
    summary = {"gaussians": n, "cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0], "qos": "reliable",
               "qos_depth": args.qos_depth, "results": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
