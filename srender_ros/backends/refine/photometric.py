"""Optional photometric refinement of a world against its own keyframes (issue 4, item 3).

Lifting places one Gaussian per keyframe pixel and never looks back; where keyframes overlap, or
where a surface is seen at a grazing angle, the composited world drifts from what the keyframes
show. Refinement renders the world at keyframe poses and runs Adam on the Gaussians' colours (SH
DC) and opacities, optionally also on means and log-scales, to minimize L1 (+ optional D-SSIM)
against the keyframe images. The Gaussian count never changes (no densification or pruning), so
the world keeps its layout and the scheduler's coverage stays meaningful.

Backends: on CUDA with gsplat, ``gsplat.rasterization`` renders with gradients; elsewhere the
pure-torch rasterizer (:mod:`srender_ros.backends.render.torch_raster`) does, which is practical only at
low resolution (keyframes area-downsampled by ``RefineConfig.scale``) and/or on small random
windows (``patch_px``), one view at a time so memory stays bounded. docs/refine.md has the
measured effect.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from srender_ros.core.camera import Intrinsics
from srender_ros.core.manifest import KeyframeRecord
from srender_ros.core.ports.refine import SSIM_WINDOW_PX, RefineConfig, RefineReport
from srender_ros.core.world import GaussianWorld
from srender_ros.errors import BackendUnavailableError, InputError

__all__ = ["PhotometricRefiner", "RefineConfig", "RefineReport", "SelectiveAdam", "refine_world"]

log = logging.getLogger(__name__)

# ---- targets -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Target:
    """One keyframe at the refinement resolution (tensors on the compute device)."""

    intrinsics: Intrinsics
    T_world_cam: np.ndarray
    rgb: torch.Tensor  # [h, w, 3]
    mask: torch.Tensor  # [h, w] bool: pixels whose keyframe depth is known everywhere in the footprint


def downsample_area(image: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """Area-average an image to ``width_px`` x ``height_px`` (exact box filter for any ratio).

    Args:
        image: [H, W, C] or [H, W] float.
    Returns:
        [height_px, width_px, C] or [height_px, width_px] float32.
    """
    a = torch.from_numpy(np.array(image, dtype=np.float32))
    x = a[None, None] if a.ndim == 2 else a.permute(2, 0, 1)[None]
    y = F.adaptive_avg_pool2d(x, (height_px, width_px))[0]
    out = y[0] if a.ndim == 2 else y.permute(1, 2, 0)
    return np.ascontiguousarray(out.numpy())


def _targets(keyframes: Sequence[KeyframeRecord], scale: float, device: torch.device) -> list[_Target]:
    out = []
    for i, kf in enumerate(keyframes):
        if not isinstance(kf, KeyframeRecord):
            raise InputError(f"refine: keyframe #{i} is a {type(kf).__name__}, expected a KeyframeRecord")
        K = kf.intrinsics.scaled(scale)
        rgb = downsample_area(kf.rgb, K.width_px, K.height_px)
        known = downsample_area(np.isfinite(kf.depth_m).astype(np.float32), K.width_px, K.height_px)
        out.append(_Target(K, np.asarray(kf.T_world_cam, np.float64),
                           torch.from_numpy(rgb).to(device), torch.from_numpy(known > 0.999).to(device)))
    return out


# ---- losses ------------------------------------------------------------------------------------
def _ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two [h, w, 3] images over valid (unpadded) 11x11 Gaussian windows."""
    x, y = pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]
    r = torch.arange(SSIM_WINDOW_PX, dtype=x.dtype, device=x.device) - SSIM_WINDOW_PX // 2
    g = torch.exp(-(r * r) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).expand(3, 1, SSIM_WINDOW_PX, SSIM_WINDOW_PX)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, win, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    m = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return m.mean()


def _loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, ssim_weight: float) -> torch.Tensor:
    """(1 - lambda) masked L1 + lambda (1 - SSIM); pixels outside ``mask`` take the target's value."""
    maskf = mask[..., None].to(pred.dtype)
    n = torch.clamp_min(maskf.sum() * 3.0, 1.0)
    l1 = ((pred - target).abs() * maskf).sum() / n
    if ssim_weight <= 0 or min(pred.shape[0], pred.shape[1]) < SSIM_WINDOW_PX:
        return l1
    filled = torch.where(mask[..., None], pred, target)
    return (1.0 - ssim_weight) * l1 + ssim_weight * (1.0 - _ssim(filled, target))


# ---- rendering backends ------------------------------------------------------------------------
#: (params, intrinsics, T_world_cam, window (x0, y0, w, h)) -> rgb [h, w, 3] with grad.
_RenderFn = Callable[[dict[str, torch.Tensor], Intrinsics, np.ndarray, tuple[int, int, int, int]], torch.Tensor]


