"""One batch job, as `srender render` would run it, with outputs published atomically.

No Ray here: :func:`run_job` is what a Ray task calls, and it can be run and tested on its own.
The job's folder is written under a hidden scratch name beside ``out_dir/<name>`` and renamed into
place only when complete (srender_ros.core.atomic.swap_dir), so a folder that exists is whole.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
import traceback
from pathlib import Path
from typing import Any

from srender_ros.batch.jobs import Job

#: Subfolders / files of a job's output folder.
METRICS_NAME = "metrics.json"
FRAMES_NAME = "frames"


def run_job(job: Job, out_dir: str, world_dir: str | None) -> dict[str, Any]:
    """Render ``job`` into ``out_dir/<job.name>/`` (metrics.json, frames/, optional video.mp4).

    Never raises for a failing job: the returned record says what went wrong, so one bad job does
    not stop the others (Ray retries only crashed workers, not our errors).

    Returns:
        {"name", "status" ("ok" | "failed"), "error", "seconds", "frames", "keyframes",
         "gaussians", "host", "pid", "world_id"}.
    """
    from srender_ros.app.compose import AppConfig, build_pipeline
    from srender_ros.cli.render_cmd import generator_settings, load_image, pipeline_config
    from srender_ros.cli.render_session import SessionOutputs, camera_from_args, run_session
    from srender_ros.core import atomic
    from srender_ros.engine.pipeline import RenderJob

    t0 = time.perf_counter()
    record: dict[str, Any] = {"name": job.name, "world_id": job.world_id, "host": socket.gethostname(),
                              "pid": os.getpid(), "status": "failed", "error": None, "frames": 0, "keyframes": 0,
                              "gaussians": 0}
    target = Path(out_dir) / job.name
    scratch = atomic.scratch_name(target, atomic.TMP_PREFIX)
    try:
        scratch.mkdir(parents=True)
        args = job.args
        camera = camera_from_args(args.width, args.height, args.fov_deg)
        pipeline = build_pipeline(AppConfig(world_dir=world_dir, renderer=args.renderer, generator=args.generator,
                                            generator_settings=generator_settings(args), pipeline=pipeline_config(args)))
        image = load_image(args.image) if args.image else None
        request = RenderJob(prompt=job.prompt, trajectory=job.trajectory, intrinsics=camera, initial_image=image)
        traj = job.trajectory
        fps = args.fps or ((len(traj) - 1) / traj.duration_s if traj.duration_s > 0 else 30.0)
        outputs = SessionOutputs(video=scratch / "video.mp4" if job.video else None,
                                 frames_dir=scratch / FRAMES_NAME,
                                 ground_truth_dir=scratch / "ground_truth" if job.ground_truth else None,
                                 metrics_json=scratch / METRICS_NAME, progress=False)
        (scratch / FRAMES_NAME).mkdir()
        result = run_session(pipeline, request, fps, outputs, with_ground_truth=args.generator == "procedural")
        atomic.fsync_tree(scratch)
        atomic.swap_dir(scratch, target)
        m = result.metrics
        record.update(status="ok", frames=m["frames"], keyframes=m["keyframes"], gaussians=m["gaussians"])
    except Exception as exc:  # any failure is this job's alone: report it, keep the batch going
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc(limit=8)
        shutil.rmtree(scratch, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return record
