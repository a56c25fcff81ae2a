#!/usr/bin/env python
"""Does photometric refinement improve held-out views? (issue 4, item 3: "behind a flag, measured").

Builds a world with the pipeline (procedural generator, coverage scheduler, default settings) on a
short path, then for each refinement setting: refine the world against its keyframes, and measure
PSNR / SSIM against the exact procedural ground truth on NON-keyframe poses at the evaluation
resolution (320x240 by default), plus the refinement time. Every setting starts from the same
unrefined world and gets the same time budget, so the rows compare what a fixed amount of CPU time
buys.

    .venv/bin/python benchmarks/bench_refine.py --out bench_out/refine
    .venv/bin/python benchmarks/bench_refine.py --budget-s 60 --settings lowres-0.25 --out /tmp/r  # quick

Results are written as refine.json and refine.md in --out; docs/benchmarks.md ("Refinement") holds
the published numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from srender_ros.core.camera import Intrinsics
from srender_ros.core.metrics import psnr_db, ssim
from srender_ros.core.pipeline import Pipeline, PipelineConfig, RenderJob
from srender_ros.core.refine import RefineConfig, refine_world
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.generators.registry import make_generator
from srender_ros.render.protocol import Renderer
from srender_ros.render.registry import get_renderer

#: name -> RefineConfig fields (iterations are capped by the time budget).
SETTINGS: dict[str, dict[str, object]] = {
    # What the issue suggests: whole keyframes at low resolution.
    "lowres-0.25": {"scale": 0.25, "patch_px": None},
    # Half resolution, 64 px windows.
    "halfres-win64": {"scale": 0.5, "patch_px": 64},
    # Full keyframe resolution, 64 px windows (exact crops): detail the low-res settings cannot see.
    "fullres-win64": {"scale": 1.0, "patch_px": 64},
    # As above, with D-SSIM (lambda 0.2, as 3DGS).
    "fullres-win64-dssim": {"scale": 1.0, "patch_px": 64, "ssim_weight": 0.2},
    # gsplat on CUDA (skipped without a GPU): whole keyframes at full resolution.
    "gsplat-fullres": {"scale": 1.0, "patch_px": None, "device": "cuda"},
}


def evaluate(world: GaussianWorld, renderer: Renderer, camera: Intrinsics, T: np.ndarray,
             truth: np.ndarray) -> tuple[float, float, float]:
    """(mean PSNR dB, mean SSIM, render seconds) of ``world`` at poses T [B, 4, 4] against truth [B, H, W, 3]."""
    t0 = time.perf_counter()
    rgb = renderer.render(world, camera, T).rgb
    dt = time.perf_counter() - t0
    return (float(np.mean([psnr_db(a, b) for a, b in zip(rgb, truth)])),
            float(np.mean([ssim(a, b) for a, b in zip(rgb, truth)])), dt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out/refine")
    ap.add_argument("--prompt", default="a small office")
    ap.add_argument("--trajectory", default="walk", help="built-in trajectory generator")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--duration-s", type=float, default=6.0)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--eval-stride", type=int, default=2, help="evaluate every n-th non-keyframe pose")
    ap.add_argument("--settings", nargs="*", default=None, help=f"subset of {', '.join(SETTINGS)}")
    ap.add_argument("--budget-s", type=float, default=300.0, help="refinement time budget per setting")
    ap.add_argument("--lr-color", type=float, default=RefineConfig().lr_color)
    ap.add_argument("--lr-opacity", type=float, default=RefineConfig().lr_opacity)
    ap.add_argument("--threads", type=int, default=None, help="torch threads while refining (1 on a busy machine)")
    ap.add_argument("--renderer", default="auto")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    camera = Intrinsics.from_fov(args.width, args.height, 90.0)
    gen = make_generator("procedural")
    renderer = get_renderer(args.renderer)
    cuda = torch.cuda.is_available()

    traj = make_trajectory(args.trajectory, fps=args.fps, duration_s=args.duration_s, seed=0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pipe = Pipeline(WorldStore(tmp), renderer, gen, PipelineConfig())
        run = pipe.run(RenderJob(prompt=args.prompt, trajectory=traj, intrinsics=camera))
        for _ in run:
            pass
        state = pipe.store.get(args.prompt)
        assert state is not None
        world, keyframes = state.world, list(state.keyframes)
    build_s = time.perf_counter() - t0
    kf = set(run.schedule.keyframe_indices)
    eval_idx = [i for i in range(len(traj)) if i not in kf][::args.eval_stride]
    T_eval = traj.T_world_cam[eval_idx]
    truth = gen.ground_truth(args.prompt, camera, T_eval).rgb  # type: ignore[attr-defined]
    psnr0, ssim0, _ = evaluate(world, renderer, camera, T_eval, truth)
    kf_sizes = sorted({f"{k.intrinsics.width_px}x{k.intrinsics.height_px}" for k in keyframes})
    print(f"world: {len(world)} Gaussians from {len(keyframes)} keyframes ({', '.join(kf_sizes)}) in {build_s:.0f} s; "
          f"held-out views: {len(eval_idx)}; unrefined PSNR {psnr0:.2f} dB, SSIM {ssim0:.4f}", flush=True)

    rows: list[dict[str, object]] = []
    result: dict[str, object] = {
        "prompt": args.prompt, "trajectory": args.trajectory, "fps": args.fps, "duration_s": args.duration_s,
        "eval_resolution": f"{args.width}x{args.height}", "gaussians": len(world), "keyframes": len(keyframes),
        "keyframe_resolution": kf_sizes, "held_out_views": len(eval_idx), "budget_s": args.budget_s,
        "unrefined": {"psnr_db": psnr0, "ssim": ssim0}, "machine": platform.processor() or platform.machine(),
        "torch_threads": args.threads or torch.get_num_threads(), "cuda": cuda, "runs": rows,
    }
    names = args.settings if args.settings is not None else list(SETTINGS)
    for name in names:
        fields = dict(SETTINGS[name])
        if fields.get("device") == "cuda" and not cuda:
            print(f"{name:<22} skipped (no CUDA)", flush=True)
            continue
        fields.setdefault("device", "cpu")
        cfg = RefineConfig(iterations=1_000_000, time_budget_s=args.budget_s, lr_color=args.lr_color,
                           lr_opacity=args.lr_opacity, threads=args.threads, **fields)  # type: ignore[arg-type]
        new, rep = refine_world(world, keyframes, cfg)
        psnr1, ssim1, _ = evaluate(new, renderer, camera, T_eval, truth)
        row = {"setting": name, **{k: v for k, v in fields.items()}, "report": rep.to_dict(),
               "psnr_db": psnr1, "ssim": ssim1, "delta_psnr_db": psnr1 - psnr0, "delta_ssim": ssim1 - ssim0}
        rows.append(row)
        print(f"{name:<22} {rep.iterations:>5} steps {rep.seconds:6.0f} s | keyframes (refine res) PSNR "
              f"{rep.psnr_before_db:.2f} -> {rep.psnr_after_db:.2f} | held-out {args.width}x{args.height} PSNR "
              f"{psnr0:.2f} -> {psnr1:.2f} ({psnr1 - psnr0:+.2f} dB), SSIM {ssim0:.4f} -> {ssim1:.4f}", flush=True)
        (out / "refine.json").write_text(json.dumps(result, indent=1))
    (out / "refine.json").write_text(json.dumps(result, indent=1))
    (out / "refine.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, object]) -> str:
    """The results as a markdown table."""
    u = result["unrefined"]
    assert isinstance(u, dict)
    lines = [
        f"World: {result['gaussians']} Gaussians, {result['keyframes']} keyframes ({', '.join(result['keyframe_resolution'])}"  # type: ignore[arg-type]
        f"), prompt '{result['prompt']}', {result['trajectory']} path {result['duration_s']} s at {result['fps']} fps. "
        f"Held-out: {result['held_out_views']} non-keyframe views at {result['eval_resolution']}; unrefined PSNR "
        f"{u['psnr_db']:.2f} dB, SSIM {u['ssim']:.4f}. Budget {result['budget_s']:.0f} s per setting.",
        "",
        "| setting | backend | refine res | steps | seconds | keyframe PSNR before -> after (dB) | held-out PSNR (dB) | "
        "delta PSNR | held-out SSIM | delta SSIM |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:  # type: ignore[attr-defined]
        rep = r["report"]
        res = f"x{r['scale']}" + (f", {r['patch_px']} px windows" if r.get("patch_px") else ", whole images")
        if r.get("ssim_weight"):
            res += f", D-SSIM {r['ssim_weight']}"
        lines.append(f"| {r['setting']} | {rep['backend']} | {res} | {rep['iterations']} | {rep['seconds']:.0f} | "
                     f"{rep['psnr_before_db']:.2f} -> {rep['psnr_after_db']:.2f} | {r['psnr_db']:.2f} | "
                     f"{r['delta_psnr_db']:+.2f} | {r['ssim']:.4f} | {r['delta_ssim']:+.4f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
