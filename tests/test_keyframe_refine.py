"""Fast keyframe refinement (issue 17): analytic backward against finite differences and the torch
reference, never worse on a lifted scene, bounded by its iteration count, the pipeline wiring, and
the whole-world refine command's bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from srender_ros.backends.refine import _grad_kernels as gk
from srender_ros.backends.refine.keyframe import KeyframeView, build_view, refine_keyframe
from srender_ros.backends.render.projection import SH_C0
from srender_ros.core.camera import Intrinsics
from srender_ros.core.holes import fill_holes
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.ports.refine import KeyframeRefineConfig
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError


def _small_world(n: int = 40, seed: int = 0) -> GaussianWorld:
    """n random Gaussians 1.5-3 m in front of an identity camera, a few px wide at 32x24."""
    rng = np.random.default_rng(seed)
    means = np.stack([rng.uniform(-0.8, 0.8, n), rng.uniform(-0.6, 0.6, n), rng.uniform(1.5, 3.0, n)], 1)
    q = rng.normal(size=(n, 4))
    scales = np.log(rng.uniform(0.03, 0.12, (n, 3)))
    logits = rng.uniform(-1.0, 2.0, n)
    sh = rng.normal(0.0, 0.6, (n, 1, 3))
    return GaussianWorld(means.astype(np.float32), q.astype(np.float32), scales.astype(np.float32),
                         logits.astype(np.float32), sh.astype(np.float32))


def _keyframe(world: GaussianWorld, K: Intrinsics, seed: int = 1) -> KeyframeRecord:
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0.0, 1.0, (K.height_px, K.width_px, 3)).astype(np.float32)
    depth = np.full((K.height_px, K.width_px), 2.0, np.float32)
    return KeyframeRecord(pose_index=0, T_world_cam=np.eye(4), intrinsics=K, rgb=rgb, depth_m=depth, reason="test")


def _objective(view: KeyframeView, op: np.ndarray, col: np.ndarray, w: np.ndarray) -> float:
    """sum(w * delivered pixels), the fill colour ``view.under`` held (linear in the image)."""
    npx = view.width_px * view.height_px
    rgb, T = np.empty((npx, 3)), np.empty(npx)
    gk.composite(view.starts, view.pair_gid, view.pair_g, op, col, rgb, T, np.empty(len(view.pair_g)),
                 np.empty(npx, np.int64))
    return float((w * (rgb + T[:, None] * view.under)).sum())


@pytest.fixture(scope="module")
def small() -> tuple[GaussianWorld, KeyframeView, np.ndarray, np.ndarray, np.ndarray]:
    world = _small_world()
    K = Intrinsics.from_fov(32, 24, 70.0)
    view = build_view(world, _keyframe(world, K))
    view.under = np.random.default_rng(3).uniform(0.0, 1.0, view.under.shape)
    op = 1.0 / (1.0 + np.exp(-world.opacity_logits[view.gid].astype(np.float64)))
    col = np.maximum(0.5 + SH_C0 * world.sh[view.gid, 0].astype(np.float64), 0.0)
    w = np.random.default_rng(4).normal(size=(view.width_px * view.height_px, 3))
    return world, view, op, col, w


def _analytic(view: KeyframeView, op: np.ndarray, col: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    npx = view.width_px * view.height_px
    rgb, T = np.empty((npx, 3)), np.empty(npx)
    pair_T, stop = np.empty(len(view.pair_g)), np.empty(npx, np.int64)
    gk.composite(view.starts, view.pair_gid, view.pair_g, op, col, rgb, T, pair_T, stop)
    d_col, d_op = np.zeros_like(col), np.zeros_like(op)
    gk.backward(view.starts, view.pair_gid, view.pair_g, op, col, pair_T, stop, T[:, None] * view.under, w, d_col, d_op)
    return d_col, d_op


def test_backward_matches_finite_differences(small) -> None:
    _, view, op, col, w = small
    assert len(view.pair_g) > 500, "the test world must overlap enough to exercise compositing"
    d_col, d_op = _analytic(view, op, col, w)
    assert np.abs(d_op).max() > 0 and np.abs(d_col).max() > 0
    eps = 1e-6
    for i in range(len(op)):
        for ch in range(3):
            c2 = col.copy()
            c2[i, ch] += eps
            c1 = col.copy()
            c1[i, ch] -= eps
            fd = (_objective(view, op, c2, w) - _objective(view, op, c1, w)) / (2 * eps)
            assert fd == pytest.approx(d_col[i, ch], rel=1e-5, abs=1e-7)
        o2, o1 = op.copy(), op.copy()
        o2[i] += eps
        o1[i] -= eps
        fd = (_objective(view, o2, col, w) - _objective(view, o1, col, w)) / (2 * eps)
        assert fd == pytest.approx(d_op[i], rel=1e-4, abs=1e-6)


def test_backward_matches_torch_reference(small) -> None:
    torch = pytest.importorskip("torch")
    from srender_ros.backends.render.torch_raster import TorchGaussians, gaussians_from_world, rasterize

    world, view, op, col, w = small
    K = Intrinsics.from_fov(32, 24, 70.0)
    g = gaussians_from_world(world, torch.float64)
    sh = g.sh.clone().requires_grad_(True)
    logits = g.opacity_logits.clone().requires_grad_(True)
    out = rasterize(TorchGaussians(g.means, g.quats_wxyz, g.log_scales, logits, sh), K, np.eye(4))
    under = torch.from_numpy(view.under.reshape(K.height_px, K.width_px, 3))
    delivered = out.rgb + (1.0 - out.alpha)[..., None] * under
    # Forward: the pair lists composite the same pixels as the torch rasterizer.
    npx = view.width_px * view.height_px
    rgb, T = np.empty((npx, 3)), np.empty(npx)
    gk.composite(view.starts, view.pair_gid, view.pair_g, op, col, rgb, T, np.empty(len(view.pair_g)),
                 np.empty(npx, np.int64))
    np.testing.assert_allclose(rgb.reshape(K.height_px, K.width_px, 3), out.rgb.detach().numpy(), atol=1e-9)
    (delivered * torch.from_numpy(w.reshape(K.height_px, K.width_px, 3))).sum().backward()
    d_col, d_op = _analytic(view, op, col, w)
    pre = 0.5 + SH_C0 * world.sh[view.gid, 0].astype(np.float64)
    np.testing.assert_allclose(np.where(pre > 0, SH_C0 * d_col, 0.0), sh.grad.numpy()[view.gid, 0], atol=1e-9)
    np.testing.assert_allclose(d_op * op * (1 - op), logits.grad.numpy()[view.gid], atol=1e-9)


@pytest.fixture(scope="module")
def lifted(tmp_path_factory: pytest.TempPathFactory):
    """A world lifted by the pipeline (procedural keyframes, no refinement) on a short handheld path."""
    from srender_ros.app.compose import AppConfig, build_pipeline
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import PipelineConfig, RenderJob

    traj = make_trajectory("pan", fps=10.0, duration_s=2.0, seed=0)
    store = WorldStore(tmp_path_factory.mktemp("worlds"))
    pipe = build_pipeline(AppConfig(renderer="cpu", pipeline=PipelineConfig(keyframe_refine=None)), store=store,
                          generator=make_generator("procedural"))
    run = pipe.run(RenderJob(prompt="a kitchen", trajectory=traj, intrinsics=Intrinsics.from_fov(96, 72, 90.0)))
    for _ in run:
        pass
    state = store.get("a kitchen")
    assert state is not None and len(state.keyframes) >= 2
    return state.world, list(state.keyframes)


def _keyframe_psnr(world: GaussianWorld, kf: KeyframeRecord) -> float:
    from srender_ros.backends.render.cpu import CpuRenderer

    out = CpuRenderer().render(world, kf.intrinsics, kf.T_world_cam[None])
    filled = fill_holes(out.rgb[0], out.alpha[0])
    known = np.isfinite(kf.depth_m)
    d = (filled - kf.rgb)[known].astype(np.float64)
    return float(-10.0 * np.log10((d * d).mean()))


@pytest.mark.parametrize("iterations", [1, 12])
def test_refinement_never_lowers_keyframe_psnr_and_keeps_its_budget(lifted, iterations: int) -> None:
    world, keyframes = lifted
    new, report = refine_keyframe(world, keyframes, KeyframeRefineConfig(iterations=iterations, neighbors=1, device="cpu"))
    assert report.iterations <= iterations
    assert len(new) == len(world)
    np.testing.assert_array_equal(new.means, world.means)  # geometry is not touched
    before, after = _keyframe_psnr(world, keyframes[-1]), _keyframe_psnr(new, keyframes[-1])
    assert after >= before
    if iterations >= 12:
        assert after > before + 0.5, f"{before:.2f} -> {after:.2f} dB"
    # The pair lists composite exactly what the CPU renderer draws, so the report's PSNR is the renderer's.
    assert report.psnr_after_db >= report.psnr_before_db


def test_pipeline_refines_each_keyframe_by_default(tmp_path: Path) -> None:
    from srender_ros.app.compose import AppConfig, build_pipeline
    from srender_ros.backends.generators.registry import make_generator
    from srender_ros.core.store import WorldStore
    from srender_ros.core.trajectory_gen import make_trajectory
    from srender_ros.engine.pipeline import PipelineConfig, RenderJob

    assert PipelineConfig().keyframe_refine is not None
    traj = make_trajectory("handheld", fps=10.0, duration_s=1.0, seed=0)
    pipe = build_pipeline(AppConfig(renderer="cpu", pipeline=PipelineConfig(keyframe_refine=KeyframeRefineConfig(
        iterations=4))), store=WorldStore(tmp_path), generator=make_generator("procedural"))
    run = pipe.run(RenderJob(prompt="a kitchen", trajectory=traj, intrinsics=Intrinsics.from_fov(64, 48, 90.0)))
    for _ in run:
        pass
    assert run.stats.keyframes >= 1 and run.stats.seconds["refine"] > 0.0


def test_bad_config_values() -> None:
    with pytest.raises(InputError, match="iterations"):
        KeyframeRefineConfig(iterations=-1)
    with pytest.raises(InputError, match="device"):
        KeyframeRefineConfig(device="tpu")


def test_world_refine_without_keyframe_images_fails_cleanly(tmp_path: Path) -> None:
    from srender_ros.core.ply import write_ply

    ply = tmp_path / "w.ply"
    write_ply(ply, _small_world())
    worlds = tmp_path / "worlds"
    cli = [sys.executable, "-m", "srender_ros.cli.main", "world"]
    subprocess.run([*cli, "import", str(ply), "--prompt", "imported", "--world-dir", str(worlds)], check=True,
                   capture_output=True)
    before = sorted((p.relative_to(worlds), p.stat().st_mtime_ns) for p in worlds.rglob("*"))
    res = subprocess.run([*cli, "refine", "--prompt", "imported", "--world-dir", str(worlds), "--iterations", "5"],
                         capture_output=True, text=True)
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no keyframe images" in lines[0], res.stderr
    assert sorted((p.relative_to(worlds), p.stat().st_mtime_ns) for p in worlds.rglob("*")) == before


@pytest.mark.skipif(not __import__("srender_ros.backends.render.gsplat_backend", fromlist=["gsplat_status"])
                    .gsplat_status()[0], reason="needs CUDA and gsplat")
def test_cuda_path_runs_and_does_not_lower_psnr(lifted) -> None:
    world, keyframes = lifted
    _, report = refine_keyframe(world, keyframes, KeyframeRefineConfig(iterations=10, device="cuda"))
    assert report.backend == "gsplat-cuda" and report.iterations <= 10
    assert report.psnr_after_db >= report.psnr_before_db - 0.05
