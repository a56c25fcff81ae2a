"""The renderer protocol every backend (gsplat, cpu) implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np
from numpy.typing import NDArray

from srender_ros.core.camera import Intrinsics
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError

#: Depth is reported only where the accumulated alpha reaches this; elsewhere it is NaN (REP 118).
DEPTH_MIN_ALPHA = 0.5
#: gsplat's near plane, metres: Gaussians with camera z below it are culled.
NEAR_PLANE_M = 0.01
FAR_PLANE_M = 1e10


class RenderOutput(NamedTuple):
    """A batch of rendered views.

    Attributes:
        rgb: [B, H, W, 3] float32 in [0, 1] (composited over ``background_rgb``).
        depth_m: [B, H, W] float32 z-depth along the optical axis, metres: the alpha-normalized
            expected depth sum(w_i z_i) / sum(w_i); NaN where alpha < DEPTH_MIN_ALPHA.
        alpha: [B, H, W] float32 accumulated opacity in [0, 1].
    """

    rgb: NDArray[np.float32]
    depth_m: NDArray[np.float32]
    alpha: NDArray[np.float32]


class Renderer(Protocol):
    """Renders a GaussianWorld from a batch of optical-frame camera poses."""

    name: str

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha.

        Args:
            world: the Gaussians.
            intrinsics: one camera model shared by the batch.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        """
        ...

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """Alpha only, for many poses at once (the scheduler's signal; pass low-res intrinsics).

        Args:
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
        Returns:
            [B, H, W] float32 accumulated alpha.
        """
        ...


class BatchRenderer(Renderer, Protocol):
    """A renderer with a native batched path: B views, possibly of different worlds, in one call."""

    def render_batch(
        self,
        worlds: Sequence[GaussianWorld],
        world_index: NDArray[np.integer],
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render view b of ``worlds[world_index[b]]`` for every b; same outputs as :func:`render_batch`."""
        ...


def check_world_index(worlds: Sequence[GaussianWorld], world_index: NDArray[np.integer] | Sequence[int],
                      batch: int) -> NDArray[np.int64]:
    """Validate a batch's world index: [B] integers in 0..len(worlds)-1.

    Raises:
        InputError: wrong shape, non-integer entries or an index without a world.
    """
    idx = np.asarray(world_index)
    if idx.shape != (batch,):
        raise InputError(f"world_index has shape {idx.shape}; expected ({batch},), one world per pose")
    if batch and not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"world_index must hold integers, got dtype {idx.dtype}")
    if batch and (idx.min() < 0 or idx.max() >= len(worlds)):
        raise InputError(f"world_index entries must be in 0..{len(worlds) - 1} (one per world given); "
                         f"got {int(idx.min())}..{int(idx.max())}")
    return idx.astype(np.int64)


def render_batch(
    renderer: Renderer,
    worlds: Sequence[GaussianWorld],
    world_index: NDArray[np.integer] | Sequence[int],
    intrinsics: Intrinsics,
    T_world_cam: NDArray[np.floating],
    background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> RenderOutput:
    """Render B views, view b of ``worlds[world_index[b]]``, through any renderer.

    Uses the renderer's own ``render_batch`` where it has one (cpu: views share the threads; gsplat:
    one launch); otherwise one ``render`` call per distinct world.

    Args:
        renderer: any Renderer.
        worlds: the distinct worlds of the batch.
        world_index: [B] int, which world each pose looks at.
        intrinsics: one camera model shared by the batch.
        T_world_cam: [B, 4, 4] optical camera-to-world poses.
        background_rgb: colour composited behind the Gaussians.
    Returns:
        RenderOutput with rgb [B, H, W, 3], depth_m [B, H, W], alpha [B, H, W] in pose order: each
        view equal to ``renderer.render(worlds[world_index[b]], intrinsics, T_world_cam[b:b+1])``.
    Raises:
        InputError: a bad world index, world, camera or pose.
    """
    native = getattr(renderer, "render_batch", None)
    if native is not None:
        out: RenderOutput = native(worlds, np.asarray(world_index), intrinsics, T_world_cam, background_rgb)
        return out
    return render_per_world(renderer, worlds, world_index, intrinsics, T_world_cam, background_rgb)


def render_per_world(
    renderer: Renderer,
    worlds: Sequence[GaussianWorld],
    world_index: NDArray[np.integer] | Sequence[int],
    intrinsics: Intrinsics,
    T_world_cam: NDArray[np.floating],
    background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> RenderOutput:
    """:func:`render_batch` as one ``renderer.render`` call per distinct world (the generic path)."""
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise InputError(f"T_world_cam has shape {T.shape}; expected [B, 4, 4]")
    idx = check_world_index(worlds, world_index, T.shape[0])
    B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
    rgb = np.empty((B, H, W, 3), np.float32)
    depth = np.empty((B, H, W), np.float32)
    alpha = np.empty((B, H, W), np.float32)
    for w in np.unique(idx):
        sel = np.nonzero(idx == w)[0]
        part = renderer.render(worlds[int(w)], intrinsics, T[sel], background_rgb)
        rgb[sel], depth[sel], alpha[sel] = part.rgb, part.depth_m, part.alpha
    return RenderOutput(rgb, depth, alpha)
