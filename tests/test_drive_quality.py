"""Issue 15 item 5 (forward drives look right): the keyframe budget scales with the request and is
paced along it, and a keyframe prunes the Gaussians it sees through (``floating``).

The walk is driven by synthetic coverage arrays; the floating rule by real worlds (ray-cast wall
keyframes with exact depth, merged with the CPU renderer and the pipeline's coverage probe).
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from srender_ros.app.options import add_pipeline_arguments, pipeline_config_from_args
from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.metrics import psnr_db
from srender_ros.core.ports.generate import Keyframe
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.coverage import Coverage, CoverageProbe
from srender_ros.engine.dedup import DedupConfig, floating_gaussians
from srender_ros.engine.lifting import LiftConfig, MergeResult, merge_keyframe
from srender_ros.engine.scheduler import KeyframeRule, KeyframeWalk, SchedulerKind, keyframe_cap, paced_limit
from srender_ros.errors import InputError
from srender_ros.ros.config import NodeConfig

# ---- the keyframe budget ----------------------------------------------------------------------


class _NeverCovered:
    """Every pose is half uncovered until a keyframe is made exactly there (lookahead 0): the coverage
    rule wants a keyframe at every pose, so only the cap and the pacing decide."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.made: list[int] = []

    def coverage(self, start: int, end: int) -> Coverage:
        unc = np.full(self.n, 0.5)
        unc[self.made] = 0.0
        sl = unc[start:end]
        return Coverage(sl.copy(), np.zeros_like(sl), not self.made)

    def make(self, k: int, reason: str) -> None:
        self.made.append(k)


def _walk(n: int, chunk: int = 30, **changes: object) -> _NeverCovered:
    world = _NeverCovered(n)
    cfg = PipelineConfig(keyframe_lookahead=0, **changes)  # type: ignore[arg-type]
    walk = KeyframeWalk(cfg.walk_settings(), n, world.coverage, world.make)
    for s in range(0, n, chunk):
        walk.walk(s, min(n, s + chunk))
    assert walk.finish().keyframe_indices == sorted(world.made)
    return world


def test_the_cap_scales_with_the_request() -> None:
    assert keyframe_cap(64, 0.1, 600) == 64          # the flat cap is still the floor
    assert keyframe_cap(10, 0.1, 600) == 60          # ceil(0.1 * 600), not 61 from rounding
    assert keyframe_cap(10, 0.1, 601) == 61
    assert keyframe_cap(64, 0.1, 6000) == 600
    assert keyframe_cap(64, 0.0, 6000) == 64         # share 0: the old flat cap
    assert keyframe_cap(0, 0.1, 6000) == 0           # 0 still means: render only what the world has
    # The cap spread evenly over the request: 8 at the first pose, the whole cap at the last.
    assert paced_limit(0, 60, 601, 0.1, 8) == 8 and paced_limit(300, 60, 601, 0.1, 8) == pytest.approx(34.0)
    assert paced_limit(600, 60, 601, 0.1, 8) == pytest.approx(60.0)
    assert paced_limit(100, 64, 600, 0.0, 8) == float("inf")


def test_a_long_request_is_paced_and_reaches_its_end() -> None:
    """N = 600 poses, share 0.1, burst 8: 60 keyframes overall, never more than 8 + 0.1 i by pose i,
    the last ones near the end of the path, none twice at one pose."""
    world = _walk(600, max_keyframes_per_request=10, keyframe_share=0.1, keyframe_burst=8)
    made = sorted(world.made)
    assert len(made) == 60
    assert len(set(made)) == len(made)
    for i in range(600):
        assert sum(1 for k in made if k <= i) <= 8 + 0.1 * i, i
    assert made[:8] == list(range(8))                # the burst: a new world gets its first views at once
    assert made[-1] >= 500, made[-5:]                # the budget lasts to the end of the path
    # The defaults (cap 64 >= 60) pace the same way; the old flat cap spends everything at the start.
    default = sorted(_walk(600).made)
    assert len(default) == 64 and all(sum(1 for k in default if k <= i) <= 8 + 0.1 * i for i in range(600))
    old = sorted(_walk(600, keyframe_share=0.0).made)
    assert old == list(range(64))


