from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix
from srender_ros.engine.lifting import LiftConfig, lift_keyframe, snap_depth_edges
from srender_ros.errors import InputError

K = Intrinsics.from_fov(32, 24, 60.0)


def _pose() -> np.ndarray:
    R = quat_wxyz_to_matrix(np.array([0.9, 0.1, -0.2, 0.3]))
    return make_transform(R, np.array([1.0, -2.0, 0.5]))


def _to_cam(T: np.ndarray, p_world: np.ndarray) -> np.ndarray:
    return (p_world - T[:3, 3]) @ T[:3, :3]


def test_plane_back_projects_exactly_and_faces_camera() -> None:
    T = _pose()
    rgb = np.random.default_rng(0).random((24, 32, 3)).astype(np.float32)
    depth = np.full((24, 32), 2.0, np.float32)
    g = lift_keyframe(rgb, depth, K, T)[0]
    assert len(g) == 32 * 24
    p_cam = _to_cam(T, g.means.astype(np.float64))
    np.testing.assert_allclose(p_cam[:, 2], 2.0, atol=1e-5)
    # pixel (u, v) centre reprojects to itself
    uv = p_cam[:, :2] / p_cam[:, 2:3] * [K.fx_px, K.fy_px] + [K.cx_px, K.cy_px]
    vv, uu = np.mgrid[0:24, 0:32]
    np.testing.assert_allclose(uv, np.stack([uu.ravel() + 0.5, vv.ravel() + 0.5], 1), atol=1e-3)
    # thin axis (local z) is the plane normal = camera optical axis
    R = quat_wxyz_to_matrix(g.quats_wxyz.astype(np.float64))
    normal_cam = (R[:, :, 2]) @ T[:3, :3]
    np.testing.assert_allclose(np.abs(normal_cam[:, 2]), 1.0, atol=1e-4)
    s = g.scales_m
    assert (s[:, 2] < s[:, 0]).all()
    # footprint: in-plane sigma = footprint_scale * z / f for a fronto-parallel plane
    np.testing.assert_allclose(s[:, 1], LiftConfig().footprint_scale * 2.0 / K.fx_px, rtol=1e-4)
    # colours survive
    np.testing.assert_allclose(g.sh[:, 0, :] * 0.28209479177387814 + 0.5, rgb.reshape(-1, 3), atol=1e-5)


def test_no_flying_gaussians_across_depth_edges() -> None:
    depth = np.full((24, 32), 1.0, np.float32)
    depth[:, 16:] = 5.0
    depth[:, 15] = 3.0  # an anti-aliased "mixed" column between foreground and background
    rgb = np.full((24, 32, 3), 0.5, np.float32)
    g = lift_keyframe(rgb, depth, K, np.eye(4))[0]
    z = g.means[:, 2]
    assert len(g) == 32 * 24
    assert not ((z > 1.2) & (z < 4.8)).any(), "a Gaussian floats between foreground and background"
    snapped, edge = snap_depth_edges(depth, 0.1)
    assert edge[:, 15].all() and set(np.unique(snapped)) <= {1.0, 5.0}


def test_only_adds_where_world_is_empty_or_behind() -> None:
    depth = np.full((24, 32), 2.0, np.float32)
    rgb = np.zeros((24, 32, 3), np.float32)
    alpha = np.zeros((24, 32), np.float32)
    alpha[:, :20] = 1.0
    world_depth = np.where(alpha > 0.5, 2.0, np.nan).astype(np.float32)
    g = lift_keyframe(rgb, depth, K, np.eye(4), alpha, world_depth)[0]
    assert len(g) == 12 * 24
    # new foreground in front of what the world shows is added even where alpha is high
    world_depth[:, :20] = 6.0
    g2 = lift_keyframe(rgb, depth, K, np.eye(4), alpha, world_depth)[0]
    assert len(g2) == 32 * 24


def test_stride_and_invalid_depth() -> None:
    depth = np.full((24, 32), 3.0, np.float32)
    depth[0, :] = np.nan
    depth[1, :] = -1.0
    rgb = np.zeros((24, 32, 3), np.float32)
    assert len(lift_keyframe(rgb, depth, K, np.eye(4))[0]) == 22 * 32
    g = lift_keyframe(rgb, np.full((24, 32), 3.0, np.float32), K, np.eye(4), config=LiftConfig(stride_px=2))[0]
    assert len(g) == 16 * 12
    with pytest.raises(InputError, match="do not match"):
        lift_keyframe(rgb[:10], depth, K, np.eye(4))


def test_colour_correction_sharpens_the_keyframe_view() -> None:
    from srender_ros.backends.render.registry import get_renderer
    from srender_ros.core.metrics import psnr_db
    from srender_ros.engine.lifting import correct_colours, lift_keyframe

    renderer = get_renderer("cpu")
    from scipy.ndimage import gaussian_filter

    # a texture with detail near the pixel scale, like the procedural surfaces
    rgb = gaussian_filter(np.random.default_rng(3).random((24, 32, 3)), (1.0, 1.0, 0)).astype(np.float32)
    rgb = np.clip((rgb - rgb.mean()) * 4 + 0.5, 0, 1).astype(np.float32)
    depth = np.full((24, 32), 2.0, np.float32)
    world, pixels = lift_keyframe(rgb, depth, K, np.eye(4))
    def render(w: object) -> np.ndarray:
        return renderer.render(w, K, np.eye(4)[None]).rgb[0]  # type: ignore[arg-type]
    before = psnr_db(render(world), rgb)
    after_world = correct_colours(world, len(world), pixels, rgb, render, iterations=2, step=0.5)
    after = psnr_db(render(after_world), rgb)
    assert after > before + 1.0
    np.testing.assert_array_equal(after_world.means, world.means)
    # zero iterations is the identity
    assert correct_colours(world, len(world), pixels, rgb, render, 0, 0.5) is world
