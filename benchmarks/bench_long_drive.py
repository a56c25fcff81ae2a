"""A long drive through one world: resident memory, per-frame cost and save cost over time.

Drives the pipeline as the CLI does (``Pipeline.run`` chunk by chunk, procedural generator, cpu
renderer) along a built-in trajectory and prints one line per minute of trajectory time:
resident set size (VmRSS), Gaussians in memory, render and schedule+lift ms per frame in that
minute, and the seconds spent in ``WorldStore.save`` (count and mean per call).

    .venv/bin/python benchmarks/bench_long_drive.py --kind walk --duration-s 600 --fps 10 \
        --width 80 --height 60 --memory-budget-mb 256 [--save-every-keyframe N] --json out.json

``--save-every-keyframe N`` saves the world after every N-th chunk that made keyframes, from the benchmark itself (for
code where the pipeline saves only at the end of a request, i.e. main before issue 15: what a
per-keyframe save costs when a save rewrites the whole world).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """Current resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", default="walk")
    ap.add_argument("--duration-s", type=float, default=600.0)
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=80)
    ap.add_argument("--height", type=int, default=60)
    ap.add_argument("--prompt", default="a quiet city street")
    ap.add_argument("--memory-budget-mb", type=float, default=None)
    ap.add_argument("--save-every-keyframe", type=int, default=0, metavar="N",
                    help="also save the world after every N-th chunk that made keyframes (0: never)")
    ap.add_argument("--max-keyframes", type=int, default=5000, help="max_keyframes_per_request (default cap is 64)")
    ap.add_argument("--focus-radius-m", type=float, default=None, help="WorldStore.focus_radius_m (default: the store's)")
    ap.add_argument("--world-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--max-wall-s", type=float, default=0.0, help="stop after this much wall time (0: never)")
    args = ap.parse_args(argv)

    from srender_ros.app.compose import AppConfig, build_pipeline
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.config import PipelineConfig
    from srender_ros.engine.job import RenderJob

    world_dir = Path(args.world_dir or tempfile.mkdtemp(prefix="srender-drive-"))
    budget = None if args.memory_budget_mb is None else int(args.memory_budget_mb * 2**20)
    pcfg = PipelineConfig(max_keyframes_per_request=args.max_keyframes)
    pipe = build_pipeline(AppConfig(world_dir=world_dir, memory_budget_bytes=budget, renderer="cpu", pipeline=pcfg))
    store = pipe.store
    if args.focus_radius_m is not None:
        store.focus_radius_m = args.focus_radius_m
    saves: list[tuple[float, float, int]] = []  # (trajectory time s, seconds, Gaussians in memory)
    real_save = store.save
    clock = {"t": 0.0}

    def timed_save(state: Any) -> None:
        t0 = time.perf_counter()
        real_save(state)
        saves.append((clock["t"], time.perf_counter() - t0, len(state.world)))

    store.save = timed_save  # type: ignore[method-assign]
    traj = make_trajectory(args.kind, fps=args.fps, duration_s=args.duration_s, seed=0)
    camera = Intrinsics.from_fov(args.width, args.height, 90.0)
    run = pipe.run(RenderJob(prompt=args.prompt, trajectory=traj, intrinsics=camera))
    rows: list[dict[str, Any]] = []

    def report(r: dict[str, Any]) -> None:
        mine = [x for x in saves if int(x[0] // 60) == r["minute"]]
        r["render_ms_per_frame"] = 1000 * r["render_s"] / max(1, r["frames"])
        r["other_ms_per_frame"] = 1000 * r["other_s"] / max(1, r["frames"])
        r["saves"] = len(mine)
        r["save_s_mean"] = sum(x[1] for x in mine) / len(mine) if mine else float("nan")
        r["load_average"] = os.getloadavg()
        print(f"minute {r['minute'] + 1:2d}: rss {r['rss_mb']:7.0f} MiB  gaussians in memory "
              f"{r['gaussians_in_memory']:>9,}  keyframes {r['keyframes']:4d}  render {r['render_ms_per_frame']:6.1f} "
              f"ms/frame  schedule+generate+lift {r['other_ms_per_frame']:6.1f} ms/frame  "
              f"saves {r['saves']:3d} x {r['save_s_mean']:.3f} s  load {r['load_average'][0]:.1f}", flush=True)

    minute: dict[str, Any] = {}
    last = dict(run.stats.seconds)
    kf_seen = 0
    kf_chunks = 0
    t_wall = time.perf_counter()
    print(f"load average {os.getloadavg()}; {len(traj)} poses of {args.kind}, {args.width}x{args.height}, "
          f"budget {args.memory_budget_mb} MiB, world dir {world_dir}", flush=True)
    for chunk in run:
        t_traj = (int(chunk.stamps_ns[-1]) - int(traj.stamps_ns[0])) / 1e9
        clock["t"] = t_traj
        s = run.stats.seconds
        if args.save_every_keyframe and run.stats.keyframes > kf_seen:
            kf_chunks += 1
        if args.save_every_keyframe and run.stats.keyframes > kf_seen and kf_chunks % args.save_every_keyframe == 0:
            from srender_ros.core.store import world_id_for_prompt
            state = store._cache.get(world_id_for_prompt(args.prompt))
            if state is not None:
                store.save(state)
        kf_seen = run.stats.keyframes
        m = int(t_traj // 60)
        if minute and minute["minute"] != m:
            rows.append(minute)
            report(minute)
            minute = {}
        if args.max_wall_s and time.perf_counter() - t_wall > args.max_wall_s:
            print(f"stopped after {args.max_wall_s:.0f} s of wall time at trajectory minute {m + 1}", flush=True)
            minute = {}
            break
        if not minute:
            minute = {"minute": m, "frames": 0, "render_s": 0.0, "other_s": 0.0}
        minute["frames"] += len(chunk.indices)
        minute["render_s"] += s["render"] - last.get("render", 0.0)
        minute["other_s"] += sum(s[k] - last.get(k, 0.0) for k in ("schedule", "lift", "generate"))
        minute["rss_mb"] = max(minute.get("rss_mb", 0.0), rss_mb())
        minute["gaussians_in_memory"] = run.stats.gaussians
        minute["keyframes"] = run.stats.keyframes
        last = dict(s)
    if minute:
        rows.append(minute)
        report(minute)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    result = {"argv": sys.argv, "load_average": os.getloadavg(), "rows": rows, "peak_rss_mb": peak,
              "wall_s": time.perf_counter() - t_wall, "saves": saves, "gaussians_total": run.stats.gaussians}
    print(f"peak rss {peak:.0f} MiB, wall {result['wall_s']:.0f} s, load average {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
