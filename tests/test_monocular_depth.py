"""--depth-source monocular: the simulated monocular estimate and its alignment (issue 17, item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srender_ros.app.compose import AppConfig, build_pipeline, with_depth_source
from srender_ros.backends.generators.diffusers_gen.depth import MetricPrior, _lstsq_line, align_depth
from srender_ros.backends.generators.monocular import MonocularDepthGenerator, MonocularErrorModel
from srender_ros.backends.generators.procedural import ProceduralGenerator
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.generate import KeyframeRequest
from srender_ros.core.ports.render import RenderOutput
from srender_ros.core.trajectory_gen import make_trajectory
from srender_ros.engine.pipeline import PipelineConfig, RenderJob
from srender_ros.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def _plane_depth(h: int = 240, w: int = 320) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    return (2.0 + 3.0 * ys / h + 1.0 * xs / w).astype(np.float64)


def _ideal_abs_rel(pred: np.ndarray, z: np.ndarray) -> float:
    a, b = _lstsq_line(pred.astype(np.float64).ravel(), (1.0 / z).ravel())
    return float(np.mean(np.abs(1.0 / (a * pred + b) - z) / z))


@pytest.mark.parametrize("model", [MonocularErrorModel(), MonocularErrorModel.midas()])
def test_error_model_has_the_statistics_it_claims(model: MonocularErrorModel) -> None:
    z = _plane_depth()
    rels, warps = [], []
    for seed in range(12):
        pred = model.corrupt(z, seed)
        rels.append(_ideal_abs_rel(pred, z))
        warps.append(model.warp_field(240, 320, np.random.default_rng(seed)).std())
    # AbsRel after an ideal scale + shift: at most what the docstring claims, not far below it
    # (the affine fit absorbs a little of the smooth warp).
    assert 0.75 * model.smooth_abs_rel() < np.mean(rels) <= 1.02 * model.smooth_abs_rel()
    np.testing.assert_allclose(warps, model.warp_sigma, rtol=1e-6)
    # the warp is smooth (low frequency): neighbouring pixels differ far less than its spread
    f = model.warp_field(240, 320, np.random.default_rng(0))
    assert np.abs(np.diff(f, axis=1)).mean() < 0.02 * f.std() * 10
    # each keyframe gets its own unknown affine: raw predictions are not inverse metres
    p0, p1 = model.corrupt(z, 0), model.corrupt(z, 1)
    assert abs(np.median(p0) / np.median(p1) - 1) > 0.05
    assert not np.allclose(np.median(p0), np.median(1 / z), rtol=0.05)


def test_default_model_is_at_current_estimators_level() -> None:
    # Depth Anything V2 / Marigold report zero-shot AbsRel 0.045-0.055 on NYUv2 (docs/quality.md)
    assert 0.04 <= MonocularErrorModel().smooth_abs_rel() <= 0.06


def test_error_model_blurs_depth_edges() -> None:
    z = np.full((120, 160), 2.0)
    z[:, 80:] = 8.0  # a depth step
    m = MonocularErrorModel(warp_sigma=0.0, noise_sigma=0.0, scale_log_range=0.0, shift_fraction=0.0)
    d = m.corrupt(z, 0).astype(np.float64) * np.median(1 / z)  # a = 1 / median, b = 0
    inv = 1 / z
    assert np.abs(d[:, 70] - inv[:, 70]).max() < 1e-3 and np.abs(d[:, 90] - inv[:, 90]).max() < 1e-3
    edge = d[:, 79:81].mean()
    assert inv[0, 90] + 0.1 < edge < inv[0, 70] - 0.1  # intermediate ("flying") depth at the edge


def test_alignment_recovers_a_known_affine_error_in_inverse_depth_with_outliers() -> None:
    rng = np.random.default_rng(3)
    z = _plane_depth()
    scale_true, shift_true = 0.37, 0.11  # 1/z = scale * pred + shift
    pred = ((1.0 / z) - shift_true) / scale_true + rng.normal(0, 0.002, z.shape)
    ref = z.copy()
    # 35 % outliers: a disoccluded block with the wrong world depth and scattered wrong pixels
    ref[:, :80] = 25.0
    scatter = rng.random(z.shape) < 0.12
    ref[scatter] = rng.uniform(0.3, 40.0, int(scatter.sum()))
    valid = np.ones(z.shape, bool)
    out = align_depth(pred, ref, valid, MetricPrior(), seed=0)
    assert out.scale == pytest.approx(scale_true, rel=0.01)
    assert out.shift == pytest.approx(shift_true, rel=0.02, abs=2e-3)
    good = ~scatter
    good[:, :80] = False
    assert np.median(np.abs(out.depth_m[good] - z[good]) / z[good]) < 0.01


def test_monocular_generator_aligns_to_the_world_and_keeps_its_depth() -> None:
    cam = Intrinsics.from_fov(80, 60, 90.0)
    traj = make_trajectory("walk", fps=10.0, duration_s=2.0, seed=0)
    inner = ProceduralGenerator()
    gen = MonocularDepthGenerator(inner)
    T = traj.T_world_cam[5]
    truth = inner.ground_truth("a small office", cam, T[None])
    exact = truth.depth_m[0]
    # a world that covers the left 60 % of the view with the exact depth
    alpha = np.zeros_like(exact)
    alpha[:, :48] = 1.0
    view = RenderOutput(truth.rgb[0], np.where(alpha > 0, exact, np.nan).astype(np.float32), alpha)
    kf = gen.generate(KeyframeRequest("a small office", T, cam, view, None, seed=7, pose_index=5))
    assert gen.last_alignment[2]
    np.testing.assert_array_equal(kf.depth_m[:, :44], exact[:, :44])  # kept world pixels keep world depth
    near = exact[:, 52:] < 50
    rel = np.abs(kf.depth_m[:, 52:][near] - exact[:, 52:][near]) / exact[:, 52:][near]
    assert 0.005 < np.median(rel) < 0.15  # monocular error, at the right scale thanks to the alignment
    first = gen.generate(KeyframeRequest("a small office", T, cam, None, None, seed=7, pose_index=0))
    assert np.median(first.depth_m) == pytest.approx(MetricPrior().median_depth_m, rel=0.05)  # the prior
    metric = MonocularDepthGenerator(inner, first_keyframe="metric").generate(
        KeyframeRequest("a small office", T, cam, None, None, seed=7, pose_index=0))
    assert np.median(metric.depth_m) == pytest.approx(float(np.median(exact)), rel=0.1)


def test_depth_source_reaches_the_pipeline(tmp_path: Path) -> None:
    pipe = build_pipeline(AppConfig(world_dir=tmp_path, renderer="cpu",
                                    pipeline=PipelineConfig(depth_source="monocular", chunk_size=8)))
    assert isinstance(pipe.generator, MonocularDepthGenerator)
    traj = make_trajectory("walk", fps=5.0, duration_s=1.0, seed=1)
    chunks = list(pipe.run(RenderJob("a small office", traj, Intrinsics.from_fov(64, 48, 90.0))))
    assert sum(len(c.indices) for c in chunks) == len(traj)
    state = pipe.store.get("a small office")
    assert state is not None and state.generator_settings["depth_source"] == "monocular"
    with pytest.raises(InputError, match="depth_source"):
        PipelineConfig(depth_source="lidar")


def test_monocular_with_a_non_procedural_generator_is_refused() -> None:
    class Other:
        name = "diffusers"

    with pytest.raises(InputError, match=r"--depth-source monocular.*diffusers generator has its own depth"):
        with_depth_source(Other(), "monocular")  # type: ignore[arg-type]


def test_cli_monocular_with_diffusers_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "p.tum").write_text("0.0 0 0 1 0 0 0 1\n0.1 0.1 0 1 0 0 0 1\n")
    env = dict(os.environ, PYTHONPATH=str(REPO), SRENDER_WORLD_DIR=str(tmp_path / "worlds"), HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "srender_ros.cli.main", "render", "--prompt", "a kitchen",
                           "--trajectory", "p.tum", "--generator", "diffusers", "--model", str(tmp_path / "m"),
                           "--depth-model", str(tmp_path / "d"), "--depth-source", "monocular",
                           "--out", "o.mp4", "--no-progress"], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and "--depth-source monocular" in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "worlds").exists()


def test_depth_source_reaches_the_env_access(tmp_path: Path) -> None:
    from srender_ros.envs.world_access import AccessConfig, WorldAccess

    access = WorldAccess(AccessConfig(world_dir=str(tmp_path), depth_source="monocular"))
    assert isinstance(access.pipeline.generator, MonocularDepthGenerator)
    assert access.pipeline.config.depth_source == "monocular"
