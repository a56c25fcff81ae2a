"""Photometric refinement: the differentiable torch rasterizer and refine_world / refine_state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srender_ros.backends.refine.photometric import (
    PhotometricRefiner,
    RefineConfig,
    RefineReport,
    SelectiveAdam,
    downsample_area,
    refine_world,
)
from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.backends.render.reference import ReferenceRenderer
from srender_ros.backends.render.torch_raster import (
    TorchGaussians,
    TorchRenderer,
    Window,
    gaussians_from_world,
    rasterize,
    world_from_gaussians,
)
from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.metrics import psnr_db
from srender_ros.core.store import WorldState
from srender_ros.core.world import GaussianWorld, rgb_to_sh_dc, sh_dc_to_rgb
from srender_ros.engine.lifting import lift_keyframe
from srender_ros.engine.refinement import refine_state
from srender_ros.errors import InputError
from tests.conftest import requires_cuda

BG = (0.1, 0.2, 0.3)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    # Tiny tensors: thread start-up costs more than it saves, and the test machine is shared.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_world(n: int, seed: int = 0, sh_degree: int = 0) -> GaussianWorld:
    """Anisotropic Gaussians in front of an identity camera, some overlapping, some off-screen."""
    rng = np.random.default_rng(seed)
    means = rng.uniform([-2.5, -1.8, 1.5], [2.5, 1.8, 6.0], (n, 3))
    k = (sh_degree + 1) ** 2
    sh = rng.normal(0.0, 0.3, (n, k, 3))
    sh[:, 0] = rgb_to_sh_dc(rng.uniform(0, 1, (n, 3)))
    return GaussianWorld(means, rng.normal(size=(n, 4)), np.log(rng.uniform(0.03, 0.4, (n, 3))),
                         rng.normal(1.0, 2.0, n), sh)


def pose(x: float, y: float = 0.0, z: float = 0.0, yaw_rad: float = 0.0) -> np.ndarray:
    T = np.eye(4)
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    T[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]
    T[:3, 3] = [x, y, z]
    return T


POSES = np.stack([pose(0, 0, 0), pose(0.4, -0.2, 0.3, 0.2), pose(-0.5, 0.1, -0.4, -0.3)])


# ---- rasterizer forward -------------------------------------------------------------------------
def test_torch_forward_matches_reference_float64() -> None:
    world = random_world(150, seed=1, sh_degree=1)
    K = Intrinsics.from_fov(32, 24, 70.0)
    ref = ReferenceRenderer().render(world, K, POSES, BG)
    out = TorchRenderer(torch.float64).render(world, K, POSES, BG)
    assert ref.alpha.max() > 0.99 and ref.alpha.min() < 0.5  # the scene has both saturated pixels and holes
    np.testing.assert_allclose(out.rgb, ref.rgb, atol=1e-6)
    np.testing.assert_allclose(out.alpha, ref.alpha, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(out.depth_m), np.isnan(ref.depth_m))
    np.testing.assert_allclose(out.depth_m, ref.depth_m, atol=1e-5, equal_nan=True)


def test_torch_forward_float32_matches_cpu_renderer() -> None:
    world = random_world(200, seed=2)
    K = Intrinsics.from_fov(32, 24, 80.0)
    cpu = CpuRenderer(lod_px=0).render(world, K, POSES, BG)  # exact mode (LOD off)
    out = TorchRenderer(torch.float32).render(world, K, POSES, BG)
    np.testing.assert_allclose(out.rgb, cpu.rgb, atol=1e-4)
    np.testing.assert_allclose(out.alpha, cpu.alpha, atol=1e-4)
    np.testing.assert_allclose(out.depth_m, cpu.depth_m, atol=1e-3, equal_nan=True)


def test_window_is_an_exact_crop_of_the_full_render() -> None:
    g = gaussians_from_world(random_world(120, seed=3), torch.float64)
    K = Intrinsics.from_fov(40, 30, 75.0)
    full = rasterize(g, K, POSES[1], BG)
    win = rasterize(g, K, POSES[1], BG, Window(7, 5, 19, 11))
    # (numpy's assert: torch.testing's first call costs seconds of imports)
    np.testing.assert_allclose(win.rgb.numpy(), full.rgb[5:16, 7:26].numpy(), atol=1e-12, rtol=0)
    np.testing.assert_allclose(win.alpha.numpy(), full.alpha[5:16, 7:26].numpy(), atol=1e-12, rtol=0)
    with pytest.raises(InputError, match="window"):
        rasterize(g, K, POSES[1], BG, Window(30, 0, 20, 10))


def test_empty_and_fully_culled_worlds_render_the_background() -> None:
    K = Intrinsics.from_fov(16, 12, 60.0)
    out = TorchRenderer().render(GaussianWorld.empty(), K, POSES[:1], BG)
    np.testing.assert_allclose(out.rgb[0], np.broadcast_to(BG, (12, 16, 3)), atol=1e-7)
    behind = GaussianWorld.from_linear([[0, 0, -3.0]], [[0.5, 0.5, 0.5]], [0.9], [[1, 0, 0]])
    out = TorchRenderer().render(behind, K, POSES[:1], BG)
    assert out.alpha.max() == 0 and np.isnan(out.depth_m).all()


def test_world_round_trip_through_tensors() -> None:
    world = random_world(10, sh_degree=2)
    back = world_from_gaussians(gaussians_from_world(world))
    for name in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh"):
        np.testing.assert_allclose(getattr(back, name), getattr(world, name), atol=1e-6)


# ---- gradients ----------------------------------------------------------------------------------
def test_gradients_match_finite_differences() -> None:
    world = random_world(10, seed=4, sh_degree=1)
    K = Intrinsics.from_fov(12, 9, 70.0)
    leaves = tuple(t.clone().requires_grad_(True) for t in gaussians_from_world(world, torch.float64))

    def f(*p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = rasterize(TorchGaussians(*p), K, POSES[0], BG)
        return r.rgb, r.alpha

    # fast_mode checks random directional derivatives: a few renders instead of one per input.
    assert torch.autograd.gradcheck(f, leaves, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


def test_float32_gradients_are_finite_and_reach_every_parameter() -> None:
    g = TorchGaussians(*(t.requires_grad_(True) for t in gaussians_from_world(random_world(80, seed=5))))
    r = rasterize(g, Intrinsics.from_fov(24, 18, 70.0), POSES[2], BG)
    (r.rgb.square().sum() + r.depth_acc.sum()).backward()
    for name, t in zip(TorchGaussians._fields, g):
        assert t.grad is not None and torch.isfinite(t.grad).all(), name
        assert t.grad.abs().sum() > 0, name


# ---- refinement -----------------------------------------------------------------------------------
def keyframes_of(world: GaussianWorld, K: Intrinsics, poses: np.ndarray) -> list[KeyframeRecord]:
    out = CpuRenderer().render(world, K, poses)
    return [KeyframeRecord(i, poses[i], K, out.rgb[i], out.depth_m[i]) for i in range(len(poses))]


def perturbed(world: GaussianWorld, seed: int = 7, sigma: float = 0.25) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    rgb = np.clip(sh_dc_to_rgb(world.sh[:, 0]) + rng.normal(0, sigma, (len(world), 3)), 0, 1)
    sh = world.sh.copy()
    sh[:, 0] = rgb_to_sh_dc(rgb)
    return GaussianWorld(world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, sh)


def solid_world(n: int = 150, seed: int = 0) -> GaussianWorld:
    """Fairly opaque Gaussians so the keyframes constrain most colours."""
    rng = np.random.default_rng(seed)
    return GaussianWorld.from_linear(rng.uniform([-2, -1.5, 3], [2, 1.5, 5], (n, 3)), rng.uniform(0.15, 0.35, (n, 3)),
                                     rng.uniform(0.6, 0.95, n), rng.uniform(0, 1, (n, 3)))


def test_refinement_recovers_perturbed_colours_and_generalizes_to_new_views() -> None:
    truth = solid_world()
    K = Intrinsics.from_fov(32, 24, 80.0)
    kfs = keyframes_of(truth, K, np.stack([pose(-0.5), pose(0.0), pose(0.5)]))
    start = perturbed(truth)
    cfg = RefineConfig(iterations=40, scale=1.0, patch_px=None, lr_color=0.05, lr_means_m=0.0, lr_log_scales=0.0,
                       device="cpu")
    new, rep = refine_world(start, kfs, cfg)
    assert isinstance(rep, RefineReport) and rep.backend == "torch-cpu" and rep.iterations == 40
    assert len(new) == len(start) == rep.gaussians
    np.testing.assert_array_equal(new.means, start.means)  # geometry frozen when its learning rates are 0
    np.testing.assert_array_equal(new.log_scales, start.log_scales)
    assert rep.loss_after < 0.3 * rep.loss_before
    assert rep.psnr_after_db > rep.psnr_before_db + 8.0
    held_out = np.stack([pose(0.25, 0.1), pose(-0.3, -0.1, 0.2)])
    r = CpuRenderer()
    gt = r.render(truth, K, held_out).rgb
    before = np.mean([psnr_db(a, b) for a, b in zip(r.render(start, K, held_out).rgb, gt)])
    after = np.mean([psnr_db(a, b) for a, b in zip(r.render(new, K, held_out).rgb, gt)])
    assert after > before + 5.0
    # Colours move toward the truth (not all the way: some Gaussians are hidden in every keyframe).
    err_before = np.abs(sh_dc_to_rgb(start.sh[:, 0]) - sh_dc_to_rgb(truth.sh[:, 0])).mean()
    err_after = np.abs(sh_dc_to_rgb(new.sh[:, 0]) - sh_dc_to_rgb(truth.sh[:, 0])).mean()
    assert err_after < 0.85 * err_before


def textured_scene(seed: int = 0) -> GaussianWorld:
    """A "true" scene of dense small Gaussians: a checkered, noisy wall at z = 4 m and a striped
    box face at z = 2.5 m in front of it (depth edges, texture at two scales)."""
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.linspace(-3, 3, 121), np.linspace(-2.2, 2.2, 89))
    check = ((np.floor(xs * 2) + np.floor(ys * 2)) % 2).ravel()
    wall_rgb = 0.25 + 0.5 * check[:, None] * np.array([0.9, 0.6, 0.3]) + rng.normal(0, 0.08, (xs.size, 3))
    bx, by = np.meshgrid(np.linspace(-0.6, 0.6, 31), np.linspace(-0.5, 0.5, 26))
    box_rgb = np.array([0.2, 0.5, 0.8]) + 0.3 * np.sin(bx.ravel() * 12)[:, None] + rng.normal(0, 0.05, (bx.size, 3))
    means = np.concatenate([np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 4.0)], 1),
                            np.stack([bx.ravel() + 0.3, by.ravel(), np.full(bx.size, 2.5)], 1)])
    scales = np.concatenate([np.tile([0.03, 0.03, 0.005], (xs.size, 1)), np.tile([0.025, 0.025, 0.005], (bx.size, 1))])
    return GaussianWorld.from_linear(means, scales, np.full(len(means), 0.99),
                                     np.clip(np.concatenate([wall_rgb, box_rgb]), 0, 1))


def test_refining_a_lifted_world_improves_held_out_views() -> None:
    """The real use: keyframes of a scene lifted as the pipeline does, then refined with the defaults."""
    truth = textured_scene()
    K = Intrinsics.from_fov(48, 36, 80.0)
    r = CpuRenderer()
    world, kfs = GaussianWorld.empty(), []
    for T in (pose(-0.5), pose(0.5, 0.1), pose(0.0, -0.1, 0.3, 0.15)):
        kf = r.render(truth, K, T[None])
        view = r.render(world, K, T[None]) if len(world) else None
        world = world.concat(lift_keyframe(kf.rgb[0], kf.depth_m[0], K, T, None if view is None else view.alpha[0],
                                           None if view is None else view.depth_m[0])[0])
        kfs.append(KeyframeRecord(len(kfs), T, K, kf.rgb[0], kf.depth_m[0]))
    held_out = np.stack([pose(-0.25, 0.05), pose(0.25), pose(0.1, -0.05, 0.15, 0.08)])
    gt = r.render(truth, K, held_out).rgb

    def psnr(w: GaussianWorld) -> float:
        return float(np.mean([psnr_db(a, b) for a, b in zip(r.render(w, K, held_out).rgb, gt)]))

    new, rep = refine_world(world, kfs, RefineConfig(iterations=60, patch_px=24, device="cpu"))
    assert len(new) == len(world)
    assert rep.psnr_after_db > rep.psnr_before_db + 3.0
    assert psnr(new) > psnr(world) + 2.0  # measured: 20.6 -> 24.3 dB


def test_low_resolution_windows_with_dssim_and_geometry_still_reduce_the_loss() -> None:
    truth = solid_world(seed=1)
    K = Intrinsics.from_fov(48, 36, 80.0)
    kfs = keyframes_of(truth, K, np.stack([pose(-0.4), pose(0.4)]))
    start = perturbed(truth, seed=2)
    cfg = RefineConfig(iterations=25, scale=0.5, patch_px=16, views_per_step=2, lr_color=0.05, lr_means_m=1e-3,
                       lr_log_scales=5e-3, lr_quats=1e-3, ssim_weight=0.2, device="cpu", threads=1)
    new, rep = refine_world(start, kfs, cfg)
    assert len(new) == len(start)
    assert rep.loss_after < rep.loss_before
    assert not np.array_equal(new.means, start.means) and not np.array_equal(new.log_scales, start.log_scales)
    assert not np.array_equal(new.quats_wxyz, start.quats_wxyz)


def test_refinement_is_deterministic() -> None:
    truth = solid_world(60, seed=3)
    K = Intrinsics.from_fov(24, 18, 80.0)
    kfs = keyframes_of(truth, K, np.stack([pose(-0.3), pose(0.3)]))
    cfg = RefineConfig(iterations=5, scale=1.0, patch_px=12, device="cpu", seed=3)
    a, _ = refine_world(perturbed(truth), kfs, cfg)
    b, _ = refine_world(perturbed(truth), kfs, cfg)
    np.testing.assert_array_equal(a.sh, b.sh)
    np.testing.assert_array_equal(a.opacity_logits, b.opacity_logits)


def test_refine_state_swaps_the_world_in_and_marks_it_dirty() -> None:
    truth = solid_world(60, seed=4)
    K = Intrinsics.from_fov(24, 18, 80.0)
    kfs = keyframes_of(truth, K, np.stack([pose(-0.3), pose(0.3)]))
    state = WorldState("a test room", world=perturbed(truth), keyframes=kfs, dirty=False)
    old, version = state.world, state.version
    rep = refine_state(state, PhotometricRefiner(), RefineConfig(iterations=5, scale=1.0, device="cpu"))
    assert rep.applied and state.world is not old and state.dirty and state.version > version
    assert len(state.world) == len(old)


def test_refine_state_drops_its_result_when_the_world_changed_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    import srender_ros.backends.refine.photometric as refine_mod

    truth = solid_world(40, seed=5)
    K = Intrinsics.from_fov(16, 12, 80.0)
    state = WorldState("a test room", world=perturbed(truth), keyframes=keyframes_of(truth, K, POSES[:1]))
    merged = truth.concat(truth.select([0]))
    real = refine_mod.refine_world

    def refine_while_a_keyframe_arrives(*args: object, **kwargs: object) -> tuple[GaussianWorld, RefineReport]:
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        state.replace_world(merged)  # what a concurrent request would do
        return out

    monkeypatch.setattr(refine_mod, "refine_world", refine_while_a_keyframe_arrives)
    rep = refine_state(state, PhotometricRefiner(), RefineConfig(iterations=2, scale=1.0, device="cpu"))
    assert not rep.applied and "changed" in rep.note
    assert state.world is merged


def test_nothing_to_refine_leaves_the_world_alone() -> None:
    world = solid_world(10)
    same, rep = refine_world(world, [], RefineConfig(device="cpu"))
    assert same is world and rep.backend == "none" and rep.iterations == 0 and "keyframes" in rep.note
    state = WorldState("an empty room")
    rep = refine_state(state, PhotometricRefiner(), RefineConfig(device="cpu"))
    assert not rep.applied and "no Gaussians" in rep.note


@pytest.mark.parametrize("kwargs, field", [
    ({"scale": 0.0}, "scale"), ({"scale": 1.5}, "scale"), ({"iterations": -1}, "iterations"),
    ({"patch_px": 0}, "patch_px"), ({"lr_color": -1.0}, "lr_color"), ({"lr_opacity": float("nan")}, "lr_opacity"),
    ({"ssim_weight": 2.0}, "ssim_weight"), ({"patch_px": 8, "ssim_weight": 0.2}, "patch_px"),
    ({"device": "tpu"}, "device"), ({"views_per_step": 0}, "views_per_step"), ({"time_budget_s": 0.0}, "time_budget_s"),
    ({"threads": 0}, "threads"), ({"lr_quats": -0.1}, "lr_quats"),
])
def test_bad_config_is_refused_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InputError, match=field):
        RefineConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_refused() -> None:
    world = solid_world(5)
    with pytest.raises(InputError, match="keyframe #0"):
        refine_world(world, ["not a keyframe"], RefineConfig(device="cpu"))  # type: ignore[list-item]
    with pytest.raises(InputError, match="GaussianWorld"):
        refine_world("world", [], RefineConfig(device="cpu"))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="WorldState"):
        refine_state(world, PhotometricRefiner(), RefineConfig(device="cpu"))  # type: ignore[arg-type]


def test_downsample_area_is_a_box_filter() -> None:
    img = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    out = downsample_area(img, 3, 2)
    np.testing.assert_allclose(out, img.reshape(2, 2, 3, 2, 3).mean(axis=(1, 3)))
    odd = np.random.default_rng(0).uniform(size=(30, 40)).astype(np.float32)
    small = downsample_area(odd, 16, 12)  # non-integer ratio: still preserves the mean
    assert small.shape == (12, 16) and abs(small.mean() - odd.mean()) < 0.01


@requires_cuda
def test_refinement_on_cuda_with_gsplat_reduces_the_loss() -> None:
    truth = solid_world()
    K = Intrinsics.from_fov(64, 48, 80.0)
    kfs = keyframes_of(truth, K, np.stack([pose(-0.5), pose(0.0), pose(0.5)]))
    new, rep = refine_world(perturbed(truth), kfs, RefineConfig(iterations=60, scale=1.0, lr_color=0.05, device="cuda"))
    assert rep.backend == "gsplat-cuda" and len(new) == len(truth)
    assert rep.loss_after < 0.5 * rep.loss_before


# ---- the optimizer --------------------------------------------------------------------------------
def test_selective_adam_equals_adam_when_every_row_has_gradient() -> None:
    torch.manual_seed(0)
    a = torch.randn(6, 3, requires_grad=True)
    b = a.detach().clone().requires_grad_(True)
    ours, ref = SelectiveAdam([(a, 0.05)]), torch.optim.Adam([b], lr=0.05, eps=1e-15)
    for _ in range(5):
        target = torch.randn(6, 3)
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            ((p - target) ** 2).sum().backward()
            opt.step()
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-6)


def test_selective_adam_leaves_rows_without_gradient_alone() -> None:
    p = torch.zeros(4, 2, requires_grad=True)
    opt = SelectiveAdam([(p, 0.1)])
    opt.zero_grad()
    (p[:2].sum()).backward()  # rows 0, 1 seen
    opt.step()
    after_first = p.detach().clone()
    opt.zero_grad()
    (p[2:3].sum()).backward()  # only row 2 seen now: rows 0, 1 must not drift on old momentum
    opt.step()
    np.testing.assert_array_equal(p.detach()[:2].numpy(), after_first[:2].numpy())
    np.testing.assert_allclose(p.detach()[2].numpy(), [-0.1, -0.1], atol=1e-6)  # a first Adam step is lr
    np.testing.assert_array_equal(p.detach()[3].numpy(), [0.0, 0.0])
