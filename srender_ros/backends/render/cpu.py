"""The fast CPU backend: gsplat's rasterization rules in numba-compiled code (no GPU needed).

Same outputs as gsplat 1.5.3 ``rasterization(render_mode="RGB+ED", rasterize_mode="classic",
packed=False, eps2d=0.3, near_plane=0.01)`` up to float rounding (it computes in float64), and
the same as :class:`srender_ros.backends.render.reference.ReferenceRenderer` to ~1e-12. The rules are listed
in :mod:`srender_ros.backends.render.projection`; the kernels are in :mod:`srender_ros.backends.render._cpu_kernels`.

Speed comes from: per-world constants (3D covariances, opacity terms) computed once, stored
column-wise in spatial (Morton) order and cached per world object; a conservative frustum test on
blocks of 256 Gaussians; a branch-free projection that LLVM vectorizes; one stable radix sort of
float32 depth keys per view, then a counting sort into tiles of 16 rows; front-to-back compositing
8 pixels at a time (vectorized, with a polynomial exp) over only the rows and columns where a
Gaussian's alpha can reach 1/255; threads over Gaussian blocks and tiles (renders) or over poses
(coverage, which skips all colour work). The kernels release the GIL and run on a small shared
thread pool (``NUMBA_NUM_THREADS`` workers, default: all CPUs).
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numba
import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.render import _cpu_kernels as K
from srender_ros.backends.render.cpu_index import DEFAULT_LOD_PX, PreparedWorld, build_index
from srender_ros.backends.render.projection import ALPHA_THRESHOLD, FOV_CLAMP_MARGIN, validate_poses
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
from srender_ros.errors import InputError

_T = TypeVar("_T")
_R = TypeVar("_R")

#: Slack on the conservative block-culling bound, so poses whose rotation is orthonormal only to
#: projection.ROTATION_TOL never lose a Gaussian that the exact test would keep.
_PRECULL_SAFETY = 1.01


_PreparedWorld = PreparedWorld


def _prepare(world: GaussianWorld) -> _PreparedWorld:
    # Gaussians below the alpha threshold can never be drawn (gsplat culls them in projection).
    opac = 1.0 / (1.0 + np.exp(-world.opacity_logits.astype(np.float64)))
    kept = np.nonzero(opac >= ALPHA_THRESHOLD)[0].astype(np.int64)
    return build_index(world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, kept, world.sh)


def lod_factor(intrinsics: Intrinsics, lod_px: float) -> float:
    """The kernels' lod_k = max(fx, fy) / lod_px (a cell takes level l when voxel_l * lod_k <= distance);
    a huge number when lod_px <= 0 (LOD off: always the fine level)."""
    if lod_px <= 0:
        return 1e300
    return max(intrinsics.fx_px, intrinsics.fy_px) / lod_px


def default_lod_px() -> float:
    """LOD threshold in px: ``SRENDER_CPU_LOD_PX`` if set (0 turns LOD off), else DEFAULT_LOD_PX."""
    raw = os.environ.get("SRENDER_CPU_LOD_PX", "").strip()
    if not raw:
        return DEFAULT_LOD_PX
    try:
        return float(raw)
    except ValueError:
        raise InputError(f"SRENDER_CPU_LOD_PX={raw!r}: expected a number of pixels (0 turns LOD off)") from None


def camera_vectors(intrinsics: Intrinsics, viewmats: NDArray[np.float64], campos: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pack the constants of B views for the kernels (layout: _cpu_kernels.C_*), vectorized over views.

    Element-wise arithmetic only, so a view's vector does not depend on the batch it came in.

    Args:
        intrinsics: the camera. viewmats: [B, 4, 4] world-to-camera. campos: [B, 3] camera centres, world.
    Returns:
        [B, NCAM] float64.
    """
    V = np.asarray(viewmats, np.float64).reshape(-1, 4, 4)
    B = V.shape[0]
    W, H = intrinsics.width_px, intrinsics.height_px
    fx, fy, cx, cy = intrinsics.fx_px, intrinsics.fy_px, intrinsics.cx_px, intrinsics.cy_px
    cam = np.zeros((B, K.NCAM))
    R = V[:, :3, :3]
    t = V[:, :3, 3]
    cam[:, K.C_R:K.C_R + 9] = R.reshape(B, 9)
    cam[:, K.C_T:K.C_T + 3] = t
    # Same expressions as projection.ewa_project, so the clamps agree bit for bit.
    lxp = (W - cx) / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
    lxn = cx / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
    lyp = (H - cy) / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
    lyn = cy / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
    # |row i of J R|^2 <= f^2/z^2 (1 + lim^2): the largest 2D variance a Gaussian of scale s can reach
    # is that times s^2, which bounds its box for the cheap pre-cull.
    kx = fx * fx * (1.0 + max(abs(lxp), abs(lxn)) ** 2) * _PRECULL_SAFETY
    ky = fy * fy * (1.0 + max(abs(lyp), abs(lyn)) ** 2) * _PRECULL_SAFETY
    cam[:, [K.C_FX, K.C_FY, K.C_CX, K.C_CY, K.C_W, K.C_H]] = fx, fy, cx, cy, W, H
    cam[:, [K.C_LXP, K.C_LXN, K.C_LYP, K.C_LYN]] = lxp, lxn, lyp, lyn
    cam[:, K.C_KX], cam[:, K.C_KY] = kx, ky
    cam[:, [K.C_PX, K.C_PY, K.C_PZ]] = np.asarray(campos, np.float64).reshape(B, 3)
    cam[:, K.C_NEAR], cam[:, K.C_FAR] = NEAR_PLANE_M, FAR_PLANE_M
    # Image borders widened by a margin, as planes n . p_cam + rho <= 0 (culled side); see _block_visible.
    # n_cam = (sx, sy, a) with one of sx, sy = +-1 and the other 0, so R^T n_cam = s R[row] + a R[2].
    mg = K.BLOCK_MARGIN_PX
    rho_x, rho_y = np.sqrt(kx) / fx, np.sqrt(ky) / fy
    planes = ((0, 1.0, (cx + mg) / fx, rho_x), (0, -1.0, (W - cx + mg) / fx, rho_x),
              (1, 1.0, (cy + mg) / fy, rho_y), (1, -1.0, (H - cy + mg) / fy, rho_y))
    for q, (row, sign, a, rho) in enumerate(planes):
        o = K.C_PLANES + 6 * q
        cam[:, o:o + 3] = sign * R[:, row, :] + a * R[:, 2, :]
        cam[:, o + 3] = sign * t[:, row] + a * t[:, 2]
        cam[:, o + 4] = np.sqrt(1.0 + a * a)
        cam[:, o + 5] = rho
    return cam


