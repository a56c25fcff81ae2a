"""Sensor cameras benchmark: 2 x 320x240 @ 15 Hz + 1 x 640x480 @ 10 Hz on a covered ~500k-Gaussian world.

The node runs as a subprocess (as users run it) with the CPU renderer; a robot publishes /tf at
50 Hz on a known path; a reliable subscriber per camera records what arrives. Reported per camera:
achieved rate, missed ticks (grid stamps in the window that never arrived), latency from stamp to
receipt (p50/p95, wall clock: the node clock is the wall clock here), and the node process's CPU
time per published frame (all cameras together). Prints os.getloadavg() before and after.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_sensor.py [--seconds 20] [--gaussians 500000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

ENV = "a benchmark hall for sensor cameras"
CAMERAS = {"front_left": (320, 240, 15.0), "front_right": (320, 240, 15.0), "rear": (640, 480, 10.0)}


def build_world(root: Path, n: int) -> int:
    """A closed room (floor, ceiling, four walls) of ``n`` Gaussians around the robot: every view is covered."""
    from srender_ros.core.store import WorldStore
    from srender_ros.core.world import GaussianWorld

    rng = np.random.default_rng(0)
    half, height = 6.0, 3.0
    faces = rng.integers(0, 6, n)
    u, v = rng.uniform(-1, 1, n), rng.uniform(0, 1, n)
    p = np.zeros((n, 3))
    for f in range(6):
        m = faces == f
        if f == 0:
            p[m] = np.c_[u[m] * half, (v[m] * 2 - 1) * half, np.zeros(m.sum())]
        elif f == 1:
            p[m] = np.c_[u[m] * half, (v[m] * 2 - 1) * half, np.full(m.sum(), height)]
        elif f in (2, 3):
            p[m] = np.c_[np.full(m.sum(), half if f == 2 else -half), u[m] * half, v[m] * height]
        else:
            p[m] = np.c_[u[m] * half, np.full(m.sum(), half if f == 4 else -half), v[m] * height]
    area = 2 * (2 * half) ** 2 + 4 * (2 * half) * height
    spacing = np.sqrt(area / n)
    colours = np.clip(0.5 + 0.3 * np.sin(p[:, :1] * 3) * np.cos(p[:, 1:2] * 2) + rng.normal(0, 0.05, (n, 3)), 0, 1)
    world = GaussianWorld.from_linear(p, np.full((n, 3), spacing * 0.8), np.full(n, 0.95), colours)
    store = WorldStore(root)
    state = store.get_or_create(ENV, {"name": "benchmark"})
    state.replace_world(world)
    store.save(state)
    return len(world)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds after the first frames before measuring")
    ap.add_argument("--gaussians", type=int, default=500_000)
    ap.add_argument("--json", type=Path, default=None, help="write the results here too")
    ap.add_argument("--cameras", default=",".join(CAMERAS), help="subset of the rig to run, comma separated")
    args = ap.parse_args()
    for name in list(CAMERAS):
        if name not in args.cameras.split(","):
            del CAMERAS[name]
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")
    os.environ.setdefault("ROS_DOMAIN_ID", str(50 + os.getpid() % 40))
    from sensor_helpers import NodeProc, Robot, stamps_of, wait_for
    from sensor_msgs.msg import Image

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench_sensor_"))
    n = build_world(tmp / "worlds", args.gaussians)
    rig = ["/**:", "  ros__parameters:", f'    environment: "{ENV}"', '    renderer: "cpu"',
           '    world_frame: "odom"', "    sensor_generate: false", f"    cameras: {json.dumps(list(CAMERAS))}"]
    for name, (w, h, rate) in CAMERAS.items():
        yaw = {"front_left": 0.1, "front_right": -0.1, "rear": 3.14159}[name]
        rig.append(f'    {name}: {{frame_id: "base_link", rate_hz: {rate}, width: {w}, height: {h}, '
                   f"offset_xyz: [0.2, 0.0, 1.2], offset_rpy: [0.0, 0.0, {yaw}], depth: true}}")
    (tmp / "rig.yaml").write_text("\n".join(rig) + "\n")
    robot = Robot(rate_hz=50.0)
    received: dict[str, list[tuple[int, int]]] = {c: [] for c in CAMERAS}
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
    for c in CAMERAS:
        robot.node.create_subscription(
            Image, f"/{c}/image_raw",
            lambda m, c=c: received[c].append((stamps_of([m])[0], time.time_ns())), qos)
    node = NodeProc(tmp / "node.log", tmp / "rig.yaml", ["-p", f"world_dir:={tmp / 'worlds'}"])
    try:
        ok = wait_for(lambda: all(len(v) >= 2 for v in received.values()), 600.0)
        if not ok:
            print(node.output()[-3000:])
            return 1
        time.sleep(args.warmup)
        t0 = time.time_ns()
        cpu0 = cpu_seconds(node.proc.pid)
        time.sleep(args.seconds)
        t1 = time.time_ns()
        cpu1 = cpu_seconds(node.proc.pid)
        load_after = os.getloadavg()
    finally:
        node.stop()
        robot.close()
    results = {"gaussians": n, "seconds": args.seconds, "loadavg_before": load_before, "loadavg_after": load_after,
               "cameras": {}}
    frames_total = 0
    for c, (w, h, rate) in CAMERAS.items():
        period = round(1e9 / rate)
        got = [(s, r) for s, r in received[c] if t0 <= s < t1]
        stamps = {s for s, _ in got}
        grid = range((t0 // period + 1) * period, t1 - period, period)  # ticks whose frame had time to arrive
        missed = sum(1 for g in grid if g not in stamps)
        lat = np.array([(r - s) / 1e6 for s, r in got])
        frames_total += len(got)
        results["cameras"][c] = {
            "size": f"{w}x{h}", "rate_asked_hz": rate, "rate_achieved_hz": round(len(got) / (args.seconds), 2),
            "missed_ticks": missed, "ticks": len(grid),
            "latency_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "latency_p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None}
    results["node_cpu_s_per_frame"] = round((cpu1 - cpu0) / max(1, frames_total), 4)
    results["node_cpu_cores_used"] = round((cpu1 - cpu0) / args.seconds, 2)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
