"""Optical-flow frame interpolation between two keyframes (OpenCV dense flow).

The classical flow-based interpolator behind FusionFrames-style in-betweening and SRENDER's
RIFE/FILM comparison, without a learned network:

1. Dense flow both ways with OpenCV's DIS (``F01``: where each pixel of keyframe 0 is in keyframe
   1, ``F10`` the reverse), in pixels.
2. Occlusion from the forward-backward check: a pixel of keyframe 0 whose flow is not undone by
   the reverse flow where it lands (or that lands outside the image) is not visible in keyframe 1,
   and vice versa.
3. For a frame at fraction t, the flows from it to both keyframes are approximated from the two
   flows (Jiang et al., Super SloMo, CVPR 2018, eq. 4)::

       F_t0 = -(1 - t) t F01 + t^2 F10        F_t1 = (1 - t)^2 F01 - t (1 - t) F10

   both keyframes are warped backward to t (bilinear ``cv2.remap``), and blended with weights
   ``(1 - t) V0`` and ``t V1``, V being the warped visibility (occlusion-aware blending): where one
   keyframe does not see a pixel, the other one fills it.

A pure translation by d pixels gives F_t0 = -t d exactly, so the in-between frames are the
keyframe shifted by t d (what tests/test_inbetween.py checks). Depth is warped with the same
weights. alpha is 1 where at least one keyframe's warp lands inside its image.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.ports.inbetween import InbetweenFrame
from srender_ros.core.ports.render import RenderOutput
from srender_ros.errors import InputError

__all__ = ["FlowInbetweener", "FlowPair", "dense_flow"]

#: Forward-backward mismatch (pixels) above which a pixel counts as occluded: this plus a share of
#: the flow's length (large motions are less precise).
_OCCLUSION_PX = 1.0
_OCCLUSION_REL = 0.05
_EPS = 1e-6


def _gray_u8(rgb: NDArray[np.floating]) -> NDArray[np.uint8]:
    g = np.asarray(rgb, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(g * 255.0 + 0.5, 0, 255).astype(np.uint8)


def dense_flow(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float32]:
    """Dense optical flow from image ``a`` to image ``b`` (DIS, medium preset down to full resolution).

    Keyframes are far apart (tens of pixels of motion), so the preset is tightened: the finest
    pyramid level is the image itself, patches overlap more, and the descent and variational
    refinement run longer (about 2x the preset's time, far fewer failed patches at 30 px).

    Args:
        a, b: [H, W, 3] float in [0, 1].
    Returns:
        [H, W, 2] float32 (dx, dy) pixels: pixel (x, y) of ``a`` is at (x + dx, y + dy) in ``b``.
    """
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined,unused-ignore]
    dis.setFinestScale(0)
    dis.setPatchStride(3)
    dis.setGradientDescentIterations(25)
    dis.setVariationalRefinementIterations(10)
    flow = dis.calc(_gray_u8(a), _gray_u8(b), None)
    return np.asarray(flow, np.float32)


def _grid(h: int, w: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def _remap(img: NDArray[np.float32], mx: NDArray[np.float32], my: NDArray[np.float32]) -> NDArray[np.float32]:
    import cv2

    return np.asarray(cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                      np.float32)


def _inside(mx: NDArray[np.float32], my: NDArray[np.float32], h: int, w: int) -> NDArray[np.bool_]:
    return (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)


def _visibility(f_ab: NDArray[np.float32], f_ba: NDArray[np.float32]) -> NDArray[np.float32]:
    """[H, W] 1 where a pixel of image a is seen in image b (forward-backward consistent), else 0."""
    h, w = f_ab.shape[:2]
    xs, ys = _grid(h, w)
    mx, my = xs + f_ab[..., 0], ys + f_ab[..., 1]
    back = _remap(f_ba, mx, my)
    err = np.linalg.norm(f_ab + back, axis=-1)
    ok = (err <= _OCCLUSION_PX + _OCCLUSION_REL * np.linalg.norm(f_ab, axis=-1)) & _inside(mx, my, h, w)
    return ok.astype(np.float32)


class FlowPair:
    """Two keyframes with their flows and visibilities computed once (see the module docstring)."""

    def __init__(self, first: InbetweenFrame, second: InbetweenFrame) -> None:
        self.rgb0 = np.ascontiguousarray(first.rgb, np.float32)
        self.rgb1 = np.ascontiguousarray(second.rgb, np.float32)
        if self.rgb0.shape != self.rgb1.shape or self.rgb0.ndim != 3 or self.rgb0.shape[2] != 3:
            raise InputError(f"in-between keyframes must be two [H, W, 3] images of one size, got {self.rgb0.shape} "
                             f"and {self.rgb1.shape}")
        self.depth0 = np.ascontiguousarray(first.depth_m, np.float32)
        self.depth1 = np.ascontiguousarray(second.depth_m, np.float32)
        self.f01 = dense_flow(self.rgb0, self.rgb1)
        self.f10 = dense_flow(self.rgb1, self.rgb0)
        self.vis0 = _visibility(self.f01, self.f10)
        self.vis1 = _visibility(self.f10, self.f01)

    def _one(self, t: float) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        h, w = self.rgb0.shape[:2]
        if t <= 0.0:
            return self.rgb0.copy(), self.depth0.copy(), np.ones((h, w), np.float32)
        if t >= 1.0:
            return self.rgb1.copy(), self.depth1.copy(), np.ones((h, w), np.float32)
        xs, ys = _grid(h, w)
        ft0 = -(1.0 - t) * t * self.f01 + t * t * self.f10
        ft1 = (1.0 - t) ** 2 * self.f01 - t * (1.0 - t) * self.f10
        m0x, m0y = xs + ft0[..., 0], ys + ft0[..., 1]
        m1x, m1y = xs + ft1[..., 0], ys + ft1[..., 1]
        in0, in1 = _inside(m0x, m0y, h, w), _inside(m1x, m1y, h, w)
        g0, g1 = _remap(self.rgb0, m0x, m0y), _remap(self.rgb1, m1x, m1y)
        w0 = (1.0 - t) * _remap(self.vis0, m0x, m0y) * in0
        w1 = t * _remap(self.vis1, m1x, m1y) * in1
        # Where neither keyframe sees the pixel consistently, blend whatever lands inside by time.
        none = (w0 + w1) < _EPS
        w0 = np.where(none, (1.0 - t) * in0 + _EPS, w0)
        w1 = np.where(none, t * in1 + _EPS, w1)
        norm = w0 + w1
        rgb = (w0[..., None] * g0 + w1[..., None] * g1) / norm[..., None]
        d0, d1 = _remap(self.depth0, m0x, m0y), _remap(self.depth1, m1x, m1y)
        ok0, ok1 = np.isfinite(d0), np.isfinite(d1)
        dw0, dw1 = np.where(ok0, w0, 0.0), np.where(ok1, w1, 0.0)
        dn = dw0 + dw1
        with np.errstate(invalid="ignore", divide="ignore"):
            depth = np.where(dn > 0, (dw0 * np.nan_to_num(d0) + dw1 * np.nan_to_num(d1)) / dn, np.nan)
        alpha = (in0 | in1).astype(np.float32)
        return np.clip(rgb, 0.0, 1.0).astype(np.float32), depth.astype(np.float32), alpha

    def at(self, t: NDArray[np.floating]) -> RenderOutput:
        """Frames at fractions ``t`` [N] (see :class:`~srender_ros.core.ports.inbetween.InbetweenPair`)."""
        ts = np.asarray(t, np.float64).reshape(-1)
        if not np.isfinite(ts).all():
            raise InputError("in-between fractions must be finite")
        h, w = self.rgb0.shape[:2]
        rgb = np.empty((len(ts), h, w, 3), np.float32)
        depth = np.empty((len(ts), h, w), np.float32)
        alpha = np.empty((len(ts), h, w), np.float32)
        for k, tk in enumerate(ts.tolist()):
            rgb[k], depth[k], alpha[k] = self._one(float(tk))
        return RenderOutput(rgb, depth, alpha)


class FlowInbetweener:
    """:class:`~srender_ros.core.ports.inbetween.Inbetweener` by dense optical flow (OpenCV DIS)."""

    name = "flow"

    def pair(self, first: InbetweenFrame, second: InbetweenFrame) -> FlowPair:
        """Compute both flows and visibilities of the keyframe pair."""
        return FlowPair(first, second)
