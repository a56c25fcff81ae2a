"""Level of detail and the cell index of the CPU renderer (backends/render/cpu_index.py)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from srender_ros.backends.render import _cpu_kernels as K
from srender_ros.backends.render.cpu import CpuRenderer, _prepare, camera_vector, lod_factor
from srender_ros.backends.render.cpu_index import LOD_LEVELS, voxel_sizes
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import invert_transform
from srender_ros.core.world import GaussianWorld, rgb_to_sh_dc
from srender_ros.errors import InputError

INTR = Intrinsics.from_fov(96, 72, 60.0)


def wall(n_side: int = 60, spacing: float = 0.01, centre: tuple[float, float, float] = (0.5, 0.5, 0.5),
         seed: int = 0) -> GaussianWorld:
    """A dense flat patch of tiny Gaussians facing -z (the camera's z), inside one 2 m cell."""
    rng = np.random.default_rng(seed)
    i, j = np.meshgrid(np.arange(n_side), np.arange(n_side), indexing="ij")
    x = centre[0] + (i.reshape(-1) - n_side / 2) * spacing
    y = centre[1] + (j.reshape(-1) - n_side / 2) * spacing
    z = np.full(x.shape, centre[2]) + rng.normal(0, 0.001, x.shape)
    n = len(x)
    scales = np.log(np.tile([0.6 * spacing, 0.6 * spacing, 0.05 * spacing], (n, 1)))
    rgb = np.stack([0.5 + 0.4 * np.sin(x * 9), 0.5 + 0.4 * np.cos(y * 7), np.full(n, 0.3)], 1)
    return GaussianWorld(np.stack([x, y, z], 1).astype(np.float32), np.tile([1.0, 0, 0, 0], (n, 1)).astype(np.float32),
                         scales.astype(np.float32), np.full(n, 2.0, np.float32), rgb_to_sh_dc(rgb)[:, None, :])


def looking_at(centre: tuple[float, float, float], distance_m: float) -> np.ndarray:
    """[1, 4, 4] optical pose (z forward) at distance_m in front of centre along -z, looking at it."""
    T = np.eye(4)
    T[:3, 3] = [centre[0], centre[1], centre[2] - distance_m]
    return T[None]


def expected_level(distance_m: float, lod_px: float) -> int:
    """The documented rule: the coarsest level whose voxel projects to <= lod_px at that distance."""
    f = max(INTR.fx_px, INTR.fy_px)
    vox = voxel_sizes()
    levels = [lv for lv in range(1, LOD_LEVELS + 1) if f * vox[lv] / distance_m <= lod_px]
    return max(levels, default=0)


def test_rule_picks_level_by_projected_size() -> None:
    world = wall()
    p = _prepare(world)
    assert p.cells.shape[0] == 1  # the patch lies in one cell
    counts = [int(p.bstart[p.crange[0, lv, 1]] - p.bstart[p.crange[0, lv, 0]]) for lv in range(LOD_LEVELS + 1)]
    assert counts[0] == len(world) and all(a >= b for a, b in itertools.pairwise(counts))
    assert counts[-1] < counts[0] / 50  # coarse levels really merge
    seen = set()
    for d in (0.8, 1.0, 3.0, 6.0, 12.0, 25.0, 50.0, 100.0):
        T = looking_at((0.5, 0.5, 0.5), d)
        cam = camera_vector(INTR, invert_transform(T)[0], T[0, :3, 3])
        # Distance to the box of the cell's Gaussian centres (no Gaussian is nearer).
        means = world.means.astype(np.float64)
        gap = np.maximum(np.maximum(means.min(0) - T[0, :3, 3], 0.0), T[0, :3, 3] - means.max(0))
        d_sphere = max(float(np.linalg.norm(gap)), 0.01)
        level = K.cell_level(p.cells, 0, cam, p.lodvox, lod_factor(INTR, 1.0))
        assert level == expected_level(d_sphere, 1.0)
        seen.add(level)
        # ... and exactly that level's Gaussians are projected.
        rec, keyf, rgid = np.empty((p.nrows, K.NREC)), np.empty(p.nrows, np.float32), np.empty(p.nrows, np.int64)
        n = K.project_cells(0, 1, p.G, p.bstart, p.bounds, p.cells, p.crange, p.lodvox, lod_factor(INTR, 1.0),
                            p.gid, p.sh, p.csh, cam, rec, keyf, rgid, 0, True)
        assert n == counts[level]
        assert lod_factor(INTR, 0.0) * p.lodvox[1] > 1e100  # lod_px = 0: never coarse
    assert 0 in seen and len(seen) >= 3


def test_near_camera_renders_exactly_the_fine_level() -> None:
    world = wall()
    T = looking_at((0.5, 0.5, 0.5), 0.4)
    lod, exact = CpuRenderer(lod_px=1.0), CpuRenderer(lod_px=0.0)
    a, b = lod.render(world, INTR, T), exact.render(world, INTR, T)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.alpha, b.alpha)
    np.testing.assert_array_equal(lod.coverage(world, INTR, T), exact.coverage(world, INTR, T))


