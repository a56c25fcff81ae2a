"""GaussianWorld: the 3D Gaussians of one environment.

Storage follows 3D Gaussian Splatting (and gsplat's ``rasterization`` inputs):
means in world metres, rotations as unit quaternions (w, x, y, z), log-scales, opacity logits and
colour as spherical-harmonic coefficients (degree 0..3, ``(degree + 1) ** 2`` coefficients per
channel; RGB = 0.5 + SH, clamped at 0, as gsplat does).
"""

from __future__ import annotations

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
    return np.maximum(np.asarray(sh_dc, dtype=np.float32) * SH_C0 + 0.5, 0.0).astype(np.float32)


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
        scales = np.asarray(scales_m, dtype=np.float64)
        if scales.size and not (np.isfinite(scales).all() and (scales > 0).all()):
            i = int(np.argmax(~(np.isfinite(scales) & (scales > 0)).all(axis=-1)))
            raise InputError(f"scales: Gaussian #{i} has a zero, negative or non-finite scale {scales[i].tolist()}")
        op = np.asarray(opacities, dtype=np.float64)
        if op.size and not (np.isfinite(op).all() and (op >= 0).all() and (op <= 1).all()):
            raise InputError("opacities must lie in [0, 1]")
        op = np.clip(op, 1e-6, 1 - 1e-6)
        means = np.asarray(means, dtype=np.float32)
        n = means.shape[0]
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
