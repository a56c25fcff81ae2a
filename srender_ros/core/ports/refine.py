"""The refinement port: settings, report and the Protocol a refinement backend implements.

Plain values only (no torch): the pipeline's configuration names a :class:`RefineConfig`, and the
composition root hands the pipeline a :class:`Refiner` (``srender_ros.backends.refine``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError

__all__ = ["DEVICES", "SSIM_WINDOW_PX", "KeyframeRefineConfig", "KeyframeRefiner", "RefineConfig", "RefineReport",
           "Refiner"]

#: Backend names :class:`RefineConfig.device` accepts.
DEVICES = ("auto", "cpu", "cuda")
#: SSIM window (Wang et al. 2004, as 3DGS): 11 px Gaussian, sigma 1.5.
SSIM_WINDOW_PX = 11


@dataclass(frozen=True)
class RefineConfig:
    """Settings of :func:`refine_world`. A learning rate of 0 freezes that parameter group.

    Attributes:
        iterations: Adam steps.
        scale: refinement resolution relative to each keyframe (images are area-downsampled and
            intrinsics scaled with ``Intrinsics.scaled``), in (0, 1].
        patch_px: render ``patch_px`` x ``patch_px`` windows of the (scaled) keyframes instead of
            whole images (None: whole images). Windows are exact crops, visited in shuffled epochs
            that tile every keyframe, so full-resolution detail is affordable on CPU.
        views_per_step: keyframes (each one window) per Adam step.
        lr_color: Adam learning rate of the SH DC coefficients (colour = 0.5 + 0.282 * DC).
        lr_opacity: learning rate of the opacity logits.
        lr_means_m: learning rate of the means, metres per step (0: frozen).
        lr_log_scales: learning rate of the log-scales (0: frozen).
        lr_quats: learning rate of the (unnormalized) rotation quaternions (0: frozen).
        ssim_weight: lambda of the D-SSIM term, as in 3DGS: loss = (1 - lambda) L1 + lambda (1 - SSIM)
            (3DGS uses 0.2; 0 = plain L1).
        device: "auto" (gsplat on CUDA when usable, else torch on CPU), "cpu" or "cuda".
        seed: seed of the view and window choice.
        time_budget_s: stop early after this many seconds of optimization (None: no limit).
        threads: torch CPU threads during refinement (None: leave torch's setting). On a machine
            shared with other busy processes, 1 is often several times faster than oversubscribing.
    """

    iterations: int = 1000
    scale: float = 1.0
    patch_px: int | None = 64
    views_per_step: int = 1
    lr_color: float = 0.03
    lr_opacity: float = 0.05
    lr_means_m: float = 2e-3
    lr_log_scales: float = 0.04
    lr_quats: float = 0.0
    ssim_weight: float = 0.0
    device: str = "auto"
    seed: int = 0
    time_budget_s: float | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise InputError(f"RefineConfig.iterations={self.iterations!r}: must be an integer >= 0")
        if not (math.isfinite(self.scale) and 0.0 < self.scale <= 1.0):
            raise InputError(f"RefineConfig.scale={self.scale}: must be in (0, 1] (e.g. 0.25 for a quarter of the keyframe size)")
        if self.patch_px is not None and (not isinstance(self.patch_px, int) or self.patch_px < 1):
            raise InputError(f"RefineConfig.patch_px={self.patch_px!r}: must be a positive integer or None")
        if self.views_per_step < 1:
            raise InputError(f"RefineConfig.views_per_step={self.views_per_step}: must be >= 1")
        for name in ("lr_color", "lr_opacity", "lr_means_m", "lr_log_scales", "lr_quats"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0.0):
                raise InputError(f"RefineConfig.{name}={v}: must be a finite number >= 0 (0 freezes it)")
        if not 0.0 <= self.ssim_weight <= 1.0:
            raise InputError(f"RefineConfig.ssim_weight={self.ssim_weight}: must be in [0, 1]")
        if self.ssim_weight > 0 and self.patch_px is not None and self.patch_px < SSIM_WINDOW_PX:
            raise InputError(f"RefineConfig.patch_px={self.patch_px}: D-SSIM needs windows of at least "
                             f"{SSIM_WINDOW_PX} px; raise patch_px or set ssim_weight=0")
        if self.device not in DEVICES:
            raise InputError(f"RefineConfig.device={self.device!r}: choose one of {', '.join(DEVICES)}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise InputError(f"RefineConfig.time_budget_s={self.time_budget_s}: must be > 0 or None")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise InputError(f"RefineConfig.threads={self.threads!r}: must be a positive integer or None")


@dataclass(frozen=True)
class RefineReport:
    """What a refinement did.

    Attributes:
        backend: "torch-cpu", "gsplat-cuda" or "none" (nothing to refine).
        iterations: Adam steps taken. seconds: wall time of the optimization (evaluation excluded).
        seconds_total: wall time including the before/after evaluation.
        loss_before, loss_after: the objective averaged over every keyframe's whole image at the
            refinement resolution.
        psnr_before_db, psnr_after_db: PSNR of those renders against the (downsampled) keyframes,
            over pixels with known depth.
        gaussians: Gaussian count (unchanged by refinement). keyframes: keyframes used.
        applied: False when :func:`refine_state` found the world changed meanwhile and left it alone.
        note: why nothing was done, or "".
    """

    backend: str
    iterations: int
    seconds: float
    seconds_total: float
    loss_before: float
    loss_after: float
    psnr_before_db: float
    psnr_after_db: float
    gaussians: int
    keyframes: int
    applied: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict (for a metrics file)."""
        return dataclasses.asdict(self)


class Refiner(Protocol):
    """Fits a world to its keyframe images; the Gaussian count and order never change."""

    def refine(self, world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
               config: RefineConfig) -> tuple[GaussianWorld, RefineReport]:
        """(the refined world with the same N Gaussians in the same order, what was done)."""
        ...


@dataclass(frozen=True)
class KeyframeRefineConfig:
    """Settings of the fast refinement run right after each keyframe is lifted (issue 17).

    The new keyframe's view and its ``neighbors`` nearest earlier keyframes are rendered whole,
    one view per step (new, first neighbour, new, second neighbour, ...), and the Gaussians that
    touch a pixel of the new keyframe's view (the new ones and their neighbours) are fitted by
    Adam; every other Gaussian is held. Only colours (SH DC) and opacities are optimized, so the
    views' geometry is computed once and each step is a compiled forward + backward pass
    (backends/refine/_grad_kernels.py). The rendered frames are hole-filled (core/holes.py)
    before the loss, as the pipeline delivers them. If the fit ends worse on the keyframes than it
    started, the world is left unchanged.

    Attributes:
        iterations: steps per keyframe (each renders one view): the whole budget; no timer.
        neighbors: earlier keyframes fitted beside the new one (nearest by camera centre and
            viewing direction), so the new Gaussians do not spoil views that already looked right.
        lr_color: Adam step size of the SH DC coefficients (colour = 0.5 + 0.282 DC).
        lr_opacity: Adam step size of the opacity logits.
        device: "auto" (gsplat's backward on CUDA when usable, else the numba CPU kernels), "cpu"
            or "cuda".
    """

    iterations: int = 20
    neighbors: int = 1
    lr_color: float = 0.05
    lr_opacity: float = 0.05
    device: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise InputError(f"KeyframeRefineConfig.iterations={self.iterations!r}: must be an integer >= 0")
        if isinstance(self.neighbors, bool) or not isinstance(self.neighbors, int) or self.neighbors < 0:
            raise InputError(f"KeyframeRefineConfig.neighbors={self.neighbors!r}: must be an integer >= 0")
        for name in ("lr_color", "lr_opacity"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v >= 0.0):
                raise InputError(f"KeyframeRefineConfig.{name}={v}: must be a finite number >= 0 (0 freezes it)")
        if self.device not in DEVICES:
            raise InputError(f"KeyframeRefineConfig.device={self.device!r}: choose one of {', '.join(DEVICES)}")


class KeyframeRefiner(Protocol):
    """Fits the Gaussians of the newest keyframe (``keyframes[-1]``) and their neighbours to it and
    to the nearest earlier keyframes; the Gaussian count and order never change."""

    def refine_keyframe(self, world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
                        config: KeyframeRefineConfig) -> tuple[GaussianWorld, RefineReport]:
        """(the refined world with the same N Gaussians in the same order, what was done)."""
        ...
