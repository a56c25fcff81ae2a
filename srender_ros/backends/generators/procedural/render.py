"""Rendering a batch of cameras: pixel-centre rays, adaptive anti-aliasing, threads over image rows.

Pass 1 casts one ray through every pixel centre: it gives the z-depth (exact at the centre), the
id of the surface hit and a colour whose textures are filtered over the whole pixel footprint.
Pass 2 (``supersample`` s > 1) replaces the colour of every pixel on a geometric edge (a neighbour
hit another primitive or face) or with strong colour contrast to a neighbour by the mean of s x s
rays. Textures are band-limited already, so this spends rays only where aliasing would remain.

The kernels are compiled without numba's ``parallel`` (its compile takes longer than many renders);
they release the GIL and a thread pool runs them over row ranges. Every pixel is computed
independently, so results do not depend on the number of threads.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit
from numpy.typing import NDArray

from srender_ros.backends.generators.procedural.cells import CellCache, CellTable, group_cameras
from srender_ros.backends.generators.procedural.noise import NJIT
from srender_ros.backends.generators.procedural.raycast import sample
from srender_ros.backends.generators.procedural.scene import P_ZMAX, P_ZMIN, SceneSpec
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.render import RenderOutput
from srender_ros.errors import InputError

#: Largest supersampling factor accepted (s x s rays per anti-aliased pixel).
MAX_SUPERSAMPLE = 4
#: A pixel whose colour differs from a neighbour's by more than this (any channel) is supersampled
#: even on one surface (hard texture edges such as window frames).
AA_CONTRAST = 0.25
#: Image rows per task handed to a thread.
_ROWS_PER_TASK = 16


@njit(nogil=True, **NJIT)
def _kernel(refine: bool, T: np.ndarray, rays: np.ndarray, fx: float, fy: float, ss: int, seed: np.uint64,
            params: np.ndarray, ix0: int, iy0: int, nx: int, ny: int, objs: np.ndarray, sub_cnt: np.ndarray,
            sub_idx: np.ndarray, sub_z: np.ndarray, r0: int, r1: int, rgb1: np.ndarray, depth: np.ndarray,
            ids: np.ndarray, rgb_out: np.ndarray) -> None:
    """Rows r0..r1 (flat row r = image b * H + v) of pass 1 or, with ``refine``, of pass 2.

    Pass 1 writes ``rgb1``, ``depth`` and ``ids``. Pass 2 reads them (never what it writes, so rows
    can run on any thread in any order) and writes ``rgb_out``. One kernel for both passes, so the
    ray caster is compiled into one function instead of two.
    """
    h = rays.shape[0]
    w = rays.shape[1]
    f = math.sqrt(fx * fy)
    inv = 1.0 / (ss * ss)
    for r in range(r0, r1):
        b = r // h
        v = r % h
        R = T[b]
        for u in range(w):
            if not refine:
                cr, cg, cb, t, hid = sample(R, rays[v, u, 0], rays[v, u, 1], seed, params, ix0, iy0, nx, ny, objs,
                                            sub_cnt, sub_idx, sub_z, 1.0 / f)
                rgb1[b, v, u, 0] = cr
                rgb1[b, v, u, 1] = cg
                rgb1[b, v, u, 2] = cb
                depth[b, v, u] = t
                ids[b, v, u] = hid
                continue
            hid = ids[b, v, u]
            flag = False
            for dv in range(-1, 2):
                for du in range(-1, 2):
                    vv, uu = v + dv, u + du
                    if (dv == 0 and du == 0) or vv < 0 or vv >= h or uu < 0 or uu >= w:
                        continue
                    if ids[b, vv, uu] != hid:
                        flag = True
                    else:
                        for ch in range(3):
                            if abs(rgb1[b, vv, uu, ch] - rgb1[b, v, u, ch]) > AA_CONTRAST:
                                flag = True
            if not flag:
                for ch in range(3):
                    rgb_out[b, v, u, ch] = rgb1[b, v, u, ch]
                continue
            ar, ag, ab = 0.0, 0.0, 0.0
            for sj in range(ss):
                yc = rays[v, u, 1] + ((sj + 0.5) / ss - 0.5) / fy
                for si in range(ss):
                    xc = rays[v, u, 0] + ((si + 0.5) / ss - 0.5) / fx
                    cr, cg, cb, _t, _h = sample(R, xc, yc, seed, params, ix0, iy0, nx, ny, objs, sub_cnt, sub_idx, sub_z,
                                                1.0 / (f * ss))
                    ar += cr
                    ag += cg
                    ab += cb
            rgb_out[b, v, u, 0] = ar * inv
            rgb_out[b, v, u, 1] = ag * inv
            rgb_out[b, v, u, 2] = ab * inv


_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _run_rows(n_rows: int, fn: Callable[[int, int], None]) -> None:
    """Run ``fn(r0, r1)`` over row ranges covering 0..n_rows on numba.get_num_threads() threads."""
    global _POOL, _POOL_SIZE
    threads = max(1, numba.get_num_threads())
    chunks = [(r, min(n_rows, r + _ROWS_PER_TASK)) for r in range(0, n_rows, _ROWS_PER_TASK)]
    if threads == 1 or len(chunks) == 1:
        for r0, r1 in chunks:
            fn(r0, r1)
        return
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE != threads:
            if _POOL is not None:
                _POOL.shutdown(wait=False)
            _POOL, _POOL_SIZE = ThreadPoolExecutor(threads, thread_name_prefix="srender-raycast"), threads
        pool = _POOL
    for fut in [pool.submit(fn, r0, r1) for r0, r1 in chunks]:
        fut.result()


def _check_poses(T_world_cam: NDArray[np.floating]) -> NDArray[np.float64]:
    T = np.asarray(T_world_cam, dtype=np.float64)
    if T.ndim == 2:
        T = T[None]
    if T.ndim != 3 or T.shape[1:] != (4, 4) or len(T) == 0:
        raise InputError(f"T_world_cam: expected shape [B, 4, 4] (or [4, 4]) with B >= 1, got {list(np.shape(T_world_cam))}")
    if not np.isfinite(T).all():
        raise InputError("T_world_cam: poses contain NaN or infinite values")
    R = T[:, :3, :3]
    err = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2))
    if (err > 1e-3).any():
        i = int(np.argmax(err > 1e-3))
        raise InputError(f"T_world_cam[{i}]: rotation is not orthonormal (|R R^T - I| = {err[i]:.2g}); "
                         "pass rigid camera-to-world transforms")
    return np.ascontiguousarray(T)


def _render_group(scene: SceneSpec, table: CellTable, T: NDArray[np.float64], rays: NDArray[np.float64], fx: float,
                  fy: float, ss: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Render [n, 4, 4] poses whose cells all lie in ``table``: (rgb [n, H, W, 3], depth [n, H, W])."""
    params = scene.params()
    params[P_ZMIN], params[P_ZMAX] = table.z_bounds
    seed = np.uint64(scene.seed)
    n, (H, W) = len(T), rays.shape[:2]
    rgb1 = np.empty((n, H, W, 3), dtype=np.float32)
    depth = np.empty((n, H, W), dtype=np.float32)
    ids = np.empty((n, H, W), dtype=np.int64)
    grid = (table.ix0, table.iy0, table.nx, table.ny, table.objs, table.sub_cnt, table.sub_idx, table.sub_z)
    _run_rows(n * H, lambda r0, r1: _kernel(False, T, rays, fx, fy, ss, seed, params, *grid, r0, r1, rgb1, depth, ids,
                                            rgb1))
    if ss <= 1:
        return rgb1, depth
    out = np.empty_like(rgb1)
    _run_rows(n * H, lambda r0, r1: _kernel(True, T, rays, fx, fy, ss, seed, params, *grid, r0, r1, rgb1, depth, ids,
                                            out))
    return out, depth


