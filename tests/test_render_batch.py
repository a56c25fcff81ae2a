"""Batched rendering (B views of several worlds in one call) against per-view rendering.

The CPU batch path must give exactly the pixels of ``render`` per view (same kernels, same order);
the generic per-world path is checked with the float64 reference; gsplat's batched launch against
the CPU batch where CUDA works (skipped elsewhere).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_cuda
from test_render_cpu import INTR, poses, random_world

from srender_ros.backends.render.cpu import CpuRenderer
from srender_ros.backends.render.reference import ReferenceRenderer
from srender_ros.core.ports.render import RenderOutput, render_batch, render_per_world
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError

CPU = CpuRenderer()


def per_view(renderer: object, worlds: list[GaussianWorld], idx: np.ndarray, T: np.ndarray,
             bg: tuple[float, float, float]) -> RenderOutput:
    outs = [renderer.render(worlds[i], INTR, T[b:b + 1], bg) for b, i in enumerate(idx)]  # type: ignore[attr-defined]
    return RenderOutput(*(np.concatenate([getattr(o, f) for o in outs]) for f in RenderOutput._fields))


def assert_same(a: RenderOutput, b: RenderOutput) -> None:
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.alpha, b.alpha)
    assert np.array_equal(a.depth_m, b.depth_m, equal_nan=True)


@pytest.mark.parametrize("batch", [1, 3, 9])
def test_cpu_batch_equals_per_view_across_worlds(batch: int) -> None:
    worlds = [random_world(600, 1, sh_degree=1), random_world(300, 2), GaussianWorld.empty(), random_world(900, 3, sh_degree=3)]
    rng = np.random.default_rng(batch)
    idx = rng.integers(0, len(worlds), batch)
    T = poses(7, batch)
    bg = (0.2, 0.3, 0.4)
    out = render_batch(CPU, worlds, idx, INTR, T, bg)
    assert out.rgb.shape == (batch, INTR.height_px, INTR.width_px, 3)
    assert_same(out, per_view(CPU, worlds, idx, T, bg))


def test_cpu_batch_many_views_one_world_equals_render() -> None:
    world = random_world(2000, 4, sh_degree=2)
    T = poses(8, 12)
    assert_same(CPU.render_batch([world], np.zeros(12, np.int64), INTR, T), CPU.render(world, INTR, T))


def test_generic_path_matches_reference() -> None:
    worlds = [random_world(200, 5), random_world(250, 6)]
    idx = np.array([1, 0, 1, 1])
    T = poses(9, 4)
    ref = render_per_world(ReferenceRenderer(), worlds, idx, INTR, T)
    fast = CPU.render_batch(worlds, idx, INTR, T)
    np.testing.assert_allclose(fast.rgb, ref.rgb, atol=1e-4)
    np.testing.assert_allclose(fast.alpha, ref.alpha, atol=1e-4)
    np.testing.assert_allclose(fast.depth_m, ref.depth_m, atol=1e-4)


def test_more_worlds_than_the_cache_holds() -> None:
    worlds = [random_world(100, 10 + i) for i in range(7)]
    idx = np.arange(7)
    T = poses(11, 7)
    assert_same(CPU.render_batch(worlds, idx, INTR, T), per_view(CPU, worlds, idx, T, (0.0, 0.0, 0.0)))


@pytest.mark.parametrize("idx, match", [([0, 2], "0..1"), ([0], "shape"), ([0.0, 1.0], "integers")])
def test_bad_world_index(idx: list[float], match: str) -> None:
    worlds = [random_world(10, 1), random_world(10, 2)]
    with pytest.raises(InputError, match=match):
        CPU.render_batch(worlds, np.array(idx), INTR, poses(1, 2))
    with pytest.raises(InputError, match=match):
        render_per_world(ReferenceRenderer(), worlds, np.array(idx), INTR, poses(1, 2))


@pytest.mark.gpu
@requires_cuda
def test_gsplat_batch_matches_cpu_batch() -> None:
    from test_render_gsplat import assert_close_images

    from srender_ros.backends.render.gsplat_backend import GsplatRenderer

    worlds = [random_world(3000, 1, sh_degree=3), random_world(1000, 2, sh_degree=0), random_world(2000, 3)]
    idx = np.array([0, 1, 2, 2, 0, 1, 1, 0])
    T = poses(3, len(idx))
    bg = (0.1, 0.2, 0.3)
    g = GsplatRenderer().render_batch(worlds, idx, INTR, T, bg)
    c = CPU.render_batch(worlds, idx, INTR, T, bg)
    assert_close_images(g.rgb, c.rgb, "rgb")
    assert_close_images(g.alpha, c.alpha, "alpha")
    assert_close_images(g.depth_m, c.depth_m, "depth")
