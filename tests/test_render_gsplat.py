"""gsplat (CUDA) against the CPU rasterizer; the import/construction contract without CUDA.

The parity tests run only where CUDA works and skip cleanly elsewhere. gsplat computes in float32
with fast-math exp, so a handful of pixels may sit on the other side of a threshold (alpha 1/255,
transmittance 1e-4) than the float64 CPU renderer; the tolerances allow for that and no more.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, cuda_available, requires_cuda

from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import make_transform, quat_wxyz_to_matrix
from srender_ros.core.world import GaussianWorld, rgb_to_sh_dc
from srender_ros.errors import BackendUnavailableError

INTR = Intrinsics(160, 120, 130.0, 125.0, 79.0, 61.5)
#: Per-pixel agreement expected of float32 GPU vs float64 CPU.
PIXEL_TOL = 1e-3
#: Fraction of pixels allowed beyond PIXEL_TOL (threshold flips in float32).
FLIP_FRACTION = 2e-3


def random_world(n: int, seed: int, sh_degree: int) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.5, 8.0, n)
    x = rng.uniform(-0.7, 0.7, n) * z
    y = rng.uniform(-0.55, 0.55, n) * z
    sh = rng.normal(0.0, 0.3, (n, (sh_degree + 1) ** 2, 3)).astype(np.float32)
    sh[:, 0] = rgb_to_sh_dc(rng.uniform(0, 1, (n, 3)))
    return GaussianWorld(np.stack([x, y, z], -1).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32),
                         rng.uniform(np.log(0.005), np.log(0.3), (n, 3)).astype(np.float32),
                         rng.normal(0.5, 2.0, n).astype(np.float32), sh)


def poses(seed: int, b: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.stack([make_transform(quat_wxyz_to_matrix(np.concatenate([[1.0], rng.normal(0, 0.1, 3)])),
                                 rng.normal(0, 0.3, 3)) for _ in range(b)])
    T[0] = np.eye(4)
    return T


def assert_close_images(a: np.ndarray, b: np.ndarray, what: str) -> None:
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    assert (nan_a != nan_b).mean() <= FLIP_FRACTION, f"{what}: NaN masks differ in {(nan_a != nan_b).mean():.2%} of pixels"
    both = ~(nan_a | nan_b)
    diff = np.abs(a[both] - b[both])
    assert (diff > PIXEL_TOL).mean() <= FLIP_FRACTION, f"{what}: {(diff > PIXEL_TOL).mean():.3%} pixels differ > {PIXEL_TOL}"
    assert diff.mean() < 1e-4, f"{what}: mean abs difference {diff.mean():.2e}"


def test_import_does_not_import_gsplat_or_torch() -> None:
    code = ("import sys, srender_ros.backends.render.gsplat_backend, srender_ros.backends.render.registry; "
            "print(sorted(m for m in ('gsplat', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(cuda_available(), reason="CUDA is available here")
def test_without_cuda_construction_says_why() -> None:
    from srender_ros.backends.render.gsplat_backend import GsplatRenderer, gsplat_status

    ok, why = gsplat_status()
    assert not ok and why
    with pytest.raises(BackendUnavailableError, match=r"renderer 'gsplat' cannot run here.*'cpu'"):
        GsplatRenderer()


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize(("n", "seed", "sh_degree"), [(500, 0, 0), (3000, 1, 3), (20000, 2, 1)])
def test_gsplat_matches_cpu(n: int, seed: int, sh_degree: int) -> None:
    from srender_ros.backends.render.cpu import CpuRenderer
    from srender_ros.backends.render.gsplat_backend import GsplatRenderer

    world = random_world(n, seed, sh_degree)
    T = poses(seed, 3)
    g = GsplatRenderer().render(world, INTR, T, (0.1, 0.3, 0.6))
    c = CpuRenderer(lod_px=0).render(world, INTR, T, (0.1, 0.3, 0.6))
    assert g.rgb.dtype == g.depth_m.dtype == g.alpha.dtype == np.float32
    assert g.rgb.shape == c.rgb.shape and g.alpha.shape == c.alpha.shape
    assert c.alpha.mean() > 0.2  # the scene covers the view
    assert_close_images(g.alpha, c.alpha, "alpha")
    assert_close_images(g.rgb, c.rgb, "rgb")
    # Depth in metres: the NaN masks agree up to threshold flips; values agree relative to depth.
    nan_g, nan_c = np.isnan(g.depth_m), np.isnan(c.depth_m)
    assert (nan_g != nan_c).mean() <= FLIP_FRACTION
    both = ~(nan_g | nan_c)
    rel = np.abs(g.depth_m[both] - c.depth_m[both]) / c.depth_m[both]
    assert (rel > PIXEL_TOL).mean() <= FLIP_FRACTION and np.median(rel) < 1e-5


@pytest.mark.gpu
@requires_cuda
def test_gsplat_coverage_matches_its_render_and_cpu() -> None:
    from srender_ros.backends.render.cpu import CpuRenderer
    from srender_ros.backends.render.gsplat_backend import GsplatRenderer

    world = random_world(5000, 5, 0)
    low = INTR.scaled(0.5)
    T = poses(5, 8)
    g = GsplatRenderer()
    cov = g.coverage(world, low, T)
    np.testing.assert_allclose(cov, g.render(world, low, T).alpha, atol=1e-5)
    assert_close_images(cov, CpuRenderer(lod_px=0).coverage(world, low, T), "coverage")


@pytest.mark.gpu
@requires_cuda
def test_gsplat_empty_world_and_auto() -> None:
    from srender_ros.backends.render.gsplat_backend import GsplatRenderer
    from srender_ros.backends.render.registry import get_renderer

    out = GsplatRenderer().render(GaussianWorld.empty(), INTR, poses(0, 2), (1.0, 0.0, 0.0))
    assert np.all(out.alpha == 0) and np.isnan(out.depth_m).all()
    np.testing.assert_allclose(out.rgb[..., 0], 1.0)
    assert get_renderer("auto").name == "gsplat"
