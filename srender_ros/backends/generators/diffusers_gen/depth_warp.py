"""A smooth residual correction of aligned monocular depth: what one scale + shift cannot fix.

After the per-keyframe affine fit in inverse depth (:func:`~.depth.align_depth`), a monocular
estimate still carries a smooth low-frequency warp (a multiplicative field over the image, larger
than pixel noise, smaller than the affine error). Where the keyframe overlaps the world, the
world's rendered depth shows that warp; this module fits it with a coarse grid and removes it from
the whole keyframe, so the newly generated parts (which the world cannot see) get the warp of
their neighbourhood corrected too.

The correction lives in log inverse depth (a multiplicative correction of inverse depth, which is
how the warp acts): residual r = log(1 / ref) - log(1 / aligned) = log(aligned / ref) on valid
overlap pixels. A grid of ``cols x rows`` node values g (nodes at the cell centres, the image is
``cols`` cells wide and ``rows`` high) is fitted so that the bilinear interpolation of g at each
valid pixel matches r:

    minimize  sum_i w_i (r_i - (B g)_i)^2  +  smooth * |D g|^2  +  ridge * |g|^2

- w_i: robust weights (Huber, with a hard cut-off far out; iteratively reweighted), so
  disocclusions and wrong world pixels do not bend the correction.
- D: differences between neighbouring nodes (smoothness); nodes with few or no samples take their
  neighbours' values (harmonic extrapolation), and the ridge pulls a whole empty region towards 0.
- ``smooth`` and ``ridge`` are in units of samples: a node needs several times ``smooth`` samples
  before its own data dominate its neighbours'.

The fitted grid is upsampled bilinearly to the image (same interpolation as the fit) and applied:
``1 / depth_corrected = (1 / depth_aligned) * exp(g_up)``, i.e. ``depth_corrected = depth_aligned * exp(-g_up)``.
The correction is clipped to +-``max_log``. Exact depth (r = 0) gets g = 0, i.e. no change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from srender_ros.errors import InputError

__all__ = ["DEFAULT_GRID", "GridCorrection", "WarpFit", "fit_warp_grid", "grid_weights", "upsample_grid"]

#: (cols, rows) of the default correction grid.
DEFAULT_GRID = (8, 6)
#: Fewer valid pixels than this and no correction is fitted.
MIN_WARP_PIXELS = 64
#: Pixels used in the fit at most (a deterministic subsample beyond).
_MAX_SAMPLES = 20000


@dataclass(frozen=True)
class GridCorrection:
    """Settings of the smooth residual correction (see the module docstring).

    Attributes:
        cols, rows: grid size (nodes across and down the image).
        smooth: weight of the node-difference penalty, in samples.
        ridge: weight of the pull of every node towards 0, in samples.
        huber: Huber threshold in robust standard deviations of the residual.
        cutoff: residuals beyond this many robust standard deviations get weight 0.
        iterations: reweighting rounds.
        max_log: the correction is clipped to +-max_log (log inverse depth).
    """

    cols: int = DEFAULT_GRID[0]
    rows: int = DEFAULT_GRID[1]
    smooth: float = 8.0
    ridge: float = 0.5
    huber: float = 1.345
    cutoff: float = 4.0
    iterations: int = 4
    max_log: float = 0.5

    def __post_init__(self) -> None:
        if not (self.cols >= 1 and self.rows >= 1):
            raise InputError(f"depth warp grid {self.cols}x{self.rows}: needs at least 1x1 nodes")
        for name in ("smooth", "ridge", "huber", "cutoff", "max_log"):
            if not getattr(self, name) > 0:
                raise InputError(f"depth warp grid: {name}={getattr(self, name)} must be > 0")
        if self.iterations < 1:
            raise InputError(f"depth warp grid: iterations={self.iterations} must be >= 1")


class WarpFit(NamedTuple):
    """Result of :func:`fit_warp_grid`.

    Attributes:
        grid: [rows, cols] fitted node values (log inverse depth; 0 = no correction).
        correction: [H, W] the grid upsampled bilinearly and clipped (log inverse depth).
        samples: valid pixels used.
    """

    grid: NDArray[np.float64]
    correction: NDArray[np.float64]
    samples: int


def _axis_weights(coord: NDArray[np.float64], size: int, nodes: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Lower node index [N] and fraction towards the next node [N] of pixel coordinates along one axis."""
    g = np.clip((coord + 0.5) * nodes / size - 0.5, 0.0, nodes - 1.0)
    i0 = np.minimum(np.floor(g).astype(np.int64), max(nodes - 2, 0))
    return i0, g - i0