def test_planned_keyframes_are_not_paced() -> None:
    """Uniform placement is even already: 30 keyframes over 60 poses are all made, pacing or not."""
    rule = KeyframeRule(SchedulerKind.UNIFORM, 0.02, planned=list(range(0, 60, 2)), max_keyframes=64, n_poses=60,
                        keyframe_share=0.1, keyframe_burst=1)
    assert sum(rule.decide(i, 0.0, world_empty=False) is not None for i in range(60)) == 30


@pytest.mark.parametrize("changes, match", [({"keyframe_share": -0.1}, "keyframe_share"),
                                            ({"keyframe_share": 1.5}, "keyframe_share"),
                                            ({"keyframe_burst": 0}, "keyframe_burst")])
def test_bad_budget_values_are_refused_with_a_clear_message(changes: dict[str, float], match: str) -> None:
    with pytest.raises(InputError, match=match):
        PipelineConfig(**changes)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=match):
        NodeConfig(**changes)  # type: ignore[arg-type]
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    flag = "--" + match.replace("_", "-")
    with pytest.raises(InputError, match=match):
        pipeline_config_from_args(parser.parse_args([flag, str(next(iter(changes.values())))]))


def test_budget_options_reach_the_walk() -> None:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    cfg = pipeline_config_from_args(parser.parse_args(["--keyframe-share", "0.25", "--keyframe-burst", "3"]))
    s = cfg.walk_settings()
    assert (s.keyframe_share, s.keyframe_burst) == (0.25, 3)
    d = PipelineConfig().walk_settings()
    assert (d.keyframe_share, d.keyframe_burst) == (0.1, 8)


# ---- floating Gaussians -----------------------------------------------------------------------

CAM = Intrinsics.from_fov(80, 60, 90.0)
RENDERER = CpuRenderer(lod_px=0)  # exact: the test compares images, not LOD
PROBE = CoverageProbe(RENDERER, 0.5, 2.0, 0.1)


def _texture(p: np.ndarray) -> np.ndarray:
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return np.stack([0.5 + 0.3 * np.sin(7 * x) * np.cos(5 * y), 0.5 + 0.3 * np.sin(4 * z + 3 * x),
                     0.5 + 0.2 * np.cos(6 * y + 2 * z)], -1).astype(np.float32)


def _look(position: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, 3] = position
    return T


def _wall_keyframe(T: np.ndarray, wall_z: float = 8.0) -> Keyframe:
    """A textured wall at world z = ``wall_z`` seen from ``T`` (exact ray cast; z-depth)."""
    rays_w = CAM.pixel_rays() @ T[:3, :3].T
    t = (wall_z - T[2, 3]) / rays_w[..., 2]
    depth = np.where(t > 0, t, np.nan)
    p = T[:3, 3] + rays_w * depth[..., None]
    return Keyframe(_texture(np.nan_to_num(p)), depth.astype(np.float32), T, CAM, 0)


def _merge(world: GaussianWorld, kf: Keyframe, dedup: DedupConfig | None, earlier: list[Keyframe]) -> MergeResult:
    view = RENDERER.render(world, kf.intrinsics, kf.T_world_cam[None]) if len(world) else None
    return merge_keyframe(world, kf, view, RENDERER.render, LiftConfig(), 2.0, PROBE.coarse_pixels, dedup, earlier)


def _blob(centres: np.ndarray, colour: float = 0.1) -> GaussianWorld:
    n = len(centres)
    return GaussianWorld.from_linear(centres, np.full((n, 3), 0.08), np.full(n, 0.95), np.full((n, 3), colour))


