"""`srender render`: a prompt and a trajectory file in; video, frames and metrics out."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.app.compose import AppConfig
from srender_ros.app.options import add_pipeline_arguments, pipeline_config_from_args
from srender_ros.backends.generators.registry import GENERATOR_NAMES
from srender_ros.backends.render.registry import RENDERER_NAMES
from srender_ros.engine.config import PipelineConfig
from srender_ros.errors import InputError

log = logging.getLogger(__name__)


def add_camera_args(p: argparse.ArgumentParser, width: int = 320, height: int = 240, fov_deg: float = 90.0) -> None:
    g = p.add_argument_group("camera")
    g.add_argument("--width", type=int, default=width, help=f"image width in pixels (default {width})")
    g.add_argument("--height", type=int, default=height, help=f"image height in pixels (default {height})")
    g.add_argument("--fov-deg", type=float, default=fov_deg, help=f"horizontal field of view (default {fov_deg})")


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("world and generation")
    g.add_argument("--world-dir", default=None,
                   help="where worlds are kept (default $SRENDER_WORLD_DIR or ~/.cache/srender/worlds)")
    g.add_argument("--memory-budget-mb", type=float, default=None,
                   help="memory for loaded worlds, MiB (default 2048); beyond it the world's cells far from the "
                        "camera are dropped from memory (saved, reloaded when near again)")
    g.add_argument("--generator", choices=list(GENERATOR_NAMES), default=GENERATOR_NAMES[0],
                   help="keyframe source (default procedural: a deterministic scene seeded by the prompt)")
    g.add_argument("--model", default=None, help="diffusers: local inpainting pipeline folder")
    g.add_argument("--depth-model", default=None, help="diffusers: local transformers depth-estimation model folder")
    g.add_argument("--t2i-model", default=None, help="diffusers: optional text-to-image pipeline for the first keyframe")
    g.add_argument("--image", default=None, help="initial image (first keyframe of a new world)")
    g.add_argument("--device", default="auto", help="auto | cpu | cuda (diffusers and renderer)")
    g.add_argument("--steps", type=int, default=None, help="diffusers: inference steps per keyframe")
    g.add_argument("--guidance", type=float, default=None, help="diffusers: classifier-free guidance scale")
    g.add_argument("--refine-strength", type=float, default=None,
                   help="diffusers: strength of the optional light image-to-image pass over each keyframe (0 = off)")
    g.add_argument("--renderer", choices=list(RENDERER_NAMES), default="auto", help="rasterizer (default auto)")
    add_pipeline_arguments(g)


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig of ``srender render``-style arguments."""
    return pipeline_config_from_args(args)


def app_config(args: argparse.Namespace) -> AppConfig:
    """The composition root's configuration of ``srender render``-style arguments."""
    budget_mb = getattr(args, "memory_budget_mb", None)
    return AppConfig(world_dir=args.world_dir, renderer=args.renderer, generator=args.generator,
                     generator_settings=generator_settings(args), pipeline=pipeline_config(args),
                     memory_budget_bytes=None if budget_mb is None else int(budget_mb * 2**20))


def generator_settings(args: argparse.Namespace) -> dict[str, Any]:
    if args.generator != "diffusers":
        if args.model or args.depth_model or args.t2i_model:
            raise InputError("--model/--depth-model/--t2i-model only apply to --generator diffusers")
        return {}
    if not args.model:
        raise InputError("--generator diffusers needs --model DIR (a local inpainting pipeline folder)")
    return {"model_path": args.model, "depth_model_path": args.depth_model, "t2i_model_path": args.t2i_model,
            "device": args.device, "steps": args.steps, "seed": args.seed,
            "guidance_scale": getattr(args, "guidance", None), "refine_strength": getattr(args, "refine_strength", None)}


