"""Fast refinement of each new keyframe's Gaussians right after lifting (issue 17, item 1).

What it does (settings: :class:`~srender_ros.core.ports.refine.KeyframeRefineConfig`): the new
keyframe (``keyframes[-1]``) and its nearest earlier keyframes are rendered whole at their own
resolution; the Gaussians that touch a pixel of the new keyframe's view are fitted to those images
by Adam on colours (SH DC) and opacities; all other Gaussians are held. Geometry is not optimized,
so each view's per-pixel lists of (Gaussian, falloff) pairs are built once and every step is one
compiled forward and analytic backward pass over them (:mod:`._grad_kernels`). The delivered frame
is what is fitted: the render over black plus hole filling's ``(1 - alpha) * fill colour``
(core/holes.py, the fill held constant within a step), so partly transparent Gaussians are not
darkened to make up for a black background that filling later replaces.

On CUDA (gsplat usable and device "auto"/"cuda") the same keyframes are fitted with gsplat's
backward through :func:`~srender_ros.backends.refine.photometric.refine_world` (whole images,
colours and opacities only, no hole filling in the loss).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from srender_ros.backends.refine import _grad_kernels as gk
from srender_ros.backends.render.projection import SH_C0, ewa_project, sh_to_rgb, view_matrices
from srender_ros.core.holes import fill_holes
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.ports.refine import KeyframeRefineConfig, RefineConfig, RefineReport
from srender_ros.core.ports.render import FAR_PLANE_M, NEAR_PLANE_M
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import BackendUnavailableError, InputError

__all__ = ["FastKeyframeRefiner", "KeyframeView", "build_view", "nearest_keyframes", "refine_keyframe"]

log = logging.getLogger(__name__)


@dataclass
class KeyframeView:
    """One keyframe's fixed geometry for the fit (float64, ``n`` Gaussians of the world visible in it).

    Attributes:
        gid: [n] world indices of the view's Gaussians (rows of the arrays below).
        starts, pair_gid, pair_g: per-pixel CSR lists ([H*W + 1], [P] rows, [P] falloffs), depth order.
        sh_rest: [n, 3] the view-dependent part of the colour (SH above DC) at this view, unclamped.
        target: [H*W, 3] keyframe image. mask: [H*W] pixels with known keyframe depth.
        width_px, height_px: image size.
        under: [H*W, 3] hole filling's colour under each pixel (from the unrefined render).
        initial: [H*W, 3] the unrefined delivered (hole-filled) image.
        pair_T, stop: scratch of the last :func:`_composite` (transmittance per pair, list ends).
    """

    gid: NDArray[np.int64]
    starts: NDArray[np.int64]
    pair_gid: NDArray[np.int32]
    pair_g: NDArray[np.float64]
    sh_rest: NDArray[np.float64]
    target: NDArray[np.float64]
    mask: NDArray[np.bool_]
    width_px: int
    height_px: int
    under: NDArray[np.float64]
    initial: NDArray[np.float64] | None = None
    pair_T: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    stop: NDArray[np.int64] = field(default_factory=lambda: np.empty(0, np.int64))


def _candidates(world: GaussianWorld, kf: KeyframeRecord) -> NDArray[np.int64]:
    """Indices of Gaussians that may reach the keyframe's image (conservative pre-cull by centre)."""
    K = kf.intrinsics
    V = view_matrices(kf.T_world_cam)[0]
    p = world.means.astype(np.float64) @ V[:3, :3].T + V[:3, 3]
    z = p[:, 2]
    idx = np.nonzero((z >= NEAR_PLANE_M) & (z <= FAR_PLANE_M))[0]
    p, zs = p[idx], z[idx]
    smax = np.exp(world.log_scales[idx].astype(np.float64).max(axis=1))
    margin = gk.EXTEND * (max(K.fx_px, K.fy_px) * smax / zs * 2.0 + 1.0) + 2.0
    u = K.fx_px * p[:, 0] / zs + K.cx_px
    v = K.fy_px * p[:, 1] / zs + K.cy_px
    ok = (u + margin > 0) & (u - margin < K.width_px) & (v + margin > 0) & (v - margin < K.height_px)
    return idx[ok].astype(np.int64)


