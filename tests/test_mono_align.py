"""Monocular depth alignment beyond one affine (issue 17, item 2): the smooth residual grid
correction, the first keyframe's scale from the camera height, and the --camera-height plumbing."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pytest

from srender_ros.app.compose import AppConfig, build_pipeline
from srender_ros.app.options import add_pipeline_arguments, pipeline_config_from_args
from srender_ros.backends.generators.diffusers_gen.depth import (
    MetricPrior,
    correct_warp,
    first_keyframe_depth,
    keyframe_depth,
)
from srender_ros.backends.generators.diffusers_gen.depth_warp import GridCorrection, fit_warp_grid, upsample_grid
from srender_ros.backends.generators.diffusers_gen.ground_scale import (
    down_in_camera,
    ground_alignment,
    ground_scale,
)
from srender_ros.backends.generators.monocular import MonocularErrorModel
from srender_ros.backends.generators.procedural import ProceduralGenerator
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import Keyframe, KeyframeRequest
from srender_ros.core.store import WorldStore
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.engine.config import PipelineConfig
from srender_ros.engine.pipeline import RenderJob
from srender_ros.errors import InputError
from srender_ros.ros.backend import pipeline_config
from srender_ros.ros.config import PARAM_SPECS, NodeConfig

H, W = 90, 120


def _scene_depth(h: int = H, w: int = W) -> np.ndarray:
    """[h, w] a slanted wall 4-7 m away."""
    ys, xs = np.mgrid[0:h, 0:w]
    return 4.0 + 2.0 * xs / w + 1.0 * ys / h


def _smooth_warp(h: int = H, w: int = W, amp: float = 0.08) -> np.ndarray:
    """[h, w] a low-frequency field (log units), about one period across the image."""
    ys, xs = np.mgrid[0:h, 0:w] / w
    return amp * (np.cos(2 * np.pi * (0.8 * xs + 0.3 * ys) + 0.4) + 0.5 * np.sin(2 * np.pi * 0.6 * ys - 0.2 * xs))


def _rel(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    return float(np.mean(np.abs(a[m] / b[m] - 1.0)))


# ------------------------------------------------------------------ grid correction


def test_grid_correction_recovers_a_smooth_warp() -> None:
    z = _scene_depth()
    warped = (z * np.exp(-_smooth_warp())).astype(np.float32)   # inverse depth off by exp(warp)
    valid = np.zeros(z.shape, bool)
    valid[:, : int(0.7 * W)] = True                              # the world covers the left 70 %
    fixed = correct_warp(warped, z, valid)
    before, after = _rel(warped, z, valid), _rel(fixed, z, valid)
    assert before > 0.03 and after < before / 4, (before, after)
    # the uncovered part (extrapolated from its neighbours) is not made worse
    assert _rel(fixed, z, ~valid) < _rel(warped, z, ~valid)


def test_grid_correction_leaves_exact_depth_unchanged() -> None:
    z = _scene_depth().astype(np.float32)
    valid = np.ones(z.shape, bool)
    valid[:20, :30] = False
    np.testing.assert_allclose(correct_warp(z, z, valid), z, rtol=1e-5)
    fit = fit_warp_grid(np.zeros(z.shape), valid)
    assert fit.grid.shape == (6, 8) and np.abs(fit.correction).max() < 1e-9
    # too few samples: no correction at all
    few = np.zeros(z.shape, bool)
    few[0, :10] = True
    assert np.abs(fit_warp_grid(np.full(z.shape, 0.3), few).correction).max() == 0.0


def test_grid_correction_is_robust_to_outliers() -> None:
    z = _scene_depth()
    rng = np.random.default_rng(3)
    ref = z.copy()
    bad = rng.random(z.shape) < 0.25                              # a quarter of the world is wrong
    ref[bad] *= rng.uniform(0.3, 3.0, size=int(bad.sum()))
    valid = np.ones(z.shape, bool)
    # exact depth against a partly wrong world: the outliers do not bend it
    same = correct_warp(z.astype(np.float32), ref, valid)
    assert _rel(same, z, valid) < 0.01
    # a warp is still recovered through the outliers
    warped = (z * np.exp(-_smooth_warp())).astype(np.float32)
    fixed = correct_warp(warped, ref, valid)
    assert _rel(fixed, z, valid) < _rel(warped, z, valid) / 3


def test_grid_upsampling_matches_the_fit_and_settings_are_checked() -> None:
    g = np.arange(48, dtype=np.float64).reshape(6, 8)
    up = upsample_grid(g, (60, 80))
    assert up.shape == (60, 80)
    # cell centres of an 8x6 grid over 80x60 pixels sit between pixels 4 and 5, 14 and 15, ...
    assert up[4:6, 4:6].mean() == pytest.approx(g[0, 0], abs=0.3)
    assert up.min() >= g.min() and up.max() <= g.max()
    with pytest.raises(InputError):
        GridCorrection(cols=0)
    with pytest.raises(InputError):
        GridCorrection(smooth=-1.0)


def test_keyframe_depth_corrects_monocular_warp_by_default() -> None:
    z = _scene_depth(120, 160)
    model = MonocularErrorModel(noise_sigma=0.0, edge_blur=0.0, warp_sigma=0.06)
    alpha = np.zeros(z.shape, np.float32)
    alpha[:, :110] = 1.0
    world = np.where(alpha > 0, z, np.nan).astype(np.float32)
    generated = alpha < 0.5
    seam = np.zeros(z.shape, bool)
    seam[:, 110:125] = True
    errs = {}
    for name, warp in (("affine", None), ("grid", GridCorrection())):
        e = []
        for seed in range(4):
            pred = model.corrupt(z, seed)
            d = keyframe_depth(pred, world, alpha, generated, MetricPrior(), seed, warp=warp).depth_m
            e.append(_rel(d, z, seam))
        errs[name] = float(np.mean(e))
    # the generated band next to the world (where the keyframe must join it) gets the warp of its
    # neighbourhood removed; far from the world the correction only extrapolates
    assert errs["grid"] < 0.8 * errs["affine"], errs


# ------------------------------------------------------------------ ground scale


def _floor_scene(cam: Intrinsics, height_m: float, pitch_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """[H, W] depth of a floor ``height_m`` below a camera pitched down by ``pitch_deg``, a wall at
    ~6 m above the horizon, a box in front; and the [3] down direction in the camera frame."""
    th = np.radians(pitch_deg)
    down = np.array([0.0, np.cos(th), np.sin(th)])
    vv, uu = np.mgrid[0:cam.height_px, 0:cam.width_px]
    x = (uu + 0.5 - cam.cx_px) / cam.fx_px
    y = (vv + 0.5 - cam.cy_px) / cam.fy_px
    s = x * down[0] + y * down[1] + down[2]
    z = 6.0 + 1.5 * x
    z = np.where(s > 1e-6, np.minimum(z, height_m / np.maximum(s, 1e-9)), z)
    h, w = z.shape
    z[h // 3: h // 2, w // 3: w // 2] = np.minimum(z[h // 3: h // 2, w // 3: w // 2], 2.5)
    return z, down


@pytest.mark.parametrize("pitch_deg", [0.0, 10.0])
def test_ground_recovers_the_camera_height_with_gravity(pitch_deg: float) -> None:
    cam = Intrinsics.from_fov(160, 120, 90.0)
    z, down = _floor_scene(cam, 1.6, pitch_deg)
    model = MonocularErrorModel(warp_sigma=0.02, noise_sigma=0.02)
    for seed in range(3):
        pred = model.corrupt(z, seed)
        got = first_keyframe_depth(pred, MetricPrior(), cam, 1.6, down, seed).depth_m
        prior = first_keyframe_depth(pred, MetricPrior(), cam, None, None, seed).depth_m
        floor = np.zeros(z.shape, bool)
        floor[-20:] = True
        assert np.median(got[floor] / z[floor]) == pytest.approx(1.0, abs=0.08)
        assert _rel(got, z, np.ones(z.shape, bool)) < 0.5 * _rel(prior, z, np.ones(z.shape, bool))


def test_ground_under_furniture_is_the_lower_envelope() -> None:
    # The kitchen's first view: cabinets and a table stand on the floor in the lower image. They are
    # nearer than the floor behind them; a symmetric line fit let them tilt the ground (median depth
    # +18..33 %), the lower-envelope refit does not.
    cam = Intrinsics.from_fov(160, 120, 90.0).overscanned(1.25)
    T = make_trajectory("handheld", fps=30.0, duration_s=2.0, seed=0).T_world_cam[0]
    exact = ProceduralGenerator().generate(KeyframeRequest("a kitchen", T, cam, None, None, seed=5)).depth_m
    near = exact < 99.0
    for seed in range(3):
        pred = MonocularErrorModel().corrupt(exact, seed)
        got = first_keyframe_depth(pred, MetricPrior(), cam, float(T[2, 3]), down_in_camera(T), seed).depth_m
        assert np.median(got[near] / exact[near]) == pytest.approx(1.0, abs=0.08)


def test_ground_plane_fit_recovers_the_scale_of_scale_free_depth() -> None:
    cam = Intrinsics.from_fov(160, 120, 90.0)
    z, _ = _floor_scene(cam, 1.5, 5.0)
    rng = np.random.default_rng(0)
    scale_free = 0.37 * z * np.exp(rng.normal(0.0, 0.01, z.shape))
    fit = ground_scale(scale_free, cam, 1.5)
    assert fit is not None and fit.scale * 0.37 == pytest.approx(1.0, abs=0.03)
    assert fit.normal[1] > 0.9
    # the same through ground_alignment without gravity: the prior's shift kept, scale from the plane
    inv = 1.0 / scale_free
    g = ground_alignment(inv, cam, 1.5, None, (1.0, 0.0))
    assert g is not None and g.method == "plane" and g.shift == 0.0
    assert g.scale == pytest.approx(0.37, rel=0.03)


def test_no_ground_falls_back_to_the_prior(caplog: pytest.LogCaptureFixture) -> None:
    cam = Intrinsics.from_fov(160, 120, 90.0)
    ys, xs = np.mgrid[0:120, 0:160]
    wall = 3.0 + 0.5 * np.sin(xs / 9.0) * np.cos(ys / 7.0)     # a bumpy wall filling the view, no floor
    pred = MonocularErrorModel().corrupt(wall, 1)
    down = down_in_camera(make_trajectory("pan", fps=5.0, duration_s=1.0).T_world_cam[0])
    assert ground_scale(wall, cam, 1.5) is None
    with caplog.at_level(logging.INFO):
        got = first_keyframe_depth(pred, MetricPrior(), cam, 1.5, None, 1)
    assert "no plausible ground" in caplog.text
    np.testing.assert_array_equal(got.depth_m, first_keyframe_depth(pred, MetricPrior(), cam, None).depth_m)
    assert np.median(got.depth_m) == pytest.approx(MetricPrior().median_depth_m, rel=0.05)
    assert down[2] == pytest.approx(0.0, abs=1e-6) and down[1] == pytest.approx(1.0, abs=1e-6)  # level camera
    with pytest.raises(InputError, match="camera height"):
        ground_scale(wall, cam, -1.0)


# ------------------------------------------------------------------ plumbing


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_pipeline_arguments(parser.add_argument_group("pipeline"))
    return parser


def test_camera_height_reaches_the_config_from_cli_and_node() -> None:
    assert pipeline_config_from_args(_parser().parse_args([])).camera_height_m is None
    assert pipeline_config_from_args(_parser().parse_args(["--camera-height", "1.5"])).camera_height_m == 1.5
    assert pipeline_config_from_args(_parser().parse_args(["--camera-height", "0"])).camera_height_m is None
    assert pipeline_config(NodeConfig(camera_height_m=1.2)).camera_height_m == 1.2
    assert pipeline_config(NodeConfig()).camera_height_m is None   # 0.0 = unknown on the node


@pytest.mark.parametrize("bad", ["-1", "nan", "inf"])
def test_bad_camera_heights_are_refused(bad: str) -> None:
    with pytest.raises(InputError, match="camera_height_m"):
        pipeline_config_from_args(_parser().parse_args(["--camera-height", bad]))
    spec = next(s for s in PARAM_SPECS if s.name == "camera_height_m")
    if bad == "-1":
        with pytest.raises(InputError, match="camera_height_m"):
            spec.check(-1.0)


def test_camera_height_reaches_the_generator(tmp_path: Path) -> None:
    seen: list[KeyframeRequest] = []

    class Recording:
        name = "procedural"

        def __init__(self) -> None:
            self.inner = ProceduralGenerator()

        def generate(self, request: KeyframeRequest) -> Keyframe:
            seen.append(request)
            return self.inner.generate(request)

        def settings(self) -> dict[str, object]:
            return self.inner.settings()

    pipe = build_pipeline(AppConfig(renderer="cpu", pipeline=PipelineConfig(camera_height_m=1.7, chunk_size=8)),
                          store=WorldStore(tmp_path), generator=Recording())
    traj = make_trajectory("pan", fps=5.0, duration_s=1.0)
    for _ in pipe.run(RenderJob("a small office", traj, Intrinsics.from_fov(48, 36, 90.0))):
        pass
    assert seen and all(r.camera_height_m == 1.7 for r in seen)


def test_env_passes_its_camera_height(tmp_path: Path) -> None:
    from srender_ros.envs.sim import EnvConfig, MobileBaseSim

    sim = MobileBaseSim(1, EnvConfig(world_dir=str(tmp_path), generate=True, depth_source="monocular"))
    assert sim.access.pipeline.config.camera_height_m == 1.5
