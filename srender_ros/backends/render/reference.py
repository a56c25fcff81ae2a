"""A float64 brute-force renderer that follows gsplat's rules literally. For tests only (slow).

It projects with :func:`srender_ros.backends.render.projection.ewa_project`, then walks the visible
Gaussians front to back (float32 depth, ties by index) and updates every pixel of the tiles each
Gaussian touches at once, so it shares no binning, sorting or compiled code with the fast
backends it checks. Keep images small (e.g. 64x48) and worlds to a few hundred Gaussians.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.render.projection import (
    ALPHA_THRESHOLD,
    MAX_ALPHA,
    TILE_SIZE_PX,
    TRANSMITTANCE_MIN,
    ewa_project,
    sh_to_rgb,
    view_matrices,
)
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.render import DEPTH_MIN_ALPHA, RenderOutput
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError


def check_background(background_rgb: tuple[float, float, float]) -> NDArray[np.float64]:
    """[3] float64 background colour; InputError unless three finite numbers."""
    bg = np.asarray(background_rgb, dtype=np.float64)
    if bg.shape != (3,) or not np.isfinite(bg).all():
        raise InputError(f"background_rgb: expected three finite numbers, got {background_rgb!r}")
    return bg


def check_world(world: GaussianWorld) -> None:
    """InputError unless ``world`` is a GaussianWorld."""
    if not isinstance(world, GaussianWorld):
        raise InputError(f"world: expected a GaussianWorld, got {type(world).__name__}")


def check_intrinsics(intrinsics: Intrinsics) -> None:
    """InputError unless ``intrinsics`` is an Intrinsics."""
    if not isinstance(intrinsics, Intrinsics):
        raise InputError(f"intrinsics: expected an Intrinsics, got {type(intrinsics).__name__}")


def finish_output(
    rgb_acc: NDArray[np.float64], depth_acc: NDArray[np.float64], T: NDArray[np.float64], bg: NDArray[np.float64]
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """gsplat's epilogue: composite over the background, normalize depth, NaN where alpha is low.

    Args:
        rgb_acc: [..., 3] sum of w_i * colour_i. depth_acc: [...] sum of w_i * z_i.
        T: [...] final transmittance. bg: [3] background.
    Returns:
        (rgb [..., 3], depth_m [...], alpha [...]) float32.
    """
    alpha = 1.0 - T
    rgb = rgb_acc + T[..., None] * bg
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = depth_acc / np.maximum(alpha, 1e-10)
    depth = np.where(alpha >= DEPTH_MIN_ALPHA, depth, np.nan)
    return rgb.astype(np.float32), depth.astype(np.float32), alpha.astype(np.float32)


def _render_view(
    world: GaussianWorld, intrinsics: Intrinsics, viewmat: NDArray[np.float64], campos: NDArray[np.float64],
    bg: NDArray[np.float64],
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    W, H = intrinsics.width_px, intrinsics.height_px
    T = np.ones((H, W))
    rgb = np.zeros((H, W, 3))
    dep = np.zeros((H, W))
    done = np.zeros((H, W), bool)
    if len(world) > 0:
        P = ewa_project(world, intrinsics, viewmat)
        idx = np.nonzero(P.valid)[0]
        # gsplat sorts float32 depth bits with a stable radix sort over Gaussians in index order.
        idx = idx[np.lexsort((idx, P.depth_m[idx].astype(np.float32)))]
        colors = sh_to_rgb(world.sh[idx], world.means[idx].astype(np.float64) - campos)
        px = np.arange(W) + 0.5
        py = np.arange(H) + 0.5
        ts = TILE_SIZE_PX
        for k, g in enumerate(idx):
            x0, y0, x1, y1 = (int(v) for v in P.tile_rect[g])
            xs, xe, ys, ye = x0 * ts, min(x1 * ts, W), y0 * ts, min(y1 * ts, H)
            if xs >= xe or ys >= ye:
                continue
            dx = P.mean2d_px[g, 0] - px[None, xs:xe]
            dy = P.mean2d_px[g, 1] - py[ys:ye, None]
            a, b, c = P.conic[g]
            sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
            alpha = np.minimum(MAX_ALPHA, P.opacity[g] * np.exp(-sigma))
            Tv = T[ys:ye, xs:xe]
            dv = done[ys:ye, xs:xe]
            hit = ~dv & (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
            next_T = Tv * (1.0 - alpha)
            stop = hit & (next_T <= TRANSMITTANCE_MIN)
            add = hit & ~stop
            w = np.where(add, alpha * Tv, 0.0)
            rgb[ys:ye, xs:xe] += w[..., None] * colors[k]
            dep[ys:ye, xs:xe] += w * P.depth_m[g]
            T[ys:ye, xs:xe] = np.where(add, next_T, Tv)
            done[ys:ye, xs:xe] = dv | stop
    return finish_output(rgb, dep, T, bg)


class ReferenceRenderer:
    """Brute-force float64 renderer with gsplat's conventions (tests only; tiny images and worlds)."""

    name = "reference"

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha (see :class:`srender_ros.core.ports.render.Renderer`).

        Args:
            world: the Gaussians. intrinsics: shared camera model.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        Returns:
            RenderOutput with rgb [B, H, W, 3], depth_m [B, H, W], alpha [B, H, W] (float32).
        """
        check_world(world)
        check_intrinsics(intrinsics)
        bg = check_background(background_rgb)
        V = view_matrices(T_world_cam)
        T_wc: NDArray[np.float64] = np.linalg.inv(V).astype(np.float64)
        outs = [_render_view(world, intrinsics, V[b], T_wc[b, :3, 3], bg) for b in range(V.shape[0])]
        H, W = intrinsics.height_px, intrinsics.width_px
        if not outs:
            return RenderOutput(np.zeros((0, H, W, 3), np.float32), np.zeros((0, H, W), np.float32),
                                np.zeros((0, H, W), np.float32))
        return RenderOutput(np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs]), np.stack([o[2] for o in outs]))

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """[B, H, W] float32 accumulated alpha (the alpha of :meth:`render`)."""
        return self.render(world, intrinsics, T_world_cam).alpha