def build_view(world: GaussianWorld, kf: KeyframeRecord) -> KeyframeView:
    """Project the world into keyframe ``kf`` (gsplat's rules, float64) and build its pair lists."""
    K = kf.intrinsics
    W, H = K.width_px, K.height_px
    cand = _candidates(world, kf)
    sub = world.select(cand)
    proj = ewa_project(sub, K, view_matrices(kf.T_world_cam)[0])
    keep = np.nonzero(proj.valid)[0]
    gid = cand[keep]
    conic = np.ascontiguousarray(proj.conic[keep])
    det = conic[:, 0] * conic[:, 2] - conic[:, 1] ** 2
    sxx = conic[:, 2] / det
    syy = conic[:, 0] / det
    mean2d = np.ascontiguousarray(proj.mean2d_px[keep])
    opacity = np.ascontiguousarray(proj.opacity[keep])
    order = np.lexsort((gid, proj.depth_m[keep].astype(np.float32))).astype(np.int64)
    cap = int(gk.support_area(mean2d, sxx, syy, W, H))
    starts = np.zeros(H * W + 1, np.int64)
    pair_gid = np.empty(cap, np.int32)
    pair_g = np.empty(cap, np.float64)
    n = int(gk.build_pairs(order, mean2d, conic, sxx, syy, opacity, W, H, starts, pair_gid, pair_g))
    pair_gid, pair_g = pair_gid[:n].copy(), pair_g[:n].copy()
    sh = world.sh[gid].astype(np.float64)
    if sh.shape[1] > 1:
        # Unclamped SH above DC: a large DC keeps sh_to_rgb's clamp at 0 from binding.
        big = sh.copy()
        big[:, 0] = 100.0 / SH_C0
        dirs = world.means[gid].astype(np.float64) - np.asarray(kf.T_world_cam, np.float64)[:3, 3]
        sh_rest = sh_to_rgb(big, dirs) - 100.5
    else:
        sh_rest = np.zeros((len(gid), 3))
    target = np.asarray(kf.rgb, np.float64).reshape(-1, 3)
    mask = np.isfinite(np.asarray(kf.depth_m)).reshape(-1)
    view = KeyframeView(gid, starts, pair_gid, pair_g, sh_rest, target, mask, W, H, np.zeros((H * W, 3)))
    # The fill colour under each pixel, from the unrefined render; held during the fit.
    op = 1.0 / (1.0 + np.exp(-world.opacity_logits[gid].astype(np.float64)))
    rgb, T = _composite(view, op, _colors(world.sh[gid, 0].astype(np.float64), view, np.arange(len(gid))))
    filled = fill_holes(rgb.reshape(H, W, 3), (1.0 - T).reshape(H, W)).reshape(-1, 3).astype(np.float64)
    view.under = np.where(T[:, None] > 1e-6, (filled - rgb) / np.maximum(T, 1e-6)[:, None], 0.0)
    view.initial = filled
    return view


def nearest_keyframes(keyframes: Sequence[KeyframeRecord], count: int) -> list[int]:
    """Indices of the ``count`` earlier keyframes nearest to the last one: camera-centre distance
    in metres plus 1 m per radian between viewing directions (optical z axes)."""
    if count <= 0 or len(keyframes) < 2:
        return []
    last = np.asarray(keyframes[-1].T_world_cam, np.float64)
    scores = []
    for i, kf in enumerate(keyframes[:-1]):
        T = np.asarray(kf.T_world_cam, np.float64)
        ang = math.acos(float(np.clip(T[:3, 2] @ last[:3, 2], -1.0, 1.0)))
        scores.append((float(np.linalg.norm(T[:3, 3] - last[:3, 3])) + ang, i))
    return [i for _, i in sorted(scores)[:count]]


def _colors(dc: NDArray[np.float64], view: KeyframeView, rows: NDArray[np.int64]) -> NDArray[np.float64]:
    pre = 0.5 + SH_C0 * dc[rows] + view.sh_rest
    return np.maximum(pre, 0.0)


