"""numba kernels of the CPU rasterizer (float64 throughout, gsplat 1.5.3 rules; see projection.py).

Pipeline per view: project every Gaussian (cull, EWA, radius, tile rectangle, colour) into a
compact record table -> one stable LSD radix sort of the float32 depth bits (gsplat's key) ->
counting-sort the sorted records into 16x16 tile lists (each list stays depth-sorted) -> per
tile, Gaussian-major front-to-back compositing over only the pixels where the Gaussian's alpha
can reach 1/255 (an exact bound), with per-pixel early termination.

Everything here is compiled with ``cache=True``: the first import in a fresh checkout compiles
for a few tens of seconds, later processes load the cached machine code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Record layout (one float64 row per visible Gaussian).
R_MX, R_MY, R_CA, R_CB, R_CC, R_OP, R_LNOP, R_HX, R_HY, R_Z, R_R, R_G, R_B, R_TX0, R_TY0, R_TX1, R_TY1 = range(17)
NREC = 17

# Camera parameter vector layout (float64).
C_R = 0  # 9 entries, world-to-camera rotation row-major
C_T = 9  # 3 entries, world-to-camera translation
C_FX, C_FY, C_CX, C_CY, C_W, C_H = 12, 13, 14, 15, 16, 17
C_LXP, C_LXN, C_LYP, C_LYN = 18, 19, 20, 21
C_KX, C_KY = 22, 23  # conservative pre-cull factors fx^2 (1 + lim_x^2), fy^2 (1 + lim_y^2)
C_PX, C_PY, C_PZ = 24, 25, 26  # camera centre in the world (SH directions)
C_NEAR, C_FAR = 27, 28
NCAM = 29

TILE = 16
EPS2D = 0.3
ALPHA_THR = 1.0 / 255.0
MAX_ALPHA = 0.999
T_MIN = 1e-4
EXTEND = 3.33
RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS


@njit(cache=True, parallel=True)
def prepare_world(means, quats, log_scales, logits, pos, cov6, opac, ext, lnop, smax2):
    """Per-world constants: float64 means, upper-triangular 3D covariance, opacity terms."""
    for i in prange(means.shape[0]):
        w = np.float64(quats[i, 0])
        x = np.float64(quats[i, 1])
        y = np.float64(quats[i, 2])
        z = np.float64(quats[i, 3])
        n = math.sqrt(w * w + x * x + y * y + z * z)
        w /= n
        x /= n
        y /= n
        z /= n
        r00 = 1 - 2 * (y * y + z * z)
        r01 = 2 * (x * y - w * z)
        r02 = 2 * (x * z + w * y)
        r10 = 2 * (x * y + w * z)
        r11 = 1 - 2 * (x * x + z * z)
        r12 = 2 * (y * z - w * x)
        r20 = 2 * (x * z - w * y)
        r21 = 2 * (y * z + w * x)
        r22 = 1 - 2 * (x * x + y * y)
        s0 = math.exp(np.float64(log_scales[i, 0]))
        s1 = math.exp(np.float64(log_scales[i, 1]))
        s2 = math.exp(np.float64(log_scales[i, 2]))
        m00, m01, m02 = r00 * s0, r01 * s1, r02 * s2
        m10, m11, m12 = r10 * s0, r11 * s1, r12 * s2
        m20, m21, m22 = r20 * s0, r21 * s1, r22 * s2
        cov6[i, 0] = m00 * m00 + m01 * m01 + m02 * m02
        cov6[i, 1] = m00 * m10 + m01 * m11 + m02 * m12
        cov6[i, 2] = m00 * m20 + m01 * m21 + m02 * m22
        cov6[i, 3] = m10 * m10 + m11 * m11 + m12 * m12
        cov6[i, 4] = m10 * m20 + m11 * m21 + m12 * m22
        cov6[i, 5] = m20 * m20 + m21 * m21 + m22 * m22
        smax2[i] = max(s0 * s0, s1 * s1, s2 * s2)
        pos[i, 0] = np.float64(means[i, 0])
        pos[i, 1] = np.float64(means[i, 1])
        pos[i, 2] = np.float64(means[i, 2])
        o = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))
        opac[i] = o
        if o < ALPHA_THR:
            ext[i] = -1.0
            lnop[i] = -1.0
        else:
            lo = math.log(o / ALPHA_THR)
            lnop[i] = lo
            ext[i] = min(EXTEND, math.sqrt(2.0 * lo))


@njit(cache=True)
def _project_one(i, pos, cov6, opac, ext, lnop, smax2, cam, rec, k):
    """Project Gaussian ``i`` into record row ``k``; False when gsplat would cull it."""
    px = pos[i, 0]
    py = pos[i, 1]
    pz = pos[i, 2]
    z = cam[6] * px + cam[7] * py + cam[8] * pz + cam[11]
    if z < cam[C_NEAR] or z > cam[C_FAR]:
        return False
    x = cam[0] * px + cam[1] * py + cam[2] * pz + cam[9]
    y = cam[3] * px + cam[4] * py + cam[5] * pz + cam[10]
    fx = cam[C_FX]
    fy = cam[C_FY]
    W = cam[C_W]
    H = cam[C_H]
    rz = 1.0 / z
    mx = fx * x * rz + cam[C_CX]
    my = fy * y * rz + cam[C_CY]
    e = ext[i]
    # Conservative pre-cull (cheap): the true box half-size is below this bound, see cpu.py.
    s2rz2 = smax2[i] * rz * rz
    bx = e * math.sqrt(cam[C_KX] * s2rz2 + EPS2D) + 1.001
    if mx + bx <= 0.0 or mx - bx >= W:
        return False
    by = e * math.sqrt(cam[C_KY] * s2rz2 + EPS2D) + 1.001
    if my + by <= 0.0 or my - by >= H:
        return False
    # Rows of J R (the pinhole Jacobian at the FOV-clamped direction times the view rotation).
    xz = min(cam[C_LXP], max(-cam[C_LXN], x * rz))
    yz = min(cam[C_LYP], max(-cam[C_LYN], y * rz))
    f0 = fx * rz
    f1 = fy * rz
    a0x = f0 * (cam[0] - xz * cam[6])
    a0y = f0 * (cam[1] - xz * cam[7])
    a0z = f0 * (cam[2] - xz * cam[8])
    a1x = f1 * (cam[3] - yz * cam[6])
    a1y = f1 * (cam[4] - yz * cam[7])
    a1z = f1 * (cam[5] - yz * cam[8])
    sxx = cov6[i, 0]
    sxy = cov6[i, 1]
    sxz = cov6[i, 2]
    syy = cov6[i, 3]
    syz = cov6[i, 4]
    szz = cov6[i, 5]
    t0x = sxx * a0x + sxy * a0y + sxz * a0z
    t0y = sxy * a0x + syy * a0y + syz * a0z
    t0z = sxz * a0x + syz * a0y + szz * a0z
    t1x = sxx * a1x + sxy * a1y + sxz * a1z
    t1y = sxy * a1x + syy * a1y + syz * a1z
    t1z = sxz * a1x + syz * a1y + szz * a1z
    a = a0x * t0x + a0y * t0y + a0z * t0z + EPS2D
    b = a1x * t0x + a1y * t0y + a1z * t0z
    c = a1x * t1x + a1y * t1y + a1z * t1z + EPS2D
    det = a * c - b * b
    if det <= 0.0:
        return False
    rx = math.ceil(e * math.sqrt(a))
    ry = math.ceil(e * math.sqrt(c))
    if rx <= 0.0 and ry <= 0.0:
        return False
    if mx + rx <= 0.0 or mx - rx >= W or my + ry <= 0.0 or my - ry >= H:
        return False
    ntx = (int(W) + TILE - 1) // TILE
    nty = (int(H) + TILE - 1) // TILE
    ts = float(TILE)
    tx0 = min(max(math.floor(mx / ts - rx / ts), 0.0), ntx)
    ty0 = min(max(math.floor(my / ts - ry / ts), 0.0), nty)
    tx1 = min(max(math.ceil(mx / ts + rx / ts), 0.0), ntx)
    ty1 = min(max(math.ceil(my / ts + ry / ts), 0.0), nty)
    lo = lnop[i]
    rec[k, R_MX] = mx
    rec[k, R_MY] = my
    rec[k, R_CA] = c / det
    rec[k, R_CB] = -b / det
    rec[k, R_CC] = a / det
    rec[k, R_OP] = opac[i]
    rec[k, R_LNOP] = lo
    # Exact support: alpha >= 1/255 needs sigma <= ln(255 o), i.e. |dx| <= sqrt(2 ln(255 o) a).
    rec[k, R_HX] = math.sqrt(2.0 * lo * a)
    rec[k, R_HY] = math.sqrt(2.0 * lo * c)
    rec[k, R_Z] = z
    rec[k, R_TX0] = tx0
    rec[k, R_TY0] = ty0
    rec[k, R_TX1] = tx1
    rec[k, R_TY1] = ty1
    return True


@njit(cache=True)
def _sh_color(sh, g, dx, dy, dz, rec, k):
    """gsplat's SH evaluation (Sloan's form, degree 0..3) + 0.5, clamped at 0, into rec[k]."""
    nk = sh.shape[1]
    x = 0.0
    y = 0.0
    z = 0.0
    if nk > 1:
        inorm = 1.0 / math.sqrt(dx * dx + dy * dy + dz * dz)
        x = dx * inorm
        y = dy * inorm
        z = dz * inorm
    for ch in range(3):
        r = 0.2820947917738781 * sh[g, 0, ch]
        if nk > 1:
            r += 0.48860251190292 * (-y * sh[g, 1, ch] + z * sh[g, 2, ch] - x * sh[g, 3, ch])
            if nk > 4:
                z2 = z * z
                t0b = -1.092548430592079 * z
                fc1 = x * x - y * y
                fs1 = 2.0 * x * y
                r += (0.5462742152960395 * fs1 * sh[g, 4, ch] + t0b * y * sh[g, 5, ch]
                      + (0.9461746957575601 * z2 - 0.3153915652525201) * sh[g, 6, ch]
                      + t0b * x * sh[g, 7, ch] + 0.5462742152960395 * fc1 * sh[g, 8, ch])
                if nk > 9:
                    t0c = -2.285228997322329 * z2 + 0.4570457994644658
                    t1b = 1.445305721320277 * z
                    fc2 = x * fc1 - y * fs1
                    fs2 = x * fs1 + y * fc1
                    r += (-0.5900435899266435 * fs2 * sh[g, 9, ch] + t1b * fs1 * sh[g, 10, ch]
                          + t0c * y * sh[g, 11, ch] + z * (1.865881662950577 * z2 - 1.119528997770346) * sh[g, 12, ch]
                          + t0c * x * sh[g, 13, ch] + t1b * fc1 * sh[g, 14, ch]
                          - 0.5900435899266435 * fc2 * sh[g, 15, ch])
        rec[k, R_R + ch] = max(r + 0.5, 0.0)


@njit(cache=True, parallel=True)
def project_parallel(pos, cov6, opac, ext, lnop, smax2, gid, sh, cam, nchunks, rec, keyf, counts, with_color):
    """Project all Gaussians of one view; chunk c writes its survivors from row c*M//nchunks on."""
    m = pos.shape[0]
    for c in prange(nchunks):
        lo = c * m // nchunks
        hi = (c + 1) * m // nchunks
        k = lo
        for i in range(lo, hi):
            if _project_one(i, pos, cov6, opac, ext, lnop, smax2, cam, rec, k):
                keyf[k] = np.float32(rec[k, R_Z])
                if with_color:
                    _sh_color(sh, gid[i], pos[i, 0] - cam[C_PX], pos[i, 1] - cam[C_PY], pos[i, 2] - cam[C_PZ], rec, k)
                k += 1
        counts[c] = k - lo