def _torch_render_fn() -> _RenderFn:
    from srender_ros.backends.render.torch_raster import TorchGaussians, Window, rasterize

    def render(p: dict[str, torch.Tensor], K: Intrinsics, T: np.ndarray, win: tuple[int, int, int, int]) -> torch.Tensor:
        g = TorchGaussians(p["means"], p["quats_wxyz"], p["log_scales"], p["opacity_logits"], p["sh"])
        return rasterize(g, K, T, window=Window(*win)).rgb

    return render


def _gsplat_render_fn(sh_degree: int) -> _RenderFn:
    from gsplat import rasterization

    from srender_ros.backends.render.projection import EPS2D_PX2
    from srender_ros.core.ports.render import FAR_PLANE_M, NEAR_PLANE_M

    def render(p: dict[str, torch.Tensor], K: Intrinsics, T: np.ndarray, win: tuple[int, int, int, int]) -> torch.Tensor:
        x0, y0, w, h = win
        dev = p["means"].device
        viewmat = torch.tensor(np.linalg.inv(T), dtype=torch.float32, device=dev)[None]
        # A window is the full camera with its principal point shifted. gsplat's Jacobian clamp then
        # follows the window's field of view instead of the image's, which only changes Gaussians
        # far outside the window.
        Kw = torch.tensor([[K.fx_px, 0.0, K.cx_px - x0], [0.0, K.fy_px, K.cy_px - y0], [0.0, 0.0, 1.0]],
                          dtype=torch.float32, device=dev)[None]
        colors, _, _ = rasterization(
            p["means"], p["quats_wxyz"] / torch.linalg.norm(p["quats_wxyz"], dim=-1, keepdim=True),
            torch.exp(p["log_scales"]), torch.sigmoid(p["opacity_logits"]), p["sh"], viewmat, Kw, w, h,
            near_plane=NEAR_PLANE_M, far_plane=FAR_PLANE_M, eps2d=EPS2D_PX2, sh_degree=sh_degree, packed=False,
            rasterize_mode="classic", render_mode="RGB")
        out: torch.Tensor = colors[0]
        return out

    return render


def _pick_backend(device: str) -> tuple[str, torch.device]:
    from srender_ros.backends.render.gsplat_backend import gsplat_status

    if device == "cpu":
        return "torch-cpu", torch.device("cpu")
    ok, why = gsplat_status()
    if ok:
        return "gsplat-cuda", torch.device("cuda")
    if device == "cuda":
        raise BackendUnavailableError(f"refine device 'cuda' cannot run here: {why}. Use device 'cpu' or 'auto'.")
    return "torch-cpu", torch.device("cpu")


def _window_schedule(targets: list[_Target], patch_px: int | None,
                     rng: np.random.Generator) -> Iterator[tuple[int, tuple[int, int, int, int]]]:
    """Endless (target index, window (x0, y0, w, h)) in epochs: each epoch tiles every target with
    ``patch_px`` windows (a fresh random offset per epoch, so tile seams move) and visits the
    tiles in shuffled order, so every pixel is fitted equally often. None: whole images."""
    while True:
        jobs: list[tuple[int, tuple[int, int, int, int]]] = []
        for k, t in enumerate(targets):
            h, w = t.rgb.shape[:2]
            if patch_px is None or (patch_px >= w and patch_px >= h):
                jobs.append((k, (0, 0, w, h)))
                continue
            pw, ph = min(patch_px, w), min(patch_px, h)
            ox, oy = int(rng.integers(0, pw)), int(rng.integers(0, ph))
            # Tile starts cover [0, w) with windows kept inside the image (edge windows overlap).
            xs = sorted({min(max(x, 0), w - pw) for x in range(-ox, w, pw)})
            ys = sorted({min(max(y, 0), h - ph) for y in range(-oy, h, ph)})
            jobs.extend((k, (x, y, pw, ph)) for y in ys for x in xs)
        for i in rng.permutation(len(jobs)):
            yield jobs[int(i)]