def camera_vector(intrinsics: Intrinsics, viewmat: NDArray[np.float64], campos: NDArray[np.float64]) -> NDArray[np.float64]:
    """One view's constants for the kernels: :func:`camera_vectors` of a batch of one.

    Args:
        intrinsics: the camera. viewmat: [4, 4] world-to-camera. campos: [3] camera centre, world.
    Returns:
        [NCAM] float64.
    """
    return camera_vectors(intrinsics, viewmat[None], np.asarray(campos)[None])[0]


class _Buffers:
    """Scratch arrays for one render/coverage call, sized for M Gaussians (rows are touched as used)."""

    def __init__(self, m: int) -> None:
        self.rec = np.empty((m, K.NREC))
        self.srec = np.empty((m, K.NREC))
        self.keyf = np.empty(m, np.float32)
        self.rgid = np.empty(m, np.int64)


#: Internal tile widths, px (tiles are _cpu_kernels.TILE_H rows high). Wider tiles split fewer
#: Gaussians across tile borders; renders need enough tiles to share among threads, while coverage
#: runs one view per thread and takes whole rows up to MAX_TILE_W.
RENDER_TILE_W = 64
COVERAGE_TILE_W = 128


def _tiling(W: int, H: int, tile_w: int) -> tuple[int, int, int]:
    """(tile width, tiles across, tiles down) for a W x H image."""
    tw = max(K.CHUNK, min(tile_w, K.MAX_TILE_W, W))
    return tw, -(-W // tw), -(-H // K.TILE_H)


def _tile_parts(ntiles: int) -> list[NDArray[np.int64]]:
    """The tiles of a view split into 2 parts per thread: a fixed shuffle, because neighbouring tiles
    cost alike (sky vs. floor), then interleaved."""
    order = np.random.default_rng(12345).permutation(ntiles).astype(np.int64)
    k = 2 * _num_threads()
    return [order[i::k] for i in range(k) if len(order[i::k])]


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _parallel_map(fn: Callable[..., _R], items: Sequence[_T], *args: Any) -> list[_R]:
    """[fn(item, *args) for item in items] on a shared thread pool (the kernels release the GIL)."""
    global _POOL
    if len(items) <= 1 or _num_threads() <= 1:
        return [fn(x, *args) for x in items]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=_num_threads(), thread_name_prefix="srender-cpu")
        pool = _POOL
    return list(pool.map(lambda x: fn(x, *args), items))


