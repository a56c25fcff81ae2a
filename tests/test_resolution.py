"""Detail-aware coverage: Gaussian footprints in pixels, and keyframes replacing coarse content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.generators.registry import make_generator
from srender_ros.backends.render.registry import get_renderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory import Trajectory
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.lifting import LiftConfig, lift_keyframe
from srender_ros.engine.pipeline import Pipeline, PipelineConfig, RenderJob
from srender_ros.engine.resolution import coarse_visible_gaussians, pixel_footprint_px, size_world, surface_size_m
from srender_ros.errors import InputError

CAM = Intrinsics.from_fov(64, 48, 90.0)


def _pose_at(z_m: float) -> np.ndarray:
    """Optical camera on the z axis at ``z_m``, looking along +z (towards the wall at z = 8)."""
    T = np.eye(4)
    T[2, 3] = z_m
    return T


def _wall_lifted_from(distance_m: float) -> GaussianWorld:
    """A textured wall at z = 8 m lifted from a keyframe at ``8 - distance_m``."""
    rng = np.random.default_rng(0)
    rgb = rng.uniform(0.0, 1.0, (CAM.height_px, CAM.width_px, 3)).astype(np.float32)
    depth = np.full((CAM.height_px, CAM.width_px), distance_m)
    world, _ = lift_keyframe(rgb, depth, CAM, _pose_at(8.0 - distance_m), config=LiftConfig(colour_iterations=0))
    return world


def _footprint(world: GaussianWorld, T: np.ndarray) -> np.ndarray:
    out = get_renderer("cpu").render(size_world(world), CAM, T[None])
    return pixel_footprint_px(out.rgb[0], out.alpha[0], out.depth_m[0], CAM.fx_px)


def test_surface_size_is_the_geometric_mean_of_the_two_largest_axes() -> None:
    w = GaussianWorld.from_linear(np.zeros((2, 3)), np.array([[0.4, 0.1, 0.01], [0.02, 0.3, 0.15]]), np.ones(2),
                                  np.full((2, 3), 0.5))
    np.testing.assert_allclose(surface_size_m(w), [0.2, np.sqrt(0.045)], rtol=1e-5)


def test_footprint_grows_as_the_camera_walks_up_to_content_lifted_from_afar() -> None:
    world = _wall_lifted_from(8.0)
    # Seen from the keyframe's own pose, lifted Gaussians are about footprint_scale (0.5) pixels.
    at_keyframe = np.nanmedian(_footprint(world, _pose_at(0.0)))
    assert at_keyframe == pytest.approx(0.5, rel=0.15)  # a little more off-axis: oblique rays stretch
    # Four times closer, four times coarser.
    close = _footprint(world, _pose_at(6.0))
    assert np.isfinite(close).mean() > 0.9
    assert np.nanmedian(close) == pytest.approx(4 * at_keyframe, rel=0.1)


def test_coarse_visible_gaussians_selects_only_unoccluded_coarse_content() -> None:
    world = _wall_lifted_from(8.0)
    kf = _pose_at(6.0)                                   # 2 m from the wall: footprint ~2 px
    depth_wall = np.full((CAM.height_px, CAM.width_px), 2.0)
    sel = coarse_visible_gaussians(world, CAM, kf, depth_wall, max_footprint_px=1.5)
    # A quarter of the wall in each direction is in view (1/16), less a border of three footprints.
    assert 0.02 < sel.mean() < 1 / 16
    assert not coarse_visible_gaussians(world, CAM, kf, depth_wall, max_footprint_px=3.0).any()
    # Something new stands in front of the wall in the keyframe: the wall behind it is kept.
    depth_front = np.full_like(depth_wall, 1.0)
    assert not coarse_visible_gaussians(world, CAM, kf, depth_front, max_footprint_px=1.5).any()
    # Unknown keyframe depth: nothing is replaced.
    assert not coarse_visible_gaussians(world, CAM, kf, np.full_like(depth_wall, np.nan), 1.5).any()


def test_bad_footprint_settings_are_refused() -> None:
    with pytest.raises(InputError, match="max_footprint_px"):
        PipelineConfig(max_footprint_px=0.0)
    with pytest.raises(InputError, match="coarse_weight"):
        PipelineConfig(coarse_weight=2.0)


def _dolly(n: int, start_m: float, stop_m: float) -> Trajectory:
    """Optical poses walking straight ahead (+x in the world, z up) along the office's free line."""
    T = np.zeros((n, 4, 4))
    R_world_optical = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    for i, x in enumerate(np.linspace(start_m, stop_m, n)):
        T[i, :3, :3] = R_world_optical
        T[i, :3, 3] = (x, 0.0, 1.5)
        T[i, 3, 3] = 1.0
    return Trajectory(np.arange(n, dtype=np.int64) * 100_000_000, T)


def test_walking_in_gets_closer_keyframes_and_keeps_detail(tmp_path: Path) -> None:
    """12 m straight down the office's corridor: alpha-only coverage keeps the first keyframes'
    Gaussians until they are 2-3x coarser than lifting makes them; the detail rule does not."""
    prompt = "a small office"
    traj = _dolly(40, 0.0, 12.0)
    results = {}
    for name, fp in (("alpha only", None), ("with detail", 2.0)):
        pipe = Pipeline(WorldStore(tmp_path / name.replace(" ", "_")), get_renderer("cpu"), make_generator("procedural"),
                        PipelineConfig(chunk_size=10, max_footprint_px=fp))
        run = pipe.run(RenderJob(prompt=prompt, trajectory=traj, intrinsics=CAM))
        for _ in run:
            pass
        state = pipe.store.get(prompt)
        assert state is not None
        footprints = [float(np.nanmedian(_footprint(state.world, traj.T_world_cam[i]))) for i in range(30, 40)]
        results[name] = (len(run.schedule.keyframes), footprints)
        reasons = [k.reason for k in run.schedule.keyframes]
        if fp is not None:   # the schedule says what was missing: empty or coarse pixels
            assert any("coarse" in r and "empty" in r for r in reasons), reasons
    (k0, f0), (k1, f1) = results["alpha only"], results["with detail"]
    assert k1 > k0, results
    # The last quarter of the walk: without the rule the views are several times coarser than
    # lifting makes them (0.5 px); with it, markedly finer.
    assert np.mean(f0) > 3.0, results
    assert np.mean(f1) < 0.75 * np.mean(f0), results
