#!/usr/bin/env python
"""Reconstruction quality of the pipeline against exact procedural ground truth (issue 4, item 7).

For 20 s, 30 fps paths at 320x240 with the procedural generator: PSNR / SSIM of non-keyframes
against the exact ray-cast truth, hole fraction and keyframe share, for the coverage scheduler at
several tau and the uniform scheduler at several keyframe counts. Writes a JSON of all runs, a
markdown table and a plot of PSNR against keyframe count.

    .venv/bin/python benchmarks/bench_quality.py --out bench_out/quality            # full (long)
    .venv/bin/python benchmarks/bench_quality.py --quick --out bench_out/quality    # smaller

Ground truth is evaluated on every ``--eval-stride``-th frame (all frames are still rendered);
PSNR is a mean over those frames.

Issue 17 comparisons on the same paths, same run (JSON fields ``inbetween``, ``depth_source``,
``warp_correction``, ``camera_height_m``, ``temporal_error_mean``, ``depth_abs_rel_mean``):

    --compare-inbetween PATH...   also with --inbetween interpolate (2D optical flow between keyframes)
    --compare-depth PATH...       also with --depth-source monocular, one run per --depth-variants entry
                                  (before: affine + metric prior; after: + warp correction + ground
                                  scale at the path's camera height; warp / height: one of the two)

    .venv/bin/python benchmarks/bench_quality.py --paths walk-office handheld-kitchen orbit-warehouse \
        pan-forest --compare-depth walk-office handheld-kitchen orbit-warehouse pan-forest \
        --depth-variants before warp height after --sweep-paths --eval-stride 10 --width 160 --height 120
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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
from srender_ros.core.ports.refine import KeyframeRefineConfig, RefineConfig
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.engine.pipeline import PipelineConfig, RenderJob
from srender_ros.errors import InputError

#: (name, trajectory generator, prompt, kind) — smooth handheld-like paths, faster rotating ones and a
#: forward drive (issue 15: 60 s at 10 fps, 10 m/s down a street, camera 1.6 m above the road).
PATHS = [
    ("walk-office", "walk", "a small office", "smooth"),
    ("handheld-kitchen", "handheld", "a kitchen", "smooth"),
    ("orbit-warehouse", "orbit", "a cluttered warehouse aisle", "rotating"),
    ("pan-forest", "pan", "a forest clearing", "rotating"),
    ("drive-street", "drive", "a city street", "forward"),
]
#: (fps, duration_s) of each path kind; the others are 20 s at 30 fps.
TIMING = {"forward": (10.0, 60.0)}


def path_timing(kind: str, duration_scale: float = 1.0) -> tuple[float, float]:
    """(fps, duration_s) of a path of ``kind`` (see TIMING), the duration scaled."""
    fps, dur = TIMING.get(kind, (30.0, 20.0))
    return fps, dur * duration_scale


def run_one(path_name: str, traj_kind: str, prompt: str, config: PipelineConfig, camera: Intrinsics,
            fps: float, duration_s: float, eval_stride: int, renderer_name: str, first_keyframe: str = "prior",
            warp_correction: bool = True) -> dict[str, object]:
    """One path with ``config``; PSNR/SSIM of non-keyframes against the exact truth, and more.

    With ``config.depth_source == "monocular"`` the procedural generator is wrapped here (so that
    ``first_keyframe`` and ``warp_correction`` of MonocularDepthGenerator can be chosen); the
    ``camera_height_m`` of the config reaches it through the keyframe requests.
    """
    # Walks keep near the procedural worlds' free lines (aisles, corridors) instead of crossing furniture.
    extra = {"meander_deg": 4.0} if traj_kind == "walk" else {}
    traj = make_trajectory(traj_kind, fps=fps, duration_s=duration_s, seed=0, **extra)
    gen = make_generator("procedural")
    depth_source = getattr(config, "depth_source", "exact")
    if depth_source == "monocular":
        from srender_ros.backends.generators.monocular import MonocularDepthGenerator

        gen = MonocularDepthGenerator(gen, first_keyframe=first_keyframe, warp_correction=warp_correction)
        config = replace(config, depth_source="exact")  # already wrapped: build_pipeline must not wrap it twice
    inbetween = getattr(config, "inbetween", "render")
    # Frames are drawn without hole filling and filled here, so that both are measured in one run.
    fill = config.fill_holes
    config = replace(config, fill_holes=False)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_pipeline(AppConfig(renderer=renderer_name, pipeline=config), store=WorldStore(tmp), generator=gen)
        run = pipe.run(RenderJob(prompt=prompt, trajectory=traj, intrinsics=camera))
        # per evaluated frame: (pose index, PSNR, SSIM, unfilled PSNR); keyframes are dropped at the end
        # (the schedule is complete then; in interpolate mode later keyframes are not known mid-run)
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
            filled = fill_holes(raw, chunk.render.alpha[need]) if fill and inbetween == "render" else raw
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
        kf_idx = run.schedule.keyframe_indices
        kf = set(kf_idx)
        rows = [e for e in evals if e[0] not in kf]
        inside = [e for e in rows if kf_idx and min(kf_idx) < e[0] < max(kf_idx)]
        psnrs, ssims, psnrs_raw = [e[1] for e in rows], [e[2] for e in rows], [e[3] for e in rows]
        state = pipe.store.get(prompt)
        ledger = [{"pose": k.pose_index, "added": getattr(k, "gaussians_added", -1),
                   "removed": getattr(k, "gaussians_removed", -1), "removed_by": getattr(k, "removed_by", {})}
                  for k in (state.keyframes if state is not None else [])]
    st = run.stats
    seconds = st.seconds
    return {
        "path": path_name, "trajectory": traj_kind, "prompt": prompt,
        "scheduler": config.scheduler.value, "tau": config.coverage_threshold,
        "refine_iterations": config.refine.iterations if config.refine is not None else None,
        "keyframe_refine_iterations": config.keyframe_refine.iterations if config.keyframe_refine is not None else 0,
        "uniform_keyframes": config.uniform_keyframes if config.scheduler.value == "uniform" else None,
        "frames": st.frames, "keyframes": len(run.schedule.keyframes),
        "keyframe_fraction": len(run.schedule.keyframes) / st.frames,
        "fill_holes": fill, "psnr_mean": float(np.mean(psnrs)), "psnr_p5": float(np.percentile(psnrs, 5)),
        "psnr_mean_unfilled": float(np.mean(psnrs_raw)),
        "ssim_mean": float(np.mean(ssims)), "hole_fraction_mean": st.hole_fraction_mean,
        "inbetween": inbetween, "depth_source": depth_source,
        "first_keyframe_scale": first_keyframe if depth_source == "monocular" else None,
        "warp_correction": warp_correction if depth_source == "monocular" else None,
        "camera_height_m": getattr(config, "camera_height_m", None),
        "temporal_error_mean": float(np.mean(temporal)) if temporal else None,
        "depth_abs_rel_mean": float(np.mean(depth_rel)) if depth_rel else None,
        "psnr_between_keyframes": float(np.mean([e[1] for e in inside])) if inside else None,
        "ssim_between_keyframes": float(np.mean([e[2] for e in inside])) if inside else None,
        "frames_between_keyframes_share": (max(kf_idx) - min(kf_idx) + 1) / st.frames if kf_idx else 0.0,
        "seconds_per_frame_inbetween": (seconds.get("interpolate", 0.0) if inbetween == "interpolate"
                                        else seconds.get("render", 0.0)) / st.frames,
        "per_frame": [[e[0], round(e[1], 3), round(e[2], 4)] for e in rows],
        "keyframe_indices": list(kf_idx),
        "gaussians": st.gaussians, "seconds": seconds, "render_fps": st.render_fps, "wall_s": wall,
        "fps": fps, "duration_s": duration_s, "keyframes_at_one_pose_twice": len(kf_idx) - len(kf),
        "ledger": ledger, "load_avg": os.getloadavg(), "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def run_baseline(src: str, path_name: str, out: Path, args: argparse.Namespace) -> dict[str, object]:
    """Run one table path with the package in ``src`` (a subprocess with PYTHONPATH=src), same trajectory."""
    name, kind, _prompt, pkind = next(p for p in PATHS if p[0] == path_name)
    fps, dur = path_timing(pkind, args.duration_scale)
    extra = {"meander_deg": 4.0} if kind == "walk" else {}
    traj = make_trajectory(kind, fps=fps, duration_s=dur, seed=0, **extra)
    traj_file = out / f"traj-{name}.npz"
    np.savez(traj_file, stamps_ns=traj.stamps_ns, T_world_cam=traj.T_world_cam)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only-one", name, "--out", str(out),
           "--eval-stride", str(args.eval_stride), "--width", str(args.width), "--height", str(args.height),
           "--renderer", args.renderer, "--duration-scale", str(args.duration_scale)]
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve())}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    r: dict[str, object] = json.loads(res.stdout.strip().splitlines()[-1])
    r["code"] = f"baseline {src}"
    return r


def child_one(args: argparse.Namespace) -> None:
    """The baseline child: one table path at default settings, trajectory from the parent's file; JSON on stdout."""
    from srender_ros.core.trajectory import Trajectory

    name, kind, prompt, pkind = next(p for p in PATHS if p[0] == args.only_one)
    fps, dur = path_timing(pkind, args.duration_scale)
    data = np.load(Path(args.out) / f"traj-{name}.npz")
    saved = Trajectory(data["stamps_ns"], data["T_world_cam"])
    globals()["make_trajectory"] = lambda *_, **__: saved   # the old tree may lack the generator: the parent's poses
    camera = Intrinsics.from_fov(args.width, args.height, 90.0)
    r = run_one(name, kind, prompt, PipelineConfig(), camera, fps, dur, args.eval_stride, args.renderer)
    print(json.dumps(r))


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
    ap.add_argument("--keyframe-refine", nargs="*", type=int, default=None,
                    help="run the table once per value: steps of the fast refinement after each keyframe "
                         "(0 = off, as main before issue 17); default: the PipelineConfig default only")
    ap.add_argument("--skip-table", action="store_true", help="skip the default-settings runs")
    ap.add_argument("--eval-stride", type=int, default=3)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--renderer", default="auto")
    ap.add_argument("--duration-scale", type=float, default=1.0, help="scale every path's duration (e.g. 0.5)")
    ap.add_argument("--baseline-src", default=None,
                    help="also run each table path with the srender_ros package of this source tree (e.g. a "
                         "'git worktree add /tmp/base <commit>'), right before the current code: before/after in one "
                         "run. The trajectory is made here (so a path the old tree lacks, like drive, still runs).")
    ap.add_argument("--compare-inbetween", nargs="*", default=[], help="also run these paths with --inbetween "
                    "interpolate (2D optical flow between the same keyframes; issue 17 item 3)")
    ap.add_argument("--compare-depth", nargs="*", default=[], help="also run these paths with --depth-source monocular "
                    "(issue 17 item 2): before (affine alignment only, metric prior for the first keyframe) and after "
                    "(smooth warp correction, first keyframe scaled by the ground at the path's camera height); "
                    "see --depth-variants")
    ap.add_argument("--depth-variants", nargs="*", default=["before", "after"],
                    choices=["before", "warp", "height", "after", "metric", "metric-affine"],
                    help="monocular runs of --compare-depth: before = affine only + prior; warp = + warp correction; "
                         "height = + camera height only; after = both; metric = warp correction, first keyframe at "
                         "its true scale; metric-affine = affine only, first keyframe at its true scale")
    ap.add_argument("--only-one", default=None, help=argparse.SUPPRESS)   # the baseline child: one path, JSON to stdout
    args = ap.parse_args()
    if args.only_one:
        child_one(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = Intrinsics.from_fov(args.width, args.height, 90.0)
    paths = [p for p in PATHS if args.paths is None or p[0] in args.paths]
    taus = args.taus or ([0.005, 0.02, 0.08] if args.quick else [0.002, 0.005, 0.01, 0.02, 0.05, 0.1])
    counts = args.counts or ([4, 12] if args.quick else [2, 4, 8, 16, 32])
    runs: list[dict[str, object]] = []

    def record(r: dict[str, object]) -> None:
        runs.append(r)
        secs = r.get("seconds") or {}
        parts = " ".join(f"{k} {float(secs[k]):.0f}" for k in ("schedule", "lift", "refine", "render") if k in secs)
        print(f"{r['path']:<18} {r.get('code', 'current'):<8} {r['scheduler']:<8} tau={r['tau']:<6} "
              f"refine={r['refine_iterations']} kf_refine={r.get('keyframe_refine_iterations', 0)} "
              f"kf={r['keyframes']:<3} PSNR={r['psnr_mean']:.2f} dB p05={r['psnr_p5']:.2f} G={r['gaussians']} "
              f"(unfilled {r['psnr_mean_unfilled']:.2f}) SSIM={r['ssim_mean']:.3f} "
              f"holes={100 * float(r['hole_fraction_mean']):.3f}% depth={r.get('depth_source')} "
              f"camera_height={r.get('camera_height_m')} depthAbsRel={r.get('depth_abs_rel_mean')} "
              f"temporal={r.get('temporal_error_mean')} inbetween={r.get('inbetween')} "
              f"wall={float(r['wall_s']):.0f}s ({parts}) load={r.get('load_avg')}", flush=True)
        (out / "quality.json").write_text(json.dumps(runs, indent=1))

    import platform

    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"load average at start {os.getloadavg()}", flush=True)
    table_configs = ([PipelineConfig()] if args.keyframe_refine is None else
                     [PipelineConfig(keyframe_refine=KeyframeRefineConfig(iterations=n) if n > 0 else None)
                      for n in args.keyframe_refine])
    for name, kind, prompt, pkind in [] if args.skip_table else paths:  # the table: default settings
        fps, dur = path_timing(pkind, args.duration_scale)
        if args.baseline_src:
            record(run_baseline(args.baseline_src, name, out, args))
        for cfg in table_configs:
            record(run_one(name, kind, prompt, cfg, camera, fps, dur, args.eval_stride, args.renderer))
    for name, kind, prompt, pkind in [p for p in paths if p[0] in args.compare_inbetween]:
        fps, dur = path_timing(pkind, args.duration_scale)
        try:
            record(run_one(name, kind, prompt, PipelineConfig(inbetween="interpolate"), camera, fps, dur,
                           args.eval_stride, args.renderer))
        except InputError as e:  # e.g. a path the scheduler covers with a single keyframe
            print(f"{name:<18} interpolate: {e}", flush=True)
            runs.append({"path": name, "inbetween": "interpolate", "error": str(e)})
    variants = {"before": ("prior", False, False), "warp": ("prior", True, False), "height": ("prior", False, True),
                "after": ("prior", True, True), "metric": ("metric", True, True),
                "metric-affine": ("metric", False, False)}
    for name, kind, prompt, pkind in [p for p in paths if p[0] in args.compare_depth]:
        fps, dur = path_timing(pkind, args.duration_scale)
        extra = {"meander_deg": 4.0} if kind == "walk" else {}
        height = float(make_trajectory(kind, fps=fps, duration_s=dur, seed=0, **extra).T_world_cam[0, 2, 3])
        for v in args.depth_variants:
            first, warp, use_height = variants[v]
            cfg = PipelineConfig(depth_source="monocular", camera_height_m=height if use_height else None)
            r = run_one(name, kind, prompt, cfg, camera, fps, dur, args.eval_stride, args.renderer,
                        first_keyframe=first, warp_correction=warp)
            r["code"] = f"mono-{v}"
            record(r)
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
                          for r in runs if r["path"] == name and r.get("scheduler") == sched and not r.get("refine_iterations")
                          and r.get("inbetween", "render") == "render" and r.get("depth_source", "exact") == "exact")
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
