"""Small image helpers shared by the diffusion generators: sizes, resizing, masks, compositing."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError


def generation_size(width_px: int, height_px: int, multiple: int = 8, min_side_px: int = 0) -> tuple[int, int]:
    """Size to run a diffusion model at: the smallest multiple of ``multiple`` >= the camera size.

    Stable Diffusion's VAE works on 8 px cells (latent = image / 8), so width and height must be
    multiples of 8; some models want 16 or 64. With ``min_side_px`` the shorter side is first
    scaled up to at least that (models trained at 512 px draw poorly at 64 px).

    Returns:
        (width, height) in pixels.
    """
    if multiple < 1:
        raise InputError(f"size multiple {multiple}: must be >= 1")
    factor = max(1.0, min_side_px / min(width_px, height_px)) if min_side_px > 0 else 1.0
    w = int(math.ceil(width_px * factor / multiple - 1e-9) * multiple)
    h = int(math.ceil(height_px * factor / multiple - 1e-9) * multiple)
    return max(w, multiple), max(h, multiple)


def to_uint8(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    """[H, W, 3] float in [0, 1] -> uint8 (rounded, clipped)."""
    return (np.clip(np.nan_to_num(np.asarray(rgb, dtype=np.float32)), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def resize_rgb(rgb: NDArray[np.floating], width_px: int, height_px: int) -> NDArray[np.float32]:
    """Resize [H, W, 3] float [0, 1] to [height_px, width_px, 3] (bicubic; identity when equal)."""
    from PIL import Image

    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.shape[:2] == (height_px, width_px):
        return rgb
    img = Image.fromarray(to_uint8(rgb)).resize((width_px, height_px), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) / 255.0


def resize_mask_conservative(mask: NDArray[np.bool_], width_px: int, height_px: int) -> NDArray[np.bool_]:
    """Resize a boolean mask so that every output pixel touching a True input pixel is True."""
    from PIL import Image

    mask = np.asarray(mask, dtype=bool)
    if mask.shape == (height_px, width_px):
        return mask
    img = Image.fromarray(mask.astype(np.uint8) * 255).resize((width_px, height_px), Image.Resampling.BILINEAR)
    return np.asarray(img) > 0


def center_crop_resize(rgb: NDArray[np.generic], width_px: int, height_px: int) -> NDArray[np.float32]:
    """A user image to the camera size: centre-crop to the camera's aspect ratio, then resize.

    Args:
        rgb: [H, W, 3] float in [0, 1] or uint8.
    Returns:
        [height_px, width_px, 3] float32 in [0, 1].
    """
    img = np.asarray(rgb)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise InputError(f"initial image must be [H, W, 3], got shape {img.shape}")
    if img.dtype == np.uint8:
        f = img.astype(np.float32) / 255.0
    else:
        f = img.astype(np.float32)
        if not np.isfinite(f).all() or f.min() < -1e-3 or f.max() > 1.0 + 1e-3:
            raise InputError("initial image must be float in [0, 1] (or uint8) with no NaN/inf")
    h, w = f.shape[:2]
    target = width_px / height_px
    if w / h > target:  # too wide: crop columns
        cw = max(1, int(round(h * target)))
        x0 = (w - cw) // 2
        f = f[:, x0 : x0 + cw]
    elif w / h < target:  # too tall: crop rows
        ch = max(1, int(round(w / target)))
        y0 = (h - ch) // 2
        f = f[y0 : y0 + ch]
    return np.clip(resize_rgb(f, width_px, height_px), 0.0, 1.0)


def hole_mask(alpha: NDArray[np.floating], dilate_px: int, threshold: float = 0.5) -> NDArray[np.bool_]:
    """Pixels to generate: world alpha below ``threshold``, grown by ``dilate_px`` pixels.

    Growing the hole lets the generator redraw the soft, half-transparent rim of the rendered
    world instead of keeping its blurred edge.

    Args:
        alpha: [H, W] accumulated opacity of the world render.
    Returns:
        [H, W] bool, True = generate.
    """
    from scipy.ndimage import binary_dilation

    mask = ~(np.nan_to_num(np.asarray(alpha, dtype=np.float32), nan=0.0) >= threshold)
    if dilate_px > 0 and mask.any() and not mask.all():
        mask = binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=int(dilate_px))
    return mask
