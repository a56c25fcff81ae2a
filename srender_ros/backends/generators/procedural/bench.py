"""Timing of the procedural ground truth: ``python -m srender_ros.backends.generators.procedural.bench``.

Renders 320x240 frames along built-in paths (a walk indoors, a car drive and a drone flight
outdoors) for every family, with 1 thread and with all of numba's threads, at supersample 1 and 2,
and prints wall-clock and CPU milliseconds per frame. Numbers for docs/procedural.md; not a test.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from srender_ros.backends.generators.procedural.generator import ProceduralGenerator
from srender_ros.backends.generators.procedural.scene import Family
from srender_ros.core.camera import Intrinsics
from srender_ros.core.trajectory_gen import make_trajectory

PROMPTS = {
    Family.ROOM: "a cozy living room", Family.OFFICE: "an open-plan office", Family.KITCHEN: "a small kitchen",
    Family.WAREHOUSE: "a cluttered warehouse aisle", Family.STREET: "a city street", Family.FOREST: "a pine forest",
    Family.FIELD: "a farm field",
}
PATHS = {Family.STREET: "car", Family.FOREST: "car", Family.FIELD: "drone"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20, help="frames per family (spread over a 20 s path)")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    args = ap.parse_args(argv)
    K = Intrinsics.from_fov(args.width, args.height, 70.0)
    all_threads = numba.get_num_threads()
    print(f"{args.width}x{args.height}, {args.frames} frames per family; ms per frame, wall / CPU")
    print(f"{'family':10s} {'path':6s} {'ss1 1thr':>14s} {'ss2 1thr':>14s} {f'ss2 {all_threads}thr':>14s}")
    for fam, prompt in PROMPTS.items():
        path = PATHS.get(fam, "walk")
        traj = make_trajectory(path, fps=30.0, duration_s=20.0, seed=0)
        T = traj.T_world_cam[np.linspace(0, len(traj.T_world_cam) - 1, args.frames).astype(int)]
        cols = []
        for ss, threads in ((1, 1), (2, 1), (2, all_threads)):
            gen = ProceduralGenerator(supersample=ss)
            numba.set_num_threads(threads)
            gen.ground_truth(prompt, K, T[:1])  # compile / build cells outside the timing
            w0, c0 = time.perf_counter(), time.process_time()
            gen.ground_truth(prompt, K, T)
            w, c = time.perf_counter() - w0, time.process_time() - c0
            cols.append(f"{1e3 * w / len(T):6.1f} / {1e3 * c / len(T):5.1f}")
        numba.set_num_threads(all_threads)
        print(f"{fam.value:10s} {path:6s} " + " ".join(f"{c:>14s}" for c in cols))


if __name__ == "__main__":
    main()
