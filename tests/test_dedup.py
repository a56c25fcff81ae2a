"""Issue 15 item 1: a merged keyframe prunes what it makes redundant, what is hidden for good and what is
near-transparent (engine/dedup.py through merge_keyframe), and the manifest keeps the ledger.

Real worlds throughout: keyframes are ray-cast planes (exact depth, colours from a texture fixed in
the world), merged with the CPU renderer and the pipeline's own coverage probe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.cli.main import main
from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.metrics import psnr_db
from srender_ros.core.ports.generate import Keyframe
from srender_ros.core.store import WorldState, WorldStore
from srender_ros.core.world import GaussianWorld
from srender_ros.engine.coverage import CoverageProbe
from srender_ros.engine.dedup import DedupConfig, hidden_for_good, transparent_gaussians
from srender_ros.engine.lifting import LiftConfig, MergeResult, merge_keyframe
from srender_ros.errors import InputError

CAM = Intrinsics.from_fov(80, 60, 90.0)
RENDERER = CpuRenderer(lod_px=0)  # exact: these tests compare images of deduplicated worlds, not LOD
PROBE = CoverageProbe(RENDERER, 0.5, 2.0, 0.1)


def _texture(p: np.ndarray) -> np.ndarray:
    """[..., 3] colour of a world point [..., 3] (a texture fixed in the world: any view sees the same)."""
    x, y, z = p[..., 0], p[..., 1], p[..., 2]
    return np.stack([0.5 + 0.3 * np.sin(7 * x) * np.cos(5 * y), 0.5 + 0.3 * np.sin(4 * z + 3 * x),
                     0.5 + 0.2 * np.cos(6 * y + 2 * z)], -1).astype(np.float32)


def _look(position: tuple[float, float, float], yaw_deg: float = 0.0) -> np.ndarray:
    """Optical pose at ``position`` looking along +z (world), turned by ``yaw_deg`` about the world's y axis."""
    a = np.radians(yaw_deg)
    R = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, position
    return T


def _wall_keyframe(T: np.ndarray, wall_z: float = 8.0, K: Intrinsics = CAM) -> Keyframe:
    """The keyframe of a textured wall at world z = ``wall_z`` (exact ray cast), seen from pose ``T``."""
    rays_w = K.pixel_rays() @ T[:3, :3].T                        # [H, W, 3], camera z = 1
    t = (wall_z - T[2, 3]) / rays_w[..., 2]
    depth = np.where(t > 0, t, np.nan)                          # z-depth = t since the camera z of the ray is 1
    p = T[:3, 3] + rays_w * depth[..., None]
    return Keyframe(_texture(np.nan_to_num(p)), depth.astype(np.float32), T, K, 0)


def _merge(world: GaussianWorld, kf: Keyframe, dedup: DedupConfig | None, earlier: list[Keyframe] | None = None,
           lift: LiftConfig | None = None) -> MergeResult:
    view = RENDERER.render(world, kf.intrinsics, kf.T_world_cam[None]) if len(world) else None
    return merge_keyframe(world, kf, view, RENDERER.render, lift or LiftConfig(), 2.0, PROBE.coarse_pixels, dedup, earlier or [])


def test_a_surface_lifted_again_is_replaced_and_the_covered_view_keeps_its_image() -> None:
    """A wall whose Gaussians render thin (a faded layer, as refinement can leave one, or the
    partly covered border of an earlier view) is lifted again by a keyframe at the same detail:
    without deduplication both layers stay; with it the old layer goes, the count drops and the
    covered view renders within a tight tolerance of the two-layer world."""
    faded = LiftConfig(opacity=0.12, colour_iterations=0)
    first = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    old = _merge(GaussianWorld.empty(), first, None, lift=faded).world
    second = _wall_keyframe(_look((0.3, -0.2, 0.2)))
    keep_all = _merge(old, second, None)
    dedup = _merge(old, second, DedupConfig(), [first])
    assert dedup.removed_by is not None and dedup.removed_by["redundant"] > 0.5 * len(old)
    assert len(dedup.world) < 0.75 * len(keep_all.world), (len(old), len(keep_all.world), len(dedup.world))
    # The covered view (the second keyframe's) renders close to the two-layer world, and as well as
    # a world lifted from that keyframe alone.
    T = second.T_world_cam[None]
    a, b = RENDERER.render(keep_all.world, CAM, T), RENDERER.render(dedup.world, CAM, T)
    alone = RENDERER.render(_merge(GaussianWorld.empty(), second, None).world, CAM, T)
    assert psnr_db(b.rgb[0], a.rgb[0]) > 32.0
    assert psnr_db(b.rgb[0], second.rgb) >= psnr_db(alone.rgb[0], second.rgb) - 0.2
    np.testing.assert_allclose(b.alpha[0], a.alpha[0], atol=0.02)