def test_gaussians_a_keyframe_sees_through_are_pruned_as_floating() -> None:
    """A dark cloud floats 4-5 m in front of a wall at 8 m (a ghost left by an earlier keyframe); a
    second keyframe sees the wall through it: the cloud goes (ledger reason ``floating``), the wall
    and Gaussians just behind it stay, and the keyframe's view renders better than with the cloud."""
    first = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    wall = _merge(GaussianWorld.empty(), first, None, []).world
    rng = np.random.default_rng(3)
    n = 60
    cloud = np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.4, 0.4, n), rng.uniform(4.0, 5.0, n)], -1)
    behind = np.stack([rng.uniform(-0.6, 0.6, 10), rng.uniform(-0.4, 0.4, 10), np.full(10, 8.3)], -1)
    world = wall.concat(_blob(cloud)).concat(_blob(behind))
    second = _wall_keyframe(_look((0.2, 0.1, 0.5)))

    mask = floating_gaussians(world, CAM, second.T_world_cam, second.depth_m, 0.15)
    assert mask[len(wall):len(wall) + n].all()       # the cloud: clearly in front of the wall the keyframe sees
    assert not mask[:len(wall)].any()                # the wall is what the keyframe sees
    assert not mask[len(wall) + n:].any()            # just behind the surface: not floating (nor visible)
    # The keyframe's own Gaussians lie on its surface: never floating in it.
    own = _merge(GaussianWorld.empty(), second, None, []).world
    assert not floating_gaussians(own, CAM, second.T_world_cam, second.depth_m, 0.15).any()

    pruned = _merge(world, second, DedupConfig(), [first])
    kept = _merge(world, second, DedupConfig(floating=False), [first])
    assert pruned.removed_by is not None and pruned.removed_by["floating"] >= n
    assert kept.removed_by is not None and kept.removed_by["floating"] == 0
    assert not (pruned.world.means[:, 2] < 6.0).any()                     # no cloud left
    assert (kept.world.means[:, 2] < 6.0).sum() >= n
    # The ledger keeps the reason.
    rec = KeyframeRecord(1, second.T_world_cam, CAM, second.rgb, second.depth_m, "second", pruned.added,
                         pruned.removed, dict(pruned.removed_by))
    assert rec.removed_by["floating"] == pruned.removed_by["floating"]

    # The covered view does not get worse: better than keeping the cloud, as good as a world that never had it.
    T = second.T_world_cam[None]
    clean = _merge(wall, second, DedupConfig(), [first]).world

    def score(w: GaussianWorld) -> float:
        return psnr_db(RENDERER.render(w, CAM, T).rgb[0], second.rgb)

    assert score(pruned.world) > score(kept.world) + 2.0, (score(pruned.world), score(kept.world))
    assert score(pruned.world) >= score(clean) - 0.1, (score(pruned.world), score(clean))


def test_pixels_without_depth_never_make_a_gaussian_floating() -> None:
    kf = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    sky = Keyframe(kf.rgb, np.full_like(kf.depth_m, np.nan), kf.T_world_cam, CAM, 0)
    g = _blob(np.array([[0.0, 0.0, 2.0]]))
    assert floating_gaussians(g, CAM, kf.T_world_cam, kf.depth_m, 0.15).tolist() == [True]
    assert floating_gaussians(g, CAM, sky.T_world_cam, sky.depth_m, 0.15).tolist() == [False]
    with pytest.raises(InputError, match="floating_margin"):
        DedupConfig(floating_margin=0.0)


def test_a_short_fast_request_is_not_held_back() -> None:
    """20 poses that each need a keyframe (a fast turn): pacing spreads the cap of 64 over 20 poses, so
    it never binds and every pose gets its keyframe, as with the flat cap."""
    assert sorted(_walk(20, chunk=5).made) == list(range(20))
    assert sorted(_walk(20, chunk=5, keyframe_share=0.0).made) == list(range(20))
