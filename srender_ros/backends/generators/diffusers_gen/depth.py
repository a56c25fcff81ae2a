"""Monocular depth for keyframes, and its alignment to the world's metric depth.

Monocular models (Depth Anything, DPT, MiDaS) predict *relative inverse depth* (disparity-like:
larger is nearer), known only up to an unknown scale and shift. We resolve them in inverse depth:

    inv_depth = scale * pred + shift        depth_m = 1 / inv_depth

- Later keyframes: (scale, shift) are fitted to the world's rendered depth where both are valid,
  robustly (least median of squares over 2-point samples, then least squares on the inliers), so
  outliers such as disocclusions and wrong world pixels do not bend the fit.
- Then (by default) a smooth residual correction: an 8x6 grid of multiplicative corrections of
  inverse depth fitted robustly to what the affine fit left against the world, upsampled and
  applied to the whole keyframe (:mod:`.depth_warp`): the monocular warp one affine cannot fix.
- First keyframe of a new world (nothing to align to): when the camera's height above the ground
  is known, the ground plane seen in the lower image sets the scale (:mod:`.ground_scale`);
  otherwise (or with no plausible ground) a documented metric prior,
  :class:`MetricPrior`: the median pixel is placed at ``median_depth_m`` (3 m by default, a room or
  street scale), the far end (the ``far_percentile`` of the prediction) at ``max_depth_m``, which
  fixes both unknowns. The world's scale is then defined by that choice; everything added later
  is aligned to it.

Depth is clipped to [min_depth_m, max_depth_m] in both cases, so sky and degenerate predictions
end up far away instead of at infinity or behind the camera.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.generators.diffusers_gen.depth_warp import GridCorrection, fit_warp_grid
from srender_ros.backends.generators.diffusers_gen.ground_scale import ground_alignment
from srender_ros.backends.generators.diffusers_gen.loading import DepthModel, DeviceDtype, is_out_of_memory, load_depth_model
from srender_ros.core.camera import Intrinsics
from srender_ros.errors import InputError, SrenderError

log = logging.getLogger(__name__)

#: The smooth residual correction applied after the affine alignment by default (depth_warp.py).
DEFAULT_WARP = GridCorrection()

#: Fewer valid overlap pixels than this and the alignment falls back to the metric prior.
MIN_ALIGN_PIXELS = 32
#: Pixels evaluated per hypothesis in the robust search (the final fit uses all inliers).
_LMEDS_SUBSAMPLE = 4096
_LMEDS_HYPOTHESES = 256
#: Inliers are residuals within this many robust standard deviations.
_INLIER_SIGMAS = 2.5


@dataclass(frozen=True)
class MetricPrior:
    """Metric scale for a keyframe with nothing to align to (the first one of a new world).

    Attributes:
        median_depth_m: depth given to the median pixel.
        min_depth_m, max_depth_m: depths are clipped to this range; the prediction's
            ``far_percentile`` lands at ``max_depth_m``.
        far_percentile: percentile (0..50) of the prediction treated as the far end.
    """

    median_depth_m: float = 3.0
    min_depth_m: float = 0.1
    max_depth_m: float = 100.0
    far_percentile: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.min_depth_m < self.median_depth_m < self.max_depth_m:
            raise InputError(f"depth prior needs 0 < min_depth_m < median_depth_m < max_depth_m, got "
                             f"{self.min_depth_m}, {self.median_depth_m}, {self.max_depth_m}")
        if not 0 <= self.far_percentile < 50:
            raise InputError(f"depth prior far_percentile={self.far_percentile}: must be in [0, 50)")


class DepthAlignment(NamedTuple):
    """Result of :func:`align_depth`: ``1 / depth_m = scale * pred + shift`` (before clipping)."""

    depth_m: NDArray[np.float32]
    scale: float
    shift: float


def inverse_to_depth(inv: NDArray[np.floating], prior: MetricPrior = MetricPrior()) -> NDArray[np.float32]:
    """Metric inverse depth [H, W] (1/m) -> depth_m [H, W] float32 clipped to the prior's range (NaN -> far)."""
    inv = np.clip(np.nan_to_num(inv, nan=1.0 / prior.max_depth_m), 1.0 / prior.max_depth_m, 1.0 / prior.min_depth_m)
    return (1.0 / inv).astype(np.float32)


