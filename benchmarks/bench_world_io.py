"""World I/O benchmark: PLY write/read and WorldStore save/load times (a script, not a test).

Usage (numbers go to docs/worlds.md):
    .venv/bin/python benchmarks/bench_world_io.py
    .venv/bin/python benchmarks/bench_world_io.py --sizes 200000 --repeats 5 --keyframes 10
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srender_ros.core.camera import Intrinsics
from srender_ros.core.ply import read_ply, write_ply
from srender_ros.core.store import KeyframeRecord, WorldStore
from srender_ros.core.world import GaussianWorld, num_sh_coeffs


def random_world(n: int, sh_degree: int, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    return GaussianWorld(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-3, 1, size=(n, 3)),
                         rng.normal(size=n), rng.normal(size=(n, num_sh_coeffs(sh_degree), 3)))


def best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keyframes", type=int, default=20, help="320x240 keyframes in the store benchmark")
    args = ap.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"best of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for n in args.sizes:
            for degree in (0, 3):
                w = random_world(n, degree)
                path = tmp / "w.ply"
                t_write = best_of(lambda w=w, path=path: write_ply(path, w), args.repeats)
                t_read = best_of(lambda path=path: read_ply(path), args.repeats)
                print(f"PLY {n:>9} Gaussians, SH degree {degree}: {path.stat().st_size / 1e6:7.1f} MB, "
                      f"write {t_write:.3f} s, read {t_read:.3f} s")
        store = WorldStore(tmp / "worlds")
        state = store.get_or_create("benchmark world")
        state.replace_world(random_world(args.sizes[0], 3))
        rng = np.random.default_rng(1)
        K = Intrinsics.from_fov(320, 240, 70.0)
        for i in range(args.keyframes):
            state.add_keyframe(KeyframeRecord(i, np.eye(4), K, rng.uniform(size=(240, 320, 3)).astype(np.float32),
                                              rng.uniform(1, 5, size=(240, 320)).astype(np.float32), "benchmark"))
        t_save = best_of(lambda: store.save(state), args.repeats)
        t_load = best_of(lambda: WorldStore(tmp / "worlds").get("benchmark world"), args.repeats)
        size = store.info("benchmark world").bytes_on_disk
        print(f"WorldStore {args.sizes[0]} Gaussians (degree 3) + {args.keyframes} keyframes 320x240 "
              f"({size / 1e6:.1f} MB): save {t_save:.3f} s, load with checksums {t_load:.3f} s")


if __name__ == "__main__":
    main()