class SelectiveAdam:
    """Adam that updates only the rows (Gaussians) whose gradient is non-zero in this step.

    With windows or partial views most Gaussians get no gradient in a step. Plain Adam would keep
    moving them on stale momentum: one gradient event, followed by zeros, moves a parameter by about
    ``lr * (1 - b1) / sqrt(1 - b2) * sum(b1^k)`` ~ 30 lr, which overshoots badly (keyframe PSNR falls;
    docs/refine.md). As gsplat's SelectiveAdam, rows without gradient keep their moments, and
    each row has its own step count for the bias correction.

    Args:
        params: (tensor [N, ...] that requires grad, learning rate) pairs.
        betas: Adam's (b1, b2). eps: Adam's epsilon.
    """

    def __init__(self, params: Sequence[tuple[torch.Tensor, float]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-15) -> None:
        self.params = [(p, float(lr)) for p, lr in params]
        self.b1, self.b2 = betas
        self.eps = eps
        self.m = [torch.zeros_like(p) for p, _ in self.params]
        self.v = [torch.zeros_like(p) for p, _ in self.params]
        self.t = [torch.zeros(p.shape[0], dtype=torch.float64, device=p.device) for p, _ in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients of every parameter."""
        for p, _ in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of the rows with a non-zero gradient."""
        for (p, lr), m, v, t in zip(self.params, self.m, self.v, self.t):
            if p.grad is None:
                continue
            g = p.grad.reshape(p.shape[0], -1)
            rows = torch.nonzero(g.abs().amax(dim=1) > 0).squeeze(1)
            if rows.numel() == 0:
                continue
            g = g.index_select(0, rows)
            m2, v2 = m.view(p.shape[0], -1), v.view(p.shape[0], -1)
            mr = self.b1 * m2.index_select(0, rows) + (1 - self.b1) * g
            vr = self.b2 * v2.index_select(0, rows) + (1 - self.b2) * g * g
            m2.index_copy_(0, rows, mr)
            v2.index_copy_(0, rows, vr)
            tr = t.index_select(0, rows) + 1
            t.index_copy_(0, rows, tr)
            c1 = (1 - self.b1 ** tr).to(p.dtype)[:, None]
            c2 = (1 - self.b2 ** tr).to(p.dtype)[:, None]
            upd = lr * (mr / c1) / (torch.sqrt(vr / c2) + self.eps)
            p.view(p.shape[0], -1).index_add_(0, rows, -upd)


# ---- the optimization --------------------------------------------------------------------------
def _render_targets(backend: str, render: _RenderFn, params: dict[str, torch.Tensor],
                    targets: list[_Target]) -> list[torch.Tensor]:
    """Whole-image renders [h, w, 3] of every target, no grad. On CPU the numba renderer draws them
    (same pixels as the torch rasterizer, far faster); on CUDA gsplat does."""
    with torch.no_grad():
        if backend == "gsplat-cuda":
            return [render(params, t.intrinsics, t.T_world_cam, (0, 0, t.rgb.shape[1], t.rgb.shape[0])) for t in targets]
        from srender_ros.backends.render.cpu import CpuRenderer

        world = GaussianWorld(*(params[k].detach().cpu().numpy()
                                for k in ("means", "quats_wxyz", "log_scales", "opacity_logits", "sh")))
        renderer = CpuRenderer()
        return [torch.from_numpy(renderer.render(world, t.intrinsics, t.T_world_cam[None]).rgb[0]) for t in targets]


def _evaluate(images: list[torch.Tensor], targets: list[_Target], ssim_weight: float) -> tuple[float, float]:
    """(mean loss, PSNR in dB over known pixels) of whole-image renders against their targets."""
    losses, se, count = [], 0.0, 0
    with torch.no_grad():
        for pred, t in zip(images, targets):
            pred = pred.to(t.rgb.device, t.rgb.dtype)
            losses.append(float(_loss(pred, t.rgb, t.mask, ssim_weight)))
            m = t.mask[..., None].expand_as(pred)
            se += float(((pred - t.rgb)[m] ** 2).sum())
            count += int(m.sum())
    mse = se / max(count, 1)
    return float(np.mean(losses)), (float("inf") if mse <= 1e-20 else float(-10.0 * math.log10(mse)))


def refine_world(world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
                 config: RefineConfig | None = None) -> tuple[GaussianWorld, RefineReport]:
    """Fit the world's colours and opacities (optionally means, scales) to its keyframe images.

    Args:
        world: N Gaussians.
        keyframes: the keyframes to fit (rgb [H, W, 3] in [0, 1], depth_m [H, W] with NaN where
            unknown, optical T_world_cam, intrinsics). Pixels of unknown depth are ignored.
        config: settings (defaults: 1000 steps of 64 px windows at full keyframe resolution,
            colours, opacities, means and scales; torch on CPU or gsplat on CUDA).
    Returns:
        (the refined world with the same N Gaussians in the same order, the report).
    Raises:
        InputError: a keyframe that is not a KeyframeRecord, a world that is not a GaussianWorld.
        BackendUnavailableError: device "cuda" where gsplat or CUDA is missing.
    """
    cfg = config or RefineConfig()
    if not isinstance(world, GaussianWorld):
        raise InputError(f"refine: world is a {type(world).__name__}, expected a GaussianWorld")
    t_start = time.perf_counter()
    kfs = list(keyframes)
    if len(world) == 0 or not kfs:
        note = "the world has no Gaussians" if len(world) == 0 else "the world has no keyframes to fit"
        nan = float("nan")
        return world, RefineReport("none", 0, 0.0, 0.0, nan, nan, nan, nan, len(world), len(kfs), note=note)
    backend, device = _pick_backend(cfg.device)
    threads_before = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _refine(world, kfs, cfg, backend, device, t_start)
    finally:
        torch.set_num_threads(threads_before)


def _refine(world: GaussianWorld, kfs: list[KeyframeRecord], cfg: RefineConfig, backend: str, device: torch.device,
            t_start: float) -> tuple[GaussianWorld, RefineReport]:
    render = _gsplat_render_fn(world.sh_degree) if backend == "gsplat-cuda" else _torch_render_fn()
    targets = _targets(kfs, cfg.scale, device)

    def to_t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.array(a), dtype=torch.float32, device=device)

    sh_dc = to_t(world.sh[:, :1]).requires_grad_(cfg.lr_color > 0)
    sh_rest = to_t(world.sh[:, 1:])
    leaves = {
        "means": to_t(world.means).requires_grad_(cfg.lr_means_m > 0),
        "quats_wxyz": to_t(world.quats_wxyz).requires_grad_(cfg.lr_quats > 0),
        "log_scales": to_t(world.log_scales).requires_grad_(cfg.lr_log_scales > 0),
        "opacity_logits": to_t(world.opacity_logits).requires_grad_(cfg.lr_opacity > 0),
    }

    def params() -> dict[str, torch.Tensor]:
        return {**leaves, "sh": torch.cat([sh_dc, sh_rest], dim=1)}

    groups = [(t, lr) for t, lr in ((sh_dc, cfg.lr_color), (leaves["opacity_logits"], cfg.lr_opacity),
                                    (leaves["means"], cfg.lr_means_m), (leaves["log_scales"], cfg.lr_log_scales),
                                    (leaves["quats_wxyz"], cfg.lr_quats)) if lr > 0]
    loss_before, psnr_before = _evaluate(_render_targets(backend, render, params(), targets), targets, cfg.ssim_weight)

    rng = np.random.default_rng(cfg.seed)
    steps = 0
    t_opt = time.perf_counter()
    if groups and cfg.iterations > 0:
        opt = SelectiveAdam(groups)
        windows = _window_schedule(targets, cfg.patch_px, rng)
        for _ in range(cfg.iterations):
            if cfg.time_budget_s is not None and time.perf_counter() - t_opt > cfg.time_budget_s:
                break
            opt.zero_grad()
            p = params()
            for _ in range(cfg.views_per_step):
                k, (x0, y0, pw, ph) = next(windows)
                t = targets[k]
                pred = render(p, t.intrinsics, t.T_world_cam, (x0, y0, pw, ph)).to(t.rgb.dtype)
                loss = _loss(pred, t.rgb[y0:y0 + ph, x0:x0 + pw], t.mask[y0:y0 + ph, x0:x0 + pw], cfg.ssim_weight)
                # One backward per view frees that view's graph before the next is built.
                (loss / cfg.views_per_step).backward(retain_graph=False)
                p = params()
            opt.step()
            steps += 1
    seconds = time.perf_counter() - t_opt
    loss_after, psnr_after = _evaluate(_render_targets(backend, render, params(), targets), targets, cfg.ssim_weight)

    with torch.no_grad():
        sh = torch.cat([sh_dc, sh_rest], dim=1).cpu().numpy()
        new = GaussianWorld(leaves["means"].cpu().numpy(), leaves["quats_wxyz"].cpu().numpy(),
                            leaves["log_scales"].cpu().numpy(), leaves["opacity_logits"].cpu().numpy(), sh)
    report = RefineReport(backend, steps, seconds, time.perf_counter() - t_start, loss_before, loss_after,
                          psnr_before, psnr_after, len(new), len(kfs))
    log.info("refine (%s): %d steps in %.1f s, keyframe loss %.4f -> %.4f, PSNR %.2f -> %.2f dB", backend, steps,
             seconds, loss_before, loss_after, psnr_before, psnr_after)
    return new, report


class PhotometricRefiner:
    """The :class:`~srender_ros.core.ports.refine.Refiner` port on :func:`refine_world`."""

    name = "photometric"

    def refine(self, world: GaussianWorld, keyframes: Sequence[KeyframeRecord],
               config: RefineConfig) -> tuple[GaussianWorld, RefineReport]:
        return refine_world(world, keyframes, config)
