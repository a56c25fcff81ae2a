"""The CPU rasterizer against the float64 brute-force reference, the reference against gsplat's own
pure-torch projection and SH code, and the renderer registry."""

from __future__ import annotations

import importlib.util
import logging

import numpy as np
import pytest
from conftest import cuda_available

from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.backends.render.projection import ewa_project, project_points, sh_to_rgb, view_matrices
from srender_ros.backends.render.reference import ReferenceRenderer
from srender_ros.backends.render.registry import RENDERER_NAMES, available_renderers, get_renderer
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix
from srender_ros.core.ports.render import NEAR_PLANE_M
from srender_ros.core.world import GaussianWorld, rgb_to_sh_dc
from srender_ros.errors import BackendUnavailableError, InputError

TOL = 1e-4
INTR = Intrinsics(64, 48, 50.0, 55.0, 31.0, 25.5)  # not tile-aligned, off-centre, non-square pixels
CPU = CpuRenderer(lod_px=0)  # exact mode: parity with the reference (LOD: tests/test_render_lod.py)
REF = ReferenceRenderer()


def random_world(n: int, seed: int, sh_degree: int = 0, depth: tuple[float, float] = (0.5, 6.0)) -> GaussianWorld:
    """n Gaussians mostly inside the frustum of the identity camera, random shapes and colours."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(*depth, n)
    x = rng.uniform(-0.6, 0.6, n) * z
    y = rng.uniform(-0.45, 0.45, n) * z
    k = (sh_degree + 1) ** 2
    sh = rng.normal(0.0, 0.4, (n, k, 3)).astype(np.float32)
    sh[:, 0] = rgb_to_sh_dc(rng.uniform(0, 1, (n, 3)))
    return GaussianWorld(
        np.stack([x, y, z], -1).astype(np.float32),
        rng.normal(size=(n, 4)).astype(np.float32),
        rng.uniform(np.log(0.01), np.log(0.6), (n, 3)).astype(np.float32),
        rng.normal(0.5, 2.0, n).astype(np.float32),
        sh,
    )


def poses(seed: int, b: int) -> np.ndarray:
    """[b, 4, 4] small random camera motions around the identity (optical frame)."""
    rng = np.random.default_rng(seed)
    T = np.empty((b, 4, 4))
    for i in range(b):
        q = np.concatenate([[1.0], rng.normal(0, 0.08, 3)])
        T[i] = make_transform(quat_wxyz_to_matrix(q), rng.normal(0, 0.2, 3))
    T[0] = np.eye(4)
    return T


def assert_parity(world: GaussianWorld, T: np.ndarray, bg: tuple[float, float, float] = (0.0, 0.0, 0.0),
                  intr: Intrinsics = INTR) -> None:
    a = CPU.render(world, intr, T, bg)
    r = REF.render(world, intr, T, bg)
    assert a.rgb.shape == r.rgb.shape == (len(T), intr.height_px, intr.width_px, 3)
    assert a.rgb.dtype == a.depth_m.dtype == a.alpha.dtype == np.float32
    np.testing.assert_allclose(a.alpha, r.alpha, atol=TOL, rtol=0)
    np.testing.assert_allclose(a.rgb, r.rgb, atol=TOL, rtol=0)
    nan_a, nan_r = np.isnan(a.depth_m), np.isnan(r.depth_m)
    np.testing.assert_array_equal(nan_a, nan_r)
    np.testing.assert_allclose(a.depth_m[~nan_a], r.depth_m[~nan_r], atol=TOL, rtol=0)
    np.testing.assert_allclose(CPU.coverage(world, intr, T), r.alpha, atol=TOL, rtol=0)


@pytest.mark.parametrize(("n", "seed", "sh_degree"), [(1, 0, 0), (20, 1, 0), (120, 2, 1), (300, 3, 3), (300, 4, 2)])
def test_random_worlds_match_reference(n: int, seed: int, sh_degree: int) -> None:
    world = random_world(n, seed, sh_degree)
    assert_parity(world, poses(seed, 2), bg=(0.2, 0.5, 0.9))
    alpha = REF.render(world, INTR, np.eye(4)).alpha  # the test actually draws something
    assert alpha.max() > 0.1 and (n == 1 or alpha.mean() > 0.1)


def test_tile_aligned_and_odd_sizes_match_reference() -> None:
    world = random_world(150, 7, 1)
    for intr in (Intrinsics.from_fov(48, 32, 75.0), Intrinsics(17, 33, 20.0, 20.0, 8.5, 16.5)):
        assert_parity(world, poses(7, 1), intr=intr)


def test_edge_cases_match_reference() -> None:
    rng = np.random.default_rng(11)
    means, scales, opac, rgb = [], [], [], []

    def add(m, s, o, c=None) -> None:  # type: ignore[no-untyped-def]
        means.append(m)
        scales.append(s)
        opac.append(o)
        rgb.append(rng.uniform(0, 1, 3) if c is None else c)

    add([0.0, 0.0, -1.0], [0.3, 0.3, 0.3], 0.9)  # behind the camera
    add([0.1, 0.0, -0.05], [0.2, 0.2, 0.2], 0.9)  # behind, but reaching across the near plane
    add([0.0, 0.0, NEAR_PLANE_M * 0.5], [0.01, 0.01, 0.01], 0.9)  # centre just before the near plane
    add([0.0, 0.01, NEAR_PLANE_M * 1.5], [0.002, 0.003, 0.001], 0.8)  # just beyond the near plane
    add([0.3, -0.2, 3.0], [30.0, 20.0, 10.0], 0.3)  # huge
    add([-0.4, 0.3, 2.0], [1e-5, 2e-5, 1e-5], 0.95)  # tiny: only eps2d blur remains
    add([1.32, 0.0, 1.0], [0.05, 0.05, 0.05], 0.9)  # centre outside the right border, box inside
    add([-0.7, -0.5, 1.2], [0.02, 0.08, 0.02], 0.9)  # near the top-left corner
    add([0.0, 0.6, 1.0], [0.1, 0.01, 0.1], 0.9)  # at the bottom border
    add([5.0, 0.0, 1.0], [0.01, 0.01, 0.01], 0.9)  # far outside the image
    add([0.0, 0.0, 1.5], [0.2, 0.2, 0.2], 1e-6)  # fully transparent (culled)
    add([0.05, 0.0, 1.5], [0.2, 0.2, 0.2], 1.0 / 255.0 * 1.01)  # just above the opacity cut
    for _ in range(6):  # an opaque stack: pixels saturate and stop early
        add([0.0, 0.0, 4.0 + rng.uniform(0, 0.1)], [0.5, 0.5, 0.05], 0.999999)
    add([0.2, 0.1, 2.5], [0.1, 0.1, 0.1], 0.7, [0.9, 0.1, 0.1])  # two at exactly the same depth:
    add([0.25, 0.1, 2.5], [0.1, 0.1, 0.1], 0.7, [0.1, 0.1, 0.9])  # ties keep index order
    world = GaussianWorld.from_linear(np.array(means), np.array(scales), np.array(opac), np.array(rgb),
                                      quats_wxyz=rng.normal(size=(len(means), 4)))
    assert_parity(world, poses(5, 3), bg=(1.0, 1.0, 1.0))


def test_equal_depths_keep_index_order() -> None:
    # A plane facing the camera: every Gaussian has the same depth, so only the index decides the
    # order (gsplat's stable sort); the cpu backend stores Gaussians in spatial order internally.
    rng = np.random.default_rng(4)
    n = 120
    xy = rng.uniform(-0.5, 0.5, (n, 2))
    world = GaussianWorld.from_linear(np.column_stack([xy, np.full(n, 1.5)]), np.full((n, 3), 0.08),
                                      rng.uniform(0.3, 0.95, n), rng.uniform(0, 1, (n, 3)))
    assert_parity(world, np.eye(4)[None])


def test_many_blocks_at_the_borders_match_reference() -> None:
    # Tight clusters of tiny Gaussians whose centres project 0.5-2.5 px outside the image borders
    # (only their eps2d blur reaches in), plus a scattered crowd around the frustum and the near
    # plane: the cpu backend culls whole spatial blocks per view and must never drop a visible one.
    rng = np.random.default_rng(8)
    clusters = []
    for k, (u, v) in enumerate([(-1.0, 20.0), (64 + 2.0, 30.0), (40.0, -2.5), (10.0, 48 + 0.5), (-1.5, -1.5)]):
        z = 1.0 + 0.7 * k
        c = np.array([(u - INTR.cx_px) / INTR.fx_px * z, (v - INTR.cy_px) / INTR.fy_px * z, z])
        clusters.append(c + rng.normal(0, 1e-4, (300, 3)))
    n = 1500
    z = rng.uniform(-0.5, 4.0, n)
    zc = np.maximum(np.abs(z), 0.05)
    u = rng.uniform(-0.1, 1.1, n) * INTR.width_px
    v = rng.uniform(-0.1, 1.1, n) * INTR.height_px
    crowd = np.column_stack([(u - INTR.cx_px) / INTR.fx_px * zc, (v - INTR.cy_px) / INTR.fy_px * zc, z])
    means = np.concatenate(clusters + [crowd])
    m = len(means)
    scales = np.concatenate([np.full((1500, 3), 1e-5), np.exp(rng.uniform(np.log(0.002), np.log(0.05), (n, 3)))])
    world = GaussianWorld.from_linear(means, scales, rng.uniform(0.05, 1.0, m), rng.uniform(0, 1, (m, 3)),
                                      rng.normal(size=(m, 4)))
    T = np.eye(4)[None]
    assert (REF.render(world, INTR, T).alpha[0, :, 0] > 0.01).any()  # the left cluster does reach in
    assert_parity(world, np.concatenate([T, poses(8, 2)[1:]]))


def test_empty_world_renders_background() -> None:
    world = GaussianWorld.empty(sh_degree=3)
    out = CPU.render(world, INTR, poses(0, 2), (0.25, 0.5, 0.75))
    assert np.all(out.alpha == 0) and np.isnan(out.depth_m).all()
    np.testing.assert_allclose(out.rgb[1, 3, 4], [0.25, 0.5, 0.75])
    assert_parity(world, poses(0, 2))
    assert CPU.coverage(world, INTR, poses(0, 5)).shape == (5, 48, 64)


def test_single_gaussian_sanity() -> None:
    intr = Intrinsics.from_fov(64, 48, 60.0)
    z = 2.0
    world = GaussianWorld.from_linear(np.array([[0.0, 0.0, z]]), np.full((1, 3), 0.05), np.array([0.9]),
                                      np.array([[0.8, 0.3, 0.1]]))
    out = CPU.render(world, intr, np.eye(4), (0.0, 0.0, 1.0))
    # The mean projects to (cx, cy) = (32, 24): the corner of four pixels, each 0.5 px off in x and y.
    sigma_px = 0.05 * intr.fx_px / z
    var = sigma_px**2 + 0.3
    alpha_c = 0.9 * np.exp(-0.5 * (0.25 + 0.25) / var)
    np.testing.assert_allclose(out.alpha[0, 23:25, 31:33], alpha_c, rtol=1e-5)
    np.testing.assert_allclose(out.rgb[0, 24, 32], np.array([0.8, 0.3, 0.1]) * alpha_c + [0, 0, 1 - alpha_c], rtol=1e-5)
    np.testing.assert_allclose(out.depth_m[0, 24, 32], z, rtol=1e-6)
    assert out.alpha[0, 0, 0] == 0.0 and np.isnan(out.depth_m[0, 0, 0])
    np.testing.assert_allclose(out.rgb[0, 0, 0], [0, 0, 1])
    # Moving the camera 1 m back moves the depth by 1 m.
    T = np.eye(4)
    T[2, 3] = -1.0
    np.testing.assert_allclose(CPU.render(world, intr, T).depth_m[0, 24, 32], z + 1.0, rtol=1e-6)


def test_batch_and_coverage_agree_with_single_views() -> None:
    world = random_world(200, 9, 0)
    T = poses(9, 6)
    batch = CPU.render(world, INTR, T)
    for i in (0, 3, 5):
        one = CPU.render(world, INTR, T[i])
        np.testing.assert_array_equal(batch.rgb[i], one.rgb[0])
    cov = CPU.coverage(world, INTR, T)  # 6 poses: the pose-parallel kernel
    np.testing.assert_array_equal(cov, batch.alpha)
    small = INTR.scaled(0.5)
    np.testing.assert_array_equal(CPU.coverage(world, small, T[:1]), CPU.render(world, small, T[:1]).alpha)


def test_view_dependent_colour_changes_with_viewpoint() -> None:
    rng = np.random.default_rng(3)
    sh = np.zeros((1, 16, 3), np.float32)
    sh[0, 0] = rgb_to_sh_dc([0.5, 0.5, 0.5])
    sh[0, 1:] = rng.normal(0, 0.5, (15, 3))
    world = GaussianWorld(np.array([[0.0, 0.0, 2.0]], np.float32), np.array([[1.0, 0, 0, 0]], np.float32),
                          np.log(np.full((1, 3), 0.3, np.float32)), np.array([5.0], np.float32), sh)
    T = poses(1, 3)
    out = CPU.render(world, INTR, T)
    colours = out.rgb[:, 24, 31]
    assert np.abs(colours[0] - colours[1]).max() > 1e-3
    assert_parity(world, T)


def test_reference_projection_matches_gsplat_torch_impl() -> None:
    torch = pytest.importorskip("torch")
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    world = random_world(200, 21, 3)
    T = poses(21, 2)
    V = view_matrices(T)
    # The torch reference uses a fixed extent of 3.33 sigma; gsplat 1.5.3's CUDA kernel (and ours) use
    # min(3.33, sqrt(2 ln(255 o))), which is 3.329 at o ~ 1: radii agree or ours is 1 px smaller.
    world1 = GaussianWorld(world.means, world.quats_wxyz, world.log_scales, np.full(len(world), 12.0, np.float32), world.sh)
    covars, _ = impl._quat_scale_to_covar_preci(torch.tensor(world.quats_wxyz).double(),
                                                torch.exp(torch.tensor(world.log_scales).double()), compute_preci=False)
    radii, means2d, depths, conics, _ = impl._fully_fused_projection(
        torch.tensor(world.means).double(), covars, torch.from_numpy(V), torch.from_numpy(INTR.K)[None].expand(2, 3, 3),
        INTR.width_px, INTR.height_px, eps2d=0.3)
    for b in range(2):
        P = ewa_project(world1, INTR, V[b])
        v = P.valid
        np.testing.assert_array_equal(v, (radii[b] > 0).all(-1).numpy())
        np.testing.assert_allclose(P.mean2d_px[v], means2d[b].numpy()[v], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(P.depth_m[v], depths[b].numpy()[v], rtol=1e-12)
        np.testing.assert_allclose(P.conic[v], conics[b].numpy()[v], rtol=1e-8, atol=1e-12)
        diff = radii[b].numpy()[v] - P.radius_px[v]
        assert diff.min() >= 0 and diff.max() <= 1 and (diff == 0).mean() > 0.9
    dirs = np.random.default_rng(0).normal(size=(len(world), 3))
    for degree in range(4):
        k = (degree + 1) ** 2
        ref = impl._spherical_harmonics(degree, torch.from_numpy(dirs), torch.tensor(world.sh[:, :k]).double())
        np.testing.assert_allclose(sh_to_rgb(world.sh[:, :k], dirs), torch.clamp_min(ref + 0.5, 0.0).numpy(), atol=1e-6)


def test_project_points() -> None:
    T = np.eye(4)
    T[:3, 3] = [0.0, 0.0, -1.0]
    uv, z = project_points(np.stack([T, np.eye(4)]), INTR, np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -2.0]]))
    assert uv.shape == (2, 2, 2) and z.shape == (2, 2)
    np.testing.assert_allclose(uv[0, 0], [INTR.cx_px, INTR.cy_px])
    np.testing.assert_allclose(z[:, 0], [2.0, 1.0])
    assert np.isnan(uv[:, 1]).all()


@pytest.mark.parametrize(
    ("pose", "match"),
    [(np.eye(3), "shape"), (np.full((4, 4), np.nan), "NaN"), (np.diag([2.0, 1.0, 1.0, 1.0]), "rotation"),
     (np.diag([1.0, 1.0, -1.0, 1.0]), "rotation")],
)
def test_bad_poses_are_refused(pose: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        CPU.render(random_world(3, 0), INTR, pose)
    with pytest.raises(InputError, match=match):
        CPU.coverage(random_world(3, 0), INTR, pose)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InputError, match="background_rgb"):
        CPU.render(random_world(3, 0), INTR, np.eye(4), (0.0, float("nan"), 0.0))
    with pytest.raises(InputError, match="GaussianWorld"):
        CPU.render("world", INTR, np.eye(4))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="Intrinsics"):
        CPU.coverage(random_world(3, 0), (64, 48), np.eye(4))  # type: ignore[arg-type]


def test_registry(caplog: pytest.LogCaptureFixture) -> None:
    assert get_renderer("cpu").name == "cpu"
    assert "cpu" in available_renderers()
    with pytest.raises(InputError, match="cpu, gsplat"):
        get_renderer("opengl")
    assert set(RENDERER_NAMES) == {"auto", "cpu", "gsplat"}
    with caplog.at_level(logging.INFO, logger="srender_ros.backends.render.registry"):
        r = get_renderer("auto")
    # Decided here without the registry's own check: gsplat where CUDA works and gsplat imports.
    expected = "gsplat" if cuda_available() and importlib.util.find_spec("gsplat") is not None else "cpu"
    assert r.name == expected
    assert f"auto -> {expected}" in caplog.text
    if not cuda_available():
        with pytest.raises(BackendUnavailableError, match="CUDA"):
            get_renderer("gsplat")
