"""The CUDA backend: ``gsplat.rasterization`` (RGB+ED, classic mode) behind the Renderer protocol.

Importing this module imports neither torch nor gsplat; constructing :class:`GsplatRenderer`
does, and raises BackendUnavailableError where CUDA or gsplat is missing. gsplat compiles its
CUDA extension on first use when no prebuilt wheel matches (minutes, needs nvcc).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.render.projection import EPS2D_PX2, validate_poses
from srender_ros.backends.render.reference import check_background, check_intrinsics, check_world
from srender_ros.core.camera import Intrinsics
from srender_ros.core.geometry import invert_transform
from srender_ros.core.ports.render import (
    DEPTH_MIN_ALPHA,
    FAR_PLANE_M,
    NEAR_PLANE_M,
    RenderOutput,
    check_world_index,
    render_per_world,
)
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import BackendUnavailableError

#: gsplat holds per-(view, Gaussian) buffers; views are sent in chunks of at most this many
#: view x Gaussian pairs to bound GPU memory (~40 bytes each).
MAX_PAIRS_PER_CALL = 1 << 26


def gsplat_status() -> tuple[bool, str]:
    """Whether the gsplat backend can run here.

    Returns:
        (usable, reason): reason says what is missing when not usable.
    """
    try:
        import torch
    except ImportError as exc:
        return False, f"torch is not installed ({exc})"
    try:
        if not torch.cuda.is_available():
            return False, "torch.cuda.is_available() is False (no CUDA GPU or a CPU-only torch build)"
    except Exception as exc:  # a broken driver raises here
        return False, f"CUDA check failed: {exc}"
    try:
        import gsplat  # noqa: F401
    except Exception as exc:
        return False, f"gsplat cannot be imported ({exc}); pip install gsplat"
    return True, "CUDA and gsplat are available"


class GsplatRenderer:
    """gsplat on CUDA with the same conventions as the cpu backend (see projection.py)."""

    name = "gsplat"

    def __init__(self, device: str = "cuda") -> None:
        """Args: device: a CUDA torch device string.

        Raises:
            BackendUnavailableError: torch, CUDA or gsplat is missing (the message says which).
        """
        ok, why = gsplat_status()
        if not ok:
            raise BackendUnavailableError(f"renderer 'gsplat' cannot run here: {why}. Use renderer 'cpu' "
                                          "(or 'auto', which falls back to it) on machines without CUDA.")
        import gsplat
        import torch

        self._torch: Any = torch
        self._gsplat: Any = gsplat
        self._device = torch.device(device)
        self._cache: weakref.WeakKeyDictionary[GaussianWorld, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _tensors(self, world: GaussianWorld) -> dict[str, Any]:
        with self._lock:
            t = self._cache.get(world)
            if t is None:
                torch, dev = self._torch, self._device
                logits = torch.from_numpy(np.array(world.opacity_logits)).to(dev)
                t = {
                    "means": torch.from_numpy(np.array(world.means)).to(dev),
                    "quats": torch.from_numpy(np.array(world.quats_wxyz)).to(dev),
                    "scales": torch.exp(torch.from_numpy(np.array(world.log_scales)).to(dev)),
                    "opacities": torch.sigmoid(logits),
                    "sh": torch.from_numpy(np.array(world.sh)).to(dev),
                }
                if len(self._cache) >= 2:
                    self._cache.clear()
                self._cache[world] = t
            return t

    def _rasterize(
        self, world: GaussianWorld, intrinsics: Intrinsics, T: NDArray[np.float64], bg: NDArray[np.float64] | None
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Returns (colors [B, H, W, 4] rgb + expected depth, or [B, H, W, 1] ones-colour; alpha [B, H, W])."""
        torch, dev = self._torch, self._device
        t = self._tensors(world)
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        viewmats_all = torch.from_numpy(invert_transform(T).astype(np.float32)).to(dev)
        K = torch.from_numpy(intrinsics.K.astype(np.float32)).to(dev)
        step = max(1, MAX_PAIRS_PER_CALL // max(len(world), 1))
        colors_out, alphas_out = [], []
        with torch.no_grad():
            for s in range(0, B, step):
                vm = viewmats_all[s:s + step]
                c = vm.shape[0]
                common = dict(viewmats=vm.contiguous(), Ks=K.expand(c, 3, 3).contiguous(), width=W, height=H,
                              near_plane=NEAR_PLANE_M, far_plane=FAR_PLANE_M, eps2d=EPS2D_PX2, packed=False,
                              rasterize_mode="classic")
                if bg is not None:
                    bgt = torch.from_numpy(np.broadcast_to(bg.astype(np.float32), (c, 3)).copy()).to(dev)
                    colors, alphas, _ = self._gsplat.rasterization(
                        t["means"], t["quats"], t["scales"], t["opacities"], t["sh"], sh_degree=world.sh_degree,
                        render_mode="RGB+ED", backgrounds=bgt, **common)
                else:
                    ones = torch.ones((len(world), 1), device=dev)
                    colors, alphas, _ = self._gsplat.rasterization(
                        t["means"], t["quats"], t["scales"], t["opacities"], ones, render_mode="RGB", **common)
                colors_out.append(colors.float().cpu().numpy())
                alphas_out.append(alphas[..., 0].float().cpu().numpy())
        return np.concatenate(colors_out), np.concatenate(alphas_out)

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha with gsplat (see :class:`srender_ros.core.ports.render.Renderer`).

        Args:
            world: the Gaussians. intrinsics: one camera model for the batch.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        Returns:
            RenderOutput (float32 numpy): rgb [B, H, W, 3], depth_m [B, H, W] (NaN where alpha <
            DEPTH_MIN_ALPHA), alpha [B, H, W].
        """
        check_world(world)
        check_intrinsics(intrinsics)
        bg = check_background(background_rgb)
        T = validate_poses(T_world_cam)
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        if len(world) == 0 or B == 0:
            rgb = np.empty((B, H, W, 3), np.float32)
            rgb[:] = bg.astype(np.float32)
            return RenderOutput(rgb, np.full((B, H, W), np.nan, np.float32), np.zeros((B, H, W), np.float32))
        colors, alpha = self._rasterize(world, intrinsics, T, bg)
        depth = np.where(alpha >= DEPTH_MIN_ALPHA, colors[..., 3], np.nan).astype(np.float32)
        return RenderOutput(np.ascontiguousarray(colors[..., :3]), depth, np.ascontiguousarray(alpha))

    def render_batch(
        self,
        worlds: Sequence[GaussianWorld],
        world_index: NDArray[np.integer],
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """B views of several worlds in one gsplat launch (its batched mode: scenes x cameras).

        The used worlds are stacked into [U, Nmax] tensors, padded with transparent Gaussians
        (opacity 0: alpha 0 < 1/255, never composited) and SH padded with zero coefficients up to
        the highest degree; each world's cameras into [U, Cmax], padded with identity views whose
        images are dropped. Falls back to one call per world when the padded batch would exceed
        MAX_PAIRS_PER_CALL view x Gaussian pairs.

        Args/Returns: as :func:`srender_ros.core.ports.render.render_batch`.
        """
        for w in worlds:
            check_world(w)
        check_intrinsics(intrinsics)
        bg = check_background(background_rgb)
        T = validate_poses(T_world_cam)
        idx = check_world_index(worlds, world_index, T.shape[0])
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        used = sorted(set(idx.tolist()))
        if B == 0 or len(used) <= 1:
            return render_per_world(self, worlds, idx, intrinsics, T, background_rgb)
        views = [np.nonzero(idx == u)[0] for u in used]
        n_max = max(max(len(worlds[u]) for u in used), 1)
        c_max = max(len(v) for v in views)
        if len(used) * c_max * n_max > MAX_PAIRS_PER_CALL:
            return render_per_world(self, worlds, idx, intrinsics, T, background_rgb)
        torch, dev = self._torch, self._device
        degree = max(worlds[u].sh_degree for u in used)
        k = (degree + 1) ** 2
        U = len(used)
        means = torch.zeros((U, n_max, 3), device=dev)
        quats = torch.zeros((U, n_max, 4), device=dev)
        quats[..., 0] = 1.0
        scales = torch.full((U, n_max, 3), 1e-6, device=dev)
        opac = torch.zeros((U, n_max), device=dev)
        sh = torch.zeros((U, n_max, k, 3), device=dev)
        viewmats = torch.eye(4, device=dev).repeat(U, c_max, 1, 1)
        V = invert_transform(T).astype(np.float32)
        for i, u in enumerate(used):
            n = len(worlds[u])
            if n:
                t = self._tensors(worlds[u])
                means[i, :n], quats[i, :n], scales[i, :n], opac[i, :n] = t["means"], t["quats"], t["scales"], t["opacities"]
                sh[i, :n, :t["sh"].shape[1]] = t["sh"]
            viewmats[i, :len(views[i])] = torch.from_numpy(V[views[i]]).to(dev)
        Ks = torch.from_numpy(intrinsics.K.astype(np.float32)).to(dev).expand(U, c_max, 3, 3).contiguous()
        bgt = torch.from_numpy(bg.astype(np.float32)).to(dev).expand(U, c_max, 3).contiguous()
        with torch.no_grad():
            colors, alphas, _ = self._gsplat.rasterization(
                means, quats, scales, opac, sh, viewmats, Ks, W, H, sh_degree=degree, near_plane=NEAR_PLANE_M,
                far_plane=FAR_PLANE_M, eps2d=EPS2D_PX2, packed=False, rasterize_mode="classic",
                render_mode="RGB+ED", backgrounds=bgt)
        colors_np = colors.float().cpu().numpy()
        alphas_np = alphas[..., 0].float().cpu().numpy()
        rgb = np.empty((B, H, W, 3), np.float32)
        depth = np.empty((B, H, W), np.float32)
        alpha = np.empty((B, H, W), np.float32)
        for i, v in enumerate(views):
            c = colors_np[i, :len(v)]
            a = alphas_np[i, :len(v)]
            rgb[v], alpha[v] = c[..., :3], a
            depth[v] = np.where(a >= DEPTH_MIN_ALPHA, c[..., 3], np.nan)
        return RenderOutput(rgb, depth, alpha)

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """[B, H, W] float32 accumulated alpha (one-channel render, no SH work)."""
        check_world(world)
        check_intrinsics(intrinsics)
        T = validate_poses(T_world_cam)
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        if len(world) == 0 or B == 0:
            return np.zeros((B, H, W), np.float32)
        return self._rasterize(world, intrinsics, T, None)[1]