@njit(cache=True)
def gather_rows(counts, m, nchunks):
    """Row indices of the survivors of :func:`project_parallel`, in Gaussian index order."""
    n = 0
    for c in range(nchunks):
        n += counts[c]
    rows = np.empty(n, np.int32)
    j = 0
    for c in range(nchunks):
        lo = c * m // nchunks
        for r in range(lo, lo + counts[c]):
            rows[j] = r
            j += 1
    return rows


@njit(cache=True)
def _radix_sort_rows(keyf, rows):
    """Stable sort of ``rows`` by the float32 depth bits keyf[row] (positive floats sort as uint32)."""
    n = rows.shape[0]
    keys = keyf.view(np.uint32)
    ka = np.empty(n, np.uint32)
    kb = np.empty(n, np.uint32)
    ra = rows.copy()
    rb = np.empty(n, np.int32)
    for i in range(n):
        ka[i] = keys[ra[i]]
    hist = np.empty(RADIX_SIZE, np.int64)
    for shift in range(0, 32, RADIX_BITS):
        hist[:] = 0
        for i in range(n):
            hist[(ka[i] >> shift) & (RADIX_SIZE - 1)] += 1
        if n == 0 or hist[(ka[0] >> shift) & (RADIX_SIZE - 1)] == n:
            continue  # every key has the same digit here: the pass would not move anything
        s = 0
        for d in range(RADIX_SIZE):
            cnt = hist[d]
            hist[d] = s
            s += cnt
        for i in range(n):
            d = (ka[i] >> shift) & (RADIX_SIZE - 1)
            j = hist[d]
            hist[d] = j + 1
            kb[j] = ka[i]
            rb[j] = ra[i]
        ka, kb = kb, ka
        ra, rb = rb, ra
    return ra