def load_image(path: str) -> NDArray[np.float32]:
    """An image file -> [H, W, 3] float32 RGB in [0, 1]."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"--image {path}: not a readable image file")
    return (cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("render", help="render every pose of a trajectory file",
                       description="Render every pose of a trajectory in the world of a prompt.")
    p.add_argument("--prompt", required=True, help="environment prompt, e.g. 'a cluttered warehouse aisle'")
    p.add_argument("--trajectory", required=True, help="trajectory file (TUM, KITTI, EuRoC CSV, nav_msgs/Path YAML)")
    p.add_argument("--trajectory-format", choices=["tum", "kitti", "euroc", "path-yaml"], default=None,
                   help="file format (default: from the extension and content)")
    p.add_argument("--pose-frame", choices=["optical", "body"], default=None,
                   help="convention of the file's rotations (default: optical for TUM/KITTI, body for EuRoC and Path)")
    p.add_argument("--world-up", default="+z", help="world axis pointing up, e.g. +z (ROS) or -y (KITTI)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate: stamps for KITTI; resample other formats to this rate (default: keep the poses)")
    add_camera_args(p)
    add_pipeline_args(p)
    o = p.add_argument_group("outputs")
    o.add_argument("--out", default=None, help="mp4 video of all frames")
    o.add_argument("--frames-dir", default=None, help="write every frame as PNG named by pose index")
    o.add_argument("--ground-truth-dir", default=None, help="exact procedural render of every pose (procedural only)")
    o.add_argument("--metrics-json", default=None, help="metrics JSON (frames, keyframes, seconds, PSNR, ...)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from srender_ros.app.compose import build_pipeline
    from srender_ros.cli.render_session import (
        SessionOutputs,
        camera_from_args,
        run_session,
        summary_table,
        trajectory_span,
    )
    from srender_ros.core.resample import normalize_world_up, resample
    from srender_ros.core.trajectory_io import load_trajectory
    from srender_ros.engine.pipeline import RenderJob

    if args.ground_truth_dir and args.generator != "procedural":
        raise InputError("--ground-truth-dir needs --generator procedural (only it has exact ground truth)")
    if not any([args.out, args.frames_dir, args.metrics_json, args.ground_truth_dir]):
        raise InputError("nothing to write: give --out VIDEO.mp4, --frames-dir DIR and/or --metrics-json FILE")
    camera = camera_from_args(args.width, args.height, args.fov_deg)
    # The loader uses fps where the file has no usable stamps (KITTI, a Path with zero stamps);
    # a file with its own stamps is resampled to fps when that differs from its rate.
    traj = load_trajectory(args.trajectory, fmt=args.trajectory_format, pose_frame=args.pose_frame, fps=args.fps)
    if args.fps is not None and len(traj) > 1:
        rate_hz = (len(traj) - 1) / traj.duration_s
        if abs(rate_hz - args.fps) > 0.01 * args.fps:
            traj = resample(traj, rate_hz=args.fps)
    traj, _ = normalize_world_up(traj, args.world_up)
    pipeline = build_pipeline(app_config(args))
    image = load_image(args.image) if args.image else None
    job = RenderJob(prompt=args.prompt, trajectory=traj, intrinsics=camera, initial_image=image)
    fps = args.fps or ((len(traj) - 1) / traj.duration_s if traj.duration_s > 0 else 30.0)
    print(f"srender render: {trajectory_span(traj)}, {camera.width_px}x{camera.height_px}, prompt {args.prompt!r}")
    outputs = SessionOutputs(
        video=Path(args.out) if args.out else None,
        frames_dir=Path(args.frames_dir) if args.frames_dir else None,
        ground_truth_dir=Path(args.ground_truth_dir) if args.ground_truth_dir else None,
        metrics_json=Path(args.metrics_json) if args.metrics_json else None,
        progress=not args.no_progress)
    result = run_session(pipeline, job, fps, outputs, with_ground_truth=args.generator == "procedural")
    print(summary_table(result.metrics))
    return 0
