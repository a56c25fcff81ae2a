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
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srender_ros.backends.generators.registry import make_generator
from srender_ros.backends.refine.photometric import refine_world
from srender_ros.backends.render.registry import get_renderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.metrics import psnr_db, ssim
from srender_ros.core.ports.refine import RefineConfig
from srender_ros.core.ports.render import Renderer
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob

#: Colours and opacities only (geometry frozen).
_APPEARANCE = {"lr_means_m": 0.0, "lr_log_scales": 0.0}
#: name -> RefineConfig fields (iterations are capped by the time budget).
SETTINGS: dict[str, dict[str, object]] = {
    # What the issue suggests: whole keyframes at a quarter of their size, appearance only.
    "lowres-0.25-appearance": {"scale": 0.25, "patch_px": None, **_APPEARANCE},
    # Half resolution, 64 px windows, appearance only.
    "halfres-win64-appearance": {"scale": 0.5, "patch_px": 64, **_APPEARANCE},
    # Full keyframe resolution, 64 px windows (exact crops), appearance only.
    "fullres-win64-appearance": {"scale": 1.0, "patch_px": 64, **_APPEARANCE},
    # The defaults: full resolution windows, appearance and geometry (means, scales).
    "fullres-win64": {"scale": 1.0, "patch_px": 64},
    # The defaults with the CLI's default --refine-iterations (200): one call's worth.
    "fullres-win64-200it": {"scale": 1.0, "patch_px": 64, "iterations": 200},
    # The defaults at a quarter of the size, to show what resolution does with geometry on.
    "lowres-0.25": {"scale": 0.25, "patch_px": None},
    # gsplat on CUDA (skipped without a GPU): whole keyframes at full resolution, defaults otherwise.
    "gsplat-fullres": {"scale": 1.0, "patch_px": None, "device": "cuda"},
}


