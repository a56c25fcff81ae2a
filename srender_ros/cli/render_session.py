"""One `srender render` / `srender demo` run: build the parts, drive the pipeline, write outputs.

Shared by both subcommands so the demo exercises exactly the code path users run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.cli.outputs import VideoWriter, write_json, write_png
from srender_ros.core.camera import Intrinsics
from srender_ros.core.metrics import psnr_db, ssim, temporal_error
from srender_ros.core.trajectory import Trajectory
from srender_ros.engine.pipeline import Pipeline, RenderJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionOutputs:
    """Where results go (None = not written)."""

    video: Path | None = None
    frames_dir: Path | None = None
    ground_truth_dir: Path | None = None
    metrics_json: Path | None = None
    progress: bool = True


@dataclass
class SessionResult:
    metrics: dict[str, Any]
    psnr_db: list[float] = field(default_factory=list)
    sample_frames: dict[int, NDArray[np.float32]] = field(default_factory=dict)
    sample_truth: dict[int, NDArray[np.float32]] = field(default_factory=dict)


def run_session(pipeline: Pipeline, job: RenderJob, fps: float, outputs: SessionOutputs,
                with_ground_truth: bool, sample_indices: tuple[int, ...] = ()) -> SessionResult:
    """Render ``job`` and write the requested outputs.

    Args:
        pipeline: the configured pipeline.
        job: prompt, trajectory, camera.
        fps: video frame rate.
        outputs: files to write.
        with_ground_truth: compute PSNR/SSIM against the generator's exact ground truth (procedural).
        sample_indices: pose indices whose frames (and truth) are returned for pictures.
    Returns:
        The metrics dict (also written to outputs.metrics_json) and samples.
    """
    from tqdm import tqdm

    gt_fn = getattr(pipeline.generator, "ground_truth", None) if with_ground_truth else None
    video = VideoWriter(outputs.video, fps) if outputs.video else None
    run = pipeline.run(job)
    result = SessionResult(metrics={})
    ssims: list[float] = []
    kf_psnr: list[float] = []
    temporal: list[float] = []
    prev: tuple[int, NDArray[np.float32], NDArray[np.float32]] | None = None  # last frame and its truth
    gt_seconds = 0.0
    n = len(job.trajectory)
    bar = tqdm(total=n, unit="frame", desc="render", disable=not outputs.progress, leave=False)
    try:
        for chunk in run:
            truth = None
            if gt_fn is not None:
                t0 = time.perf_counter()
                truth = gt_fn(job.prompt, job.intrinsics, chunk.T_world_cam).rgb
                gt_seconds += time.perf_counter() - t0
            keyframes = set(run.schedule.keyframe_indices)
            for j, idx in enumerate(chunk.indices.tolist()):
                rgb = chunk.render.rgb[j]
                if outputs.frames_dir is not None:
                    write_png(outputs.frames_dir / f"{idx:06d}.png", rgb)
                if truth is not None:
                    if outputs.ground_truth_dir is not None:
                        write_png(outputs.ground_truth_dir / f"{idx:06d}.png", truth[j])
                    p = psnr_db(rgb, truth[j])
                    if prev is not None and prev[0] == idx - 1:
                        temporal.append(temporal_error(prev[1], rgb, prev[2], truth[j]))
                    prev = (idx, rgb, truth[j])
                    if idx in keyframes:
                        kf_psnr.append(p)
                    else:
                        result.psnr_db.append(p)
                        ssims.append(ssim(rgb, truth[j]))
                if idx in sample_indices:
                    result.sample_frames[idx] = rgb.copy()
                    if truth is not None:
                        result.sample_truth[idx] = truth[j].copy()
            if video is not None:
                video.append(chunk.render.rgb)
            bar.update(len(chunk.indices))
        if video is not None:
            video.close()
    except BaseException:
        if video is not None:
            video.abort()
        raise
    finally:
        bar.close()

    stats, sched = run.stats, run.schedule
    finite = [p for p in result.psnr_db if np.isfinite(p)]
    metrics: dict[str, Any] = {
        "prompt": job.prompt,
        "world_id": run.world_id,
        "frames": stats.frames,
        "width": job.intrinsics.width_px,
        "height": job.intrinsics.height_px,
        "fov_deg": round(job.intrinsics.hfov_deg, 3),
        "generator": pipeline.generator.name,
        "renderer": pipeline.renderer.name,
        "scheduler": sched.scheduler.value,
        "coverage_threshold": sched.coverage_threshold,
        "predicted_count": sched.predicted_count,
        "keyframes": len(sched.keyframes),
        "keyframe_indices": sched.keyframe_indices,
        "keyframe_reasons": [k.reason for k in sched.keyframes],
        "keyframe_fraction": len(sched.keyframes) / max(1, stats.frames),
        "seconds": {k: round(v, 4) for k, v in stats.seconds.items()},
        "render_fps": round(stats.render_fps, 2),
        "gaussians": stats.gaussians,
        "gaussians_added": stats.gaussians_added,
        "hole_fraction_mean": stats.hole_fraction_mean,
        "coverage_mean": float(np.nanmean(sched.coverage)) if len(sched.coverage) else 0.0,
        "inbetween": pipeline.config.inbetween,
        "depth_source": pipeline.config.depth_source,
        "held_frames": stats.held_frames,
    }
    if gt_fn is not None:
        metrics["psnr_mean"] = float(np.mean(finite)) if finite else None
        metrics["psnr_min"] = float(np.min(finite)) if finite else None
        metrics["ssim_mean"] = float(np.mean(ssims)) if ssims else None
        metrics["psnr_keyframes_mean"] = float(np.mean(kf_psnr)) if kf_psnr else None
        metrics["temporal_error_mean"] = float(np.mean(temporal)) if temporal else None
        metrics["seconds_ground_truth"] = round(gt_seconds, 4)
    if outputs.metrics_json is not None:
        write_json(outputs.metrics_json, metrics)
    result.metrics = metrics
    return result


def summary_table(metrics: dict[str, Any]) -> str:
    """A short human-readable table of a run's metrics."""
    s = metrics["seconds"]
    rows = [
        ("frames", f"{metrics['frames']} at {metrics['width']}x{metrics['height']}"),
        ("keyframes", f"{metrics['keyframes']} ({100 * metrics['keyframe_fraction']:.1f}% of frames)"),
        ("gaussians", f"{metrics['gaussians']:,}"),
        ("hole fraction", f"{100 * metrics['hole_fraction_mean']:.3f}%"),
        ("time", f"total {s['total']:.1f} s = schedule {s['schedule']:.1f} + generate {s['generate']:.1f} "
                 f"+ lift {s['lift']:.1f}" + (f" + refine {s['refine']:.1f}" if s.get("refine") else "")
                 + f" + render {s['render']:.1f}"),
        ("render", f"{metrics['render_fps']:.1f} fps ({metrics['renderer']})"),
    ]
    if metrics.get("psnr_mean") is not None:
        rows.append(("quality", f"PSNR {metrics['psnr_mean']:.2f} dB (min {metrics['psnr_min']:.2f}), "
                                f"SSIM {metrics['ssim_mean']:.3f} on non-keyframes vs ground truth"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def camera_from_args(width: int, height: int, fov_deg: float) -> Intrinsics:
    return Intrinsics.from_fov(width, height, fov_deg)


def trajectory_span(trajectory: Trajectory) -> str:
    return f"{len(trajectory)} poses over {trajectory.duration_s:.1f} s"