def _project_cells(c0: int, c1: int, p: _PreparedWorld, lod_k: float, cam: NDArray[np.float64], buf: _Buffers,
                   k0: int, with_color: bool) -> int:
    """Project cells [c0, c1) of a prepared world into buf from row k0 (see _cpu_kernels.project_cells)."""
    return int(K.project_cells(c0, c1, p.G, p.bstart, p.bounds, p.cells, p.crange, p.lodvox, lod_k, p.gid, p.sh,
                               p.csh, cam, buf.rec, buf.keyf, buf.rgid, k0, with_color))


def _coverage_views(views: range, p: _PreparedWorld, lod_k: float, cams: NDArray[np.float64], W: int, H: int,
                    out: NDArray[np.float32]) -> None:
    """Alpha of the given views one after another (one thread; the kernels release the GIL)."""
    tw, ntx, nty = _tiling(W, H, COVERAGE_TILE_W)
    tiles = np.arange(ntx * nty, dtype=np.int64)
    buf = _thread_buffers(p.nrows)
    nc = p.cells.shape[0]
    for v in views:
        n = _project_cells(0, nc, p, lod_k, cams[v], buf, 0, False)
        offsets, lists = K.sort_and_bin(buf.rec, buf.keyf, buf.rgid, n, tw, ntx, nty, buf.srec, K.R_HY + 1)
        K.raster_tiles_alpha(tiles, buf.srec, lists, offsets, W, H, tw, ntx, out[v])


def _project_part(cells: tuple[int, int], p: _PreparedWorld, lod_k: float, cam: NDArray[np.float64], buf: _Buffers,
                  with_color: bool) -> int:
    c0, c1 = cells
    return _project_cells(c0, c1, p, lod_k, cam, buf, int(p.crow[c0]), with_color)


#: Worlds whose per-world constants stay cached (a batch's worlds are never evicted while it runs).
CACHE_WORLDS = 4

_LOCAL = threading.local()


def _thread_buffers(m: int) -> _Buffers:
    """This thread's scratch buffers with room for at least m Gaussians (kept between calls, so small
    renders do not pay for fresh pages every time)."""
    buf: _Buffers | None = getattr(_LOCAL, "buf", None)
    if buf is None or buf.rec.shape[0] < m:
        buf = _Buffers(max(m, 1))
        _LOCAL.buf = buf
    return buf


