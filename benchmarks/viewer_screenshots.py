"""Screenshots of the world viewer for the docs (docs/img/viewer_*.png), taken in headless Chromium.

Builds a procedural office world along a walk (the real pipeline, CPU), computes the coverage of
a walk twice as long (so its second half leaves the world), serves both with the viewer and
photographs the page twice: the overview, and a keyframe selected with its image in the panel.

    .venv/bin/python benchmarks/viewer_screenshots.py [--out-dir docs/img] [--world-dir DIR]

Needs Chromium (apt-get install chromium). Prints the load average beside its timings.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = ("a quiet city street", "a small office")  # overview outdoors (no ceiling hides the path), keyframe indoors
CAM_W, CAM_H = 160, 120


def build_world(root: Path, prompt: str) -> None:
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob

    traj = make_trajectory("walk", fps=5.0, duration_s=8.0, seed=1)
    pipe = Pipeline(WorldStore(root), get_renderer("cpu"), make_generator("procedural"), PipelineConfig(chunk_size=20))
    for _ in pipe.run(RenderJob(prompt=prompt, trajectory=traj, intrinsics=Intrinsics.from_fov(CAM_W, CAM_H, 90.0))):
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="docs/img")
    ap.add_argument("--world-dir", default=None, help="use (or build into) this world directory")
    args = ap.parse_args()
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.viewer import ViewerConfig, WorldViewer
    from srender_ros.viewer.browser import HeadlessPage
    from srender_ros.viewer.data import load_world, trajectory_coverage

    print(f"load average {os.getloadavg()}")
    root = Path(args.world_dir) if args.world_dir else Path(tempfile.mkdtemp(prefix="srender-shots-"))
    out = Path(args.out_dir)
    walk = make_trajectory("walk", fps=5.0, duration_s=16.0, seed=1)
    for n, prompt in enumerate(PROMPTS):
        t0 = time.perf_counter()
        from srender_ros.core.store import WorldStore

        if WorldStore(root).get(prompt) is None:
            build_world(root, prompt)
        snap = load_world(root, prompt=prompt)
        t1 = time.perf_counter()
        covered = trajectory_coverage(root, prompt, walk, Intrinsics.from_fov(CAM_W, CAM_H, 90.0), renderer="cpu")
        t2 = time.perf_counter()
        print(f"{prompt!r}: {len(snap.world)} Gaussians, {len(snap.keyframes)} keyframes ({t1 - t0:.1f} s); coverage "
              f"of {len(walk)} poses: mean {covered.mean():.3f} ({t2 - t1:.1f} s)")
        with WorldViewer(ViewerConfig(port=0)) as viewer, HeadlessPage(1280, 800) as page:
            viewer.show_world(snap)
            viewer.show_trajectory("walk 16 s", walk.T_world_cam, covered, threshold=0.02)
            page.goto(viewer.url)
            page.wait_for(f"document.body && document.body.innerText.includes('{len(snap.keyframes)} keyframes')", 120)
            if n == 0:
                # Above and behind the walk, looking at its middle: world, frusta and the coloured path.
                start = walk.T_world_cam[0, :3, 3]
                end = walk.T_world_cam[-1, :3, 3]
                mid = (start + end) / 2
                length = float(np.linalg.norm(end - start))
                viewer.look_from(start - 0.35 * (end - start) + np.array([0.0, 0.0, 0.8 * length]), mid)
                name = "viewer_overview.png"
            else:
                pick = min(2, len(snap.keyframes) - 1)
                viewer.select_keyframe(pick)
                T = snap.keyframes[pick].T_world_cam
                viewer.look_from(T[:3, 3] - 1.5 * T[:3, 2] + np.array([0.0, 0.0, 0.8]), T[:3, 3] + 2.0 * T[:3, 2])
                name = "viewer_keyframe.png"
            time.sleep(8.0)  # software WebGL: let the splat sort settle
            page.dismiss_notices()
            time.sleep(1.0)
            print("wrote", page.screenshot(out / name))
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
