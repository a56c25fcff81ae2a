"""GaussianWorld: validation of bad input and the pure operations (concat, select, prune, crop, bbox, SH degree)."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.core.world import SH_C0, GaussianWorld, num_sh_coeffs, sh_dc_to_rgb
from srender_ros.errors import InputError


def random_world(n: int, sh_degree: int = 0, seed: int = 0) -> GaussianWorld:
    rng = np.random.default_rng(seed)
    return GaussianWorld(rng.normal(size=(n, 3)), rng.normal(size=(n, 4)), rng.normal(-2, 0.5, size=(n, 3)),
                         rng.normal(size=n), rng.normal(size=(n, num_sh_coeffs(sh_degree), 3)))


def assert_same(a: GaussianWorld, b: GaussianWorld) -> None:
    for f in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


# ---- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["means", "quats_wxyz", "log_scales", "opacity_logits", "sh"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_the_field_and_gaussian(field: str, bad: float) -> None:
    w = random_world(5)
    arrays = {f: np.array(getattr(w, f)) for f in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh")}
    arrays[field].reshape(5, -1)[3, 0] = bad
    with pytest.raises(InputError, match=rf"GaussianWorld\.{field}: Gaussian #3 has NaN or inf"):
        GaussianWorld(**arrays)


@pytest.mark.parametrize(("field", "shape"), [("means", (5, 2)), ("quats_wxyz", (5, 3)), ("log_scales", (4, 3)),
                                              ("opacity_logits", (5, 1)), ("sh", (5, 4, 1))])
def test_mismatched_shapes_name_the_field(field: str, shape: tuple[int, ...]) -> None:
    w = random_world(5)
    arrays = {f: getattr(w, f) for f in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh")}
    arrays[field] = np.zeros(shape, np.float32)
    with pytest.raises(InputError, match=rf"GaussianWorld\.{field}"):
        GaussianWorld(**arrays)


def test_sh_count_must_be_a_square() -> None:
    with pytest.raises(InputError, match="not \\(degree\\+1\\)\\^2"):
        GaussianWorld(np.zeros((1, 3)), np.array([[1.0, 0, 0, 0]]), np.zeros((1, 3)), np.zeros(1), np.zeros((1, 5, 3)))


def test_zero_quaternion_refused_and_others_normalized() -> None:
    q = np.array([[2.0, 0, 0, 0], [0, 0, 0, 0]])
    with pytest.raises(InputError, match="quats_wxyz: Gaussian #1 has a zero quaternion"):
        GaussianWorld(np.zeros((2, 3)), q, np.zeros((2, 3)), np.zeros(2), np.zeros((2, 1, 3)))
    w = GaussianWorld(np.zeros((2, 3)), np.array([[2.0, 0, 0, 0], [0, 0, 3.0, 4.0]]), np.zeros((2, 3)), np.zeros(2),
                      np.zeros((2, 1, 3)))
    np.testing.assert_allclose(w.quats_wxyz, [[1, 0, 0, 0], [0, 0, 0.6, 0.8]], atol=1e-7)


def test_arrays_are_read_only_float32() -> None:
    w = GaussianWorld(np.zeros((1, 3), np.float64), np.array([[1, 0, 0, 0]]), np.zeros((1, 3)), np.zeros(1), np.zeros((1, 1, 3)))
    assert w.means.dtype == np.float32 and w.quats_wxyz.dtype == np.float32
    with pytest.raises(ValueError):
        w.means[0, 0] = 1.0


@pytest.mark.parametrize("scale", [0.0, -0.1, np.nan, np.inf])
def test_from_linear_refuses_bad_scales(scale: float) -> None:
    scales = np.full((3, 3), 0.1)
    scales[2, 1] = scale
    with pytest.raises(InputError, match="scales: Gaussian #2 has a zero, negative or non-finite scale"):
        GaussianWorld.from_linear(np.zeros((3, 3)), scales, np.full(3, 0.5), np.zeros((3, 3)))


@pytest.mark.parametrize(("arg", "shape"), [("scales_m", (2, 3)), ("opacities", (3, 1)), ("rgb", (3, 4)),
                                            ("quats_wxyz", (3, 3)), ("means", (3, 2))])
def test_from_linear_mismatched_shapes_name_the_argument(arg: str, shape: tuple[int, ...]) -> None:
    kwargs: dict[str, np.ndarray] = {"means": np.zeros((3, 3)), "scales_m": np.full((3, 3), 0.1),
                                     "opacities": np.full(3, 0.5), "rgb": np.zeros((3, 3))}
    kwargs[arg] = np.full(shape, 0.5)
    with pytest.raises(InputError, match=rf"^{arg}: expected shape"):
        GaussianWorld.from_linear(**kwargs)


def test_from_linear_refuses_opacity_out_of_range_and_nan_colour() -> None:
    with pytest.raises(InputError, match="opacities"):
        GaussianWorld.from_linear(np.zeros((1, 3)), np.full((1, 3), 0.1), np.array([1.5]), np.zeros((1, 3)))
    with pytest.raises(InputError, match=r"GaussianWorld\.sh: Gaussian #0"):
        GaussianWorld.from_linear(np.zeros((1, 3)), np.full((1, 3), 0.1), np.array([0.5]), np.array([[np.nan, 0, 0]]))


def test_from_linear_round_trips_linear_quantities() -> None:
    rgb = np.array([[0.2, 0.5, 0.9], [1.0, 0.0, 0.3]])
    w = GaussianWorld.from_linear(np.ones((2, 3)), np.array([[0.1, 0.2, 0.3], [1, 2, 3]]), np.array([0.25, 0.9]), rgb,
                                  sh_degree=2)
    np.testing.assert_allclose(w.scales_m, [[0.1, 0.2, 0.3], [1, 2, 3]], rtol=1e-6)
    np.testing.assert_allclose(w.opacities, [0.25, 0.9], rtol=1e-6)
    np.testing.assert_allclose(sh_dc_to_rgb(w.sh[:, 0]), rgb, atol=1e-6)
    assert w.sh_degree == 2 and not w.sh[:, 1:].any()


# ---- operations ---------------------------------------------------------------------------------
def test_concat_promotes_sh_degree_with_zero_padding() -> None:
    a, b = random_world(3, sh_degree=1, seed=1), random_world(2, sh_degree=3, seed=2)
    c = a.concat(b)
    assert len(c) == 5 and c.sh_degree == 3 and c.sh.shape == (5, 16, 3)
    np.testing.assert_array_equal(c.sh[:3, :4], a.sh)
    assert not c.sh[:3, 4:].any()
    np.testing.assert_array_equal(c.sh[3:], b.sh)
    np.testing.assert_array_equal(c.means, np.concatenate([a.means, b.means]))
    np.testing.assert_array_equal(c.opacity_logits, np.concatenate([a.opacity_logits, b.opacity_logits]))
    assert_same(b.merge(a).select(np.arange(2)), b)
    assert_same(a.concat(), a)
    assert len(GaussianWorld.empty().concat(GaussianWorld.empty(2))) == 0
    with pytest.raises(InputError, match="expected a GaussianWorld"):
        a.concat(np.zeros(3))  # type: ignore[arg-type]


def test_with_sh_degree_up_and_down() -> None:
    w = random_world(4, sh_degree=2)
    up = w.with_sh_degree(3)
    np.testing.assert_array_equal(up.sh[:, :9], w.sh)
    assert not up.sh[:, 9:].any()
    down = w.with_sh_degree(0)
    assert down.sh.shape == (4, 1, 3)
    np.testing.assert_array_equal(down.sh[:, 0], w.sh[:, 0])
    assert w.with_sh_degree(2) is w
    with pytest.raises(InputError, match="sh_degree=4"):
        w.with_sh_degree(4)


def test_select_mask_indices_and_errors() -> None:
    w = random_world(6)
    mask = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(w.select(mask).means, w.means[[0, 2, 5]])
    np.testing.assert_array_equal(w.select([5, -6, 5]).means, w.means[[5, 0, 5]])
    assert len(w.select([])) == 0
    with pytest.raises(InputError, match=r"mask has shape \[5\], expected \[6\]"):
        w.select(mask[:5])
    with pytest.raises(InputError, match="index 6 is out of range for 6"):
        w.select([0, 6])
    with pytest.raises(InputError, match="dtype float"):
        w.select(np.array([0.5]))


def test_prune_by_opacity_and_scale() -> None:
    w = GaussianWorld.from_linear(np.zeros((4, 3)), np.array([[0.01] * 3, [0.01] * 3, [0.5, 0.01, 0.01], [2.0] * 3]),
                                  np.array([0.005, 0.5, 0.9, 0.9]), np.zeros((4, 3)))
    np.testing.assert_array_equal(w.prune(min_opacity=0.01).opacities, w.opacities[1:])
    kept = w.prune(min_opacity=0.01, max_scale_m=1.0)
    np.testing.assert_allclose(kept.scales_m.max(axis=1), [0.01, 0.5], rtol=1e-6)
    assert len(w.prune()) == 4
    assert len(w.prune(max_scale_m=0.5)) == 3  # bound included
    with pytest.raises(InputError, match="min_opacity"):
        w.prune(min_opacity=1.5)
    with pytest.raises(InputError, match="max_scale_m"):
        w.prune(max_scale_m=0.0)


def test_crop_inclusive_box() -> None:
    means = np.array([[0, 0, 0], [1, 1, 1], [1.0001, 0, 0], [-1, -1, -1], [0.5, 2, 0.5]])
    w = GaussianWorld.from_linear(means, np.full((5, 3), 0.1), np.full(5, 0.5), np.zeros((5, 3)))
    np.testing.assert_array_equal(w.crop([-1, -1, -1], [1, 1, 1]).means, w.means[[0, 1, 3]])
    assert len(w.crop([5, 5, 5], [6, 6, 6])) == 0
    with pytest.raises(InputError, match="exceeds bbox_max"):
        w.crop([1, 0, 0], [0, 1, 1])
    with pytest.raises(InputError, match="bbox_min must be 3 numbers"):
        w.crop([0, 0], [1, 1, 1])


def test_bounding_box_exact_and_robust() -> None:
    rng = np.random.default_rng(3)
    means = rng.uniform(-1, 1, size=(1000, 3))
    means[0] = [100, -100, 50]  # one floater
    w = GaussianWorld.from_linear(means, np.full((1000, 3), 0.1), np.full(1000, 0.5), np.zeros((1000, 3)))
    lo, hi = w.bounding_box()
    np.testing.assert_allclose(lo, means.min(0), rtol=1e-6)
    np.testing.assert_allclose(hi, means.max(0), rtol=1e-6)
    rlo, rhi = w.bounding_box(percentile=1.0)
    assert (rlo > -1.0).all() and (rhi < 1.0).all() and (rlo < -0.9).all() and (rhi > 0.9).all()
    with pytest.raises(InputError, match="no Gaussians"):
        GaussianWorld.empty().bounding_box()
    with pytest.raises(InputError, match="percentile"):
        w.bounding_box(percentile=50.0)


def test_operations_do_not_change_the_original() -> None:
    w = random_world(5, sh_degree=1)
    before = {f: np.array(getattr(w, f)) for f in ("means", "sh", "opacity_logits")}
    w.select([0]), w.prune(0.5), w.crop([-1, -1, -1], [1, 1, 1]), w.concat(w), w.with_sh_degree(3)
    for f, a in before.items():
        np.testing.assert_array_equal(getattr(w, f), a)


def test_nbytes_and_dc_colour() -> None:
    w = random_world(10, sh_degree=3)
    assert w.nbytes == 10 * 4 * (3 + 4 + 3 + 1 + 48)
    assert SH_C0 == pytest.approx(0.5 / np.sqrt(np.pi))