def test_a_wall_seen_twice_does_not_double() -> None:
    """The same wall seen from a second, nearby pose adds only what the first view lacked."""
    first = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    w1 = _merge(GaussianWorld.empty(), first, DedupConfig()).world
    second = _wall_keyframe(_look((0.4, 0.1, 1.0), yaw_deg=8.0))
    w2 = _merge(w1, second, DedupConfig(), [first]).world
    # The second view's new area (its right edge, turned away from the first) is well under a third.
    assert len(w2) < 1.3 * len(w1), (len(w1), len(w2))
    # Seen again from the first pose, nothing renders twice as dense: the image is unchanged.
    T = first.T_world_cam[None]
    assert psnr_db(RENDERER.render(w2, CAM, T).rgb[0], RENDERER.render(w1, CAM, T).rgb[0]) > 35.0


def test_hidden_for_good_and_only_those() -> None:
    """Gaussians behind the wall in every keyframe that sees their place go; those a keyframe shows stay."""
    front = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    wall = _merge(GaussianWorld.empty(), front, None).world
    rng = np.random.default_rng(1)
    n = 200
    # A cloud 2-3 m behind the wall, straight ahead (hidden from the front pose), and one 6 m to the
    # side, behind the wall's plane but outside every keyframe's view.
    behind = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(10, 11, n)], -1)
    aside = behind + np.array([40.0, 0.0, 0.0])
    extra = GaussianWorld.from_linear(np.concatenate([behind, aside]), np.full((2 * n, 3), 0.02),
                                      np.full(2 * n, 0.9), np.full((2 * n, 3), 0.5))
    world = wall.concat(extra)
    hidden = hidden_for_good(world, [front], 0.15)
    assert hidden[len(wall):len(wall) + n].all()          # behind the wall in the only keyframe that sees them
    assert not hidden[len(wall) + n:].any()               # no keyframe sees their place: nothing says hidden
    assert not hidden[:len(wall)].any()                   # the wall itself is what the keyframe shows
    # A second keyframe that sees the cloud (no wall between, from behind it) keeps it.
    back = Keyframe(front.rgb, np.full_like(front.depth_m, 3.0), _look((0.0, 0.0, 12.5), yaw_deg=180.0), CAM, 1)
    assert not hidden_for_good(world, [front, back], 0.15)[len(wall):len(wall) + n].any()
    # Through merge_keyframe: a keyframe of the wall from another pose prunes the cloud.
    again = _wall_keyframe(_look((0.2, 0.0, 0.5)))
    merged = _merge(world, again, DedupConfig(), [front])
    assert merged.removed_by is not None and merged.removed_by["hidden"] >= n
    assert len(merged.world) <= len(world) - n + merged.added


def test_near_transparent_gaussians_are_pruned() -> None:
    front = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    wall = _merge(GaussianWorld.empty(), front, None).world
    faint = GaussianWorld.from_linear(np.array([[0.0, 0.0, 5.0], [0.5, 0.0, 5.0]]), np.full((2, 3), 0.05),
                                      np.array([0.005, 0.5]), np.full((2, 3), 0.5))
    world = wall.concat(faint)
    assert transparent_gaussians(world, 0.02).tolist() == [False] * len(wall) + [True, False]
    merged = _merge(world, _wall_keyframe(_look((0.1, 0.0, 0.2))), DedupConfig(), [front])
    assert merged.removed_by is not None and merged.removed_by["transparent"] == 1
    with pytest.raises(InputError, match="min_opacity"):
        DedupConfig(min_opacity=1.5)


def test_the_manifest_keeps_what_each_keyframe_added_and_removed(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    store = WorldStore(tmp_path)
    state = store.get_or_create("a wall", {"generator": "test"})
    assert isinstance(state, WorldState)
    kf = _wall_keyframe(_look((0.0, 0.0, 0.0)))
    merged = _merge(GaussianWorld.empty(), kf, DedupConfig())
    state.replace_world(merged.world)
    state.add_keyframe(KeyframeRecord(0, kf.T_world_cam, CAM, kf.rgb, kf.depth_m, "first", merged.added,
                                      merged.removed, {"coarse": 0, "redundant": 0}))
    store.save(state)
    back = WorldStore(tmp_path).get("a wall")
    assert back is not None
    rec = back.keyframes[0]
    assert (rec.gaussians_added, rec.gaussians_removed) == (len(merged.world), 0)
    assert rec.removed_by == {"coarse": 0, "redundant": 0}
    with pytest.raises(InputError, match="gaussians_added"):
        KeyframeRecord(0, kf.T_world_cam, CAM, kf.rgb, kf.depth_m, "", -5)
    # `srender world info --keyframes` shows the ledger.
    assert main(["world", "info", "--prompt", "a wall", "--world-dir", str(tmp_path), "--keyframes"]) == 0
    out = capsys.readouterr().out
    assert "ADDED" in out and "REMOVED" in out and f"+{len(merged.world)} -0 Gaussians over 1 keyframes" in out