def test_far_camera_draws_coarse_levels_close_to_exact() -> None:
    world = wall(n_side=120, spacing=0.008)
    T = np.concatenate([looking_at((0.5, 0.5, 0.5), d) for d in (4.0, 8.0)])
    lod, exact = CpuRenderer(lod_px=1.0), CpuRenderer(lod_px=0.0)
    a, b = lod.render(world, INTR, T), exact.render(world, INTR, T)
    assert not np.array_equal(a.rgb, b.rgb)  # the coarse level was drawn
    # The stated tolerance: coarse levels differ from the exact image by < 0.05 mean absolute alpha/colour.
    assert float(np.abs(a.alpha - b.alpha).mean()) < 0.05
    assert float(np.abs(a.rgb - b.rgb).mean()) < 0.05
    mse = float(np.mean((a.rgb - b.rgb) ** 2))
    assert 10 * np.log10(1.0 / mse) > 30.0


def test_merge_runs_is_moment_matching() -> None:
    pos = np.array([[0.0, 0, 0], [1.0, 0, 0], [5.0, 5, 5]])
    cov = np.array([[0.01, 0, 0, 0.01, 0, 0.01]] * 3)
    op = np.array([0.5, 0.5, 0.9])
    col = np.array([[[1.0, 0, 0]], [[0.0, 1, 0]], [[0, 0, 1.0]]], np.float32)
    mpos, mcov, mop, mcol = K.merge_runs(np.array([0, 2]), pos, cov, op, col)
    np.testing.assert_allclose(mpos[0], [0.5, 0, 0])
    np.testing.assert_allclose(mcov[0], [0.01 + 0.25, 0, 0, 0.01, 0, 0.01])
    np.testing.assert_allclose(mcol[0, 0], [0.5, 0.5, 0])
    np.testing.assert_allclose(mop[0], min(0.5, (0.5 * 0.03 * 2) / 0.28))
    np.testing.assert_allclose(mpos[1], pos[2])  # a run of one is the Gaussian itself
    np.testing.assert_allclose(mcov[1], cov[2])
    assert mop[1] == pytest.approx(0.9)


def test_batch_and_coverage_use_the_same_levels() -> None:
    world = wall(n_side=80, spacing=0.01)
    T = np.concatenate([looking_at((0.5, 0.5, 0.5), d) for d in (0.5, 3.0, 6.0, 9.0)])
    r = CpuRenderer(lod_px=1.0)
    single = r.render(world, INTR, T)
    batch = r.render_batch([world], np.zeros(len(T), int), INTR, T)
    np.testing.assert_array_equal(single.rgb, batch.rgb)
    np.testing.assert_array_equal(single.alpha, r.coverage(world, INTR, T))


def test_bad_lod_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRENDER_CPU_LOD_PX", "fine")
    with pytest.raises(InputError, match="SRENDER_CPU_LOD_PX"):
        CpuRenderer()
    monkeypatch.setenv("SRENDER_CPU_LOD_PX", "0")
    assert CpuRenderer().lod_px == 0.0
