"""Procedural keyframes with monocular-estimator depth: the diffusers path's geometry, measurable.

A real diffusion keyframe gets its depth from a monocular model (Depth Anything, Marigold, MiDaS),
which is right only up to a scale and shift per image, with smooth low-frequency errors, blurred
depth edges and noise; the diffusers generator then aligns it to the world (robust scale + shift in
inverse depth) and keeps the world's own depth where it kept the world's pixels. This module
reproduces that on procedural keyframes, whose exact depth is known, so the effect of monocular
depth on the reconstruction can be measured against exact ground truth without model weights:

    exact depth -> :class:`MonocularErrorModel` (relative inverse depth, as a model outputs)
                -> :func:`~srender_ros.backends.generators.diffusers_gen.depth.keyframe_depth`
                   (the diffusers generator's own alignment, smooth warp correction, first-keyframe
                   scale from the ground plane or the prior, and world-depth rule)

The error model works in inverse depth d = 1 / z (what relative models predict):

    d_blur = G_sigma_edge * d                          blurred depth edges ("flying pixels")
    d_warp = d_blur * exp(w(x, y))                     w: smooth random field, std warp_sigma,
                                                       wavelengths ~ warp_wavelength * image width
    d_noisy = d_warp * exp(n(x, y))                    n: per-pixel noise, std noise_sigma
    prediction = a * d_noisy + b                       per-keyframe unknown scale a > 0, shift b

After an ideal least-squares scale + shift in inverse depth (the benchmarks' protocol), a smooth
surface keeps a relative depth error of about sqrt(warp_sigma^2 + noise_sigma^2) (std), i.e.
AbsRel ~ 0.8 * that; depth edges add more. The defaults give AbsRel ~ 0.05 on smooth depth, the
level current estimators report zero-shot on NYUv2 indoors (Depth Anything V1/V2 ~0.043-0.045,
Marigold 0.055; docs/quality.md cites them); ``MonocularErrorModel.midas()`` is the older MiDaS
level (~0.11).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter

from srender_ros.backends.generators.diffusers_gen.depth import MetricPrior, align_depth, keyframe_depth
from srender_ros.backends.generators.diffusers_gen.depth_warp import GridCorrection
from srender_ros.backends.generators.diffusers_gen.ground_scale import down_in_camera
from srender_ros.backends.generators.diffusers_gen.images import hole_mask
from srender_ros.core.ports.generate import Keyframe, KeyframeGenerator, KeyframeRequest
from srender_ros.core.ports.render import DEPTH_MIN_ALPHA, RenderOutput
from srender_ros.errors import InputError

__all__ = ["FIRST_KEYFRAME_SCALES", "MonocularDepthGenerator", "MonocularErrorModel"]

#: How the first keyframe of a new world gets its metric scale: ``prior`` (the diffusers path's
#: rule: the ground plane at the request's ``camera_height_m`` when known, else the MetricPrior,
#: median pixel at 3 m) or ``metric`` (a metric-scale estimate: the true scale and shift of that
#: keyframe, as a metric depth model or odometry would give; its shape errors stay).
FIRST_KEYFRAME_SCALES = ("prior", "metric")
#: The world counts as empty (a first keyframe) below this peak alpha, as in the diffusers generator.
_EMPTY_WORLD_ALPHA = 0.01
#: Same hole growth as the diffusers generator's default ``mask_dilate_px``.
_MASK_DILATE_PX = 3


@dataclass(frozen=True)
class MonocularErrorModel:
    """How a simulated monocular estimate departs from the exact depth (see the module docstring).

    Attributes:
        warp_sigma: std of the smooth multiplicative warp of inverse depth (log units).
        warp_wavelength: typical wavelength of the warp as a fraction of the image width.
        noise_sigma: std of the per-pixel multiplicative noise (log units).
        edge_blur: Gaussian blur of inverse depth, sigma as a fraction of the image width.
        scale_log_range: the unknown scale a is exp(U(-r, r)) / median(d).
        shift_fraction: the unknown shift b is U(-f, f) times a * median(d).
    """

    warp_sigma: float = 0.055
    warp_wavelength: float = 0.6
    noise_sigma: float = 0.015
    edge_blur: float = 0.004
    scale_log_range: float = 1.0
    shift_fraction: float = 0.3

    def __post_init__(self) -> None:
        for name in ("warp_sigma", "noise_sigma", "edge_blur", "scale_log_range", "shift_fraction"):
            if not getattr(self, name) >= 0:
                raise InputError(f"monocular error model: {name}={getattr(self, name)} must be >= 0")
        if not self.warp_wavelength > 0:
            raise InputError(f"monocular error model: warp_wavelength={self.warp_wavelength} must be > 0")

    @classmethod
    def midas(cls) -> MonocularErrorModel:
        """The error level of MiDaS v2.1-era models (AbsRel ~0.11 on NYUv2)."""
        return cls(warp_sigma=0.12, noise_sigma=0.03, edge_blur=0.008)

    def smooth_abs_rel(self) -> float:
        """Expected AbsRel after an ideal scale + shift on smooth depth: E|N(0, s)| = 0.798 s."""
        return float(np.sqrt(2.0 / np.pi) * np.hypot(self.warp_sigma, self.noise_sigma))

    def warp_field(self, h: int, w: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """[h, w] smooth zero-mean field of std ``warp_sigma`` (sum of 8 random plane waves)."""
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        field = np.zeros((h, w))
        for _ in range(8):
            angle = rng.uniform(0, 2 * np.pi)
            k = 2 * np.pi / (self.warp_wavelength * w * rng.uniform(0.6, 1.6))
            field += np.cos(k * (np.cos(angle) * xs + np.sin(angle) * ys) + rng.uniform(0, 2 * np.pi))
        std = float(field.std())
        return field * (self.warp_sigma / std) if std > 0 else field

    def corrupt(self, depth_m: NDArray[np.floating], seed: int) -> NDArray[np.float32]:
        """Relative inverse depth [H, W] float32 (larger = nearer) a monocular model might predict.

        Args:
            depth_m: [H, W] exact z-depth, metres (finite, > 0; sky is far but finite).
            seed: the keyframe's seed (a different warp, noise and affine per keyframe).
        """
        z = np.asarray(depth_m, np.float64)
        if z.ndim != 2 or not (np.isfinite(z) & (z > 0)).all():
            raise InputError("monocular error model needs a [H, W] depth map, finite and > 0 everywhere")
        h, w = z.shape
        rng = np.random.default_rng(seed)
        d = 1.0 / z
        if self.edge_blur > 0:
            d = gaussian_filter(d, self.edge_blur * w, mode="nearest")
        d = d * np.exp(self.warp_field(h, w, rng) + rng.normal(0.0, self.noise_sigma, size=(h, w)))
        med = float(np.median(d))
        a = float(np.exp(rng.uniform(-self.scale_log_range, self.scale_log_range))) / med
        b = float(rng.uniform(-self.shift_fraction, self.shift_fraction)) * a * med
        return (a * d + b).astype(np.float32)


class MonocularDepthGenerator:
    """A procedural generator whose keyframe depth comes from a simulated monocular estimate.

    Colours are the inner generator's (exact). Depth: :meth:`MonocularErrorModel.corrupt` of the
    exact depth, then the diffusers generator's :func:`keyframe_depth` with the same hole mask
    (world alpha < 0.5 grown by 3 px): aligned to the world where it is solid (affine, then the
    smooth warp correction unless ``warp_correction`` is False), the world's own depth where the
    world is kept; for a new world (``first_keyframe="prior"``, as the diffusers path does) the
    ground plane at the request's ``camera_height_m`` or else the metric prior, or the
    keyframe's true scale (``"metric"``).

    Args:
        inner: the procedural generator (its ``ground_truth`` stays exact, for measuring).
        model: the error model.
        prior: metric prior and clipping range (the diffusers generator's default).
        first_keyframe: one of :data:`FIRST_KEYFRAME_SCALES`.
        warp_correction: correct the smooth residual warp after the affine fit (depth_warp.py).
    """

    def __init__(self, inner: KeyframeGenerator, model: MonocularErrorModel | None = None,
                 prior: MetricPrior | None = None, first_keyframe: str = "prior", warp_correction: bool = True) -> None:
        if first_keyframe not in FIRST_KEYFRAME_SCALES:
            raise InputError(f"first_keyframe={first_keyframe!r}: choose one of {', '.join(FIRST_KEYFRAME_SCALES)}")
        self.inner = inner
        self.name = inner.name
        self.model = model if model is not None else MonocularErrorModel()
        self.prior = prior if prior is not None else MetricPrior()
        self.first_keyframe = first_keyframe
        self.warp: GridCorrection | None = GridCorrection() if warp_correction else None
        #: (scale, shift) of the last alignment and whether it used the world (for benchmarks).
        self.last_alignment: tuple[float, float, bool] = (0.0, 0.0, False)

    def generate(self, request: KeyframeRequest) -> Keyframe:
        """The inner keyframe with its depth replaced by the aligned monocular estimate."""
        kf = self.inner.generate(request)
        pred = self.model.corrupt(kf.depth_m, request.seed)
        view = request.world_view
        solid = view is not None and float(np.nanmax(view.alpha, initial=0.0)) >= _EMPTY_WORLD_ALPHA
        if view is not None and solid:
            alpha = np.asarray(view.alpha, np.float32)
            generated = hole_mask(alpha, _MASK_DILATE_PX, DEPTH_MIN_ALPHA)
            aligned = keyframe_depth(pred, np.asarray(view.depth_m, np.float32), alpha, generated, self.prior,
                                     request.seed, min_alpha=DEPTH_MIN_ALPHA, warp=self.warp)
        elif self.first_keyframe == "metric":
            # A metric estimate: right scale and shift for this view, the monocular shape errors kept.
            exact = np.asarray(kf.depth_m, np.float64)
            near = exact < self.prior.max_depth_m  # sky carries no scale
            aligned = align_depth(pred, exact, near, self.prior, request.seed)
        else:
            aligned = keyframe_depth(pred, None, None, np.ones(pred.shape, bool), self.prior, request.seed,
                                     intrinsics=request.intrinsics, camera_height_m=request.camera_height_m,
                                     down_cam=down_in_camera(request.T_world_cam))
        self.last_alignment = (aligned.scale, aligned.shift, bool(solid))
        return Keyframe(rgb=kf.rgb, depth_m=aligned.depth_m, T_world_cam=kf.T_world_cam, intrinsics=kf.intrinsics,
                        pose_index=kf.pose_index)

    def ground_truth(self, prompt: str, intrinsics: object, T_world_cam: NDArray[np.floating]) -> RenderOutput:
        """The inner generator's exact ground truth (colours and depth)."""
        gt = getattr(self.inner, "ground_truth", None)
        if gt is None:
            raise InputError(f"the {self.inner.name} generator has no ground truth")
        out: RenderOutput = gt(prompt, intrinsics, T_world_cam)
        return out

    def settings(self) -> dict[str, object]:
        """The inner settings plus the depth source (worlds of the two sources are recorded apart)."""
        return {**self.inner.settings(), "depth_source": "monocular", "monocular_error": asdict(self.model),
                "first_keyframe_scale": self.first_keyframe, "depth_prior": asdict(self.prior),
                "depth_warp": asdict(self.warp) if self.warp is not None else None}