def grid_weights(v: NDArray[np.integer], u: NDArray[np.integer], shape: tuple[int, int],
                 grid: tuple[int, int]) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Bilinear interpolation weights from a node grid to pixels.

    Args:
        v, u: [N] pixel rows and columns.
        shape: (H, W) of the image.
        grid: (cols, rows) of the node grid (nodes at the cell centres).
    Returns:
        node indices [N, 4] into the flattened [rows * cols] grid and their weights [N, 4] (sum 1).
    """
    h, w = shape
    cols, rows = grid
    x0, fx = _axis_weights(np.asarray(u, np.float64), w, cols)
    y0, fy = _axis_weights(np.asarray(v, np.float64), h, rows)
    x1 = np.minimum(x0 + 1, cols - 1)
    y1 = np.minimum(y0 + 1, rows - 1)
    idx = np.stack([y0 * cols + x0, y0 * cols + x1, y1 * cols + x0, y1 * cols + x1], axis=1)
    wts = np.stack([(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx], axis=1)
    return idx, wts


def upsample_grid(grid: NDArray[np.floating], shape: tuple[int, int]) -> NDArray[np.float64]:
    """[rows, cols] node values -> [H, W] by the same bilinear interpolation the fit uses."""
    g = np.asarray(grid, np.float64)
    rows, cols = g.shape
    h, w = shape
    vv, uu = np.mgrid[0:h, 0:w]
    idx, wts = grid_weights(vv.ravel(), uu.ravel(), (h, w), (cols, rows))
    return np.sum(g.ravel()[idx] * wts, axis=1).reshape(h, w)


def _difference_operator(cols: int, rows: int) -> NDArray[np.float64]:
    """[E, rows * cols] differences between horizontally and vertically neighbouring nodes."""
    pairs = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
    pairs += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    D = np.zeros((len(pairs), rows * cols))
    for e, (a, b) in enumerate(pairs):
        D[e, a], D[e, b] = 1.0, -1.0
    return D


def _robust_sigma(r: NDArray[np.float64]) -> float:
    return float(1.4826 * np.median(np.abs(r - np.median(r)))) + 1e-9


def fit_warp_grid(residual: NDArray[np.floating], valid: NDArray[np.bool_],
                  settings: GridCorrection = GridCorrection()) -> WarpFit:
    """Fit the smooth correction grid to residuals in log inverse depth.

    Args:
        residual: [H, W] log(aligned depth / reference depth) (= log ref inverse depth - log aligned
            inverse depth); only ``valid`` pixels are read.
        valid: [H, W] bool, pixels where the reference is trusted.
        settings: grid size, regularization and robustness.
    Returns:
        :class:`WarpFit` with the [rows, cols] grid and its [H, W] upsampled, clipped correction
        (all zeros when fewer than MIN_WARP_PIXELS pixels are valid).
    """
    r_img: NDArray[np.float64] = np.asarray(residual, np.float64)
    mask = np.asarray(valid, bool) & np.isfinite(r_img)
    if r_img.ndim != 2 or mask.shape != r_img.shape:
        raise InputError(f"fit_warp_grid: residual {r_img.shape} and mask {mask.shape} must be the same [H, W] shape")
    h, w = r_img.shape
    cols, rows = settings.cols, settings.rows
    vv, uu = np.nonzero(mask)
    n = vv.size
    if n < MIN_WARP_PIXELS:
        return WarpFit(np.zeros((rows, cols)), np.zeros((h, w)), int(n))
    if n > _MAX_SAMPLES:
        keep = np.linspace(0, n - 1, _MAX_SAMPLES).astype(np.int64)
        vv, uu = vv[keep], uu[keep]
    r = r_img[vv, uu]
    idx, wts = grid_weights(vv, uu, (h, w), (cols, rows))
    m = rows * cols
    B = np.zeros((r.size, m))
    np.add.at(B, (np.repeat(np.arange(r.size), 4), idx.ravel()), wts.ravel())
    D = _difference_operator(cols, rows)
    reg = settings.smooth * (D.T @ D) + settings.ridge * np.eye(m)
    # Start from the robust weights of the residual about its median (a constant model).
    e = r - np.median(r)
    g: NDArray[np.floating] = np.zeros(m)
    for _ in range(settings.iterations):
        sigma = _robust_sigma(e)
        a = np.abs(e) / sigma
        wt = np.where(a <= settings.huber, 1.0, settings.huber / np.maximum(a, 1e-12))
        wt[a > settings.cutoff] = 0.0
        Bw = B * wt[:, None]
        g = np.linalg.solve(B.T @ Bw + reg, Bw.T @ r)
        e = r - B @ g
    grid = np.asarray(g, np.float64).reshape(rows, cols)
    correction = np.clip(upsample_grid(grid, (h, w)), -settings.max_log, settings.max_log)
    return WarpFit(grid, correction, int(n))