def prior_depth(pred_inverse: NDArray[np.floating], prior: MetricPrior = MetricPrior()) -> DepthAlignment:
    """Metric depth from relative inverse depth with the metric prior (see module docstring).

    Args:
        pred_inverse: [H, W] relative inverse depth (larger = nearer).
        prior: the assumed metric scale.
    Returns:
        depth_m [H, W] float32 in [min_depth_m, max_depth_m], and the (scale, shift) used.
    """
    p = np.asarray(pred_inverse, dtype=np.float64)
    finite = p[np.isfinite(p)]
    inv_far, inv_med = 1.0 / prior.max_depth_m, 1.0 / prior.median_depth_m
    if finite.size == 0:
        return DepthAlignment(np.full(p.shape, prior.median_depth_m, np.float32), 0.0, inv_med)
    p_far, p_med = np.percentile(finite, prior.far_percentile), np.median(finite)
    spread = p_med - p_far
    if not spread > 1e-12 * max(1.0, abs(p_med)):
        # A flat prediction carries no structure: put everything at the median depth.
        scale, shift = 0.0, inv_med
    else:
        scale = (inv_med - inv_far) / spread
        shift = inv_far - scale * p_far
    return DepthAlignment(inverse_to_depth(scale * p + shift, prior), float(scale), float(shift))


