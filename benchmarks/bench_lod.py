"""Render cost against world size (issue 15 items 2-3): the same poses in a small and a large world.

World: a synthetic street (a road 10 m wide, facades 8 m high on both sides, boxes for parked cars),
tiled with small flat Gaussians every ``--spacing-m`` metres, as a drive that passed everything up
close leaves it; the camera drives along the road at 1.6 m, looking forward, 10 m/s, 10 Hz.

- ``drive`` world: the whole street (``--length-m``).
- ``local`` world: the part those poses have near them: from 5 m behind the first pose to
  ``--ahead-m`` ahead of the last (what their own keyframes would hold at that detail).

The same ``--poses`` poses are rendered in both worlds (render: one call per pose; batch: one
render_batch of all of them; coverage: one coverage() call at 1/2 resolution) with LOD on
(``--lod-px``) and off (lod_px = 0, exact), in one run. Ratio = drive / local wall time.
Also prints PSNR of LOD against exact on the drive world.

    python benchmarks/bench_lod.py [--length-m 300] [--poses 100] [--json out.json]

Another process may run the same script from another checkout (e.g. the commit before the index)
for a before/after: ``--lod-px`` is ignored there if that renderer has no such option.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.world import GaussianWorld


def _plane(rng: np.random.Generator, origin: np.ndarray, u: np.ndarray, v: np.ndarray, nu: int, nv: int,
           spacing: float, normal_axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussians on a grid of nu x nv points spanning origin + i u + j v (unit u, v), flat along normal_axis."""
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    p = origin + (i.reshape(-1, 1) + rng.uniform(-0.3, 0.3, (i.size, 1))) * spacing * u \
        + (j.reshape(-1, 1) + rng.uniform(-0.3, 0.3, (i.size, 1))) * spacing * v
    scales = np.full((len(p), 3), 0.6 * spacing)
    scales[:, normal_axis] = 0.05 * spacing
    col = np.clip(0.5 + 0.25 * np.sin(p[:, :1] * 1.7) * np.cos(p[:, 1:2] * 2.3 + p[:, 2:3]) + rng.normal(0, 0.08, (len(p), 3)),
                  0, 1)
    return p, scales, col


def street_world(length_m: float, spacing_m: float, x0_m: float = -10.0, seed: int = 0) -> GaussianWorld:
    """Road along +x (z up, y left), facades at y = +-5 m, boxes every 12 m; [x0, x0 + length]."""
    rng = np.random.default_rng(seed)
    parts = []
    n_len = int(length_m / spacing_m)
    ex, ey, ez = np.eye(3)
    parts.append(_plane(rng, np.array([x0_m, -5.0, 0.0]), ex, ey, n_len, int(10 / spacing_m), spacing_m, 2))
    for y in (-5.0, 5.0):
        parts.append(_plane(rng, np.array([x0_m, y, 0.0]), ex, ez, n_len, int(8 / spacing_m), spacing_m, 1))
    for cx in np.arange(x0_m + 6.0, x0_m + length_m - 4.0, 12.0):
        y = 3.5 if int(cx) % 24 < 12 else -3.5
        parts.append(_plane(rng, np.array([cx, y - 0.9, 1.4]), ex, ey, int(4 / spacing_m), int(1.8 / spacing_m),
                            spacing_m, 2))
        for yy in (y - 0.9, y + 0.9):
            parts.append(_plane(rng, np.array([cx, yy, 0.0]), ex, ez, int(4 / spacing_m), int(1.4 / spacing_m),
                                spacing_m, 1))
    means = np.concatenate([p for p, _, _ in parts]).astype(np.float32)
    scales = np.concatenate([s for _, s, _ in parts])
    col = np.concatenate([c for _, _, c in parts])
    n = len(means)
    quats = np.tile(np.array([1.0, 0, 0, 0], np.float32), (n, 1))
    sh = ((col - 0.5) / 0.28209479177387814).astype(np.float32)[:, None, :]
    return GaussianWorld(means, quats, np.log(scales).astype(np.float32), np.full(n, 2.0, np.float32), sh)


def crop(world: GaussianWorld, x_lo: float, x_hi: float) -> GaussianWorld:
    keep = (world.means[:, 0] >= x_lo) & (world.means[:, 0] <= x_hi)
    return GaussianWorld(world.means[keep], world.quats_wxyz[keep], world.log_scales[keep],
                         world.opacity_logits[keep], world.sh[keep])


