"""Depth alignment: robust scale + shift in inverse depth, and the metric prior for a first keyframe."""

from __future__ import annotations

import numpy as np
import pytest

from srender_ros.backends.generators.diffusers_gen.depth import (
    MIN_ALIGN_PIXELS,
    MetricPrior,
    align_depth,
    fit_scale_shift_robust,
    inverse_to_depth,
    prior_depth,
)
from srender_ros.errors import InputError


def _scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A metric depth map: a slanted floor-like ramp from 1 m to 8 m plus a box at 1.5 m."""
    rng = np.random.default_rng(seed)
    depth = np.linspace(1.0, 8.0, h)[:, None] * np.ones((1, w))
    depth[10:25, 20:40] = 1.5
    return depth * (1.0 + 0.01 * rng.standard_normal((h, w)))


def test_align_recovers_scale_and_shift_with_20pct_outliers() -> None:
    rng = np.random.default_rng(1)
    ref = _scene()
    true_scale, true_shift = 0.37, 0.05
    # The monocular model's relative inverse depth is an unknown affine map of the true inverse depth.
    pred = (1.0 / ref - true_shift) / true_scale
    valid = np.ones(ref.shape, bool)
    valid[:, :4] = False  # pixels without world depth are ignored
    ref_seen = ref.copy()
    ref_seen[~valid] = np.nan
    # 20% of the valid pixels get a wrong world depth (disocclusions, floaters): up to 10x off.
    outliers = (rng.random(ref.shape) < 0.2) & valid
    ref_seen[outliers] = ref[outliers] * rng.uniform(0.1, 10.0, size=int(outliers.sum()))

    depth_m, scale, shift = align_depth(pred, ref_seen, valid)

    assert scale == pytest.approx(true_scale, rel=0.02)
    assert shift == pytest.approx(true_shift, abs=0.01)
    # The aligned depth matches the clean depth everywhere (outliers and the unseen strip too).
    np.testing.assert_allclose(depth_m, ref, rtol=0.03)
    assert depth_m.dtype == np.float32


def test_plain_least_squares_would_fail_on_the_same_outliers() -> None:
    """Guard that the outliers above are strong enough to matter (the robust fit is doing work)."""
    rng = np.random.default_rng(1)
    ref = _scene()
    pred = (1.0 / ref - 0.05) / 0.37
    noisy = ref.copy()
    out = rng.random(ref.shape) < 0.2
    noisy[out] *= rng.uniform(0.1, 10.0, size=int(out.sum()))
    a, _ = np.polyfit(pred.ravel(), 1.0 / noisy.ravel(), 1)
    assert abs(a - 0.37) / 0.37 > 0.05
    scale, _, inliers = fit_scale_shift_robust(pred.ravel(), 1.0 / noisy.ravel())
    assert scale == pytest.approx(0.37, rel=0.02)
    # Most true outliers are flagged (a few land close to the line by chance).
    assert (~inliers[out.ravel()]).mean() > 0.8


def test_align_is_deterministic_for_a_seed() -> None:
    ref = _scene()
    pred = 1.0 / ref + 0.2
    ref[::7, ::5] *= 4.0
    a = align_depth(pred, ref, np.ones(ref.shape, bool), seed=3)
    b = align_depth(pred, ref, np.ones(ref.shape, bool), seed=3)
    assert (a.scale, a.shift) == (b.scale, b.shift)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)


def test_too_little_overlap_falls_back_to_the_prior() -> None:
    ref = _scene()
    pred = 1.0 / ref
    valid = np.zeros(ref.shape, bool)
    valid.flat[: MIN_ALIGN_PIXELS - 1] = True
    aligned = align_depth(pred, ref, valid)
    prior = prior_depth(pred)
    np.testing.assert_array_equal(aligned.depth_m, prior.depth_m)


def test_prior_puts_the_median_at_the_assumed_depth_and_clips() -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.0, 5.0, size=(40, 50))
    prior = MetricPrior(median_depth_m=4.0, min_depth_m=0.2, max_depth_m=50.0)
    depth_m, scale, shift = prior_depth(pred, prior)
    assert np.median(depth_m) == pytest.approx(4.0, rel=0.02)
    assert depth_m.min() >= 0.2 - 1e-6 and depth_m.max() <= 50.0 + 1e-3
    # Larger relative inverse depth means nearer.
    assert depth_m[pred > 4.0].mean() < depth_m[pred < 1.0].mean()
    assert scale > 0
    np.testing.assert_allclose(1.0 / depth_m[(depth_m > 0.21) & (depth_m < 49)],
                               (scale * pred + shift)[(depth_m > 0.21) & (depth_m < 49)], rtol=1e-5)


def test_prior_with_a_flat_prediction_gives_the_median_depth() -> None:
    depth_m, scale, _ = prior_depth(np.full((8, 8), 1e-7))
    assert scale == 0.0
    np.testing.assert_allclose(depth_m, 3.0, rtol=1e-6)


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="same"):
        align_depth(np.ones((4, 4)), np.ones((4, 5)), np.ones((4, 4), bool))
    with pytest.raises(InputError, match="median_depth_m"):
        MetricPrior(median_depth_m=200.0)
    with pytest.raises(InputError, match="at least 2"):
        fit_scale_shift_robust(np.ones(1), np.ones(1))


def test_inverse_to_depth_handles_nan_and_negatives() -> None:
    d = inverse_to_depth(np.array([[np.nan, -1.0, 0.5, 100.0]]), MetricPrior(min_depth_m=0.1, max_depth_m=100.0))
    np.testing.assert_allclose(d, [[100.0, 100.0, 2.0, 0.1]], rtol=1e-6)