class CpuRenderer:
    """gsplat-compatible rasterizer on the CPU (numba; threads over tiles, or over poses for coverage).

    Thread-safe; the per-world constants of the CACHE_WORLDS most recently prepared worlds are cached
    (weakly, so a dropped world frees them). The first call in a fresh checkout compiles the kernels
    (~15 s of CPU); numba caches them under ``__pycache__`` for later processes.
    """

    name = "cpu"

    def __init__(self, lod_px: float | None = None) -> None:
        """lod_px: projected voxel size (px) under which a cell's coarse level is drawn (see cpu_index);
        0 turns level of detail off; None: ``SRENDER_CPU_LOD_PX`` or DEFAULT_LOD_PX (1 px)."""
        self.lod_px = default_lod_px() if lod_px is None else float(lod_px)
        self._cache: weakref.WeakKeyDictionary[GaussianWorld, _PreparedWorld] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _prepared(self, world: GaussianWorld, keep: Sequence[GaussianWorld] = ()) -> _PreparedWorld:
        """The world's constants (cached; the oldest entries not in ``keep`` make room beyond CACHE_WORLDS)."""
        with self._lock:
            p = self._cache.get(world)
            if p is None:
                p = _prepare(world)
                keep_ids = {id(w) for w in keep} | {id(world)}
                for old in [w for w in list(self._cache.keys()) if id(w) not in keep_ids]:
                    if len(self._cache) < CACHE_WORLDS:
                        break
                    del self._cache[old]
                self._cache[world] = p
            return p

    @staticmethod
    def _bin_view(
        p: _PreparedWorld, lod_k: float, cam: NDArray[np.float64], buf: _Buffers, tiling: tuple[int, int, int],
        with_color: bool
    ) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
        """Project (in threads), depth-sort into buf.srec and bin one view; returns (tile offsets, tile lists)."""
        nparts = _num_threads()
        # Cells split into parts of about equal fine Gaussian counts (rows start at crow[c0]).
        cuts = np.searchsorted(p.crow, np.arange(nparts + 1) * (p.nrows / nparts), side="left")
        cuts[0], cuts[-1] = 0, p.cells.shape[0]
        cuts = np.maximum.accumulate(np.minimum(cuts, p.cells.shape[0]))
        bounds_of = [(int(cuts[c]), int(cuts[c + 1])) for c in range(nparts)]
        starts = np.array([p.crow[c0] for c0, _ in bounds_of], np.int64)
        counts = np.array(_parallel_map(_project_part, bounds_of, p, lod_k, cam, buf, with_color), np.int64)
        n = K.compact_chunks(starts, counts, buf.rec, buf.keyf, buf.rgid)
        ncols = K.NREC if with_color else K.R_HY + 1
        tw, ntx, nty = tiling
        offsets, lists = K.sort_and_bin(buf.rec, buf.keyf, buf.rgid, n, tw, ntx, nty, buf.srec, ncols)
        return offsets, lists

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha for a batch of poses (views one after another).

        Args:
            world: the Gaussians.
            intrinsics: one camera model shared by the batch.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        Returns:
            RenderOutput: rgb [B, H, W, 3], depth_m [B, H, W] (NaN where alpha < DEPTH_MIN_ALPHA),
            alpha [B, H, W], all float32.
        Raises:
            InputError: a bad world, intrinsics, pose or background.
        """
        check_world(world)
        check_intrinsics(intrinsics)
        bg = check_background(background_rgb)
        T = validate_poses(T_world_cam)
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        rgb = np.empty((B, H, W, 3), np.float32)
        depth = np.empty((B, H, W), np.float32)
        alpha = np.empty((B, H, W), np.float32)
        p = self._prepared(world)
        m = p.nrows
        if m == 0 or B == 0:
            rgb[:] = bg.astype(np.float32)
            depth[:] = np.nan
            alpha[:] = 0.0
            return RenderOutput(rgb, depth, alpha)
        V = invert_transform(T)
        tiling = _tiling(W, H, RENDER_TILE_W)
        tw, ntx, nty = tiling
        parts = _tile_parts(ntx * nty)
        buf = _Buffers(m)
        cams = camera_vectors(intrinsics, V, T[:, :3, 3])
        lod_k = lod_factor(intrinsics, self.lod_px)
        for b in range(B):
            offsets, lists = self._bin_view(p, lod_k, cams[b], buf, tiling, with_color=True)
            _parallel_map(K.raster_tiles_rgb, parts, buf.srec, lists, offsets, W, H, tw, ntx, bg, rgb[b], depth[b],
                          alpha[b], DEPTH_MIN_ALPHA)
        return RenderOutput(rgb, depth, alpha)

    def render_batch(
        self,
        worlds: Sequence[GaussianWorld],
        world_index: NDArray[np.integer],
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render B views, view b of ``worlds[world_index[b]]``, sharing the threads across views.

        Each view runs start to finish on one thread (cull, project, sort, bin, composite in one
        compiled call); threads take the next view as they finish, so views of cheap and costly
        worlds balance. With fewer views than threads it falls back to splitting each view over
        the threads (:meth:`render`). Pixels equal :meth:`render` of each view exactly.

        Args:
            worlds: the distinct worlds of the batch.
            world_index: [B] int, the world of each pose.
            intrinsics: one camera model shared by the batch.
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
            background_rgb: colour composited behind the Gaussians.
        Returns:
            RenderOutput: rgb [B, H, W, 3], depth_m [B, H, W] (NaN where alpha < DEPTH_MIN_ALPHA),
            alpha [B, H, W], all float32, in pose order.
        Raises:
            InputError: a bad world, world index, intrinsics, pose or background.
        """
        for w in worlds:
            check_world(w)
        check_intrinsics(intrinsics)
        bg = check_background(background_rgb)
        T = validate_poses(T_world_cam)
        idx = check_world_index(worlds, world_index, T.shape[0])
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        if B < _num_threads():
            return render_per_world(self, worlds, idx, intrinsics, T, background_rgb)
        used = sorted(set(idx.tolist()))
        prepared = {w: self._prepared(worlds[w], keep=[worlds[u] for u in used]) for w in used}
        rgb = np.empty((B, H, W, 3), np.float32)
        depth = np.empty((B, H, W), np.float32)
        alpha = np.empty((B, H, W), np.float32)
        cams = camera_vectors(intrinsics, invert_transform(T), T[:, :3, 3])
        tw, ntx, nty = _tiling(W, H, RENDER_TILE_W)
        m_max = max(p.nrows for p in prepared.values())
        lod_k = lod_factor(intrinsics, self.lod_px)
        counter = itertools.count()

        def worker(_: int) -> None:
            buf = _thread_buffers(m_max)
            while (b := next(counter)) < B:  # next() on a count is atomic under the GIL
                p = prepared[int(idx[b])]
                if p.nrows == 0:
                    rgb[b] = bg.astype(np.float32)
                    depth[b] = np.nan
                    alpha[b] = 0.0
                    continue
                K.render_view_rgb(p.G, p.bstart, p.bounds, p.cells, p.crange, p.lodvox, lod_k, p.gid, p.sh, p.csh,
                                  cams[b], buf.rec, buf.keyf, buf.rgid, buf.srec, tw, ntx, nty, W, H, bg, rgb[b],
                                  depth[b], alpha[b], DEPTH_MIN_ALPHA)

        _parallel_map(worker, list(range(_num_threads())))
        return RenderOutput(rgb, depth, alpha)

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """Accumulated alpha only, for many poses at once (pass low-resolution intrinsics).

        Args:
            world: the Gaussians. intrinsics: camera model (e.g. ``Intrinsics.scaled(0.125)``).
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
        Returns:
            [B, H, W] float32 alpha, equal to ``render(...).alpha`` at the same intrinsics.
        """
        check_world(world)
        check_intrinsics(intrinsics)
        T = validate_poses(T_world_cam)
        B, W, H = T.shape[0], intrinsics.width_px, intrinsics.height_px
        out = np.zeros((B, H, W), np.float32)
        p = self._prepared(world)
        m = p.nrows
        if m == 0 or B == 0:
            return out
        lod_k = lod_factor(intrinsics, self.lod_px)
        V = invert_transform(T)
        cams = camera_vectors(intrinsics, V, T[:, :3, 3])
        nthreads = _num_threads()
        if B >= 2 * nthreads:
            # Many poses: one view per thread at a time (views interleaved so threads share the work).
            _parallel_map(_coverage_views, [range(c, B, 2 * nthreads) for c in range(2 * nthreads)], p, lod_k, cams, W, H,
                          out)
            return out
        # Few poses: parallelize inside each view instead.
        tiling = _tiling(W, H, RENDER_TILE_W)
        tw, ntx, nty = tiling
        parts = _tile_parts(ntx * nty)
        buf = _Buffers(m)
        for b in range(B):
            offsets, lists = self._bin_view(p, lod_k, cams[b], buf, tiling, with_color=False)
            _parallel_map(K.raster_tiles_alpha, parts, buf.srec, lists, offsets, W, H, tw, ntx, out[b])
        return out


def _num_threads() -> int:
    """Worker threads: numba's setting (NUMBA_NUM_THREADS, default: the CPU count)."""
    return int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