def _lstsq_line(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """Least squares y = a x + b; a = 0 when x is constant."""
    xm, ym = x.mean(), y.mean()
    var = np.mean((x - xm) ** 2)
    if not var > 1e-24 * max(1.0, xm * xm):
        return 0.0, float(ym)
    a = float(np.mean((x - xm) * (y - ym)) / var)
    return a, float(ym - a * xm)


def fit_scale_shift_robust(
    x: NDArray[np.floating], y: NDArray[np.floating], seed: int = 0
) -> tuple[float, float, NDArray[np.bool_]]:
    """Robust line fit y = scale * x + shift, tolerating up to ~50% outliers.

    Least median of squares over random 2-point hypotheses picks the model; the robust residual
    spread (1.4826 * MAD) defines inliers; least squares on the inliers refines it (twice).

    Args:
        x, y: [N] samples.
        seed: seed of the hypothesis sampler (the fit is deterministic for a given seed).
    Returns:
        (scale, shift, inlier mask [N]).
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        raise InputError(f"robust fit needs at least 2 samples, got {n}")
    rng = np.random.default_rng(seed)
    sub = rng.choice(n, size=min(n, _LMEDS_SUBSAMPLE), replace=False)
    xs, ys = x[sub], y[sub]
    i, j = rng.integers(0, n, size=(2, _LMEDS_HYPOTHESES))
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-12 * np.maximum(1.0, np.abs(x[i]))
    if not ok.any():
        a, b = _lstsq_line(x, y)
    else:
        a_h = (y[j] - y[i])[ok] / dx[ok]
        b_h = y[i][ok] - a_h * x[i][ok]
        med = np.median(np.abs(ys[None, :] - (a_h[:, None] * xs[None, :] + b_h[:, None])), axis=1)
        best = int(np.argmin(med))
        a, b = float(a_h[best]), float(b_h[best])
    inliers = np.ones(n, dtype=bool)
    for _ in range(2):
        r = np.abs(y - (a * x + b))
        sigma = 1.4826 * float(np.median(r)) * (1.0 + 5.0 / max(n - 2, 1))
        # An exact fit (sigma 0) would keep only perfect points; give it a floor relative to y.
        sigma = max(sigma, 1e-9 * float(np.median(np.abs(y))) + 1e-15)
        cand = r <= _INLIER_SIGMAS * sigma
        if cand.sum() < 2:
            break
        inliers = cand
        a, b = _lstsq_line(x[inliers], y[inliers])
    return a, b, inliers


def align_depth(
    pred_relative: NDArray[np.floating],
    ref_depth_m: NDArray[np.floating],
    valid_mask: NDArray[np.bool_],
    prior: MetricPrior = MetricPrior(),
    seed: int = 0,
) -> DepthAlignment:
    """Align relative inverse depth to a metric reference depth (scale + shift in inverse depth).

    Args:
        pred_relative: [H, W] relative inverse depth from a monocular model (larger = nearer).
        ref_depth_m: [H, W] metric z-depth, e.g. the world rendered at the keyframe pose (NaN = none).
        valid_mask: [H, W] bool, pixels where the reference is trusted (e.g. world alpha >= 0.5).
            Pixels with a non-finite or non-positive reference or prediction are dropped as well.
        prior: clipping range, and the fallback when fewer than MIN_ALIGN_PIXELS pixels are valid.
        seed: seed of the robust fit.
    Returns:
        depth_m [H, W] float32 (clipped to the prior's range), scale, shift with
        ``1 / depth_m = scale * pred_relative + shift`` before clipping.
    """
    pred = np.asarray(pred_relative, dtype=np.float64)
    ref = np.asarray(ref_depth_m, dtype=np.float64)
    mask = np.asarray(valid_mask, dtype=bool)
    if pred.shape != ref.shape or pred.shape != mask.shape or pred.ndim != 2:
        raise InputError(f"align_depth: pred {pred.shape}, reference {ref.shape} and mask {mask.shape} must be the "
                         "same [H, W] shape")
    with np.errstate(invalid="ignore"):
        use = mask & np.isfinite(ref) & (ref > 0) & np.isfinite(pred)
    if int(use.sum()) < MIN_ALIGN_PIXELS:
        return prior_depth(pred, prior)
    scale, shift, _ = fit_scale_shift_robust(pred[use], 1.0 / ref[use], seed=seed)
    return DepthAlignment(inverse_to_depth(scale * pred + shift, prior), scale, shift)


def correct_warp(depth_m: NDArray[np.floating], ref_depth_m: NDArray[np.floating], valid: NDArray[np.bool_],
                 prior: MetricPrior = MetricPrior(), settings: GridCorrection = DEFAULT_WARP) -> NDArray[np.float32]:
    """Remove the smooth warp an affine alignment left (see :mod:`.depth_warp`).

    Args:
        depth_m: [H, W] aligned depth (metres, > 0).
        ref_depth_m: [H, W] the world's rendered depth (NaN = none).
        valid: [H, W] bool, pixels where the reference is trusted.
        prior: clipping range of the result.
        settings: the correction grid.
    Returns:
        [H, W] float32 corrected depth, ``depth_m * exp(-correction)``, clipped to the prior's range.
    """
    z = np.asarray(depth_m, np.float64)
    ref = np.asarray(ref_depth_m, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        use = np.asarray(valid, bool) & np.isfinite(ref) & (ref > 0) & np.isfinite(z) & (z > 0)
        # sky / far-clipped pixels carry no shape information
        use &= (ref < prior.max_depth_m) & (z < prior.max_depth_m)
        residual = np.where(use, np.log(np.where(use, z, 1.0)) - np.log(np.where(use, ref, 1.0)), 0.0)
    fit = fit_warp_grid(residual, use, settings)
    return inverse_to_depth(np.exp(fit.correction) / z, prior)


def first_keyframe_depth(pred_inverse: NDArray[np.floating], prior: MetricPrior,
                         intrinsics: Intrinsics | None = None, camera_height_m: float | None = None,
                         down_cam: NDArray[np.floating] | None = None, seed: int = 0) -> DepthAlignment:
    """Metric depth of a keyframe with nothing to align to: the ground at the camera height, else the prior.

    Args:
        pred_inverse: [H, W] relative inverse depth.
        prior: metric prior and clipping range.
        intrinsics: the keyframe's camera (needed for the ground).
        camera_height_m: the camera's height above the ground, metres (None: unknown -> prior).
        down_cam: [3] the world's down direction in the optical camera frame, when known (scale and
            shift from the ground); None: scale only, from a RANSAC plane (:mod:`.ground_scale`).
        seed: seed of the robust fits.
    Returns:
        depth_m [H, W] float32 and (scale, shift) with ``1 / depth_m = scale * pred + shift``.
    """
    aligned = prior_depth(pred_inverse, prior)
    if camera_height_m is None or intrinsics is None:
        return aligned
    fit = ground_alignment(pred_inverse, intrinsics, camera_height_m, down_cam, (aligned.scale, aligned.shift), seed)
    if fit is None:
        log.info("first keyframe: no plausible ground in the lower image; keeping the metric prior "
                 "(median depth %.1f m) instead of the camera height %.2f m", prior.median_depth_m, camera_height_m)
        return aligned
    log.info("first keyframe: metric scale from the ground (%s fit, %.0f %% of the lower image) at the camera "
             "height %.2f m", fit.method, 100 * fit.inlier_fraction, camera_height_m)
    inv = fit.scale * np.asarray(pred_inverse, np.float64) + fit.shift
    return DepthAlignment(inverse_to_depth(inv, prior), fit.scale, fit.shift)


def keyframe_depth(pred_inverse: NDArray[np.floating], world_depth_m: NDArray[np.floating] | None,
                   world_alpha: NDArray[np.floating] | None, generated: NDArray[np.bool_], prior: MetricPrior,
                   seed: int, is_metric: bool = False, min_alpha: float = 0.5,
                   warp: GridCorrection | None = DEFAULT_WARP, intrinsics: Intrinsics | None = None,
                   camera_height_m: float | None = None, down_cam: NDArray[np.floating] | None = None) -> DepthAlignment:
    """A keyframe's metric depth from a monocular prediction: the one rule every monocular path uses.

    The prediction is aligned (:func:`align_depth`) to the world's rendered depth where the world is
    solid (alpha >= ``min_alpha``, finite positive depth), then its remaining smooth warp is
    corrected against the same pixels (:func:`correct_warp`, unless ``warp`` is None); with fewer
    than MIN_ALIGN_PIXELS such pixels a metric model's own metres are used, else the ground plane
    at ``camera_height_m`` or the metric prior (:func:`first_keyframe_depth`).
    Where the keyframe kept the world's pixels (solid and not ``generated``), the world's own depth
    is used, so the keyframe agrees with the world exactly there.

    Args:
        pred_inverse: [H, W] relative inverse depth (a metric model's inverse metres when ``is_metric``).
        world_depth_m, world_alpha: [H, W] the world rendered at the keyframe pose, or None (new world).
        generated: [H, W] bool, pixels the generator drew (not kept from the world).
        prior: metric prior and clipping range.
        seed: seed of the robust fit.
        is_metric: the prediction is a metric model's inverse metres.
        min_alpha: world alpha from which a pixel is solid.
        warp: the smooth residual correction after the affine fit (None = affine only).
        intrinsics: the keyframe's camera (for the ground plane of a first keyframe).
        camera_height_m: the camera's height above the ground (None = unknown).
        down_cam: [3] the world's down direction in the camera's optical frame (None = unknown).
    Returns:
        depth_m [H, W] float32 and the (scale, shift) of the affine alignment.
    """
    inv = np.asarray(pred_inverse)
    valid = np.zeros(inv.shape, bool)
    if world_depth_m is not None and world_alpha is not None:
        with np.errstate(invalid="ignore"):
            valid = (world_alpha >= min_alpha) & np.isfinite(world_depth_m) & (world_depth_m > 0)
    if int(valid.sum()) >= MIN_ALIGN_PIXELS:
        assert world_depth_m is not None
        aligned = align_depth(inv, world_depth_m, valid, prior, seed)
        if warp is not None:
            aligned = aligned._replace(depth_m=correct_warp(aligned.depth_m, world_depth_m, valid, prior, warp))
    elif is_metric:  # nothing to align to, but the model's own metres are better than a prior
        aligned = DepthAlignment(inverse_to_depth(inv, prior), 1.0, 0.0)
    else:
        aligned = first_keyframe_depth(inv, prior, intrinsics, camera_height_m, down_cam, seed)
    if world_depth_m is None:
        return aligned
    keep = ~np.asarray(generated, bool) & valid
    depth_m = np.where(keep, world_depth_m, aligned.depth_m).astype(np.float32)
    return DepthAlignment(depth_m, aligned.scale, aligned.shift)


class DepthEstimator:
    """Relative inverse depth from a transformers depth-estimation model in a local folder.

    Works with ``AutoModelForDepthEstimation`` models (Depth Anything V1/V2, DPT, ZoeDepth, ...):
    relative models return inverse depth as is; models whose config says
    ``depth_estimation_type == "metric"`` return metric depth, which is inverted here so callers
    always get inverse depth.
    """

    def __init__(self, model_path: str, where: DeviceDtype) -> None:
        """Load the model (cached per process). Raises ModelLoadError for a bad folder."""
        self._depth: DepthModel = load_depth_model(model_path, where)
        self._device = where.device
        self.model_path = self._depth.path
        self.is_metric = getattr(self._depth.model.config, "depth_estimation_type", "relative") == "metric"

    def predict_inverse(self, rgb: NDArray[np.floating]) -> NDArray[np.float32]:
        """Relative inverse depth of one image.

        Args:
            rgb: [H, W, 3] float in [0, 1].
        Returns:
            [H, W] float32, larger = nearer (resized back to H x W bilinearly).
        """
        import torch
        import torch.nn.functional as F

        img = np.asarray(rgb)
        if img.ndim != 3 or img.shape[2] != 3:
            raise InputError(f"depth estimation needs an [H, W, 3] image, got shape {img.shape}")
        h, w = img.shape[:2]
        u8 = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        try:
            inputs = self._depth.processor(images=u8, return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self._device, torch.float32)
            with torch.inference_mode():
                pred = self._depth.model(pixel_values=pixel_values).predicted_depth
            pred = F.interpolate(pred.reshape(1, 1, *pred.shape[-2:]).float(), size=(h, w), mode="bilinear",
                                 align_corners=False)[0, 0]
        except Exception as e:
            if is_out_of_memory(e):
                raise SrenderError(f"out of memory estimating depth for a {w}x{h} image on {self._device}") from e
            raise
        out = pred.cpu().numpy().astype(np.float64)
        if self.is_metric:
            with np.errstate(divide="ignore"):
                out = np.where(out > 0, 1.0 / np.maximum(out, 1e-12), np.nan)
        return out.astype(np.float32)
