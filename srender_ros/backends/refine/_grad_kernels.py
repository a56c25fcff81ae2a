"""numba kernels of the fast keyframe refinement: per-pixel pair lists, forward and analytic backward.

The fast refinement (:mod:`srender_ros.backends.refine.keyframe`) optimizes colours (SH DC) and
opacities only, so a view's geometry is fixed during the optimization: which Gaussians touch
which pixel, in which order, and with which Gaussian falloff ``g = exp(-sigma)``. It is computed
once per view (:func:`build_pairs`, from gsplat's EWA projection in float64,
see ``backends/render/projection.py``), stored as per-pixel lists in depth order (CSR), and every
step composites those lists with the current opacities and colours (:func:`composite`) and
back-propagates an image gradient through them (:func:`backward`). Compositing follows gsplat's
rules exactly (``alpha = min(0.999, o g)``, skip ``alpha < 1/255``, stop before the
transmittance reaches 1e-4), so for unchanged parameters the result equals the CPU renderer's
pixels; lists keep every pair with ``g >= 1/255`` (the largest support any opacity <= 1 can have)
until the transmittance at the *initial* opacities has fallen below ``T_KEEP``, so lowering
opacities during the short fit cannot uncover Gaussians that were dropped.

Backward (3DGS's, per pixel back to front, with the background term of hole filling):
``C = sum_k c_k a_k T_k + T_N f`` where ``f`` is the fill colour (held constant);
``dC/dc_j = a_j T_j`` and ``dC/da_j = T_j c_j - (sum_{k>j} c_k a_k T_k + T_N f) / (1 - a_j)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

ALPHA_THR = 1.0 / 255.0
MAX_ALPHA = 0.999
T_MIN = 1e-4
#: Pairs are kept per pixel until the transmittance at the initial opacities falls below this.
T_KEEP = 1e-6
#: Box half-size in standard deviations (gsplat's cap; an opacity of 1 reaches 3.33 sigma).
EXTEND = 3.33


@njit(cache=True, nogil=True)
def _support(mx, my, sxx, syy, W, H):
    """Pixel box [x0, x1) x [y0, y1) holding every pixel centre with g >= 1/255 (|d| <= 3.33 sigma)."""
    hx = EXTEND * math.sqrt(sxx)
    hy = EXTEND * math.sqrt(syy)
    x0 = max(0, int(math.floor(mx - 0.5 - hx)))
    x1 = min(W, int(math.floor(mx - 0.5 + hx)) + 1)
    y0 = max(0, int(math.floor(my - 0.5 - hy)))
    y1 = min(H, int(math.floor(my - 0.5 + hy)) + 1)
    return x0, x1, y0, y1


@njit(cache=True, nogil=True)
def support_area(mean2d, sxx, syy, W, H):
    """Total pixel count of every Gaussian's support box (an upper bound of the pairs)."""
    total = 0
    for i in range(mean2d.shape[0]):
        x0, x1, y0, y1 = _support(mean2d[i, 0], mean2d[i, 1], sxx[i], syy[i], W, H)
        if x1 > x0 and y1 > y0:
            total += (x1 - x0) * (y1 - y0)
    return total


@njit(cache=True, nogil=True)
def build_pairs(order, mean2d, conic, sxx, syy, opacity, W, H, starts, pair_gid, pair_g):
    """Every pixel's (Gaussian row, falloff g) pairs in compositing order, as CSR lists.

    Gaussians are visited in ``order`` (float32 depth, ties by index), so each pixel's pairs come
    out front to back. A pair is kept when g = exp(-sigma) >= 1/255 (alpha can reach 1/255 for
    some opacity <= 1) while the pixel's transmittance at the initial opacities is >= T_KEEP.

    Args:
        order: [n] int64 Gaussians in compositing order.
        mean2d: [n, 2] px; conic: [n, 3] (a, b, c); sxx, syy: [n] blurred 2D variances, px^2.
        opacity: [n] initial opacities (for the T_KEEP cut). W, H: image size.
        starts: [H * W + 1] int64 out: list offsets.
        pair_gid: [cap] int32 out, pair_g: [cap] float64 out, cap >= :func:`support_area`.
    Returns:
        The number of pairs P (lists fill rows 0..P-1).
    """
    npx = H * W
    T = np.ones(npx)
    cap = pair_gid.shape[0]
    tmp_pix = np.empty(cap, np.int32)
    tmp_gid = np.empty(cap, np.int32)
    tmp_g = np.empty(cap)
    n = 0
    for r in range(order.shape[0]):
        i = order[r]
        mx = mean2d[i, 0]
        my = mean2d[i, 1]
        x0, x1, y0, y1 = _support(mx, my, sxx[i], syy[i], W, H)
        a = conic[i, 0]
        b = conic[i, 1]
        c = conic[i, 2]
        o = opacity[i]
        for y in range(y0, y1):
            dy = my - (y + 0.5)
            for x in range(x0, x1):
                p = y * W + x
                if T[p] < T_KEEP:
                    continue
                dx = mx - (x + 0.5)
                s = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                if s < 0.0:
                    continue
                g = math.exp(-s)
                if g < ALPHA_THR:
                    continue
                tmp_pix[n] = p
                tmp_gid[n] = i
                tmp_g[n] = g
                n += 1
                al = min(MAX_ALPHA, o * g)
                if al >= ALPHA_THR:
                    T[p] *= 1.0 - al
    # Stable counting sort by pixel keeps the depth order within each pixel.
    starts[:] = 0
    for k in range(n):
        starts[tmp_pix[k] + 1] += 1
    for p in range(npx):
        starts[p + 1] += starts[p]
    fill = starts[:-1].copy()
    for k in range(n):
        p = tmp_pix[k]
        j = fill[p]
        pair_gid[j] = tmp_gid[k]
        pair_g[j] = tmp_g[k]
        fill[p] = j + 1
    return n