def _composite(view: KeyframeView, op: NDArray[np.float64],
               col: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(rgb over black [H*W, 3], transmittance left [H*W]) of the view's lists."""
    npx = view.width_px * view.height_px
    rgb = np.empty((npx, 3))
    T = np.empty(npx)
    if view.pair_T.shape[0] != view.pair_g.shape[0]:
        view.pair_T = np.empty(view.pair_g.shape[0])
        view.stop = np.empty(npx, np.int64)
    gk.composite(view.starts, view.pair_gid, view.pair_g, op, col, rgb, T, view.pair_T, view.stop)
    return rgb, T


def _psnr(views: Sequence[KeyframeView], images: Sequence[NDArray[np.float64]]) -> float:
    se, n = 0.0, 0
    for v, img in zip(views, images):
        d = (img - v.target)[v.mask]
        se += float((d * d).sum())
        n += d.size
    mse = se / max(n, 1)
    return float("inf") if mse <= 1e-20 else -10.0 * math.log10(mse)


class _Adam:
    """Adam over rows, updating only the rows with a gradient (as photometric.SelectiveAdam), compiled."""

    def __init__(self, x: NDArray[np.float64], lr: float) -> None:
        self.x, self.lr = x, lr
        self.m = np.zeros_like(x)
        self.v = np.zeros_like(x)
        self.t = np.zeros(x.shape[0])

    def step(self, g: NDArray[np.float64], rows: NDArray[np.int64]) -> None:
        """One update of ``rows`` (unique) with their gradients ``g`` [len(rows), C]."""
        if self.lr > 0 and rows.size:
            gk.adam_rows(self.x, self.m, self.v, self.t, rows, np.ascontiguousarray(g), self.lr)


def refine_keyframe(world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
                    config: KeyframeRefineConfig | None = None) -> tuple[GaussianWorld, RefineReport]:
    """Fit the Gaussians seen by the newest keyframe to it and its nearest earlier keyframes.

    Args:
        world: N Gaussians (after the newest keyframe was merged).
        keyframes: the world's keyframes in order; the last one is the new keyframe. Their rgb
            [H, W, 3] in [0, 1], depth_m [H, W] (NaN = unknown, those pixels are not fitted).
        config: settings (defaults: :class:`KeyframeRefineConfig`).
    Returns:
        (the world with the same N Gaussians in the same order, colours and opacities of the fitted
        ones changed; or the input world when the fit did not improve the keyframes, the report).
        ``report.iterations`` <= ``config.iterations``; PSNRs are over the fitted keyframes'
        known pixels, hole-filled, as composited by the pair lists.
    Raises:
        InputError: not a GaussianWorld, or a keyframe that is not a KeyframeRecord.
    """
    cfg = config or KeyframeRefineConfig()
    t_start = time.perf_counter()
    if not isinstance(world, GaussianWorld):
        raise InputError(f"refine_keyframe: world is a {type(world).__name__}, expected a GaussianWorld")
    kfs = list(keyframes)
    for i, kf in enumerate(kfs):
        if not isinstance(kf, KeyframeRecord):
            raise InputError(f"refine_keyframe: keyframe #{i} is a {type(kf).__name__}, expected a KeyframeRecord")
    nan = float("nan")
    if len(world) == 0 or not kfs:
        note = "the world has no Gaussians" if len(world) == 0 else "the world has no keyframes to fit"
        return world, RefineReport("none", 0, 0.0, 0.0, nan, nan, nan, nan, len(world), len(kfs), note=note)
    chosen = [len(kfs) - 1] + nearest_keyframes(kfs, cfg.neighbors)
    if cfg.device == "cuda" or (cfg.device == "auto" and _may_have_cuda()):
        from srender_ros.backends.render.gsplat_backend import gsplat_status

        ok, why = gsplat_status()
        if ok:
            return _refine_cuda(world, [kfs[i] for i in chosen], cfg)
        if cfg.device == "cuda":
            raise BackendUnavailableError(f"keyframe refinement on 'cuda' cannot run here: {why}. "
                                          "Use device 'cpu' or 'auto'.")
    views = [build_view(world, kfs[i]) for i in chosen]
    # Parameters: every Gaussian of any view; the fitted ones (active) are those the new keyframe sees.
    all_gid = np.unique(np.concatenate([v.gid for v in views]))
    rows = [np.searchsorted(all_gid, v.gid) for v in views]
    used = np.zeros(len(views[0].gid), bool)
    used[np.unique(views[0].pair_gid)] = True
    active = np.zeros(len(all_gid), bool)
    active[rows[0][used]] = True
    dc = world.sh[all_gid, 0].astype(np.float64)
    logit2 = world.opacity_logits[all_gid].astype(np.float64)[:, None]  # [P, 1] for the row-wise Adam
    logit = logit2[:, 0]
    dc0, logit0 = dc.copy(), logit.copy()

    def evaluate() -> float:
        """PSNR of the delivered views, filled with the held fill colour (exact for the initial
        parameters, where it is the initial hole filling; an approximation after the fit)."""
        op = 1.0 / (1.0 + np.exp(-logit))
        images = []
        for v, r in zip(views, rows):
            rgb, T = _composite(v, op[r], _colors(dc, v, r))
            images.append(rgb + T[:, None] * v.under)
        return _psnr(views, images)

    psnr_before = _psnr(views, [v.initial for v in views if v.initial is not None])
    opt_dc, opt_op = _Adam(dc, cfg.lr_color), _Adam(logit2, cfg.lr_opacity)
    t_opt = time.perf_counter()
    steps = 0
    # View order: the new keyframe every other step, the neighbours in turn between.
    sched = [0] if len(views) == 1 else [x for j in range(1, len(views)) for x in (0, j)]
    bufs = [(np.empty((v.width_px * v.height_px, 3)), np.empty((v.width_px * v.height_px, 3)),
             np.empty((v.width_px * v.height_px, 3))) for v in views]
    for it in range(cfg.iterations):
        k = sched[it % len(sched)]
        v, r = views[k], rows[k]
        pred, fill_term, dL = bufs[k]
        op = 1.0 / (1.0 + np.exp(-logit[r]))
        pre = 0.5 + SH_C0 * dc[r] + v.sh_rest
        col = np.maximum(pre, 0.0)
        rgb, T = _composite(v, op, col)
        gk.l1_grad(rgb, T, v.under, v.target, v.mask, pred, fill_term, dL)
        d_col = np.zeros_like(col)
        d_op = np.zeros_like(op)
        gk.backward(v.starts, v.pair_gid, v.pair_g, op, col, v.pair_T, v.stop, fill_term, dL, d_col, d_op)
        g_dc = np.where(pre > 0.0, SH_C0 * d_col, 0.0)
        g_lo = d_op * op * (1.0 - op)
        sel = active[r] & ((np.abs(g_dc).max(axis=1) > 0) | (g_lo != 0))
        opt_dc.step(g_dc[sel], r[sel])
        opt_op.step(g_lo[sel][:, None], r[sel])
        steps += 1
    seconds = time.perf_counter() - t_opt
    psnr_after = evaluate()
    applied = psnr_after >= psnr_before
    if not applied:
        dc[:], logit[:] = dc0, logit0
    new = world
    if applied and steps:
        sh = world.sh.copy()
        sh[all_gid, 0] = dc.astype(np.float32)
        logits = world.opacity_logits.copy()
        logits[all_gid] = logit.astype(np.float32)
        new = GaussianWorld(world.means, world.quats_wxyz, world.log_scales, logits, sh)
    loss_b = 10.0 ** (-psnr_before / 10.0)
    loss_a = 10.0 ** (-(psnr_after if applied else psnr_before) / 10.0)
    report = RefineReport("numba-cpu", steps, seconds, time.perf_counter() - t_start, loss_b, loss_a,
                          psnr_before, psnr_after if applied else psnr_before, len(world), len(chosen),
                          note="" if applied else "the fit did not improve the keyframes; world unchanged")
    log.debug("keyframe refine: %d views, %d Gaussians fitted, %d steps in %.2f s, PSNR %.2f -> %.2f dB",
              len(views), int(active.sum()), steps, seconds, psnr_before, report.psnr_after_db)
    return new, report


def _may_have_cuda() -> bool:
    """False when CUDA surely cannot work here (no gsplat, no NVIDIA device), without importing torch
    (its import costs seconds, which matters on a path with only a couple of keyframes)."""
    import importlib.util
    import os

    return importlib.util.find_spec("gsplat") is not None and os.path.exists("/dev/nvidiactl")


def _refine_cuda(world: GaussianWorld, kfs: list[KeyframeRecord],
                 cfg: KeyframeRefineConfig) -> tuple[GaussianWorld, RefineReport]:
    """gsplat's backward on CUDA: whole images of the chosen keyframes, colours and opacities."""
    from srender_ros.backends.refine.photometric import refine_world

    rc = RefineConfig(iterations=cfg.iterations, patch_px=None, lr_color=cfg.lr_color, lr_opacity=cfg.lr_opacity,
                      lr_means_m=0.0, lr_log_scales=0.0, lr_quats=0.0, device="cuda")
    # Newest first, so short budgets fit it first (refine_world visits views in shuffled epochs).
    return refine_world(world, kfs, rc)


class FastKeyframeRefiner:
    """The :class:`~srender_ros.core.ports.refine.KeyframeRefiner` port on :func:`refine_keyframe`."""

    name = "fast-keyframe"

    def refine_keyframe(self, world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
                        config: KeyframeRefineConfig) -> tuple[GaussianWorld, RefineReport]:
        return refine_keyframe(world, keyframes, config)
