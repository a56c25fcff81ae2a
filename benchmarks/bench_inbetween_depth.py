#!/usr/bin/env python
"""Issue 17 items 2-3: the quality table with --compare-inbetween / --compare-depth (inbetween and monocular-depth
runs; a copy of bench_quality.py from before the dedup/refine merges, kept whole so its numbers reproduce).

Reconstruction quality of the pipeline against exact procedural ground truth (issue 4, item 7).

For 20 s, 30 fps paths at 320x240 with the procedural generator: PSNR / SSIM of non-keyframes
against the exact ray-cast truth, hole fraction and keyframe share, for the coverage scheduler at
several tau and the uniform scheduler at several keyframe counts. Writes a JSON of all runs, a
markdown table and a plot of PSNR against keyframe count.

    .venv/bin/python benchmarks/bench_quality.py --out bench_out/quality            # full (long)
    .venv/bin/python benchmarks/bench_quality.py --quick --out bench_out/quality    # smaller

Ground truth is evaluated on every ``--eval-stride``-th frame (all frames are still rendered);
PSNR is a mean over those frames.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from srender_ros.app.compose import AppConfig, build_pipeline
from srender_ros.backends.generators.registry import make_generator
from srender_ros.core.camera import Intrinsics
from srender_ros.core.holes import fill_holes
from srender_ros.core.metrics import psnr_db, ssim, temporal_error
from srender_ros.core.ports.refine import RefineConfig
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.engine.pipeline import PipelineConfig, RenderJob
from srender_ros.errors import InputError

#: (name, trajectory generator, prompt, kind) — smooth handheld-like paths and faster rotating ones.
PATHS = [
    ("walk-office", "walk", "a small office", "smooth"),
    ("handheld-kitchen", "handheld", "a kitchen", "smooth"),
    ("orbit-warehouse", "orbit", "a cluttered warehouse aisle", "rotating"),
    ("pan-forest", "pan", "a forest clearing", "rotating"),
]


def run_one(path_name: str, traj_kind: str, prompt: str, config: PipelineConfig, camera: Intrinsics,
            fps: float, duration_s: float, eval_stride: int, renderer_name: str,
            first_keyframe: str = "prior") -> dict[str, object]:
    # Walks keep near the procedural worlds' free lines (aisles, corridors) instead of crossing furniture.
    extra = {"meander_deg": 4.0} if traj_kind == "walk" else {}
    traj = make_trajectory(traj_kind, fps=fps, duration_s=duration_s, seed=0, **extra)
    gen = make_generator("procedural")
    if config.depth_source == "monocular":
        from srender_ros.backends.generators.monocular import MonocularDepthGenerator

        gen = MonocularDepthGenerator(gen, first_keyframe=first_keyframe)
    # Frames are drawn without hole filling and filled here, so that both are measured in one run.
    fill = config.fill_holes
    config = replace(config, fill_holes=False)
    with tempfile.TemporaryDirectory() as tmp:
        # the generator is already wrapped for the depth source: build with exact so it is not wrapped twice
        pipe = build_pipeline(AppConfig(renderer=renderer_name, pipeline=replace(config, depth_source="exact")),
                              store=WorldStore(tmp), generator=gen)
        run = pipe.run(RenderJob(prompt=prompt, trajectory=traj, intrinsics=camera))
        # per evaluated frame: (pose index, PSNR, SSIM, unfilled PSNR); keyframes are dropped at the end
        # (the schedule is complete then; in render mode later keyframes are not known mid-run)
        evals: list[tuple[int, float, float, float]] = []
        temporal: list[float] = []
        depth_rel: list[float] = []
        t0 = time.perf_counter()
        for chunk in run:
            idx = chunk.indices.tolist()
            # each evaluated pose i with its successor i + 1 (same chunk) for the temporal error
            sel = [j for j, i in enumerate(idx) if i % eval_stride == 0]
            if not sel:
                continue
            pairs = [j for j in sel if j + 1 < len(idx)]
            need = sorted(set(sel) | {j + 1 for j in pairs})
            gt = gen.ground_truth(prompt, camera, chunk.T_world_cam[need])  # type: ignore[attr-defined]
            row = {j: k for k, j in enumerate(need)}
            raw = chunk.render.rgb[need]
            filled = fill_holes(raw, chunk.render.alpha[need]) if fill and config.inbetween == "render" else raw
            for j in sel:
                k = row[j]
                evals.append((idx[j], psnr_db(filled[k], gt.rgb[k]), ssim(filled[k], gt.rgb[k]),
                              psnr_db(raw[k], gt.rgb[k])))
                d, z = chunk.render.depth_m[j], gt.depth_m[k]
                ok = np.isfinite(d) & (z < 100.0)  # rendered depth where the world is solid; sky excluded
                if ok.any():
                    depth_rel.append(float(np.mean(np.abs(d[ok] - z[ok]) / z[ok])))
            for j in pairs:
                temporal.append(temporal_error(filled[row[j]], filled[row[j + 1]], gt.rgb[row[j]], gt.rgb[row[j + 1]]))
        wall = time.perf_counter() - t0
        kf = run.schedule.keyframe_indices
        rows = [e for e in evals if e[0] not in set(kf)]
        inside = [e for e in rows if kf and kf[0] < e[0] < kf[-1]]
        psnrs, ssims, psnrs_raw = [e[1] for e in rows], [e[2] for e in rows], [e[3] for e in rows]
    st = run.stats
    return {
        "path": path_name, "trajectory": traj_kind, "prompt": prompt,
        "scheduler": config.scheduler.value, "tau": config.coverage_threshold,
        "refine_iterations": config.refine.iterations if config.refine is not None else None,
        "uniform_keyframes": config.uniform_keyframes if config.scheduler.value == "uniform" else None,
        "frames": st.frames, "keyframes": len(run.schedule.keyframes),
        "keyframe_fraction": len(run.schedule.keyframes) / st.frames,
        "fill_holes": fill, "psnr_mean": float(np.mean(psnrs)), "psnr_p5": float(np.percentile(psnrs, 5)),
        "psnr_mean_unfilled": float(np.mean(psnrs_raw)),
        "ssim_mean": float(np.mean(ssims)), "hole_fraction_mean": st.hole_fraction_mean,
        "inbetween": config.inbetween, "depth_source": config.depth_source,
        "first_keyframe_scale": first_keyframe if config.depth_source == "monocular" else None,
        "temporal_error_mean": float(np.mean(temporal)) if temporal else None,
        "depth_abs_rel_mean": float(np.mean(depth_rel)) if depth_rel else None,
        "psnr_between_keyframes": float(np.mean([e[1] for e in inside])) if inside else None,
        "ssim_between_keyframes": float(np.mean([e[2] for e in inside])) if inside else None,
        "frames_between_keyframes_share": (kf[-1] - kf[0] + 1) / st.frames if kf else 0.0,
        "seconds_per_frame_inbetween": (st.seconds.get("interpolate", 0.0) if config.inbetween == "interpolate"
                                        else st.seconds["render"]) / st.frames,
        "per_frame": [[e[0], round(e[1], 3), round(e[2], 4)] for e in rows],
        "keyframe_indices": list(kf),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "gaussians": st.gaussians, "seconds": st.seconds, "render_fps": st.render_fps, "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out/quality")
    ap.add_argument("--quick", action="store_true", help="fewer sweep points")
    ap.add_argument("--paths", nargs="*", default=None, help="subset of path names")
    ap.add_argument("--sweep-paths", nargs="*", default=["walk-office", "orbit-warehouse"])
    ap.add_argument("--taus", nargs="*", type=float, default=None, help="sweep these tau (default: by --quick)")
    ap.add_argument("--counts", nargs="*", type=int, default=None, help="uniform keyframe counts of the sweep")
    ap.add_argument("--refine-paths", nargs="*", default=[], help="also run these paths with --refine (torch on CPU)")
    ap.add_argument("--refine-iterations", type=int, default=1000, help="Adam steps per refinement (one after "
                    "every chunk that added keyframes)")
    ap.add_argument("--skip-table", action="store_true", help="skip the default-settings runs")
    ap.add_argument("--eval-stride", type=int, default=3)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--renderer", default="auto")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds per path at 30 fps")
    ap.add_argument("--compare-inbetween", nargs="*", default=[], help="these paths with --inbetween interpolate "
                    "(beside the default render runs of the table)")
    ap.add_argument("--compare-depth", nargs="*", default=[], help="these paths with --depth-source monocular, "
                    "first keyframe scaled by the metric prior and by its true scale")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = Intrinsics.from_fov(args.width, args.height, 90.0)
    paths = [p for p in PATHS if args.paths is None or p[0] in args.paths]
    taus = args.taus or ([0.005, 0.02, 0.08] if args.quick else [0.002, 0.005, 0.01, 0.02, 0.05, 0.1])
    counts = args.counts or ([4, 12] if args.quick else [2, 4, 8, 16, 32])
    runs: list[dict[str, object]] = []

    def record(r: dict[str, object]) -> None:
        runs.append(r)
        print(f"{r['path']:<18} {r['scheduler']:<8} tau={r['tau']:<6} refine={r['refine_iterations']} kf={r['keyframes']:<3} "
              f"PSNR={r['psnr_mean']:.2f} dB (unfilled {r['psnr_mean_unfilled']:.2f}) SSIM={r['ssim_mean']:.3f} "
              f"holes={100 * float(r['hole_fraction_mean']):.3f}% inbetween={r['inbetween']} "
              f"depth={r['depth_source']}/{r['first_keyframe_scale']} temporal={r['temporal_error_mean']} "
              f"depthAbsRel={r['depth_abs_rel_mean']} between={r['psnr_between_keyframes']} "
              f"s/frame={r['seconds_per_frame_inbetween']:.4f} load={r['loadavg']} "
              f"wall={float(r['wall_s']):.0f}s", flush=True)
        (out / "quality.json").write_text(json.dumps(runs, indent=1))

    for name, kind, prompt, _ in [] if args.skip_table else paths:  # the table: default settings
        record(run_one(name, kind, prompt, PipelineConfig(), camera, 30.0, args.duration, args.eval_stride,
                       args.renderer))
    for name, kind, prompt, _ in [p for p in paths if p[0] in args.compare_inbetween]:
        try:
            record(run_one(name, kind, prompt, PipelineConfig(inbetween="interpolate"), camera, 30.0, args.duration,
                           args.eval_stride, args.renderer))
        except InputError as e:  # e.g. a path the scheduler covers with a single keyframe
            print(f"{name:<18} interpolate: {e}", flush=True)
            runs.append({"path": name, "inbetween": "interpolate", "error": str(e)})
    for name, kind, prompt, _ in [p for p in paths if p[0] in args.compare_depth]:
        for first in ("metric", "prior"):
            record(run_one(name, kind, prompt, PipelineConfig(depth_source="monocular"), camera, 30.0, args.duration,
                           args.eval_stride, args.renderer, first_keyframe=first))
    for name, kind, prompt, _ in [p for p in paths if p[0] in args.refine_paths]:
        refine = RefineConfig(iterations=args.refine_iterations, threads=1)
        record(run_one(name, kind, prompt, PipelineConfig(refine=refine), camera, 30.0, 20.0, args.eval_stride,
                       args.renderer))
    for name, kind, prompt, _ in [p for p in paths if p[0] in args.sweep_paths]:
        for tau in taus:
            if tau != PipelineConfig().coverage_threshold:
                record(run_one(name, kind, prompt, PipelineConfig(coverage_threshold=tau), camera, 30.0, 20.0,
                               args.eval_stride, args.renderer))
        for k in counts:
            record(run_one(name, kind, prompt, PipelineConfig(scheduler="uniform", uniform_keyframes=k), camera,  # type: ignore[arg-type]
                           30.0, 20.0, args.eval_stride, args.renderer))
    plot(runs, out / "psnr_vs_keyframes.png")


def plot(runs: list[dict[str, object]], path: Path) -> None:
    """PSNR (as delivered, hole filling on) and hole fraction against keyframe count, per path and scheduler."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in sorted({str(r["path"]) for r in runs}):
        for sched, marker in (("coverage", "o-"), ("uniform", "s--")):
            rows = sorted((int(r["keyframes"]), float(r["psnr_mean"]), 100 * float(r["hole_fraction_mean"]))  # type: ignore[call-overload]
                          for r in runs if r["path"] == name and r.get("scheduler") == sched
                          and not r.get("refine_iterations") and r.get("inbetween", "render") == "render"
                          and r.get("depth_source", "exact") == "exact")
            if len(rows) > 1:
                k, psnr, holes = zip(*rows)
                ax.plot(k, psnr, marker, label=f"{name} {sched}")
                bx.plot(k, holes, marker, label=f"{name} {sched}")
    ax.set_ylabel("PSNR of non-keyframes vs ground truth (dB)")
    bx.set_ylabel("hole fraction (%, world alpha < 0.5)")
    bx.set_yscale("log")
    for a in (ax, bx):
        a.set_xlabel("keyframes for a 600-frame path")
        a.set_xscale("log")
        a.set_xticks([2, 4, 8, 16, 32, 64])
        a.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        a.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
