"""Fill what the world does not cover in a rendered frame from its surroundings (push-pull).

A render composites the Gaussians over a background; with a constant background, every pixel the
world covers only partly (silhouettes, the image border, disocclusions the scheduler judged too
small for a keyframe) is darkened or shows the background colour, a defect no camera has. Here
the background of each pixel is instead the average colour of the covered pixels around it:
premultiplied colour and alpha are summed down an image pyramid, alpha clamped to 1 (push), and each level's gaps
are filled from the next coarser one on the way back up (pull), as in Gortler et al., "The
Lumigraph" (1996). Covered pixels keep their colour exactly; only ``(1 - alpha)`` of each pixel
changes. Depth and alpha are left alone: holes stay visible in the depth image and in the
hole-fraction metrics.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: Pyramid levels stop at this size; one coarsest colour then fills whatever is still empty.
_MIN_SIDE_PX = 2


def _down(premul: NDArray[np.float64], alpha: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One level down: 2x2 sums of alpha clamped to 1 (Gortler's weights: a block with a pixel's worth
    of coverage counts as known) and the premultiplied colour rescaled to match; odd sizes are
    padded by edge replication. premul [B, H, W, 3], alpha [B, H, W]."""
    H, W = alpha.shape[1:]
    ph, pw = H % 2, W % 2
    if ph or pw:
        premul = np.pad(premul, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
        alpha = np.pad(alpha, ((0, 0), (0, ph), (0, pw)), mode="edge")
    p = premul[:, 0::2, 0::2] + premul[:, 1::2, 0::2] + premul[:, 0::2, 1::2] + premul[:, 1::2, 1::2]
    a = alpha[:, 0::2, 0::2] + alpha[:, 1::2, 0::2] + alpha[:, 0::2, 1::2] + alpha[:, 1::2, 1::2]
    a_clamped = np.minimum(a, 1.0)
    return p * (a_clamped / np.maximum(a, 1e-8))[..., None], a_clamped


def _up(fill: NDArray[np.float64], shape: tuple[int, ...]) -> NDArray[np.float64]:
    """Nearest-neighbour 2x upsampling cropped to ``shape`` (H, W)."""
    H, W = shape
    return np.repeat(np.repeat(fill, 2, axis=1), 2, axis=2)[:, :H, :W]


def _blend(premul: NDArray[np.float64], alpha: NDArray[np.float64], under: NDArray[np.float64]) -> NDArray[np.float64]:
    """A level's normalized colour, weighted by its coverage, over ``under`` (the coarser fill)."""
    w = np.minimum(alpha, 1.0)[..., None]
    own = premul / np.maximum(alpha, 1e-8)[..., None]
    return np.where(w > 1e-8, w * own + (1.0 - w) * under, under)


def fill_holes(rgb: NDArray[np.floating], alpha: NDArray[np.floating],
               background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> NDArray[np.float32]:
    """Recomposite renders over the world's own surrounding colour instead of a constant background.

    Args:
        rgb: [B, H, W, 3] (or [H, W, 3]) renders composited over ``background_rgb``.
        alpha: [B, H, W] (or [H, W]) their accumulated alpha.
        background_rgb: the constant background they were composited over.
    Returns:
        float32 array shaped like ``rgb``: ``premultiplied + (1 - alpha) * surrounding colour``.
        Where nothing at all is covered, the background is kept.
    """
    single = np.ndim(rgb) == 3
    c = np.asarray(rgb, dtype=np.float64)[None] if single else np.asarray(rgb, dtype=np.float64)
    a = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    a = a[None] if single else a
    if c.shape[:3] != a.shape or c.shape[-1] != 3:
        raise ValueError(f"fill_holes: rgb {list(np.shape(rgb))} and alpha {list(np.shape(alpha))} do not match")
    bg = np.asarray(background_rgb, dtype=np.float64)
    premul = c - (1.0 - a)[..., None] * bg                 # remove the background: sum of w_i c_i

    # Push: premultiplied colour and alpha down the pyramid.
    levels = [(premul, a)]
    while min(levels[-1][1].shape[1:]) > _MIN_SIDE_PX:
        levels.append(_down(*levels[-1]))
    # Pull: the coarsest level's gaps take the mean colour of everything covered (or the background).
    p, q = levels[-1]
    total_a = q.sum(axis=(1, 2))
    mean = np.where(total_a[:, None] > 1e-8, p.sum(axis=(1, 2)) / np.maximum(total_a, 1e-8)[:, None], bg)
    if len(levels) == 1:                                   # a tiny image: the mean is all there is
        out = premul + (1.0 - a)[..., None] * mean[:, None, None, :]
        return np.clip(out, 0.0, 1.0).astype(np.float32)[0 if single else slice(None)]
    fill = _blend(p, q, np.broadcast_to(mean[:, None, None, :], p.shape))
    # Each finer level: its own normalized colour where it has coverage, over the coarser fill.
    for p, q in reversed(levels[1:-1]):
        fill = _blend(p, q, _up(fill, q.shape[1:]))
    out = premul + (1.0 - a)[..., None] * _up(fill, a.shape[1:])   # level 0: covered colour kept exactly
    out32 = np.clip(out, 0.0, 1.0).astype(np.float32)
    return out32[0] if single else out32
