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
