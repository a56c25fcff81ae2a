"""Image quality metrics against ground truth: PSNR and SSIM (Wang et al. 2004, Gaussian window)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter


def psnr_db(pred: NDArray[np.floating], target: NDArray[np.floating], max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, max_value] (any equal shapes)."""
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))
    if mse <= 1e-20:
        return float("inf")
    return float(10.0 * np.log10(max_value**2 / mse))


def ssim(pred: NDArray[np.floating], target: NDArray[np.floating], max_value: float = 1.0) -> float:
    """Mean SSIM of two [H, W, C] (or [H, W]) images, Gaussian window sigma 1.5, per channel then averaged."""
    x = np.asarray(pred, np.float64)
    y = np.asarray(target, np.float64)
    if x.ndim == 2:
        x, y = x[..., None], y[..., None]
    c1, c2 = (0.01 * max_value) ** 2, (0.03 * max_value) ** 2
    vals = []
    for c in range(x.shape[-1]):
        a, b = x[..., c], y[..., c]
        mu_a, mu_b = gaussian_filter(a, 1.5, truncate=3.5), gaussian_filter(b, 1.5, truncate=3.5)
        saa = gaussian_filter(a * a, 1.5, truncate=3.5) - mu_a**2
        sbb = gaussian_filter(b * b, 1.5, truncate=3.5) - mu_b**2
        sab = gaussian_filter(a * b, 1.5, truncate=3.5) - mu_a * mu_b
        m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
        vals.append(float(m.mean()))
    return float(np.mean(vals))


def hole_fraction(alpha: NDArray[np.floating], threshold: float = 0.5) -> NDArray[np.float64]:
    """[B, H, W] alpha -> [B] fraction of pixels with alpha below ``threshold``."""
    a = np.asarray(alpha)
    frac: NDArray[np.float64] = np.mean(a.reshape(a.shape[0], -1) < threshold, axis=1).astype(np.float64)
    return frac


def temporal_error(prev_pred: NDArray[np.floating], pred: NDArray[np.floating], prev_target: NDArray[np.floating],
                   target: NDArray[np.floating]) -> float:
    """Temporal consistency of one step: mean |(pred - prev_pred) - (target - prev_target)|.

    The change between two consecutive rendered frames against the change between the same two
    ground-truth frames, per pixel and channel (images in [0, 1], any equal shapes). 0 when the
    frames change exactly as the truth does, whatever their per-frame error (a constant colour
    offset costs nothing); flicker, popping and swimming texture raise it. ``temporal_error_mean``
    in the metrics JSON is its mean over every consecutive pair of frames evaluated.
    """
    d_pred = np.asarray(pred, np.float64) - np.asarray(prev_pred, np.float64)
    d_true = np.asarray(target, np.float64) - np.asarray(prev_target, np.float64)
    if d_pred.shape != d_true.shape:
        raise ValueError(f"temporal_error: frames {d_pred.shape} and truth {d_true.shape} differ in shape")
    return float(np.mean(np.abs(d_pred - d_true)))
