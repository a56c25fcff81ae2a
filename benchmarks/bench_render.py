"""Renderer benchmark: frames per second and the scheduler's coverage pass (a script, not a test).

The world is a textured box room (8 m x 6 m x 3 m) lined with small flat Gaussians plus a few
boxes of "furniture", so every view is covered edge to edge like a reconstructed indoor scene.
The camera walks an ellipse inside the room at eye height, looking around.

Usage (numbers go to docs/benchmarks.md):
    .venv/bin/python benchmarks/bench_render.py                      # cpu, the default sizes
    .venv/bin/python benchmarks/bench_render.py --renderer gsplat    # on a CUDA machine
    .venv/bin/python benchmarks/bench_render.py --sizes 50000 --resolutions 320x240 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srender_ros.backends.render.registry import get_renderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import matrix_to_quat_wxyz
from srender_ros.core.world import GaussianWorld, num_sh_coeffs, rgb_to_sh_dc

ROOM_MIN = np.array([-4.0, -3.0, 0.0])
ROOM_MAX = np.array([4.0, 3.0, 3.0])
EYE_HEIGHT_M = 1.5


def _faces_of_box(lo: NDArray[np.float64], hi: NDArray[np.float64]) -> list[tuple[NDArray[np.float64], int, float]]:
    """(point on face, normal axis, area) for the 6 faces of an axis-aligned box."""
    faces = []
    for axis in range(3):
        other = [a for a in range(3) if a != axis]
        area = float((hi[other[0]] - lo[other[0]]) * (hi[other[1]] - lo[other[1]]))
        for v in (lo[axis], hi[axis]):
            p = lo.copy()
            p[axis] = v
            faces.append((p, axis, area))
    return faces


def box_room_world(n: int, seed: int = 0, sh_degree: int = 0) -> GaussianWorld:
    """A textured room of ``n`` small flat Gaussians (80 % walls/floor/ceiling, 20 % boxes inside).

    Args:
        n: number of Gaussians. seed: RNG seed. sh_degree: SH storage degree (higher terms small noise).
    Returns:
        The world (metres, z up).
    """
    rng = np.random.default_rng(seed)
    boxes = [(ROOM_MIN, ROOM_MAX)]
    for _ in range(6):
        c = rng.uniform([-3.0, -2.2, 0.0], [3.0, 2.2, 0.0])
        half = rng.uniform([0.2, 0.2, 0.3], [0.7, 0.7, 1.2])
        boxes.append((np.array([c[0] - half[0], c[1] - half[1], 0.0]), np.array([c[0] + half[0], c[1] + half[1], 2 * half[2]])))
    faces: list[tuple[NDArray[np.float64], NDArray[np.float64], int, float]] = []
    for bi, (lo, hi) in enumerate(boxes):
        for _p, axis, area in _faces_of_box(lo, hi):
            faces.append((lo, hi, axis, area if bi == 0 else -area))
    # 80 % of the Gaussians line the room, 20 % the boxes, each spread by area.
    area = np.array([abs(f[3]) for f in faces])
    room = np.array([f[3] > 0 for f in faces])
    weight = np.where(room, 0.8 * area / area[room].sum(), 0.2 * area / area[~room].sum())
    counts = rng.multinomial(n, weight / weight.sum())
    means, scales, quats, rgbs = [], [], [], []
    base_colors = rng.uniform(0.2, 0.9, (len(faces), 3))
    for fi, ((lo, hi, axis, _area), k) in enumerate(zip(faces, counts)):
        if k == 0:
            continue
        other = [a for a in range(3) if a != axis]
        p = rng.uniform(lo, hi, (k, 3))
        p[:, axis] = lo[axis] if fi % 2 == 0 else hi[axis]
        ext = (hi[other[0]] - lo[other[0]]) * (hi[other[1]] - lo[other[1]])
        spacing = np.sqrt(ext / k)
        s = np.empty((k, 3))
        s[:, 0] = spacing * rng.uniform(0.5, 1.0, k)
        s[:, 1] = spacing * rng.uniform(0.5, 1.0, k)
        s[:, 2] = spacing * 0.1
        # Local z along the face normal, random spin in the face plane.
        theta = rng.uniform(0, 2 * np.pi, k)
        u, v, nrm = np.eye(3)[other[0]], np.eye(3)[other[1]], np.eye(3)[axis]
        ex = np.cos(theta)[:, None] * u + np.sin(theta)[:, None] * v
        ey = np.cross(nrm, ex)
        R = np.stack([ex, ey, np.broadcast_to(nrm, ex.shape)], axis=-1)
        q = matrix_to_quat_wxyz(R)
        checker = ((np.floor(p[:, other[0]] / 0.25) + np.floor(p[:, other[1]] / 0.25)) % 2)[:, None]
        col = base_colors[fi] * (0.6 + 0.4 * checker) + rng.normal(0, 0.05, (k, 3))
        means.append(p)
        scales.append(s)
        quats.append(q)
        rgbs.append(np.clip(col, 0.0, 1.0))
    m = np.concatenate(means)
    opac = rng.uniform(0.5, 0.99, len(m))
    world = GaussianWorld.from_linear(m, np.concatenate(scales), opac, np.concatenate(rgbs), np.concatenate(quats))
    if sh_degree > 0:
        sh = np.zeros((len(m), num_sh_coeffs(sh_degree), 3), np.float32)
        sh[:, 0] = rgb_to_sh_dc(np.concatenate(rgbs))
        sh[:, 1:] = rng.normal(0, 0.05, sh[:, 1:].shape)
        world = GaussianWorld(world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, sh)
    return world


def room_trajectory(n_poses: int) -> NDArray[np.float64]:
    """[n_poses, 4, 4] optical camera-to-world poses walking an ellipse in the room, looking around."""
    t = np.linspace(0.0, 2 * np.pi, n_poses, endpoint=False)
    pos = np.stack([2.5 * np.cos(t), 1.8 * np.sin(t), EYE_HEIGHT_M + 0.2 * np.sin(3 * t)], -1)
    yaw = t + np.pi / 2 + 0.6 * np.sin(2 * t)
    pitch = 0.15 * np.sin(5 * t)
    fwd = np.stack([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), np.sin(pitch)], -1)
    right = np.cross(fwd, np.array([0.0, 0.0, 1.0]))
    right /= np.linalg.norm(right, axis=1, keepdims=True)
    down = np.cross(fwd, right)
    T = np.zeros((n_poses, 4, 4))
    T[:, :3, 0], T[:, :3, 1], T[:, :3, 2], T[:, :3, 3], T[:, 3, 3] = right, down, fwd, pos, 1.0
    return T


def _time(fn, repeats: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU seconds of this process, all threads) of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def machine_description() -> str:
    """CPU model, core count and Python/numba versions of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numba

    return f"{model}, nproc={os.cpu_count()}, numba threads={numba.get_num_threads()}, numba {numba.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--renderer", default="cpu", help="cpu | gsplat | auto (default cpu)")
    ap.add_argument("--sizes", default="50000,200000,1000000", help="Gaussian counts, comma separated")
    ap.add_argument("--resolutions", default="320x240,640x480", help="WxH list, comma separated")
    ap.add_argument("--fov-deg", type=float, default=70.0, help="horizontal field of view")
    ap.add_argument("--sh-degree", type=int, default=0, help="SH degree of the worlds")
    ap.add_argument("--frames", type=int, default=10, help="distinct poses per timing run")
    ap.add_argument("--repeats", type=int, default=5, help="timing runs; the median is reported")
    ap.add_argument("--coverage-poses", type=int, default=600)
    ap.add_argument("--coverage-gaussians", type=int, default=200000)
    ap.add_argument("--coverage-resolution", default="80x60")
    ap.add_argument("--skip-coverage", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    renderer = get_renderer(args.renderer)
    print(f"renderer={renderer.name}  machine: {machine_description()}", flush=True)
    print(f"load average before: {os.getloadavg()}")
    results: dict[str, object] = {"renderer": renderer.name, "machine": machine_description(), "render": [], "coverage": None}
    poses = room_trajectory(max(args.frames, 1) * 7)[:: 7][: args.frames]
    worlds: dict[int, GaussianWorld] = {}
    for n in (int(s) for s in args.sizes.split(",") if s):
        worlds[n] = box_room_world(n, seed=1, sh_degree=args.sh_degree)
        for res in args.resolutions.split(","):
            w_px, h_px = (int(v) for v in res.lower().split("x"))
            intr = Intrinsics.from_fov(w_px, h_px, args.fov_deg)
            out = renderer.render(worlds[n], intr, poses[:1])  # warm-up: compile, per-world caches
            runs, cpu = _time(lambda intr=intr, n=n: [renderer.render(worlds[n], intr, poses[i:i + 1])
                                                      for i in range(len(poses))], args.repeats)
            med = statistics.median(runs) / len(poses)
            med_cpu = statistics.median(cpu) / len(poses)
            row = {"gaussians": n, "resolution": res, "ms_per_frame": med * 1e3, "fps": 1.0 / med,
                   "cpu_ms_per_frame": med_cpu * 1e3, "alpha_mean": float(out.alpha.mean()), "runs_s": runs}
            results["render"].append(row)  # type: ignore[union-attr]
            print(f"render  N={n:>8}  {res:>8}: {med * 1e3:8.1f} ms/frame  {1 / med:6.1f} fps  CPU {med_cpu * 1e3:7.1f} ms/frame"
                  f"  (alpha mean {out.alpha.mean():.3f}; runs {', '.join(f'{r:.2f}' for r in runs)} s)", flush=True)
    if not args.skip_coverage:
        n = args.coverage_gaussians
        world = worlds.get(n) or box_room_world(n, seed=1, sh_degree=args.sh_degree)
        w_px, h_px = (int(v) for v in args.coverage_resolution.lower().split("x"))
        intr = Intrinsics.from_fov(w_px, h_px, args.fov_deg)
        traj = room_trajectory(args.coverage_poses)
        cov = renderer.coverage(world, intr, traj[:8])  # warm-up
        runs, cpu = _time(lambda: renderer.coverage(world, intr, traj), args.repeats)
        cov = renderer.coverage(world, intr, traj)
        med = statistics.median(runs)
        results["coverage"] = {"gaussians": n, "poses": len(traj), "resolution": args.coverage_resolution, "seconds": med,
                               "cpu_seconds": statistics.median(cpu), "alpha_mean": float(cov.mean()), "runs_s": runs}
        print(f"coverage N={n} poses={len(traj)} {args.coverage_resolution}: {med:.3f} s  CPU {statistics.median(cpu):.3f} s"
              f"  (alpha mean {cov.mean():.3f}; runs {', '.join(f'{r:.2f}' for r in runs)} s)", flush=True)
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
