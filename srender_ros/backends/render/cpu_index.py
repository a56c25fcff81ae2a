"""The CPU renderer's spatial index and level of detail (built once per world in the prepared cache).

A world's drawable Gaussians are grouped by the cells of a :class:`~srender_ros.core.cells.CellGrid`
(``LOD_CELL_M`` = 2 m cubes; a sub-grid of the 8 m storage grid, so every LOD cell lies in exactly
one storage cell). Each cell holds its **fine level** (the world's own Gaussians, level 0) and up to
``LOD_LEVELS`` **coarse levels**: level l merges the Gaussians of level l-1 that fall in one voxel
of edge ``v_l = LOD_CELL_M / 64 * 2**(l-1)`` (3.1 cm, 6.25 cm, ... 1 m; voxels nest in cells) into
one Gaussian by moment matching (weights w = opacity x trace of the covariance, an area proxy):

- mean = sum w mu / sum w; covariance = sum w (Sigma + (mu - mean)(mu - mean)^T) / sum w;
- colour (every SH coefficient) = sum w c / sum w;
- opacity = min(max_i o_i, sum o_i tr_i / tr_merged): the alpha mass is kept, never above the most
  opaque member (a dense patch stays as opaque as its members, a sparse one becomes fainter).

**The rule** (per view, per cell; :func:`_cpu_kernels.project_cells`): with d the distance from the
camera centre to the cell's bounding sphere (at least the near plane) and f = max(fx, fy), the cell
is drawn at the coarsest level l whose voxel projects to at most ``lod_px`` pixels:
``f * v_l / d <= lod_px``; level 0 (the exact fine Gaussians) when no level qualifies. With
``lod_px = 1`` a merged Gaussian is at most about 0.3 px (sigma of a uniformly filled voxel is
0.29 v), below gsplat's own eps2d blur (sigma 0.55 px), so coarse levels change pixels little;
a camera near a cell always renders exactly its fine Gaussians, and ``lod_px <= 0`` turns LOD off
(every pixel then equals the renderer without the index bit for bit: culling is conservative).

Culling is hierarchical: a cell's bounding sphere (all levels) against the widened frustum first,
then each block of at most ``BLOCK`` Gaussians of the chosen level. Cost per view therefore
follows the cells in view and their projected size, not the world's Gaussian count.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.render import _cpu_kernels as K
from srender_ros.core.cells import CellGrid

#: Edge of an LOD/culling cell in metres (divides the storage grid's 8 m).
LOD_CELL_M = 2.0
#: Coarse levels per cell: voxel edges LOD_CELL_M / 64 * 2**(l-1) for l = 1..LOD_LEVELS.
LOD_LEVELS = 6
#: Default projected voxel size (px) under which a coarse level is drawn; 0 disables LOD.
DEFAULT_LOD_PX = 1.0


class PreparedWorld(NamedTuple):
    """Per-world constants of the Gaussians that can ever be drawn (opacity >= 1/255), indexed.

    Columns of G: every cell's fine level, then the coarse levels, each (cell, level) group a run of
    whole blocks in Morton order within the cell.
    """

    G: NDArray[np.float64]  # [NG, M] float64 rows (see _cpu_kernels.G_*)
    gid: NDArray[np.int64]  # [M] world index of a fine column; nsh + row of csh for a coarse one
    sh: NDArray[np.float32]  # [N, K, 3] the world's SH coefficients
    csh: NDArray[np.float32]  # [Mc, K, 3] SH of the coarse Gaussians
    bstart: NDArray[np.int64]  # [nb + 1] first column of each block
    bounds: NDArray[np.float64]  # [nb, 5] block bounding spheres (centre, radius, max ext * s_max)
    cells: NDArray[np.float64]  # [nc, 5] cell bounding spheres over all levels
    crange: NDArray[np.int64]  # [nc, LOD_LEVELS + 1, 2] block range of each level of each cell
    crow: NDArray[np.int64]  # [nc + 1] cumulative fine counts: record rows a range of cells may need
    lodvox: NDArray[np.float64]  # [LOD_LEVELS + 1] voxel edge per level (0 for the fine level)

    @property
    def nrows(self) -> int:
        """Most records one view can produce (the fine Gaussians)."""
        return int(self.crow[-1])


def voxel_sizes(cell_m: float = LOD_CELL_M, levels: int = LOD_LEVELS) -> NDArray[np.float64]:
    """[levels + 1] voxel edge in metres of each level (0.0 for the fine level)."""
    return np.array([0.0] + [cell_m / 64.0 * 2.0 ** (level - 1) for level in range(1, levels + 1)])


def _morton_codes(q: NDArray[np.int64]) -> NDArray[np.uint64]:
    """30-bit Morton codes of [n, 3] integers in 0..1023."""
    qq = np.clip(q, 0, 1023).astype(np.uint64)
    code = np.zeros(len(qq), np.uint64)
    for bit in range(10):
        for axis in range(3):
            code |= ((qq[:, axis] >> np.uint64(bit)) & np.uint64(1)) << np.uint64(3 * bit + axis)
    return code


def _merge_level(pos: NDArray[np.float64], cov: NDArray[np.float64], op: NDArray[np.float64],
                 col: NDArray[np.float32], cell: NDArray[np.int64], voxel_m: float
                 ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float32],
                            NDArray[np.int64]]:
    """Merge Gaussians that share a cell and a voxel of edge voxel_m (moment matching, see module doc).

    Args: pos [n, 3] m, cov [n, 6] (xx xy xz yy yz zz) m^2, op [n], col [n, K, 3], cell [n] cell ids.
    Returns: the same arrays for the merged Gaussians (sorted by cell, then voxel).
    """
    vk = np.floor(pos / voxel_m).astype(np.int64)
    order = np.lexsort((vk[:, 2], vk[:, 1], vk[:, 0], cell))
    vs, cs = vk[order], cell[order]
    new = np.ones(len(order), bool)
    new[1:] = (cs[1:] != cs[:-1]) | np.any(vs[1:] != vs[:-1], axis=1)
    starts = np.nonzero(new)[0]
    p, c, o = pos[order], cov[order], op[order]
    tr = np.maximum(c[:, 0] + c[:, 3] + c[:, 5], 1e-30)
    w = o * tr
    sw = np.add.reduceat(w, starts)
    mean = np.add.reduceat(p * w[:, None], starts) / sw[:, None]
    d = p - np.repeat(mean, np.diff(np.append(starts, len(order))), axis=0)
    outer = np.stack([d[:, 0] * d[:, 0], d[:, 0] * d[:, 1], d[:, 0] * d[:, 2],
                      d[:, 1] * d[:, 1], d[:, 1] * d[:, 2], d[:, 2] * d[:, 2]], axis=1)
    mcov = np.add.reduceat((c + outer) * w[:, None], starts) / sw[:, None]
    mtr = np.maximum(mcov[:, 0] + mcov[:, 3] + mcov[:, 5], 1e-30)
    mop = np.minimum(np.maximum.reduceat(o, starts), np.add.reduceat(o * tr, starts) / mtr)
    wc = (col[order].astype(np.float64) * w[:, None, None])
    mcol = (np.add.reduceat(wc, starts) / sw[:, None, None]).astype(np.float32)
    return mean, mcov, mop, mcol, cs[starts]


def build_index(G_fine: NDArray[np.float64], gid_fine: NDArray[np.int64], sh: NDArray[np.float32],
                grid: CellGrid | None = None, levels: int = LOD_LEVELS) -> PreparedWorld:
    """Group prepared fine columns by cell, build the coarse levels and the block/cell tables.

    Args:
        G_fine: [NG, n] prepared constants of the drawable Gaussians (any order).
        gid_fine: [n] their world indices. sh: [N, K, 3] the world's SH coefficients.
        grid: the cell grid (default CellGrid(LOD_CELL_M)). levels: coarse levels to build.
    """
    grid = grid or CellGrid(LOD_CELL_M)
    nsh = sh.shape[0]
    kdim = sh.shape[1]
    vox = voxel_sizes(grid.size_m, levels)
    n = G_fine.shape[1]
    if n == 0:
        z = np.zeros
        return PreparedWorld(z((K.NG, 0)), z(0, np.int64), sh, z((0, kdim, 3), np.float32), z(1, np.int64),
                             z((0, 5)), z((0, 5)), z((0, levels + 1, 2), np.int64), z(1, np.int64), vox)
    pos = G_fine[[K.G_PX, K.G_PY, K.G_PZ]].T.copy()
    keys = grid.keys(pos)
    ukeys, cell = np.unique(keys, axis=0, return_inverse=True)
    cell = cell.reshape(-1).astype(np.int64)
    nc = len(ukeys)
    lo = ukeys.astype(np.float64) * grid.size_m

    # Level groups: (cell, level, morton within cell) for every column, fine and coarse.
    cols = [G_fine]
    gids = [gid_fine]
    lvl_of = [np.zeros(n, np.int64)]
    cell_of = [cell]
    cov = G_fine[[K.G_XX, K.G_XY, K.G_XZ, K.G_YY, K.G_YZ, K.G_ZZ]].T.copy()
    op = G_fine[K.G_OP].copy()
    col = sh[gid_fine]
    cpos, ccell = pos, cell
    csh_parts: list[NDArray[np.float32]] = []
    nco = 0
    for level in range(1, levels + 1):
        cpos, cov, op, col, ccell = _merge_level(cpos, cov, op, col, ccell, float(vox[level]))
        m = len(op)
        Gc = np.empty((K.NG, m))
        Gc[K.G_PX], Gc[K.G_PY], Gc[K.G_PZ] = cpos.T
        for f, g in enumerate((K.G_XX, K.G_XY, K.G_XZ, K.G_YY, K.G_YZ, K.G_ZZ)):
            Gc[g] = cov[:, f]
        op = np.clip(op, K.ALPHA_THR, K.MAX_ALPHA)
        Gc[K.G_OP] = op
        lnop = np.log(op / K.ALPHA_THR)
        Gc[K.G_LNOP] = lnop
        Gc[K.G_EXT] = np.minimum(K.EXTEND, np.sqrt(2.0 * lnop))
        Gc[K.G_SMAX2] = cov[:, 0] + cov[:, 3] + cov[:, 5]  # trace >= largest eigenvalue (culling only)
        cols.append(Gc)
        gids.append(nsh + nco + np.arange(m, dtype=np.int64))
        lvl_of.append(np.full(m, level, np.int64))
        cell_of.append(ccell)
        csh_parts.append(col)
        nco += m
    G_all = np.concatenate(cols, axis=1)
    gid_all = np.concatenate(gids)
    lvl_all = np.concatenate(lvl_of)
    cell_all = np.concatenate(cell_of)
    pall = G_all[[K.G_PX, K.G_PY, K.G_PZ]].T
    q = np.floor((pall - lo[cell_all]) / grid.size_m * 1024.0).astype(np.int64)
    order = np.lexsort((_morton_codes(q), lvl_all, cell_all))
    G = np.ascontiguousarray(G_all[:, order])
    gid = gid_all[order]
    lvl_s, cell_s = lvl_all[order], cell_all[order]

    # Counts per (cell, level), then blocks of at most BLOCK columns inside each group.
    L1 = levels + 1
    counts = np.bincount(cell_s * L1 + lvl_s, minlength=nc * L1).reshape(nc, L1)
    gstart = np.concatenate([[0], np.cumsum(counts.reshape(-1))])[:-1]
    nblk = -(-counts.reshape(-1) // K.BLOCK)
    first_blk = np.concatenate([[0], np.cumsum(nblk)])
    within = np.arange(int(first_blk[-1])) - np.repeat(first_blk[:-1], nblk)
    bs = np.repeat(gstart, nblk) + within * K.BLOCK
    bstart = np.append(bs, G.shape[1]).astype(np.int64)
    crange = np.stack([first_blk[:-1], first_blk[1:]], axis=1).reshape(nc, L1, 2).astype(np.int64)
    # A level that merged nothing in a cell is the finer level again: draw that one (same Gaussians).
    for level in range(1, L1):
        same = counts[:, level] == counts[:, level - 1]
        crange[same, level] = crange[same, level - 1]
    bounds = K.span_bounds(G, bstart)
    # Cell spheres: around the fine level's blocks (coarse means lie in their convex hull), with the
    # largest ext * s_max of any level.
    blk_cell = np.repeat(np.repeat(np.arange(nc), L1), nblk)
    blk_lvl = np.repeat(np.tile(np.arange(L1), nc), nblk)
    fine = blk_lvl == 0
    bmin = bounds[:, :3] - bounds[:, 3:4]
    bmax = bounds[:, :3] + bounds[:, 3:4]
    mn = np.full((nc, 3), np.inf)
    mx = np.full((nc, 3), -np.inf)
    np.minimum.at(mn, blk_cell[fine], bmin[fine])
    np.maximum.at(mx, blk_cell[fine], bmax[fine])
    cells = np.zeros((nc, 5))
    cells[:, :3] = 0.5 * (mn + mx)
    reach = np.linalg.norm(bounds[:, :3] - cells[blk_cell, :3], axis=1) + bounds[:, 3]
    rad = np.zeros(nc)
    np.maximum.at(rad, blk_cell[fine], reach[fine])
    cells[:, 3] = rad * (1 + 1e-9) + 1e-9
    se = np.zeros(nc)
    np.maximum.at(se, blk_cell, bounds[:, 4])
    cells[:, 4] = se
    crow = np.concatenate([[0], np.cumsum(counts[:, 0])]).astype(np.int64)
    csh = (np.concatenate(csh_parts) if csh_parts else np.zeros((0, kdim, 3), np.float32)).astype(np.float32)
    return PreparedWorld(G, gid, sh, csh, bstart, bounds, cells, crange, crow, vox)
