"""Cost of saving one keyframe into a stored world of N Gaussians (WorldStore.save), median of repeats.

A synthetic street-like world: N Gaussians along 1 km x 40 m x 10 m plus 3 % far scatter (like
lifted far façades and sky, up to 400 m away and 250 m high). Each repeat adds what one keyframe
adds (5,000 Gaussians within 30 m of a point on the street, 300 far ones, one 80x60 keyframe image
pair) and times ``store.save``; the world starts with ``--keyframes`` keyframes (random images, the
worst case for PNG). Runs against whatever ``srender_ros`` is on PYTHONPATH, so the same
script measures main before issue 15 (whole-world rewrite) and the cell store (changed cells only):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_cell_save.py --gaussians 200000 1000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def street(n: int, rng: np.random.Generator, centre_x: float | None = None) -> tuple[np.ndarray, int]:
    near = int(n * 0.97)
    if centre_x is None:
        p = np.stack([rng.uniform(0, 1000, near), rng.uniform(-20, 20, near), rng.uniform(0, 10, near)], 1)
    else:
        p = np.stack([centre_x + rng.uniform(-30, 30, near), rng.uniform(-20, 20, near), rng.uniform(0, 10, near)], 1)
    far = n - near
    ang = rng.uniform(0, 2 * np.pi, far)
    r = rng.uniform(100, 400, far)
    q = np.stack([(centre_x or 500.0) + r * np.cos(ang), r * np.sin(ang), rng.uniform(0, 250, far)], 1)
    return np.concatenate([p, q]), far


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gaussians", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keyframes", type=int, default=50, help="keyframes (100x75) already in the world")
    args = ap.parse_args()

    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.manifest import KeyframeRecord
    from srender_ros.core.store import WorldStore
    from srender_ros.core.world import GaussianWorld

    def gaussians(means: np.ndarray, rng: np.random.Generator) -> GaussianWorld:
        n = len(means)
        return GaussianWorld.from_linear(means, np.full((n, 3), 0.05), rng.uniform(0.2, 1.0, n), rng.uniform(size=(n, 3)))

    print(f"load average {os.getloadavg()}")
    for n in args.gaussians:
        rng = np.random.default_rng(n)
        with tempfile.TemporaryDirectory() as root:
            store = WorldStore(root, memory_budget_bytes=8 * 2**30)
            state = store.get_or_create("a long street", {"name": "bench"})
            state.replace_world(gaussians(street(n, rng)[0], rng))
            intr = Intrinsics.from_fov(100, 75, 90.0)
            for k in range(args.keyframes):
                state.add_keyframe(KeyframeRecord(k, np.eye(4), intr, rng.uniform(size=(75, 100, 3)).astype(np.float32),
                                                  rng.uniform(1, 50, size=(75, 100)).astype(np.float32), "bench"))
            t0 = time.perf_counter()
            store.save(state)
            first = time.perf_counter() - t0
            times = []
            for k in range(args.repeats):
                add = gaussians(street(5300, rng, centre_x=100.0 + 150 * k)[0], rng)
                state.replace_world(state.world.concat(add))
                state.add_keyframe(KeyframeRecord(k, np.eye(4), intr, rng.uniform(size=(75, 100, 3)).astype(np.float32),
                                                  rng.uniform(1, 50, size=(75, 100)).astype(np.float32), "bench"))
                t0 = time.perf_counter()
                store.save(state)
                times.append(time.perf_counter() - t0)
            print(f"{n:>9,} Gaussians, {args.keyframes} keyframes: first save {first:.2f} s; save after one keyframe: median "
                  f"{statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, {args.repeats} repeats); "
                  f"load average {os.getloadavg()[0]:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