@njit(cache=True)
def sort_and_bin(rec, keyf, rows, ntx, nty):
    """Depth-sort the visible rows and scatter them into per-tile lists (each list depth-sorted).

    Returns:
        (offsets int64 [ntiles + 1], lists int32 [n_isect]) with tile t's rows at
        lists[offsets[t]:offsets[t + 1]], front to back.
    """
    order = _radix_sort_rows(keyf, rows)
    ntiles = ntx * nty
    offsets = np.zeros(ntiles + 1, np.int64)
    for r in order:
        for ty in range(int(rec[r, R_TY0]), int(rec[r, R_TY1])):
            for tx in range(int(rec[r, R_TX0]), int(rec[r, R_TX1])):
                offsets[ty * ntx + tx + 1] += 1
    for t in range(ntiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[ntiles], np.int32)
    for r in order:
        for ty in range(int(rec[r, R_TY0]), int(rec[r, R_TY1])):
            for tx in range(int(rec[r, R_TX0]), int(rec[r, R_TX1])):
                t = ty * ntx + tx
                lists[fill[t]] = r
                fill[t] += 1
    return offsets, lists


# exp(-s) = exp(-s/8)^8 with exp(-s/8) = exp(-3/8) * exp(-u), u = s/8 - 3/8 in [-3/8, 3/8] for s in
# [0, 6], by Taylor to degree 12 (truncation < 5e-16; ~5e-15 relative after the squarings). A
# polynomial instead of math.exp lets LLVM vectorize the per-row alpha loop.
_E38 = math.exp(-0.375)
_EXP_C = tuple((-1.0) ** k / math.factorial(k) * _E38 for k in range(13))
SIGMA_CLAMP = 6.0  # > ln(255) >= every Gaussian's sigma cut-off


