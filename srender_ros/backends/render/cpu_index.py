"""The CPU renderer's spatial index and level of detail (built once per world in the prepared cache).

A world's drawable Gaussians are grouped by the cells of a :class:`~srender_ros.core.cells.CellGrid`
(``LOD_CELL_M`` = 1 m cubes; a sub-grid of the 8 m storage grid, so every LOD cell lies in exactly
one storage cell). Each cell holds its **fine level** (the world's own Gaussians, level 0) and up to
``LOD_LEVELS`` **coarse levels**: level l merges the Gaussians of level l-1 that fall in one voxel
of edge ``v_l = LOD_CELL_M / 64 * 2**(l-1)`` (1.6 cm, 3.1 cm, ... 1 m; voxels nest in cells) into
one Gaussian by moment matching (weights w = opacity x trace of the covariance, an area proxy):

- mean = sum w mu / sum w; covariance = sum w (Sigma + (mu - mean)(mu - mean)^T) / sum w;
- colour (every SH coefficient) = sum w c / sum w;
- opacity = min(max_i o_i, sum o_i tr_i / tr_merged): the alpha mass is kept, never above the most
  opaque member (a dense patch stays as opaque as its members, a sparse one becomes fainter).

**The rule** (per view, per cell; :func:`_cpu_kernels.project_cells`): with d the distance from the
camera centre to the bounding box of the cell's Gaussian centres (at least the near plane; no
Gaussian of the cell is nearer) and f = max(fx, fy), the cell
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
LOD_CELL_M = 1.0
#: Coarse levels per cell: voxel edges LOD_CELL_M / 64 * 2**(l-1) for l = 1..LOD_LEVELS.
LOD_LEVELS = 7
#: A coarse level is stored in a cell only where it has at most this fraction of the Gaussians of
#: the level drawn below it; elsewhere the finer level is drawn (more exact, at most 1/ratio more).
STORE_RATIO = 0.7
#: Default projected voxel size (px) under which a coarse level is drawn; 0 disables LOD.
DEFAULT_LOD_PX = 1.0


class PreparedWorld(NamedTuple):
    """Per-world constants of the Gaussians that can ever be drawn (opacity >= 1/255), indexed.

    Columns of G: level 0 (the fine Gaussians) of every cell, then level 1 of every cell, ...; each
    (level, cell) group is a run of whole blocks, in Morton order of 1/64-cell voxels within the cell.
    """

    G: NDArray[np.float64]  # [NG, M] float64 rows (see _cpu_kernels.G_*)
    gid: NDArray[np.int64]  # [M] world index of a fine column; nsh + row of csh for a coarse one
    sh: NDArray[np.float32]  # [N, K, 3] the world's SH coefficients
    csh: NDArray[np.float32]  # [Mc, K, 3] SH of the coarse Gaussians
    bstart: NDArray[np.int64]  # [nb + 1] first column of each block
    bounds: NDArray[np.float64]  # [nb, 5] block bounding spheres (centre, radius, max ext * s_max)
    cells: NDArray[np.float64]  # [nc, 11] bounding sphere over all levels (5, as bounds), box of the means (6)
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


def _morton_codes(q: NDArray[np.int64], bits: int) -> NDArray[np.int64]:
    """Morton codes of [n, 3] integers in 0..2**bits - 1 (3 * bits bits)."""
    qq = q.astype(np.int64)
    code = np.zeros(len(qq), np.int64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((qq[:, axis] >> bit) & 1) << (3 * bit + axis)
    return code


def build_index(means: NDArray[np.float32], quats: NDArray[np.float32], log_scales: NDArray[np.float32],
                logits: NDArray[np.float32], kept: NDArray[np.int64], sh: NDArray[np.float32],
                grid: CellGrid | None = None, levels: int = LOD_LEVELS) -> PreparedWorld:
    """Group prepared fine columns by cell, build the coarse levels and the block/cell tables.

    One sort by (cell, Morton code of the level-1 voxel inside the cell): voxels nest, so the
    Gaussians of every level's voxel are then one run (the code shifted by 3 bits per level), and
    each level is merged from the one below by run sums.

    Args:
        means, quats, log_scales, logits: the world's arrays ([N, 3], [N, 4] wxyz, [N, 3], [N]).
        kept: [n] indices of the drawable Gaussians. sh: [N, K, 3] the world's SH coefficients.
        grid: the cell grid (default CellGrid(LOD_CELL_M)). levels: coarse levels to build (<= 7).
    """
    grid = grid or CellGrid(LOD_CELL_M)
    nsh = sh.shape[0]
    kdim = sh.shape[1]
    vox = voxel_sizes(grid.size_m, levels)
    n = len(kept)
    L1 = levels + 1
    if n == 0:
        z = np.zeros
        return PreparedWorld(z((K.NG, 0)), z(0, np.int64), sh, z((0, kdim, 3), np.float32), z(1, np.int64),
                             z((0, 5)), z((0, 11)), z((0, L1, 2), np.int64), z(1, np.int64), vox)
    pos = means[kept].astype(np.float64)
    keys = grid.keys(pos)
    # One int64 per cell (21 bits per axis), then cell ids 0..nc-1 in key order.
    ck = ((keys[:, 0] + (1 << 20)) << 42) | ((keys[:, 1] + (1 << 20)) << 21) | (keys[:, 2] + (1 << 20))
    sub = 6  # level-1 voxels per cell edge: 2**6
    v1 = grid.size_m / (1 << sub)
    q = np.clip(np.floor((pos - keys * grid.size_m) / v1).astype(np.int64), 0, (1 << sub) - 1)
    order = np.lexsort((_morton_codes(q, sub), ck))
    ck_s = ck[order]
    new_cell = np.ones(n, bool)
    new_cell[1:] = ck_s[1:] != ck_s[:-1]
    cell = np.cumsum(new_cell) - 1
    nc = int(cell[-1]) + 1
    code = _morton_codes(q[order], sub)
    Gf = np.empty((K.NG, n))
    K.prepare_world(means, quats, log_scales, logits, kept[order], Gf)
    cols = [Gf]
    gids = [kept[order]]
    cells_of = [cell]
    cpos = pos[order]
    cov = np.ascontiguousarray(Gf[[K.G_XX, K.G_XY, K.G_XZ, K.G_YY, K.G_YZ, K.G_ZZ]].T)
    op = Gf[K.G_OP].copy()
    col = sh[gids[0]]
    ccell = cell
    csh_parts: list[NDArray[np.float32]] = []
    nco = 0
    # Working counts per cell and level; a level that merges little in a cell is not stored (its
    # range points at the finer level's).
    wcount = np.zeros((nc, L1), np.int64)
    wcount[:, 0] = np.bincount(cell, minlength=nc)
    scount = wcount[:, 0].copy()  # count of the level each cell's range points at
    stored = np.zeros((nc, L1), bool)
    stored[:, 0] = True
    for level in range(1, L1):
        key = code >> (3 * (level - 1))
        new = np.ones(len(key), bool)
        new[1:] = (ccell[1:] != ccell[:-1]) | (key[1:] != key[:-1])
        starts = np.nonzero(new)[0]
        cpos, cov, op, col = K.merge_runs(starts, cpos, cov, op, col)
        code, ccell = code[starts], ccell[starts]
        op = np.clip(op, K.ALPHA_THR, K.MAX_ALPHA)
        wcount[:, level] = np.bincount(ccell, minlength=nc)
        # Stored only where it saves at least STORE_RATIO of the drawn Gaussians.
        stored[:, level] = wcount[:, level] <= STORE_RATIO * scount
        scount = np.where(stored[:, level], wcount[:, level], scount)
        keep = stored[ccell, level]
        m = int(keep.sum())
        Gc = np.empty((K.NG, m))
        Gc[K.G_PX], Gc[K.G_PY], Gc[K.G_PZ] = cpos[keep].T
        kc = cov[keep]
        for f, g in enumerate((K.G_XX, K.G_XY, K.G_XZ, K.G_YY, K.G_YZ, K.G_ZZ)):
            Gc[g] = kc[:, f]
        ko = op[keep]
        Gc[K.G_OP] = ko
        lnop = np.log(ko / K.ALPHA_THR)
        Gc[K.G_LNOP] = lnop
        Gc[K.G_EXT] = np.minimum(K.EXTEND, np.sqrt(2.0 * lnop))
        Gc[K.G_SMAX2] = kc[:, 0] + kc[:, 3] + kc[:, 5]  # trace >= largest eigenvalue (culling only)
        cols.append(Gc)
        gids.append(nsh + nco + np.arange(m, dtype=np.int64))
        cells_of.append(ccell[keep])
        csh_parts.append(col[keep])
        nco += m
    # Columns: level 0 of every cell, then level 1 of every cell, ...: each (level, cell) group is one run.
    G = np.concatenate(cols, axis=1)
    gid = np.concatenate(gids)
    counts = np.stack([np.bincount(c, minlength=nc) for c in cells_of], axis=1)  # [nc, L1]
    cl = counts.T.reshape(-1)  # level-major group sizes
    gstart = np.concatenate([[0], np.cumsum(cl)])[:-1]
    nblk = -(-cl // K.BLOCK)
    first_blk = np.concatenate([[0], np.cumsum(nblk)])
    within = np.arange(int(first_blk[-1])) - np.repeat(first_blk[:-1], nblk)
    bs = np.repeat(gstart, nblk) + within * K.BLOCK
    bstart = np.append(bs, G.shape[1]).astype(np.int64)
    crange = np.stack([first_blk[:-1], first_blk[1:]], axis=1).reshape(L1, nc, 2).transpose(1, 0, 2).copy()
    # A level that merged nothing in a cell is the finer level again: draw that one (same Gaussians).
    for level in range(1, L1):
        same = ~stored[:, level]
        crange[same, level] = crange[same, level - 1]
    bounds = K.span_bounds(G, bstart)
    # Cell spheres: around the fine level's blocks (coarse means lie in their convex hull), with the
    # largest ext * s_max of any level.
    blk_cell = np.repeat(np.tile(np.arange(nc), L1), nblk)
    blk_lvl = np.repeat(np.repeat(np.arange(L1), nc), nblk)
    fine = blk_lvl == 0
    bmin = bounds[:, :3] - bounds[:, 3:4]
    bmax = bounds[:, :3] + bounds[:, 3:4]
    mn = np.full((nc, 3), np.inf)
    mx = np.full((nc, 3), -np.inf)
    np.minimum.at(mn, blk_cell[fine], bmin[fine])
    np.maximum.at(mx, blk_cell[fine], bmax[fine])
    cells = np.zeros((nc, 11))
    cells[:, :3] = 0.5 * (mn + mx)
    reach = np.linalg.norm(bounds[:, :3] - cells[blk_cell, :3], axis=1) + bounds[:, 3]
    rad = np.zeros(nc)
    np.maximum.at(rad, blk_cell[fine], reach[fine])
    cells[:, 3] = rad * (1 + 1e-9) + 1e-9
    se = np.zeros(nc)
    np.maximum.at(se, blk_cell, bounds[:, 4])
    cells[:, 4] = se
    crow = np.concatenate([[0], np.cumsum(counts[:, 0])]).astype(np.int64)
    # Bounding box of the cell's Gaussian centres (the LOD distance; coarse means lie inside it).
    fpos = pos[order]
    cells[:, 5:8] = np.minimum.reduceat(fpos, crow[:-1], axis=0)
    cells[:, 8:11] = np.maximum.reduceat(fpos, crow[:-1], axis=0)
    csh = (np.concatenate(csh_parts) if csh_parts else np.zeros((0, kdim, 3), np.float32)).astype(np.float32)
    return PreparedWorld(G, gid, sh, csh, bstart, bounds, cells, crange, crow, vox)
