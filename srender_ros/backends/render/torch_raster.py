"""A differentiable Gaussian rasterizer in plain torch, for CPU at low resolution (photometric refinement).

It follows gsplat's rules exactly as :mod:`srender_ros.backends.render.projection` lists them (EWA with
eps2d 0.3, pixel centres at +0.5, ``alpha = min(0.999, o exp(-sigma))``, skip alpha < 1/255, stop
before transmittance reaches 1e-4, front to back by float32 camera z with ties by index), so its
forward output matches the reference and cpu backends (to float rounding), and gradients flow to
means, quaternions, log-scales, opacity logits and SH coefficients.

How it works, per view:
1. Project every Gaussian without grad to find the ones whose box touches the wanted pixels
   (cheap culling), then project only those again with grad.
2. Enumerate (Gaussian, pixel) pairs over each box (vectorized ``repeat_interleave``), drop pairs
   whose alpha is below 1/255 (no grad), and compute alpha with grad for the rest.
3. Sort the pairs by (pixel, depth rank) with one int64 sort, get each pixel's transmittance from a
   segmented exclusive cumulative sum of log(1 - alpha) (float64, so the long global sum does not
   lose the per-pixel differences), and scatter-add w = T * alpha times colour and depth.

Memory grows with the number of pairs (~100 bytes each with grad): render small images or a
``window`` (a crop of the full image, exact: crops are pixel-identical to the full render).
Importing this module imports torch but not gsplat.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray

from srender_ros.backends.render.projection import (
    ALPHA_THRESHOLD,
    EPS2D_PX2,
    FOV_CLAMP_MARGIN,
    MAX_ALPHA,
    RADIUS_EXTEND_SIGMA,
    SH_C0,
    SH_C1,
    TRANSMITTANCE_MIN,
    validate_poses,
)
from srender_ros.backends.render.reference import check_background, check_intrinsics, check_world
from srender_ros.core.camera import Intrinsics
from srender_ros.core.ports.render import DEPTH_MIN_ALPHA, FAR_PLANE_M, NEAR_PLANE_M, RenderOutput
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import InputError

Tensor = torch.Tensor

#: Refuse a single view whose pair count would exceed this (about 10 GB with grad); render a
#: smaller image or window instead.
MAX_PAIRS = 1 << 27


class TorchGaussians(NamedTuple):
    """A GaussianWorld as torch tensors (any of them may require grad).

    Attributes:
        means: [N, 3] world metres. quats_wxyz: [N, 4] (need not be unit; normalized on use).
        log_scales: [N, 3] log standard deviations, metres. opacity_logits: [N].
        sh: [N, K, 3] SH coefficients, K = (degree + 1) ** 2.
    """

    means: Tensor
    quats_wxyz: Tensor
    log_scales: Tensor
    opacity_logits: Tensor
    sh: Tensor

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def index(self, idx: Tensor) -> TorchGaussians:  # type: ignore[override]
        """The Gaussians ``idx`` ([M] int64), keeping the autograd link to the full tensors."""
        return TorchGaussians(*(t.index_select(0, idx) for t in self))


def gaussians_from_world(world: GaussianWorld, dtype: torch.dtype = torch.float32,
                         device: torch.device | str = "cpu") -> TorchGaussians:
    """Copy a world's arrays into new tensors (no grad; call ``requires_grad_`` on the ones to optimize)."""
    check_world(world)
    return TorchGaussians(*(torch.tensor(np.array(a), dtype=dtype, device=device)
                            for a in (world.means, world.quats_wxyz, world.log_scales, world.opacity_logits, world.sh)))


def world_from_gaussians(g: TorchGaussians) -> GaussianWorld:
    """Back to an (immutable, float32) GaussianWorld; quaternions are normalized there."""
    return GaussianWorld(*(t.detach().to("cpu", torch.float32).numpy() for t in g))


def quat_to_rotmat(q: Tensor) -> Tensor:
    """[N, 4] (w, x, y, z) quaternions, any norm > 0 -> [N, 3, 3] rotation matrices."""
    q = q / torch.linalg.norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(-1, 3, 3)


