"""Pinhole camera intrinsics (no distortion) in pixels, optical convention, and crops between cameras."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

#: Sizes beyond this are refused as absurd (memory for one float32 RGB frame ~ 200 MB).
MAX_IMAGE_SIDE_PX = 8192


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics. Pixel centres are at integer + 0.5 (gsplat and OpenCV agree on cx=W/2).

    Attributes:
        width_px, height_px: image size.
        fx_px, fy_px: focal lengths in pixels.
        cx_px, cy_px: principal point in pixels (image centre is (W/2, H/2)).
    """

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float

    def __post_init__(self) -> None:
        for name in ("width_px", "height_px"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= MAX_IMAGE_SIDE_PX:
                raise InputError(f"camera {name}={v!r}: must be an integer in 1..{MAX_IMAGE_SIDE_PX}")
        for name in ("fx_px", "fy_px", "cx_px", "cy_px"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise InputError(f"camera {name}={v}: must be finite")
        if self.fx_px <= 0 or self.fy_px <= 0:
            raise InputError(f"camera focal lengths must be > 0, got fx={self.fx_px}, fy={self.fy_px}")
        # A field of view outside (1, 179) degrees is not a camera we can render sensibly.
        for f, size, axis in ((self.fx_px, self.width_px, "horizontal"), (self.fy_px, self.height_px, "vertical")):
            fov = math.degrees(2 * math.atan(size / (2 * f)))
            if not 1.0 <= fov <= 179.0:
                raise InputError(f"camera {axis} field of view {fov:.2f} deg is absurd (focal {f} px for "
                                 f"{size} px); expected 1..179 deg")
        if not (-self.width_px <= self.cx_px <= 2 * self.width_px and -self.height_px <= self.cy_px <= 2 * self.height_px):
            raise InputError(f"principal point ({self.cx_px}, {self.cy_px}) is far outside the "
                             f"{self.width_px}x{self.height_px} image")

    @classmethod
    def from_fov(cls, width_px: int, height_px: int, fov_deg: float) -> Intrinsics:
        """Square pixels, centred principal point, ``fov_deg`` = horizontal field of view."""
        if not (math.isfinite(fov_deg) and 1.0 <= fov_deg <= 179.0):
            raise InputError(f"fov_deg={fov_deg}: must be within 1..179 degrees")
        f = width_px / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
        return cls(int(width_px), int(height_px), f, f, width_px / 2.0, height_px / 2.0)

    @classmethod
    def from_K(cls, K: NDArray[np.floating], width_px: int, height_px: int) -> Intrinsics:
        """From a 3x3 camera matrix (e.g. CameraInfo.k reshaped)."""
        K = np.asarray(K, dtype=np.float64).reshape(3, 3)
        return cls(int(width_px), int(height_px), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))

    @property
    def K(self) -> NDArray[np.float64]:
        """[3, 3] camera matrix."""
        return np.array([[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2 * math.atan(self.width_px / (2 * self.fx_px)))

    def scaled(self, factor: float) -> Intrinsics:
        """Same field of view at ``factor`` times the resolution (for cheap coverage renders)."""
        w = max(1, int(round(self.width_px * factor)))
        h = max(1, int(round(self.height_px * factor)))
        sx, sy = w / self.width_px, h / self.height_px
        return Intrinsics(w, h, self.fx_px * sx, self.fy_px * sy, self.cx_px * sx, self.cy_px * sy)

    def overscanned(self, factor: float) -> Intrinsics:
        """A wider image around the same optical axis and focal length (``factor`` x the size; <= 1: self)."""
        if factor <= 1.0:
            return self
        w = int(round(self.width_px * factor))
        h = int(round(self.height_px * factor))
        return Intrinsics(w, h, self.fx_px, self.fy_px, self.cx_px + (w - self.width_px) / 2.0,
                          self.cy_px + (h - self.height_px) / 2.0)

    def pixel_rays(self) -> NDArray[np.float64]:
        """[H, W, 3] ray directions in the optical frame with z = 1, through pixel centres (+0.5)."""
        u = np.arange(self.width_px, dtype=np.float64) + 0.5
        v = np.arange(self.height_px, dtype=np.float64) + 0.5
        uu, vv = np.meshgrid(u, v)
        return np.stack([(uu - self.cx_px) / self.fx_px, (vv - self.cy_px) / self.fy_px, np.ones_like(uu)], -1)


def crop_to_camera(rgb: NDArray[np.floating], image_K: Intrinsics, camera: Intrinsics) -> NDArray[np.float32]:
    """The view of ``camera`` inside an image taken with ``image_K`` (same focal length, e.g. overscanned).

    Args:
        rgb: [H', W', 3] image taken with ``image_K``.
        image_K: the image's intrinsics. camera: the (smaller) camera to crop to.
    Returns:
        [H, W, 3] float32, the crop the camera sees; a fractional offset (an odd overscan margin) is
        interpolated linearly. The whole image if the view does not fit.
    """
    img = np.asarray(rgb, dtype=np.float32)
    dx, dy = image_K.cx_px - camera.cx_px, image_K.cy_px - camera.cy_px
    H, W = camera.height_px, camera.width_px
    x0, y0 = int(np.floor(dx)), int(np.floor(dy))
    fx, fy = dx - x0, dy - y0
    if x0 < 0 or y0 < 0 or y0 + H + (fy > 0) > img.shape[0] or x0 + W + (fx > 0) > img.shape[1]:
        return img
    rows = (1 - fy) * img[y0:y0 + H] + (fy * img[y0 + 1:y0 + H + 1] if fy > 0 else 0.0)
    return np.asarray((1 - fx) * rows[:, x0:x0 + W] + (fx * rows[:, x0 + 1:x0 + W + 1] if fx > 0 else 0.0),
                      dtype=np.float32)
