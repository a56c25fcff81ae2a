"""Sensor realism for rendered frames: image noise, depth noise, lens distortion (numpy only).

Terms follow Gazebo's camera sensor where it has them:

- image noise: ``<noise type="gaussian"><mean>m</mean><stddev>s</stddev>``, added to every channel
  of every pixel in [0, 1] intensity units, then clamped to [0, 1];
- depth noise: z + N(0, (k z^2)^2): the standard deviation grows with the square of the distance,
  as structured-light and stereo depth sensors behave (k = 0.0012 /m gives 1.2 mm at 1 m,
  19 mm at 4 m, about a Kinect v1); NaN (nothing rendered) stays NaN;
- lens distortion: plumb_bob / OpenCV (k1, k2, p1, p2, k3). The frame is rendered with a pinhole
  camera of the same focal length, large enough to hold every distorted pixel's ray, then remapped
  (bilinear for colour, nearest for depth so depths are never blended across edges). CameraInfo
  carries the same D, so ``cv2.undistort(image, K, D)`` gives back the pinhole view;
- motion blur: the mean of several renders over the exposure (done by the caller, which knows the
  poses; :class:`Realism` holds the settings).

Noise is drawn from ``numpy.random.default_rng([seed, stamp_ns])``: the same seed and stamp give the
same frame, run after run. Pixel convention as everywhere in srender: pixel j's centre is j + 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.errors import InputError

#: A distorted camera may need a pinhole render at most this many times its own side length.
MAX_LENS_OVERSCAN = 3.0


@dataclass(frozen=True)
class Realism:
    """Per-camera realism settings; the defaults change nothing.

    Attributes:
        noise_mean, noise_stddev: Gaussian image noise in [0, 1] intensity units (Gazebo's terms).
        depth_noise_k: depth noise standard deviation = k * z^2 (k in 1/m).
        distortion: plumb_bob (k1, k2, p1, p2, k3).
        motion_blur_s: exposure time over which renders are averaged, seconds (0 = off).
        motion_blur_samples: renders averaged over the exposure.
        seed: noise seed (combined with each frame's stamp).
    """

    noise_mean: float = 0.0
    noise_stddev: float = 0.0
    depth_noise_k: float = 0.0
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)
    motion_blur_s: float = 0.0
    motion_blur_samples: int = 4
    seed: int = 0

    def check(self, where: str) -> None:
        """Raise InputError (prefixed with ``where``) for values that make no sense."""
        if self.noise_stddev < 0 or self.depth_noise_k < 0 or self.motion_blur_s < 0:
            raise InputError(f"{where}: noise_stddev, depth_noise_k and motion_blur_s must be >= 0")
        if abs(self.noise_mean) > 1.0 or self.noise_stddev > 1.0:
            raise InputError(f"{where}: noise_mean/noise_stddev are in [0, 1] intensity units; got "
                             f"{self.noise_mean}, {self.noise_stddev}")
        if len(self.distortion) != 5 or not all(math.isfinite(d) for d in self.distortion):
            raise InputError(f"{where}: distortion must be 5 finite numbers k1 k2 p1 p2 k3")
        if not 2 <= self.motion_blur_samples <= 64:
            raise InputError(f"{where}: motion_blur_samples={self.motion_blur_samples} must lie in [2, 64]")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"{where}: seed={self.seed} must be >= 0")

    @property
    def distorted(self) -> bool:
        return any(d != 0.0 for d in self.distortion)

    @property
    def noisy(self) -> bool:
        return self.noise_stddev > 0 or self.noise_mean != 0 or self.depth_noise_k > 0

    def rng(self, stamp_ns: int) -> np.random.Generator:
        """The noise generator of one frame (reproducible from seed and stamp)."""
        return np.random.default_rng([int(self.seed), int(stamp_ns) & (2**63 - 1)])


def distort_normalized(x: NDArray[np.float64], y: NDArray[np.float64],
                       D: tuple[float, ...]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """plumb_bob: undistorted normalized image coordinates -> distorted ones (same shapes)."""
    k1, k2, p1, p2, k3 = D
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def undistort_normalized(xd: NDArray[np.float64], yd: NDArray[np.float64], D: tuple[float, ...],
                         iterations: int = 30) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Inverse of :func:`distort_normalized` by fixed-point iteration (as cv2.undistortPoints)."""
    k1, k2, p1, p2, k3 = D
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        dx = 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        dy = p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        x = (xd - dx) / radial
        y = (yd - dy) / radial
    return x, y


class LensMap:
    """Distorted camera from a wider pinhole render, precomputed once per camera.

    Args:
        camera: the published camera (its K goes into CameraInfo with ``distortion`` as D).
        distortion: (k1, k2, p1, p2, k3).
    Attributes:
        render_intrinsics: the pinhole camera to render (same focal length, larger, shifted centre).
    Raises:
        InputError: the distortion folds the image over (not invertible) or needs an absurdly
            large render.
    """

    def __init__(self, camera: Intrinsics, distortion: tuple[float, ...]) -> None:
        self.camera = camera
        self.distortion = tuple(float(d) for d in distortion)
        u = np.arange(camera.width_px, dtype=np.float64) + 0.5
        v = np.arange(camera.height_px, dtype=np.float64) + 0.5
        uu, vv = np.meshgrid(u, v)
        xd, yd = (uu - camera.cx_px) / camera.fx_px, (vv - camera.cy_px) / camera.fy_px
        x, y = undistort_normalized(xd, yd, self.distortion)
        rx, ry = distort_normalized(x, y, self.distortion)
        if not (np.isfinite(x).all() and np.abs(rx - xd).max() < 1e-4 and np.abs(ry - yd).max() < 1e-4):
            raise InputError(f"distortion {list(self.distortion)} cannot be inverted over the "
                             f"{camera.width_px}x{camera.height_px} image (the lens model folds over); use smaller "
                             "coefficients")
        # Pinhole render covering every ray, same focal length, 1 px margin for bilinear sampling.
        fx, fy = camera.fx_px, camera.fy_px
        x0, x1 = float(x.min()) * fx - 1.0, float(x.max()) * fx + 1.0
        y0, y1 = float(y.min()) * fy - 1.0, float(y.max()) * fy + 1.0
        w, h = int(math.ceil(x1 - x0)), int(math.ceil(y1 - y0))
        if w > MAX_LENS_OVERSCAN * camera.width_px or h > MAX_LENS_OVERSCAN * camera.height_px:
            raise InputError(f"distortion {list(self.distortion)} needs a {w}x{h} pinhole render for a "
                             f"{camera.width_px}x{camera.height_px} image (more than {MAX_LENS_OVERSCAN:g}x); use "
                             "smaller coefficients or a narrower fov_deg")
        self.render_intrinsics = Intrinsics(w, h, fx, fy, -x0, -y0)
        # Source coordinates in the render, in index units (pixel j's centre at j).
        su = x * fx - x0 - 0.5
        sv = y * fy - y0 - 0.5
        j0 = np.clip(np.floor(su).astype(np.int64), 0, w - 2)
        i0 = np.clip(np.floor(sv).astype(np.int64), 0, h - 2)
        self._i0, self._j0 = i0, j0
        self._wx = np.clip(su - j0, 0.0, 1.0).astype(np.float32)[..., None]
        self._wy = np.clip(sv - i0, 0.0, 1.0).astype(np.float32)[..., None]
        self._ni = np.clip(np.rint(sv).astype(np.int64), 0, h - 1)
        self._nj = np.clip(np.rint(su).astype(np.int64), 0, w - 1)

    def rgb(self, image: NDArray[np.floating]) -> NDArray[np.float32]:
        """[h, w, 3] pinhole render -> [H, W, 3] distorted image (bilinear)."""
        a = np.asarray(image, dtype=np.float32)
        i0, j0, wx, wy = self._i0, self._j0, self._wx, self._wy
        top = a[i0, j0] * (1 - wx) + a[i0, j0 + 1] * wx
        bottom = a[i0 + 1, j0] * (1 - wx) + a[i0 + 1, j0 + 1] * wx
        return (top * (1 - wy) + bottom * wy).astype(np.float32)

    def depth(self, depth_m: NDArray[np.floating]) -> NDArray[np.float32]:
        """[h, w] pinhole z-depth -> [H, W] distorted (nearest; z-depth is unchanged by the lens)."""
        return np.asarray(depth_m, dtype=np.float32)[self._ni, self._nj]


def add_image_noise(rgb: NDArray[np.floating], mean: float, stddev: float,
                    rng: np.random.Generator) -> NDArray[np.float32]:
    """[H, W, 3] in [0, 1] plus N(mean, stddev) per channel, clamped to [0, 1]."""
    noise = rng.normal(mean, stddev, size=np.shape(rgb)).astype(np.float32) if stddev > 0 else np.float32(mean)
    return np.asarray(np.clip(np.asarray(rgb, dtype=np.float32) + noise, 0.0, 1.0), dtype=np.float32)


def add_depth_noise(depth_m: NDArray[np.floating], k: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """[H, W] z-depth plus N(0, (k z^2)^2); NaN stays NaN; never below 0."""
    z = np.asarray(depth_m, dtype=np.float32)
    noisy = z + rng.standard_normal(z.shape).astype(np.float32) * (np.float32(k) * z * z)
    return np.where(np.isnan(z), z, np.maximum(noisy, 0.0)).astype(np.float32)