def evaluate(world: GaussianWorld, renderer: Renderer, camera: Intrinsics, T: np.ndarray,
             truth: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB), mean SSIM and hole fraction (alpha < 0.5) of ``world`` at poses T [B, 4, 4]
    against truth [B, H, W, 3]."""
    out = renderer.render(world, camera, T)
    return {"psnr_db": float(np.mean([psnr_db(a, b) for a, b in zip(out.rgb, truth)])),
            "ssim": float(np.mean([ssim(a, b) for a, b in zip(out.rgb, truth)])),
            "holes": float(np.mean(out.alpha < 0.5))}


def off_path(T: np.ndarray, right_m: float, up_m: float, yaw_deg: float) -> np.ndarray:
    """Poses moved ``right_m`` along the camera's x (optical right), ``up_m`` against its y (optical
    down) and turned ``yaw_deg`` about its y axis: views no keyframe was taken from."""
    out = np.array(T, dtype=np.float64)
    c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
    R_y = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    out[:, :3, 3] += out[:, :3, 0] * right_m - out[:, :3, 1] * up_m
    out[:, :3, :3] = out[:, :3, :3] @ R_y
    return out


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
    ap.add_argument("--iterations", type=int, default=100_000, help="step cap per setting (the budget usually stops first)")
    ap.add_argument("--budget-s", type=float, default=300.0, help="refinement time budget per setting")
    ap.add_argument("--off-path-m", type=float, default=0.3, help="second held-out set: poses moved this far right "
                    "(and a third of it up); 0 to skip")
    ap.add_argument("--off-path-yaw-deg", type=float, default=10.0)
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
    sets = {"on_path": traj.T_world_cam[eval_idx]}
    if args.off_path_m > 0:
        sets["off_path"] = off_path(sets["on_path"], args.off_path_m, args.off_path_m / 3, args.off_path_yaw_deg)
    truth = {k: gen.ground_truth(args.prompt, camera, T).rgb for k, T in sets.items()}  # type: ignore[attr-defined]
    base = {k: evaluate(world, renderer, camera, T, truth[k]) for k, T in sets.items()}
    kf_sizes = sorted({f"{k.intrinsics.width_px}x{k.intrinsics.height_px}" for k in keyframes})
    print(f"world: {len(world)} Gaussians from {len(keyframes)} keyframes ({', '.join(kf_sizes)}) in {build_s:.0f} s; "
          f"{len(eval_idx)} held-out views per set; unrefined: "
          + "; ".join(f"{k} PSNR {v['psnr_db']:.2f} dB SSIM {v['ssim']:.4f}" for k, v in base.items()), flush=True)

    rows: list[dict[str, object]] = []
    result: dict[str, object] = {
        "prompt": args.prompt, "trajectory": args.trajectory, "fps": args.fps, "duration_s": args.duration_s,
        "eval_resolution": f"{args.width}x{args.height}", "gaussians": len(world), "keyframes": len(keyframes),
        "keyframe_resolution": kf_sizes, "held_out_views": len(eval_idx), "budget_s": args.budget_s,
        "off_path": {"right_m": args.off_path_m, "up_m": args.off_path_m / 3, "yaw_deg": args.off_path_yaw_deg},
        "unrefined": base, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch_threads": args.threads or torch.get_num_threads(), "cuda": cuda, "runs": rows,
    }
    names = args.settings if args.settings is not None else list(SETTINGS)
    for name in names:
        fields = dict(SETTINGS[name])
        if fields.get("device") == "cuda" and not cuda:
            print(f"{name:<26} skipped (no CUDA)", flush=True)
            continue
        fields.setdefault("device", "cpu")
        cfg = RefineConfig(**{"iterations": args.iterations, "time_budget_s": args.budget_s, "threads": args.threads,
                              **fields})  # type: ignore[arg-type]
        new, rep = refine_world(world, keyframes, cfg)
        after = {k: evaluate(new, renderer, camera, T, truth[k]) for k, T in sets.items()}
        rows.append({"setting": name, "config": dataclasses.asdict(cfg), "report": rep.to_dict(), "held_out": after})
        print(f"{name:<26} {rep.iterations:>5} steps {rep.seconds:5.0f} s | keyframes PSNR {rep.psnr_before_db:.2f} -> "
              f"{rep.psnr_after_db:.2f} | " + "; ".join(
                  f"{k} PSNR {base[k]['psnr_db']:.2f} -> {v['psnr_db']:.2f} ({v['psnr_db'] - base[k]['psnr_db']:+.2f} dB)"
                  for k, v in after.items()), flush=True)
        (out / "refine.json").write_text(json.dumps(result, indent=1))
    (out / "refine.json").write_text(json.dumps(result, indent=1))
    (out / "refine.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """The results as a markdown table."""
    base = result["unrefined"]
    sets = list(base)
    lines = [
        f"World: {result['gaussians']} Gaussians, {result['keyframes']} keyframes ({', '.join(result['keyframe_resolution'])}),"
        f" prompt '{result['prompt']}', {result['trajectory']} path, {result['duration_s']} s at {result['fps']} fps. "
        f"Held-out: {result['held_out_views']} non-keyframe poses of the path (on_path) and the same poses moved "
        f"{result['off_path']['right_m']} m right, {result['off_path']['up_m']:.2f} m up and turned "
        f"{result['off_path']['yaw_deg']} deg (off_path), rendered at {result['eval_resolution']}. Time budget "
        f"{result['budget_s']} s per setting; {result['machine']}, {result['torch_threads']} torch thread(s).",
        "",
        "| setting | backend | refine res | steps | seconds | keyframes PSNR (dB) | "
        + " | ".join(f"{k} PSNR (dB) | {k} SSIM | {k} holes" for k in sets) + " |",
        "|---|---|---|---|---|---|" + "---|---|---|" * len(sets),
        "| unrefined | | | | | | " + " | ".join(
            f"{base[k]['psnr_db']:.2f} | {base[k]['ssim']:.4f} | {100 * base[k]['holes']:.2f}%" for k in sets) + " |",
    ]
    for r in result["runs"]:
        rep = r["report"]
        c = r["config"]
        res = f"x{c['scale']}" + (f", {c['patch_px']} px windows" if c["patch_px"] else ", whole images")
        res += ", appearance + geometry" if c["lr_means_m"] > 0 or c["lr_log_scales"] > 0 else ", appearance only"
        if c["ssim_weight"] > 0:
            res += f", D-SSIM {c['ssim_weight']}"
        ho = r["held_out"]
        lines.append(
            f"| {r['setting']} | {rep['backend']} | {res} | {rep['iterations']} | {rep['seconds']:.0f} | "
            f"{rep['psnr_before_db']:.2f} -> {rep['psnr_after_db']:.2f} | " + " | ".join(
                f"{ho[k]['psnr_db']:.2f} ({ho[k]['psnr_db'] - base[k]['psnr_db']:+.2f}) | {ho[k]['ssim']:.4f} | "
                f"{100 * ho[k]['holes']:.2f}%" for k in sets) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