@njit(cache=True, nogil=True)
def l1_grad(rgb, T, under, target, mask, pred, fill_term, dL):
    """Delivered pixels ``pred = rgb + T under`` (hole filling with a fixed fill colour), their
    masked mean L1 against ``target`` and its gradient ``dL`` [H*W, 3]; returns the loss."""
    n = 0
    for p in range(mask.shape[0]):
        if mask[p]:
            n += 3
    inv = 1.0 / max(n, 1)
    loss = 0.0
    for p in range(mask.shape[0]):
        for ch in range(3):
            f = T[p] * under[p, ch]
            fill_term[p, ch] = f
            v = rgb[p, ch] + f
            pred[p, ch] = v
            if mask[p]:
                d = v - target[p, ch]
                loss += abs(d)
                dL[p, ch] = inv if d > 0.0 else (-inv if d < 0.0 else 0.0)
            else:
                dL[p, ch] = 0.0
    return loss * inv


@njit(cache=True, nogil=True)
def composite(starts, pair_gid, pair_g, opacity, color, rgb, T_final, pair_T, stop):
    """Forward: composite every pixel's list front to back with gsplat's rules.

    Args:
        opacity: [n] current opacities; color: [n, 3] current colours (view-evaluated, clamped).
        rgb: [H * W, 3] out (over black); T_final: [H * W] out, transmittance left (alpha = 1 - T).
        pair_T: [P] out, the transmittance in front of each composited pair (for :func:`backward`).
        stop: [H * W] out, one past the last pair each pixel looked at.
    """
    npx = starts.shape[0] - 1
    for p in range(npx):
        T = 1.0
        r0 = 0.0
        r1 = 0.0
        r2 = 0.0
        end = starts[p + 1]
        for k in range(starts[p], starts[p + 1]):
            i = pair_gid[k]
            al = min(MAX_ALPHA, opacity[i] * pair_g[k])
            if al < ALPHA_THR:
                continue
            nt = T * (1.0 - al)
            if nt <= T_MIN:
                end = k
                break
            pair_T[k] = T
            w = al * T
            r0 += w * color[i, 0]
            r1 += w * color[i, 1]
            r2 += w * color[i, 2]
            T = nt
        rgb[p, 0] = r0
        rgb[p, 1] = r1
        rgb[p, 2] = r2
        T_final[p] = T
        stop[p] = end


@njit(cache=True, nogil=True)
def backward(starts, pair_gid, pair_g, opacity, color, pair_T, stop, fill_term, dL_dC, d_color, d_opacity):
    """Backward of ``C + fill_term`` (fill_term = T_N f held constant) for an image gradient.

    Args:
        pair_T, stop: what :func:`composite` stored for the same opacities and colours.
        fill_term: [H * W, 3] what hole filling adds (T_N times the fill colour).
        dL_dC: [H * W, 3] gradient of the loss with respect to the delivered pixel.
        d_color: [n, 3] accumulated dL/d colour (in place). d_opacity: [n] dL/d opacity (in place).
    """
    npx = starts.shape[0] - 1
    for p in range(npx):
        g0 = dL_dC[p, 0]
        g1 = dL_dC[p, 1]
        g2 = dL_dC[p, 2]
        if g0 == 0.0 and g1 == 0.0 and g2 == 0.0:
            continue
        # behind = sum_{k>j} c_k a_k T_k . g + T_N f . g, walked back to front
        behind = fill_term[p, 0] * g0 + fill_term[p, 1] * g1 + fill_term[p, 2] * g2
        for k in range(stop[p] - 1, starts[p] - 1, -1):
            i = pair_gid[k]
            og = opacity[i] * pair_g[k]
            al = min(MAX_ALPHA, og)
            if al < ALPHA_THR:
                continue
            Tj = pair_T[k]
            w = al * Tj
            d_color[i, 0] += w * g0
            d_color[i, 1] += w * g1
            d_color[i, 2] += w * g2
            cg = color[i, 0] * g0 + color[i, 1] * g1 + color[i, 2] * g2
            if og < MAX_ALPHA:
                d_opacity[i] += (Tj * cg - behind / (1.0 - al)) * pair_g[k]
            behind += w * cg


@njit(cache=True, nogil=True)
def adam_rows(x, m, v, t, rows, g, lr):
    """Adam on rows ``rows`` of x [P, C] with gradients g [len(rows), C]; per-row step counts t [P]
    (rows without a gradient keep their moments: the selective Adam of photometric.py)."""
    for j in range(rows.shape[0]):
        r = rows[j]
        t[r] += 1.0
        c1 = 1.0 - 0.9 ** t[r]
        c2 = 1.0 - 0.999 ** t[r]
        for ch in range(x.shape[1]):
            gg = g[j, ch]
            mm = 0.9 * m[r, ch] + 0.1 * gg
            vv = 0.999 * v[r, ch] + 0.001 * gg * gg
            m[r, ch] = mm
            v[r, ch] = vv
            x[r, ch] -= lr * (mm / c1) / (math.sqrt(vv / c2) + 1e-15)