def sh_colors(sh: Tensor, dirs: Tensor) -> Tensor:
    """gsplat's SH evaluation + ``max(. + 0.5, 0)``, differentiable.

    Args:
        sh: [N, K, 3] coefficients (K = 1, 4, 9 or 16). dirs: [N, 3] view directions, any length > 0.
    Returns:
        [N, 3] colours.
    """
    k = sh.shape[1]
    out = SH_C0 * sh[:, 0]
    if k > 1:
        d = dirs / torch.linalg.norm(dirs, dim=-1, keepdim=True)
        x, y, z = d[:, 0:1], d[:, 1:2], d[:, 2:3]
        out = out + SH_C1 * (-y * sh[:, 1] + z * sh[:, 2] - x * sh[:, 3])
        if k > 4:
            z2 = z * z
            t0b = -1.092548430592079 * z
            fc1 = x * x - y * y
            fs1 = 2.0 * x * y
            out = out + (0.5462742152960395 * fs1 * sh[:, 4] + t0b * y * sh[:, 5]
                         + (0.9461746957575601 * z2 - 0.3153915652525201) * sh[:, 6]
                         + t0b * x * sh[:, 7] + 0.5462742152960395 * fc1 * sh[:, 8])
            if k > 9:
                t0c = -2.285228997322329 * z2 + 0.4570457994644658
                t1b = 1.445305721320277 * z
                fc2 = x * fc1 - y * fs1
                fs2 = x * fs1 + y * fc1
                out = out + (-0.5900435899266435 * fs2 * sh[:, 9] + t1b * fs1 * sh[:, 10] + t0c * y * sh[:, 11]
                             + z * (1.865881662950577 * z2 - 1.119528997770346) * sh[:, 12]
                             + t0c * x * sh[:, 13] + t1b * fc1 * sh[:, 14] - 0.5900435899266435 * fc2 * sh[:, 15])
    return torch.clamp_min(out + 0.5, 0.0)


class TorchProjection(NamedTuple):
    """One view's projection (entries where ``valid`` is False are junk and must not be used).

    Attributes:
        valid: [N] bool (no grad). mean2d_px: [N, 2]. conic: [N, 3] (a, b, c) of the inverse blurred
        2D covariance. depth_m: [N] camera z. opacity: [N]. radius_px: [N, 2] float box half-sizes
        (no grad).
    """

    valid: Tensor
    mean2d_px: Tensor
    conic: Tensor
    depth_m: Tensor
    opacity: Tensor
    radius_px: Tensor


def project(g: TorchGaussians, intrinsics: Intrinsics, viewmat: Tensor) -> TorchProjection:
    """gsplat's EWA projection (pinhole, classic mode), differentiable; see projection.ewa_project.

    Args:
        g: N Gaussians. intrinsics: the FULL image's camera (culling and the Jacobian clamp use it).
        viewmat: [4, 4] world-to-camera transform, same dtype/device as ``g``.
    """
    W, H = intrinsics.width_px, intrinsics.height_px
    fx, fy, cx, cy = intrinsics.fx_px, intrinsics.fy_px, intrinsics.cx_px, intrinsics.cy_px
    R, t = viewmat[:3, :3], viewmat[:3, 3]
    p = g.means @ R.T + t
    x, y, z = p.unbind(-1)
    Rg = quat_to_rotmat(g.quats_wxyz)
    M = Rg * torch.exp(g.log_scales)[:, None, :]
    cov_w = M @ M.transpose(1, 2)
    cov_c = R @ cov_w @ R.T
    opacity = torch.sigmoid(g.opacity_logits)
    lim_x_pos = (W - cx) / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
    lim_x_neg = cx / fx + FOV_CLAMP_MARGIN * (0.5 * W / fx)
    lim_y_pos = (H - cy) / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
    lim_y_neg = cy / fy + FOV_CLAMP_MARGIN * (0.5 * H / fy)
    # Culled Gaussians (z near 0 or negative) must not produce inf/NaN that would poison gradients
    # through the shared tensors, so divide by a safe z and mask them out afterwards.
    in_range = (z >= NEAR_PLANE_M) & (z <= FAR_PLANE_M)
    z_safe = torch.where(in_range, z, torch.ones_like(z))
    rz = 1.0 / z_safe
    tx = z_safe * torch.clamp(x * rz, -lim_x_neg, lim_x_pos)
    ty = z_safe * torch.clamp(y * rz, -lim_y_neg, lim_y_pos)
    zeros = torch.zeros_like(z)
    J = torch.stack([fx * rz, zeros, -fx * tx * rz * rz, zeros, fy * rz, -fy * ty * rz * rz], -1).reshape(-1, 2, 3)
    cov2d = J @ cov_c @ J.transpose(1, 2)
    mean2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)
    a = cov2d[:, 0, 0] + EPS2D_PX2
    b = cov2d[:, 0, 1]
    c = cov2d[:, 1, 1] + EPS2D_PX2
    det = a * c - b * b
    ok_det = det > 0
    det_safe = torch.where(ok_det, det, torch.ones_like(det))
    conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    with torch.no_grad():
        op = opacity.detach().double()
        extend = torch.clamp(torch.sqrt(torch.clamp_min(2.0 * torch.log(torch.clamp_min(op, 1e-300) / ALPHA_THRESHOLD), 0.0)),
                             max=RADIUS_EXTEND_SIGMA)
        rx = torch.ceil(extend * torch.sqrt(torch.clamp_min(a.detach().double(), 0.0)))
        ry = torch.ceil(extend * torch.sqrt(torch.clamp_min(c.detach().double(), 0.0)))
        mx, my = mean2d[:, 0].detach().double(), mean2d[:, 1].detach().double()
        valid = in_range & ok_det & (op >= ALPHA_THRESHOLD) & ~((rx <= 0) & (ry <= 0))
        valid &= ~((mx + rx <= 0) | (mx - rx >= W) | (my + ry <= 0) | (my - ry >= H))
    return TorchProjection(valid, mean2d, conic, z, opacity, torch.stack([rx, ry], -1))


