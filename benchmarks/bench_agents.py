"""Agent-training throughput: env steps/s of srender/MobileBase-v0 and `srender batch` jobs/s.

Envs: for 1, 4, 16, 64 envs at 64x64, 84x84, 128x128, the batched VectorEnv (make_vec
vector_entry_point: ONE render_batch per step) against a loop of single envs (make_vec sync:
one render per env per step), in a covered world built off-line with envs.build_world
(generate=False). Reports env steps/s (= envs x vector steps / wall s) and CPU ms per env step
(process CPU time, all threads; less sensitive to other load on a shared machine).

Batch: the same 4 jobs (2 worlds x 2 walks) with 1 and 2 local Ray workers, fresh world store
each run (so keyframe generation is included, as in real use), Ray start-up excluded.

    python benchmarks/bench_agents.py [--world-dir DIR] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import srender_ros.envs  # noqa: F401  (registers the ids)
from srender_ros.envs import build_world

ENV_ID = "srender/MobileBase-v0"
PROMPT = "a small office"


def bench_env(mode: str, num_envs: int, size: int, world_dir: str, views: int) -> dict[str, Any]:
    env = gym.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode=mode, world_dir=world_dir, prompts=PROMPT,
                       width=size, height=size, max_episode_steps=1000)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(2):  # warm-up (compiled kernels, caches)
        env.step(rng.uniform(-1, 1, (num_envs, 2)).astype(np.float32))
    steps = max(2, views // num_envs)
    actions = rng.uniform(-1, 1, (steps, num_envs, 2)).astype(np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        env.step(a)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    env.close()
    return {"mode": "batched" if mode == "vector_entry_point" else "looped", "envs": num_envs, "size": size,
            "vector_steps": steps, "env_steps_per_s": round(steps * num_envs / wall, 1),
            "cpu_ms_per_env_step": round(1e3 * cpu / (steps * num_envs), 2), "load": os.getloadavg()[0]}


def bench_batch(workers: int, tmp: Path) -> dict[str, Any]:
    from srender_ros.batch.jobs import parse_jobs
    from srender_ros.batch.ray_runner import run_batch

    walk = {"builtin": "walk", "duration_s": 3.0, "fps": 5}
    jobs = parse_jobs([{"name": f"j{k}", "prompt": p, "trajectory": {**walk, "seed": k}, "width": 160, "height": 120}
                       for k, p in enumerate(["a small office", "a small office", "a forest path", "a forest path"])],
                      tmp)
    out, worlds = tmp / f"out{workers}", tmp / f"worlds{workers}"
    started: list[float] = []
    t0 = time.perf_counter()

    def done(rec: dict[str, Any]) -> None:
        started.append(time.perf_counter())

    records = run_batch(jobs, out, str(worlds), None, workers, on_done=done)
    total = time.perf_counter() - t0
    frames = sum(r["frames"] for r in records)
    job_s = sum(r["seconds"] for r in records)
    return {"workers": workers, "jobs": len(jobs), "frames": frames, "wall_s_incl_ray_start": round(total, 1),
            "sum_job_s": round(job_s, 1), "ok": all(r["status"] == "ok" for r in records),
            "load": os.getloadavg()[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world-dir", default=None, help="store for the benchmark world (default: a temp folder)")
    p.add_argument("--views", type=int, default=96, help="env steps timed per configuration")
    p.add_argument("--quick", action="store_true", help="only 16 envs at 84x84, no batch part")
    p.add_argument("--skip-batch", action="store_true")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_agents-"))
    world_dir = args.world_dir or str(tmp / "worlds")
    t0 = time.perf_counter()
    info = build_world(PROMPT, world_dir)
    print(f"world: {info} (built or loaded in {time.perf_counter() - t0:.1f} s)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    rows = []
    sizes = [84] if args.quick else [64, 84, 128]
    counts = [16] if args.quick else [1, 4, 16, 64]
    for size in sizes:
        for n in counts:
            for mode in ("vector_entry_point", "sync"):
                row = bench_env(mode, n, size, world_dir, args.views)
                rows.append(row)
                print(json.dumps(row), flush=True)
    batch = []
    if not (args.quick or args.skip_batch):
        for w in (1, 2):
            row = bench_batch(w, tmp)
            batch.append(row)
            print(json.dumps(row), flush=True)
    print("\n| size | envs | batched steps/s | looped steps/s | speed-up | CPU ms/step batched | looped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        for n in counts:
            b = next(r for r in rows if r["size"] == size and r["envs"] == n and r["mode"] == "batched")
            lo = next(r for r in rows if r["size"] == size and r["envs"] == n and r["mode"] == "looped")
            print(f"| {size}x{size} | {n} | {b['env_steps_per_s']} | {lo['env_steps_per_s']} | "
                  f"{b['env_steps_per_s'] / lo['env_steps_per_s']:.2f}x | {b['cpu_ms_per_env_step']} | "
                  f"{lo['cpu_ms_per_env_step']} |")
    print(f"load average at the end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"world": info, "envs": rows, "batch": batch}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