def drive_poses(n: int, x_start: float = 0.0, speed_mps: float = 10.0, fps: float = 10.0) -> np.ndarray:
    """[n, 4, 4] optical camera-to-world poses (x right, y down, z forward) driving along +x at 1.6 m."""
    T = np.zeros((n, 4, 4))
    for k in range(n):
        yaw = 0.05 * np.sin(0.3 * k)
        fwd = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
        down = np.array([0.0, 0.0, -1.0])
        T[k, :3, :3] = np.stack([right, down, fwd], axis=1)
        T[k, :3, 3] = [x_start + speed_mps * k / fps, 0.3 * np.sin(0.1 * k), 1.6]
        T[k, 3, 3] = 1.0
    return T


def _renderer(lod_px: float) -> CpuRenderer:
    try:
        return CpuRenderer(lod_px=lod_px)  # type: ignore[call-arg]
    except TypeError:  # a checkout before the LOD index
        return CpuRenderer()


def _time(fn: Any, repeats: int) -> tuple[float, float]:
    """Median (wall s, process CPU s) of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(1.0 / mse)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length-m", type=float, default=300.0)
    ap.add_argument("--spacing-m", type=float, default=0.08)
    ap.add_argument("--ahead-m", type=float, default=30.0)
    ap.add_argument("--local-length-m", type=float, default=None,
                    help="instead of --ahead-m: the local world is the street's first this many metres "
                         "(e.g. a third of --length-m: the same poses as the world grows 3x)")
    ap.add_argument("--poses", type=int, default=100)
    ap.add_argument("--resolution", default="320x240")
    ap.add_argument("--fov-deg", type=float, default=90.0)
    ap.add_argument("--lod-px", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--modes", default="lod,exact")
    ap.add_argument("--kinds", default="render,coverage", help="render,batch,coverage")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    W, H = (int(v) for v in args.resolution.split("x"))
    intr = Intrinsics.from_fov(W, H, args.fov_deg)
    T = drive_poses(args.poses, x_start=0.0)
    x_last = float(T[-1, 0, 3])
    t0 = time.perf_counter()
    drive = street_world(args.length_m, args.spacing_m)
    local = (crop(drive, -10.0, -10.0 + args.local_length_m) if args.local_length_m
             else crop(drive, -5.0, x_last + args.ahead_m))
    print(f"worlds: drive {len(drive):,} Gaussians, local {len(local):,} "
          f"(built in {time.perf_counter() - t0:.1f} s); poses x 0..{x_last:.0f} m")
    low = intr.scaled(0.5)
    rows: list[dict[str, Any]] = []
    images: dict[str, np.ndarray] = {}
    for mode in args.modes.split(","):
        r = _renderer(args.lod_px if mode == "lod" else 0.0)
        row: dict[str, Any] = {"mode": mode}
        for name, world in (("local", local), ("drive", drive)):
            tp = time.perf_counter()
            r.render(world, intr, T[:1])  # prepare (cached) + compile
            row[f"{name}_prepare_s"] = round(time.perf_counter() - tp, 2)
            jobs = {"render": lambda r=r, world=world: [r.render(world, intr, T[i:i + 1]) for i in range(len(T))],
                    "batch": lambda r=r, world=world: r.render_batch([world], np.zeros(len(T), int), intr, T),
                    "coverage": lambda r=r, world=world: r.coverage(world, low, T)}
            for k in args.kinds.split(","):
                wall, cpu = _time(jobs[k], args.repeats)
                row[f"{name}_{k}_ms"] = round(1e3 * wall / len(T), 2)
                row[f"{name}_{k}_cpu_ms"] = round(1e3 * cpu / len(T), 2)
            if name == "drive":
                images[mode] = np.concatenate([r.render(world, intr, T[i:i + 1]).rgb for i in range(0, len(T), 10)])
        for k in args.kinds.split(","):
            row[f"{k}_ratio_wall"] = round(row[f"drive_{k}_ms"] / row[f"local_{k}_ms"], 2)
            row[f"{k}_ratio_cpu"] = round(row[f"drive_{k}_cpu_ms"] / row[f"local_{k}_cpu_ms"], 2)
        row["load"] = os.getloadavg()
        rows.append(row)
        print(json.dumps(row), flush=True)
    if "lod" in images and "exact" in images:
        p = [psnr(a, b) for a, b in zip(images["lod"], images["exact"])]
        print(f"PSNR of LOD against exact on the drive world (every 10th pose): mean {np.mean(p):.1f} dB, min {np.min(p):.1f} dB")
        rows.append({"psnr_lod_vs_exact_mean_db": round(float(np.mean(p)), 2),
                     "psnr_lod_vs_exact_min_db": round(float(np.min(p)), 2)})
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        args.json.write_text(json.dumps({"drive_gaussians": len(drive), "local_gaussians": len(local),
                                         "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
