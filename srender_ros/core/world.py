"""GaussianWorld: the 3D Gaussians of one environment.

Storage follows 3D Gaussian Splatting (and gsplat's ``rasterization`` inputs):
means in world metres, rotations as unit quaternions (w, x, y, z), log-scales, opacity logits and
colour as spherical-harmonic coefficients (degree 0..3, ``(degree + 1) ** 2`` coefficients per
channel; RGB = 0.5 + SH, clamped at 0, as gsplat does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

#: Zeroth-order SH basis constant: colour = 0.5 + SH_C0 * f_dc.
SH_C0 = 0.28209479177387814
MAX_SH_DEGREE = 3


def num_sh_coeffs(degree: int) -> int:
    """Coefficients per colour channel for SH ``degree``: 1, 4, 9, 16."""
    return (degree + 1) ** 2


def sh_degree_from_coeffs(k: int) -> int:
    """Inverse of :func:`num_sh_coeffs`; raises InputError for a count that is not a square."""
    for d in range(MAX_SH_DEGREE + 1):
        if num_sh_coeffs(d) == k:
            return d
    raise InputError(f"sh: {k} coefficients per channel is not (degree+1)^2 for degree 0..{MAX_SH_DEGREE}")


def rgb_to_sh_dc(rgb: NDArray[np.floating]) -> NDArray[np.float32]:
    """[..., 3] colours in [0, 1] -> [..., 3] zeroth-order SH coefficients."""
    return ((np.asarray(rgb, dtype=np.float32) - 0.5) / SH_C0).astype(np.float32)


def sh_dc_to_rgb(sh_dc: NDArray[np.floating]) -> NDArray[np.float32]:
    """[..., 3] zeroth-order SH coefficients -> [..., 3] colours (clamped at 0 like gsplat)."""
    rgb: NDArray[np.float32] = np.maximum(np.asarray(sh_dc, dtype=np.float32) * SH_C0 + 0.5, 0.0).astype(np.float32)
    return rgb


@dataclass(frozen=True, eq=False)
class GaussianWorld:
    """N anisotropic 3D Gaussians. Arrays are float32 and C-contiguous; treat them as read-only.

    Attributes:
        means: [N, 3] centres in the world frame, metres.
        quats_wxyz: [N, 4] unit quaternions (w, x, y, z), Gaussian-to-world rotation.
        log_scales: [N, 3] natural log of the standard deviations along the local axes, metres.
        opacity_logits: [N] logit of the peak opacity.
        sh: [N, K, 3] SH coefficients, K = (sh_degree + 1) ** 2; sh[:, 0] is the DC term.
    """

    means: NDArray[np.float32]
    quats_wxyz: NDArray[np.float32]
    log_scales: NDArray[np.float32]
    opacity_logits: NDArray[np.float32]
    sh: NDArray[np.float32]

    def __post_init__(self) -> None:
        fields = {
            "means": self.means, "quats_wxyz": self.quats_wxyz, "log_scales": self.log_scales,
            "opacity_logits": self.opacity_logits, "sh": self.sh,
        }
        for name, arr in fields.items():
            a = np.ascontiguousarray(np.asarray(arr, dtype=np.float32))
            object.__setattr__(self, name, a)
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        expect = {"means": (n, 3), "quats_wxyz": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,)}
        for name, shape in expect.items():
            arr = getattr(self, name)
            if arr.shape != shape:
                raise InputError(f"GaussianWorld.{name}: expected shape {list(shape)}, got {list(arr.shape)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise InputError(f"GaussianWorld.sh: expected shape [{n}, K, 3], got {list(self.sh.shape)}")
        sh_degree_from_coeffs(self.sh.shape[1])
        for name in list(fields):
            arr = getattr(self, name)
            finite = np.isfinite(arr).reshape(arr.shape[0], -1).all(axis=1) if n > 0 else np.ones(0, bool)
            if not finite.all():
                i = int(np.argmin(finite))
                raise InputError(f"GaussianWorld.{name}: Gaussian #{i} has NaN or inf values")
        if n > 0:
            qn = np.linalg.norm(self.quats_wxyz, axis=1)
            if (qn < 1e-8).any():
                raise InputError(f"GaussianWorld.quats_wxyz: Gaussian #{int(np.argmax(qn < 1e-8))} has a zero quaternion")
            if not np.allclose(qn, 1.0, atol=1e-5):
                object.__setattr__(self, "quats_wxyz", (self.quats_wxyz / qn[:, None]).astype(np.float32))
        for name in fields:
            getattr(self, name).setflags(write=False)

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def empty(cls, sh_degree: int = 0) -> GaussianWorld:
        """A world with no Gaussians."""
        k = num_sh_coeffs(sh_degree)
        f32 = np.float32
        return cls(np.zeros((0, 3), f32), np.zeros((0, 4), f32), np.zeros((0, 3), f32), np.zeros((0,), f32),
                   np.zeros((0, k, 3), f32))

    @classmethod
    def from_linear(
        cls,
        means: NDArray[np.floating],
        scales_m: NDArray[np.floating],
        opacities: NDArray[np.floating],
        rgb: NDArray[np.floating],
        quats_wxyz: NDArray[np.floating] | None = None,
        sh_degree: int = 0,
    ) -> GaussianWorld:
        """Build from linear quantities (as a user thinks of them).

        Args:
            means: [N, 3] metres. scales_m: [N, 3] standard deviations, metres, > 0.
            opacities: [N] in (0, 1). rgb: [N, 3] in [0, 1]. quats_wxyz: [N, 4] or None (identity).
            sh_degree: degree of the SH storage; higher-order terms start at zero.
        Raises:
            InputError: zero or negative scales, opacities outside [0, 1], or shape mismatches.
        """
        means = np.asarray(means, dtype=np.float32)
        if means.ndim != 2 or means.shape[1] != 3:
            raise InputError(f"means: expected shape [N, 3], got {list(means.shape)}")
        n = means.shape[0]
        expect: dict[str, tuple[NDArray[np.floating], tuple[int, ...]]] = {
            "scales_m": (scales_m, (n, 3)), "opacities": (opacities, (n,)), "rgb": (rgb, (n, 3))}
        if quats_wxyz is not None:
            expect["quats_wxyz"] = (quats_wxyz, (n, 4))
        for name, (arr, shape) in expect.items():
            if np.shape(arr) != shape:
                raise InputError(f"{name}: expected shape {list(shape)} to match {n} means, got {list(np.shape(arr))}")
        scales = np.asarray(scales_m, dtype=np.float64)
        if scales.size and not (np.isfinite(scales).all() and (scales > 0).all()):
            i = int(np.argmax(~(np.isfinite(scales) & (scales > 0)).all(axis=-1)))
            raise InputError(f"scales: Gaussian #{i} has a zero, negative or non-finite scale {scales[i].tolist()}")
        op = np.asarray(opacities, dtype=np.float64)
        if op.size and not (np.isfinite(op).all() and (op >= 0).all() and (op <= 1).all()):
            raise InputError("opacities must lie in [0, 1]")
        op = np.clip(op, 1e-6, 1 - 1e-6)
        if quats_wxyz is None:
            quats_wxyz = np.tile(np.array([1.0, 0.0, 0.0, 0.0], np.float32), (n, 1))
        sh = np.zeros((n, num_sh_coeffs(sh_degree), 3), np.float32)
        sh[:, 0, :] = rgb_to_sh_dc(rgb)
        return cls(means, np.asarray(quats_wxyz, dtype=np.float32), np.log(scales).astype(np.float32),
                   np.log(op / (1 - op)).astype(np.float32), sh)

    # ---- derived quantities -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_coeffs(self.sh.shape[1])

    @property
    def scales_m(self) -> NDArray[np.float32]:
        """[N, 3] standard deviations in metres."""
        return np.exp(self.log_scales)

    @property
    def opacities(self) -> NDArray[np.float32]:
        """[N] peak opacities in (0, 1)."""
        return (1.0 / (1.0 + np.exp(-self.opacity_logits))).astype(np.float32)

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, bytes."""
        return int(sum(a.nbytes for a in (self.means, self.quats_wxyz, self.log_scales, self.opacity_logits, self.sh)))

    # ---- operations (pure: each returns a new world) ----------------------------------------------
    def with_sh_degree(self, degree: int) -> GaussianWorld:
        """The same Gaussians with SH storage of ``degree``.

        Raising the degree zero-pads the new higher-order coefficients (colour is unchanged);
        lowering it drops them (view-dependent colour is lost, the DC colour stays).

        Args:
            degree: 0..3.
        Returns:
            A world whose ``sh`` is [N, (degree + 1) ** 2, 3].
        """
        if not isinstance(degree, (int, np.integer)) or not 0 <= int(degree) <= MAX_SH_DEGREE:
            raise InputError(f"sh_degree={degree!r}: must be an integer in 0..{MAX_SH_DEGREE}")
        k_new, k_old = num_sh_coeffs(int(degree)), self.sh.shape[1]
        if k_new == k_old:
            return self
        sh = np.zeros((len(self), k_new, 3), np.float32)
        k = min(k_new, k_old)
        sh[:, :k] = self.sh[:, :k]
        return GaussianWorld(self.means, self.quats_wxyz, self.log_scales, self.opacity_logits, sh)

    def concat(self, *others: GaussianWorld) -> GaussianWorld:
        """All Gaussians of ``self`` followed by those of ``others``, in order.

        SH degrees are promoted to the highest degree among the inputs (lower ones zero-padded,
        which leaves their colours unchanged).

        Args:
            others: worlds with N_1, N_2, ... Gaussians.
        Returns:
            A world with N + N_1 + N_2 + ... Gaussians.
        """
        worlds = (self, *others)
        for i, w in enumerate(others):
            if not isinstance(w, GaussianWorld):
                raise InputError(f"concat: argument #{i} is a {type(w).__name__}, expected a GaussianWorld")
        if not others:
            return self
        degree = max(w.sh_degree for w in worlds)
        worlds = tuple(w.with_sh_degree(degree) for w in worlds)
        return GaussianWorld(
            np.concatenate([w.means for w in worlds]),
            np.concatenate([w.quats_wxyz for w in worlds]),
            np.concatenate([w.log_scales for w in worlds]),
            np.concatenate([w.opacity_logits for w in worlds]),
            np.concatenate([w.sh for w in worlds]),
        )

    def merge(self, *others: GaussianWorld) -> GaussianWorld:
        """Alias of :meth:`concat` (plain union; deciding *where* to add Gaussians is the lifter's job)."""
        return self.concat(*others)

    def select(self, mask_or_indices: NDArray[np.bool_] | NDArray[np.integer] | Sequence[int]) -> GaussianWorld:
        """A subset of the Gaussians.

        Args:
            mask_or_indices: [N] boolean mask, or [M] integer indices (negative ones count from the
                end; repeats allowed, order kept).
        Returns:
            A world with the selected Gaussians (count(mask) or M of them), same SH degree.
        """
        sel = np.asarray(mask_or_indices)
        n = len(self)
        if sel.dtype == np.bool_:
            if sel.shape != (n,):
                raise InputError(f"select: boolean mask has shape {list(sel.shape)}, expected [{n}]")
        elif sel.size == 0:
            sel = np.zeros(0, np.int64)
        elif np.issubdtype(sel.dtype, np.integer):
            if sel.ndim != 1:
                raise InputError(f"select: indices must be 1-D, got shape {list(sel.shape)}")
            bad = (sel < -n) | (sel >= n)
            if bad.any():
                raise InputError(f"select: index {int(sel[np.argmax(bad)])} is out of range for {n} Gaussians")
        else:
            raise InputError(f"select: expected a boolean mask or integer indices, got dtype {sel.dtype}")
        return GaussianWorld(self.means[sel], self.quats_wxyz[sel], self.log_scales[sel], self.opacity_logits[sel],
                             self.sh[sel])

    def prune(self, min_opacity: float = 0.0, max_scale_m: float | None = None) -> GaussianWorld:
        """Drop Gaussians that are nearly transparent or too large.

        Args:
            min_opacity: keep Gaussians whose peak opacity is >= this (in [0, 1]).
            max_scale_m: if given, keep Gaussians whose largest standard deviation is <= this, metres.
        Returns:
            A world with the kept Gaussians, in their original order.
        """
        if not (np.isfinite(min_opacity) and 0.0 <= min_opacity <= 1.0):
            raise InputError(f"prune: min_opacity={min_opacity} must lie in [0, 1]")
        keep = self.opacities >= np.float32(min_opacity)
        if max_scale_m is not None:
            if not (np.isfinite(max_scale_m) and max_scale_m > 0):
                raise InputError(f"prune: max_scale_m={max_scale_m} must be a finite number > 0")
            # Compare in log space: exact for the stored values, no overflow for huge log-scales.
            keep &= self.log_scales.max(axis=1, initial=-np.inf) <= np.log(max_scale_m)
        return self.select(keep)

    def crop(self, bbox_min: Sequence[float] | NDArray[np.floating],
             bbox_max: Sequence[float] | NDArray[np.floating]) -> GaussianWorld:
        """Keep the Gaussians whose centres lie inside an axis-aligned box (bounds included).

        Args:
            bbox_min: [3] lower corner in the world frame, metres.
            bbox_max: [3] upper corner, metres; >= bbox_min on every axis.
        """
        lo = np.asarray(bbox_min, dtype=np.float64)
        hi = np.asarray(bbox_max, dtype=np.float64)
        for name, v in (("bbox_min", lo), ("bbox_max", hi)):
            if v.shape != (3,) or np.isnan(v).any():
                raise InputError(f"crop: {name} must be 3 numbers (not NaN), got {v.tolist()}")
        if (lo > hi).any():
            raise InputError(f"crop: bbox_min {lo.tolist()} exceeds bbox_max {hi.tolist()} on some axis")
        inside: NDArray[np.bool_] = np.asarray(((self.means >= lo) & (self.means <= hi)).all(axis=1))
        return self.select(inside)

    def bounding_box(self, percentile: float | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Axis-aligned bounds of the Gaussian centres.

        Args:
            percentile: None for the exact min/max; p in [0, 50) for a robust box from the p-th and
                (100 - p)-th percentiles per axis (ignores a few far-away floaters).
        Returns:
            (min [3], max [3]) in the world frame, metres, float64.
        Raises:
            InputError: the world is empty (it has no bounds) or percentile is out of range.
        """
        if len(self) == 0:
            raise InputError("bounding_box: the world has no Gaussians, so it has no bounds")
        m = self.means.astype(np.float64)
        if percentile is None:
            return m.min(axis=0), m.max(axis=0)
        if not (np.isfinite(percentile) and 0.0 <= percentile < 50.0):
            raise InputError(f"bounding_box: percentile={percentile} must lie in [0, 50)")
        lo, hi = np.percentile(m, [percentile, 100.0 - percentile], axis=0)
        return np.asarray(lo, np.float64), np.asarray(hi, np.float64)
