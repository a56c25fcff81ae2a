"""Size and encode time of the node's compressed topics at 640x480 (procedural worlds, CPU renderer).

    PYTHONPATH=$PWD python benchmarks/bench_compressed.py

Renders 5 poses of a 0.8 m walk in two environments, encodes every frame as the node does
(srender_ros.ros.compression) and prints mean kB and ms per frame beside the raw sizes.
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from srender_ros.core.geometry import to_optical
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.pipeline import RenderJob
from srender_ros.ros.backend import Backend, intrinsics_of
from srender_ros.ros.compression import encode_depth, encode_rgb
from srender_ros.ros.config import NodeConfig


def main() -> None:
    print("loadavg before", os.getloadavg())
    cfg = NodeConfig(world_dir=tempfile.mkdtemp(), width=640, height=480)
    pipeline = Backend(cfg).pipeline(cfg)
    n = 5
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, 0, 3] = np.arange(n) * 0.2
    T[:, 2, 3] = 1.5
    traj = Trajectory(np.arange(n, dtype=np.int64) * 33_333_333, to_optical(T, "body"), "map")
    print(f"raw: rgb8 {640 * 480 * 3 / 1000:.0f} kB, 32FC1 {640 * 480 * 4 / 1000:.0f} kB per frame")
    for env in ("a cluttered warehouse aisle", "a quiet library"):
        rgb, depth = [], []
        for chunk in pipeline.run(RenderJob(env, traj, intrinsics_of(cfg))):
            rgb.extend(chunk.render.rgb)
            depth.extend(chunk.render.depth_m)
        rows: dict[str, list[tuple[int, float]]] = {}
        for k in range(n):
            for fmt, q in (("jpeg", 80), ("jpeg", 95), ("png", 0)):
                t0 = time.perf_counter()
                _, data = encode_rgb(rgb[k], fmt, q)
                rows.setdefault(f"{fmt} q{q}" if fmt == "jpeg" else fmt, []).append((len(data), time.perf_counter() - t0))
            t0 = time.perf_counter()
            _, data = encode_depth(depth[k])
            rows.setdefault("compressedDepth", []).append((len(data), time.perf_counter() - t0))
        summary = ", ".join(f"{name} {np.mean([s for s, _ in v]) / 1000:.0f} kB {1000 * np.mean([t for _, t in v]):.1f} ms"
                            for name, v in rows.items())
        print(f"{env}: {summary}")
    print("loadavg after", os.getloadavg())


if __name__ == "__main__":
    main()