@njit(cache=True, inline="always")
def _exp_neg(s):
    """exp(-s) for s in [0, SIGMA_CLAMP] (callers clamp), relative error ~5e-15."""
    u = s * 0.125 - 0.375
    c = _EXP_C
    e = c[12]
    e = e * u + c[11]
    e = e * u + c[10]
    e = e * u + c[9]
    e = e * u + c[8]
    e = e * u + c[7]
    e = e * u + c[6]
    e = e * u + c[5]
    e = e * u + c[4]
    e = e * u + c[3]
    e = e * u + c[2]
    e = e * u + c[1]
    e = e * u + c[0]
    e = e * e
    e = e * e
    return e * e


@njit(cache=True, inline="always")
def _row_alphas(n, x_first, mxh, ca, cbdy, ccdy2, op, sbuf, abuf):
    """sigma and alpha of ``n`` consecutive pixels of one row (branch-free, so it vectorizes)."""
    for i in range(n):
        dx = mxh - (x_first + i)
        sigma = 0.5 * (ca * dx * dx + ccdy2) + cbdy * dx
        sbuf[i] = sigma
        abuf[i] = min(MAX_ALPHA, op * _exp_neg(min(max(sigma, 0.0), SIGMA_CLAMP)))


@njit(cache=True)
def raster_tile(t, rec, lists, offsets, W, H, ntx, bg, rgb, depth, alpha, with_color, depth_min_alpha):
    """Front-to-back compositing of tile ``t``; writes its pixels of rgb/depth/alpha ([H, W(, 3)])."""
    x0 = (t % ntx) * TILE
    y0 = (t // ntx) * TILE
    x1 = min(x0 + TILE, W)
    y1 = min(y0 + TILE, H)
    npix = (x1 - x0) * (y1 - y0)
    T = np.ones(TILE * TILE)
    acc = np.zeros((4, TILE * TILE))
    done = np.zeros(TILE * TILE, np.bool_)
    sbuf = np.empty(TILE)
    abuf = np.empty(TILE)
    ndone = 0
    for q in range(offsets[t], offsets[t + 1]):
        if ndone >= npix:
            break
        j = lists[q]
        mx = rec[j, R_MX]
        my = rec[j, R_MY]
        hy = rec[j, R_HY]
        gy0 = max(y0, int(math.ceil(max(my - hy - 0.5 - 1e-3, -1.0))))
        gy1 = min(y1 - 1, int(math.floor(min(my + hy - 0.5 + 1e-3, H + 1.0))))
        if gy0 > gy1:
            continue
        ca = rec[j, R_CA]
        cb = rec[j, R_CB]
        cc = rec[j, R_CC]
        op = rec[j, R_OP]
        lnop = rec[j, R_LNOP]
        # sigma above ln(255 o) means alpha < 1/255; the margin keeps this exact despite rounding.
        sig_max = lnop + 1e-9
        det_c = ca * cc - cb * cb
        cr = rec[j, R_R]
        cg = rec[j, R_G]
        cbl = rec[j, R_B]
        zj = rec[j, R_Z]
        mxh = mx - 0.5
        for py in range(gy0, gy1 + 1):
            dy = my - (py + 0.5)
            # Row span of the ellipse sigma <= ln(255 o): 0.5 ca dx^2 + cb dy dx + 0.5 cc dy^2 <= L.
            disc = 2.0 * ca * lnop - dy * dy * det_c
            if disc < 0.0:
                disc = 0.0
            r = math.sqrt(disc) / ca
            cen = -cb * dy / ca
            margin = 1e-3 + 1e-9 * (abs(r) + abs(cen))
            gx0 = max(x0, int(math.ceil(max(mxh - cen - r - margin, -1.0))))
            gx1 = min(x1 - 1, int(math.floor(min(mxh - cen + r + margin, W + 1.0))))
            n = gx1 - gx0 + 1
            if n <= 0:
                continue
            _row_alphas(n, gx0, mxh, ca, cb * dy, cc * dy * dy, op, sbuf, abuf)
            base = (py - y0) * TILE - x0
            for i in range(n):
                p = base + gx0 + i
                if done[p]:
                    continue
                sigma = sbuf[i]
                a = abuf[i]
                if sigma > sig_max or sigma < 0.0 or a < ALPHA_THR:
                    continue
                tp = T[p]
                nt = tp * (1.0 - a)
                if nt <= T_MIN:
                    done[p] = True
                    ndone += 1
                    continue
                if with_color:
                    w = a * tp
                    acc[0, p] += w * cr
                    acc[1, p] += w * cg
                    acc[2, p] += w * cbl
                    acc[3, p] += w * zj
                T[p] = nt
    for py in range(y0, y1):
        for px in range(x0, x1):
            p = (py - y0) * TILE + (px - x0)
            tp = T[p]
            al = 1.0 - tp
            alpha[py, px] = al
            if with_color:
                rgb[py, px, 0] = acc[0, p] + tp * bg[0]
                rgb[py, px, 1] = acc[1, p] + tp * bg[1]
                rgb[py, px, 2] = acc[2, p] + tp * bg[2]
                if al >= depth_min_alpha:
                    depth[py, px] = acc[3, p] / max(al, 1e-10)
                else:
                    depth[py, px] = np.nan


@njit(cache=True, parallel=True)
def raster_parallel(rec, lists, offsets, tile_order, W, H, ntx, bg, rgb, depth, alpha, with_color, depth_min_alpha):
    """All tiles of one view, in parallel (``tile_order`` interleaves tiles to balance threads)."""
    for i in prange(tile_order.shape[0]):
        raster_tile(tile_order[i], rec, lists, offsets, W, H, ntx, bg, rgb, depth, alpha, with_color, depth_min_alpha)


@njit(cache=True, parallel=True)
def coverage_many(pos, cov6, opac, ext, lnop, smax2, cams, W, H, nchunks, out):
    """Alpha of many views, one view per thread at a time (views interleaved across chunks)."""
    m = pos.shape[0]
    nviews = cams.shape[0]
    ntx = (W + TILE - 1) // TILE
    nty = (H + TILE - 1) // TILE
    bg = np.zeros(3)
    for c in prange(nchunks):
        rec = np.empty((m, NREC))
        keyf = np.empty(m, np.float32)
        dummy_rgb = np.empty((1, 1, 3), np.float32)
        dummy_depth = np.empty((1, 1), np.float32)
        for v in range(c, nviews, nchunks):
            cam = cams[v]
            n = 0
            for i in range(m):
                if _project_one(i, pos, cov6, opac, ext, lnop, smax2, cam, rec, n):
                    keyf[n] = np.float32(rec[n, R_Z])
                    n += 1
            rows = np.arange(n).astype(np.int32)
            offsets, lists = sort_and_bin(rec, keyf, rows, ntx, nty)
            alpha = out[v]
            for t in range(ntx * nty):
                raster_tile(t, rec, lists, offsets, W, H, ntx, bg, dummy_rgb, dummy_depth, alpha, False, 0.5)