class Window(NamedTuple):
    """A crop of the full image: pixels x0 <= u < x0 + width_px, y0 <= v < y0 + height_px."""

    x0: int
    y0: int
    width_px: int
    height_px: int


class TorchRender(NamedTuple):
    """One differentiable render of a window.

    Attributes:
        rgb: [h, w, 3] colour composited over the background.
        alpha: [h, w] accumulated opacity.
        depth_acc: [h, w] sum of w_i z_i (divide by alpha for the expected z-depth).
        pairs: number of (Gaussian, pixel) pairs composited.
    """

    rgb: Tensor
    alpha: Tensor
    depth_acc: Tensor
    pairs: int


def _boxes(P: TorchProjection, window: Window) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Pixel boxes [x0, x1) x [y0, y1) (int64, clipped to the window) that hold every pixel centre
    where a Gaussian's alpha can reach 1/255 (gsplat's opacity-aware radius bounds exactly that)."""
    mx, my = P.mean2d_px[:, 0].detach().double(), P.mean2d_px[:, 1].detach().double()
    rx, ry = P.radius_px[:, 0], P.radius_px[:, 1]
    x0 = torch.clamp(torch.floor(mx - rx), window.x0, window.x0 + window.width_px).long()
    x1 = torch.clamp(torch.ceil(mx + rx), window.x0, window.x0 + window.width_px).long()
    y0 = torch.clamp(torch.floor(my - ry), window.y0, window.y0 + window.height_px).long()
    y1 = torch.clamp(torch.ceil(my + ry), window.y0, window.y0 + window.height_px).long()
    return x0, x1, y0, y1


def _precull(g: TorchGaussians, intrinsics: Intrinsics, viewmat: Tensor, win: Window) -> Tensor:
    """[M] ascending indices of the Gaussians that may touch the window (a cheap superset, no grad).

    Uses only the centres and the largest scale: the EWA footprint's standard deviation in pixels
    is at most max_scale * ||J||_F, with the Jacobian's x/z and y/z clamped as in :func:`project`,
    so ``3.33 * sqrt(that^2 + eps2d) + 1`` bounds gsplat's radius. Exact projection follows on the
    survivors, so the result is unchanged; for a small window most of the world is skipped.
    """
    W, H = intrinsics.width_px, intrinsics.height_px
    fx, fy, cx, cy = intrinsics.fx_px, intrinsics.fy_px, intrinsics.cx_px, intrinsics.cy_px
    lx = max((W - cx) / fx, cx / fx) + FOV_CLAMP_MARGIN * (0.5 * W / fx)
    ly = max((H - cy) / fy, cy / fy) + FOV_CLAMP_MARGIN * (0.5 * H / fy)
    jnorm = math.sqrt(fx * fx * (1 + lx * lx) + fy * fy * (1 + ly * ly))
    p = g.means.detach() @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = p[:, 2]
    ok = (z >= NEAR_PLANE_M) & (z <= FAR_PLANE_M)
    zs = torch.where(ok, z, torch.ones_like(z))
    std_px = torch.exp(g.log_scales.detach().max(dim=1).values) * (jnorm / zs)
    r = RADIUS_EXTEND_SIGMA * torch.sqrt(std_px * std_px + EPS2D_PX2) + 1.0
    u = fx * p[:, 0] / zs + cx
    v = fy * p[:, 1] / zs + cy
    ok &= (u + r > win.x0) & (u - r < win.x0 + win.width_px) & (v + r > win.y0) & (v - r < win.y0 + win.height_px)
    return torch.nonzero(ok).squeeze(1)


def _segment_exclusive_cumsum(x: Tensor, start: Tensor) -> Tensor:
    """Exclusive cumulative sum of float64 ``x`` [P] within runs; ``start`` [P] is each run's first index.

    Done as one global cumsum minus the run's offset; float64 keeps the per-run differences exact
    enough (the global sum of a few million log terms stays far below 2^52 ulps of them).
    """
    c = torch.cumsum(x, 0)
    return c - x - (c[start] - x[start])


def _plan_pairs(P: TorchProjection, gid: Tensor, bx0: Tensor, bx1: Tensor, by0: Tensor, by1: Tensor,
                win: Window) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor] | None:
    """Which (Gaussian, pixel) pairs contribute, without grad.

    Enumerates every pixel of each Gaussian's box, keeps alpha >= 1/255, sorts by (pixel, depth)
    and drops each pixel's pairs from the one that would take its transmittance to 1e-4 on (they add
    nothing), so the differentiable pass only sees pairs that are really composited.

    Args:
        P: projection of all Gaussians. gid: [M] candidate Gaussians in front-to-back order.
        bx0, bx1, by0, by1: [M] their pixel boxes, clipped to the window.
    Returns:
        None when nothing is drawn, else (used [U] positions in ``gid`` of the Gaussians that
        contribute (ascending, so still front to back), m [Q] index into ``used``, px [Q], py [Q]
        pixel coordinates, pix [Q] flat index in the window, start [Q] index of the first pair of
        the same pixel), pairs sorted by pixel then depth.
    """
    dev = gid.device
    if gid.numel() == 0:
        return None
    bw = bx1 - bx0
    count = bw * (by1 - by0)
    total = int(count.sum())
    if total > MAX_PAIRS:
        raise InputError(f"torch rasterizer: {total} Gaussian-pixel pairs in a {win.width_px}x{win.height_px} view "
                         f"exceed {MAX_PAIRS}; render at a lower resolution or in smaller windows")
    # Pairs come out grouped by Gaussian, so per-pair copies of per-Gaussian values are
    # repeat_interleave (sequential) rather than gathers; int32 (total < MAX_PAIRS) is faster.
    i32 = torch.int32
    m = torch.repeat_interleave(torch.arange(gid.numel(), device=dev, dtype=i32), count)
    local = torch.arange(total, device=dev, dtype=i32) - torch.repeat_interleave((torch.cumsum(count, 0) - count).to(i32), count)
    bw_m = torch.repeat_interleave(bw.to(i32), count)
    px = torch.repeat_interleave((bx0 - win.x0).to(i32), count) + local % bw_m
    py = torch.repeat_interleave((by0 - win.y0).to(i32), count) + local // bw_m
    del local, bw_m
    feats = torch.repeat_interleave(
        torch.cat([P.mean2d_px.index_select(0, gid), P.conic.index_select(0, gid), P.opacity.index_select(0, gid)[:, None]],
                  1), count, dim=0)  # [total, 6]
    dx = feats[:, 0] - (px.to(feats.dtype) + (win.x0 + 0.5))
    dy = feats[:, 1] - (py.to(feats.dtype) + (win.y0 + 0.5))
    sig = 0.5 * (feats[:, 2] * dx * dx + feats[:, 4] * dy * dy) + feats[:, 3] * dx * dy
    alpha = torch.clamp(feats[:, 5] * torch.exp(-sig), max=MAX_ALPHA)
    del feats, dx, dy
    pix = py * win.width_px + px  # flat index in the window
    del px, py
    keep = torch.nonzero((sig >= 0) & (alpha >= ALPHA_THRESHOLD)).squeeze(1)
    m, pix, alpha = (t.index_select(0, keep) for t in (m, pix, alpha))
    # Pairs are in front-to-back order (m ascending), so a stable sort by pixel orders them by
    # (pixel, depth).
    perm = torch.sort(pix, stable=True).indices
    m, pix, alpha = (t.index_select(0, perm) for t in (m, pix, alpha))
    n = int(m.numel())
    if n == 0:
        return None
    first = torch.ones(n, dtype=torch.bool, device=dev)
    first[1:] = pix[1:] != pix[:-1]
    start = torch.cummax(torch.where(first, torch.arange(n, device=dev), 0), 0).values
    log1m = torch.log1p(-alpha).double()
    T_after = torch.exp(_segment_exclusive_cumsum(log1m, start) + log1m)
    # Transmittance only falls along a pixel's run, so the pairs composited before the stop are the
    # prefix whose transmittance after the Gaussian stays above the threshold.
    add = torch.nonzero(T_after > TRANSMITTANCE_MIN).squeeze(1)
    m, pix = m.index_select(0, add).long(), pix.index_select(0, add).long()
    n = int(m.numel())
    if n == 0:
        return None
    first = torch.ones(n, dtype=torch.bool, device=dev)
    first[1:] = pix[1:] != pix[:-1]
    start = torch.cummax(torch.where(first, torch.arange(n, device=dev), 0), 0).values
    used_mask = torch.zeros(gid.numel(), dtype=torch.bool, device=dev)
    used_mask[m] = True
    used = torch.nonzero(used_mask).squeeze(1)
    remap = torch.cumsum(used_mask.long(), 0) - 1
    return used, remap[m], pix % win.width_px + win.x0, pix // win.width_px + win.y0, pix, start


def rasterize(g: TorchGaussians, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating],
              background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0), window: Window | None = None) -> TorchRender:
    """Render one view (or a window of it) with gradients to every tensor of ``g`` that requires grad.

    Args:
        g: N Gaussians (float32 or float64 tensors, one device).
        intrinsics: the full image's camera.
        T_world_cam: [4, 4] optical camera-to-world pose.
        background_rgb: colour behind the Gaussians.
        window: crop to render (None: the whole image); pixels are identical to the full render's.
    Returns:
        TorchRender with [h, w, ...] tensors in ``g``'s dtype.
    Raises:
        InputError: a window outside the image, or a view needing more than MAX_PAIRS pairs.
    """
    check_intrinsics(intrinsics)
    W, H = intrinsics.width_px, intrinsics.height_px
    win = window or Window(0, 0, W, H)
    if not (0 <= win.x0 and 0 <= win.y0 and win.width_px >= 1 and win.height_px >= 1
            and win.x0 + win.width_px <= W and win.y0 + win.height_px <= H):
        raise InputError(f"window {tuple(win)} is not inside the {W}x{H} image")
    dtype, dev = g.means.dtype, g.means.device
    bg = torch.tensor(check_background(background_rgb), dtype=dtype, device=dev)
    T = validate_poses(T_world_cam)[0]
    V = np.linalg.inv(T)
    viewmat = torch.tensor(V, dtype=dtype, device=dev)
    h, w = win.height_px, win.width_px

    # 1. Cull without grad: keep Gaussians whose box touches the window, in front-to-back order
    #    (stable sort of float32 z over Gaussians in index order: gsplat's tie-break by index).
    empty = torch.zeros((h, w), dtype=dtype, device=dev)
    with torch.no_grad():
        near = _precull(g, intrinsics, viewmat, win)
        P0 = project(TorchGaussians(*(t.detach().index_select(0, near) for t in g)), intrinsics, viewmat)
        bx0, bx1, by0, by1 = _boxes(P0, win)
        sel = torch.nonzero(P0.valid & (bx1 > bx0) & (by1 > by0)).squeeze(1)
        # near is ascending, so the stable sort still breaks depth ties by Gaussian index.
        sel = sel[torch.sort(P0.depth_m[sel].to(torch.float32), stable=True).indices]
        plan = _plan_pairs(P0, sel, bx0[sel], bx1[sel], by0[sel], by1[sel], win)
        gid = near[sel]
    if plan is None:
        return TorchRender(bg.expand(h, w, 3).clone(), empty, empty.clone(), 0)
    used, m, px, py, pix, start = plan

    # 2. Project again, with grad, only the Gaussians that contribute to some pixel.
    sub = g.index(gid[used])
    P = project(sub, intrinsics, viewmat)
    campos = torch.tensor(T[:3, 3], dtype=dtype, device=dev)
    colors = sh_colors(sub.sh, sub.means - campos)

    # 3. Differentiable alpha, transmittance and weights of the contributing pairs.
    dx = P.mean2d_px[m, 0] - (px.to(dtype) + 0.5)
    dy = P.mean2d_px[m, 1] - (py.to(dtype) + 0.5)
    conic = P.conic[m]
    sig = 0.5 * (conic[:, 0] * dx * dx + conic[:, 2] * dy * dy) + conic[:, 1] * dx * dy
    alpha = torch.clamp(P.opacity[m] * torch.exp(-sig), max=MAX_ALPHA)
    log1m = torch.log1p(-alpha).double()
    T_before = torch.exp(_segment_exclusive_cumsum(log1m, start)).to(dtype)
    wgt = alpha * T_before
    npx = h * w
    rgb_acc = torch.zeros((npx, 3), dtype=dtype, device=dev).index_add(0, pix, wgt[:, None] * colors[m])
    dep_acc = torch.zeros(npx, dtype=dtype, device=dev).index_add(0, pix, wgt * P.depth_m[m])
    T_final = torch.exp(torch.zeros(npx, dtype=torch.float64, device=dev).index_add(0, pix, log1m)).to(dtype)
    rgb = rgb_acc + T_final[:, None] * bg
    return TorchRender(rgb.reshape(h, w, 3), (1.0 - T_final).reshape(h, w), dep_acc.reshape(h, w), int(m.numel()))


class TorchRenderer:
    """The Renderer protocol on top of :func:`rasterize` (no grad; float64 on CPU). Slow: for small
    images, tests and debugging; the fast CPU backend is ``cpu``."""

    name = "torch"

    def __init__(self, dtype: torch.dtype = torch.float64, device: str = "cpu") -> None:
        self.dtype = dtype
        self.device = device

    def render(
        self,
        world: GaussianWorld,
        intrinsics: Intrinsics,
        T_world_cam: NDArray[np.floating],
        background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0),
    ) -> RenderOutput:
        """Render RGB, z-depth and alpha (see :class:`srender_ros.core.ports.render.Renderer`).

        Args:
            T_world_cam: [B, 4, 4] optical camera-to-world poses.
        Returns:
            RenderOutput with rgb [B, H, W, 3], depth_m [B, H, W] (NaN where alpha < 0.5), alpha [B, H, W].
        """
        check_world(world)
        check_intrinsics(intrinsics)
        T = validate_poses(T_world_cam)
        g = gaussians_from_world(world, self.dtype, self.device)
        rgbs, deps, alphas = [], [], []
        with torch.no_grad():
            for b in range(T.shape[0]):
                r = rasterize(g, intrinsics, T[b], background_rgb)
                a = r.alpha.double()
                depth = torch.where(a >= DEPTH_MIN_ALPHA, r.depth_acc.double() / torch.clamp_min(a, 1e-10),
                                    torch.full_like(a, math.nan))
                rgbs.append(r.rgb.float().cpu().numpy())
                deps.append(depth.float().cpu().numpy())
                alphas.append(r.alpha.float().cpu().numpy())
        H, W = intrinsics.height_px, intrinsics.width_px
        if not rgbs:
            return RenderOutput(np.zeros((0, H, W, 3), np.float32), np.zeros((0, H, W), np.float32),
                                np.zeros((0, H, W), np.float32))
        return RenderOutput(np.stack(rgbs), np.stack(deps), np.stack(alphas))

    def coverage(
        self, world: GaussianWorld, intrinsics: Intrinsics, T_world_cam: NDArray[np.floating]
    ) -> NDArray[np.float32]:
        """[B, H, W] float32 accumulated alpha."""
        return self.render(world, intrinsics, T_world_cam).alpha
