"""The world viewer in a real browser: headless Chromium (software WebGL) loads the page, the keyframe list
has the world's count, and the splats are drawn (the canvas changes when only they are hidden).

Skipped when no Chromium is installed (Debian: ``apt-get install chromium``; .ci/run installs it).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from srender_ros.viewer.browser import HeadlessPage, find_chromium

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium installed (apt-get install chromium)")

PROMPT = "a small office"
WIDTH, HEIGHT = 1024, 700


def procedural_world(root: Path) -> None:
    """A real world: procedural keyframes along a short walk, lifted by the pipeline, saved by the store."""
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.camera import Intrinsics
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob

    traj = make_trajectory("walk", fps=5.0, duration_s=3.0, seed=1)
    pipe = Pipeline(WorldStore(root), get_renderer("cpu"), make_generator("procedural"), PipelineConfig(chunk_size=16))
    for _ in pipe.run(RenderJob(prompt=PROMPT, trajectory=traj, intrinsics=Intrinsics.from_fov(64, 48, 90.0))):
        pass


def canvas(page: HeadlessPage, path: Path) -> NDArray[np.float32]:
    """The 3D view's part of a screenshot (left of the side panel, below the notices), float RGB 0..255."""
    from PIL import Image

    page.screenshot(path)
    img = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"), dtype=np.float32)
    return img[170:HEIGHT - 60, 60:int(WIDTH * 0.68)]


def drawn_fraction(region: NDArray[np.float32]) -> float:
    """Fraction of pixels that are not the viewer's white background."""
    return float((np.abs(region - 255.0).max(axis=-1) > 30).mean())


def wait_drawn(page: HeadlessPage, path: Path, want: bool, timeout_s: float = 90.0) -> NDArray[np.float32]:
    deadline = time.monotonic() + timeout_s
    while True:
        region = canvas(page, path)
        frac = drawn_fraction(region)
        # Splats arrive progressively: "drawn" also waits for a picture, not a flat first layer.
        done = (frac > 0.3 and region.std() > 20.0) if want else frac <= 0.3
        if done or time.monotonic() > deadline:
            return region
        time.sleep(1.0)


def test_page_lists_the_keyframes_and_draws_the_splats(tmp_path: Path) -> None:
    from srender_ros.viewer import ViewerConfig, WorldViewer
    from srender_ros.viewer.data import load_world

    procedural_world(tmp_path / "worlds")
    snap = load_world(tmp_path / "worlds", prompt=PROMPT)
    n_kf = len(snap.keyframes)
    assert n_kf >= 2 and len(snap.world) > 1000
    with WorldViewer(ViewerConfig(port=0)) as viewer, HeadlessPage(WIDTH, HEIGHT) as page:
        viewer.show_world(snap)
        page.goto(viewer.url)
        page.wait_for(f"document.body && document.body.innerText.includes('{n_kf} keyframes')", timeout_s=90)
        buttons = page.evaluate("Array.from(document.querySelectorAll('button'))"
                                ".map(b => b.innerText).filter(t => t.startsWith('keyframe '))")
        assert len(buttons) == n_kf, buttons
        assert f"{len(snap.world):,} Gaussians" in page.body_text()

        with_splats = wait_drawn(page, tmp_path / "with.png", want=True)
        assert drawn_fraction(with_splats) > 0.3, "the 3D view stayed blank"
        assert with_splats.std() > 20.0  # a picture, not one flat colour
        viewer.set_splats_visible(False)  # frusta stay: what changes is the splats alone
        without = wait_drawn(page, tmp_path / "without.png", want=False, timeout_s=30)
        assert drawn_fraction(without) < 0.3
        assert np.abs(with_splats - without).mean() > 20.0