def render_scene(scene: SceneSpec, cache: CellCache, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
                 supersample: int = 2) -> RenderOutput:
    """Ray-cast ``scene`` from a batch of optical poses.

    Args:
        scene: the world.
        cache: the scene's cell cache (reused across calls).
        intrinsics: camera shared by the batch.
        T_world_cam: [B, 4, 4] (or [4, 4]) optical camera-to-world poses, z-up world, metres.
        supersample: s: anti-aliased pixels average s x s rays (1 = pixel centres only).
    Returns:
        RenderOutput with rgb [B, H, W, 3] float32 in [0, 1], depth_m [B, H, W] float32 z-depth of
        the pixel-centre ray (finite everywhere: the sky is at SKY_DISTANCE_M ray length), alpha
        [B, H, W] float32 = 1.
    Raises:
        InputError: bad supersample or poses (shape, NaN, non-rigid rotation).
    """
    if isinstance(supersample, bool) or not isinstance(supersample, (int, np.integer)) \
            or not 1 <= int(supersample) <= MAX_SUPERSAMPLE:
        raise InputError(f"supersample={supersample!r}: must be an integer in 1..{MAX_SUPERSAMPLE}")
    ss = int(supersample)
    T = _check_poses(T_world_cam)
    rays = np.ascontiguousarray(intrinsics.pixel_rays())
    B, H, W = len(T), intrinsics.height_px, intrinsics.width_px
    fx, fy = float(intrinsics.fx_px), float(intrinsics.fy_px)
    rgb = np.empty((B, H, W, 3), dtype=np.float32)
    depth = np.empty((B, H, W), dtype=np.float32)
    for idx in group_cameras(scene, T[:, :2, 3]):
        table = cache.table_for(T[idx, :2, 3])
        rgb[idx], depth[idx] = _render_group(scene, table, np.ascontiguousarray(T[idx]), rays, fx, fy, ss)
    return RenderOutput(rgb=rgb, depth_m=depth, alpha=np.ones((B, H, W), dtype=np.float32))
