"""numba kernels of the CPU rasterizer (float64 throughout, gsplat 1.5.3 rules; see projection.py).

Pipeline per view:

1. cull: Gaussians are stored in spatial (Morton) order in blocks of BLOCK; a conservative
   sphere-against-widened-frustum test skips whole blocks that cannot reach the image;
2. project: gsplat's exact projection of every Gaussian of the remaining blocks, branch-free
   (vectorized), then the kept ones are compacted into a record table;
3. sort: one stable LSD radix sort of the float32 depth bits (gsplat's key; ties keep index
   order), the records are gathered into depth order and counting-sorted into tile lists (tiles
   of TILE_H rows and a chosen width, by each Gaussian's exact support box);
4. composite: per tile, front to back, Gaussian-major over the tile rows the Gaussian reaches,
   8 pixels at a time without branches (so LLVM vectorizes it), with per-pixel early stop.

Pixels outside a Gaussian's exact support (sigma <= ln(255 o), a box inside gsplat's radius box
and hence inside its 16x16-tile rectangle) cannot pass the alpha >= 1/255 test, so skipping them
changes nothing; our tiles are only an acceleration structure.

Everything is compiled with ``cache=True``: the first call in a fresh checkout compiles for about
15 s of CPU, later processes load the cached machine code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Record layout (one float64 row per visible Gaussian).
R_MX, R_MY, R_CA, R_CB, R_CC, R_OP, R_LNOP, R_HX, R_HY, R_Z, R_R, R_G, R_B = range(13)
NREC = 13

# Per-world data: one float64 array G [NG, M], Gaussians in spatial (Morton) order.
G_PX, G_PY, G_PZ, G_XX, G_XY, G_XZ, G_YY, G_YZ, G_ZZ, G_OP, G_EXT, G_LNOP, G_SMAX2 = range(13)
NG = 13

# Camera parameter vector layout (float64).
C_R = 0  # 9 entries, world-to-camera rotation row-major
C_T = 9  # 3 entries, world-to-camera translation
C_FX, C_FY, C_CX, C_CY, C_W, C_H = 12, 13, 14, 15, 16, 17
C_LXP, C_LXN, C_LYP, C_LYN = 18, 19, 20, 21
C_KX, C_KY = 22, 23  # box-bound factors fx^2 (1 + lim_x^2), fy^2 (1 + lim_y^2) for the block test
C_PX, C_PY, C_PZ = 24, 25, 26  # camera centre in the world (SH directions)
C_NEAR, C_FAR = 27, 28
C_PLANES = 29  # 4 x (world normal xyz, offset, |normal|, rho factor) of the widened image borders
NCAM = C_PLANES + 24
#: Pixel margin of the block test: ext sqrt(eps2d) + 1 (ceil) <= 3.33 * 0.548 + 1.001 < 2.9.
BLOCK_MARGIN_PX = 2.9

EPS2D = 0.3
ALPHA_THR = 1.0 / 255.0
MAX_ALPHA = 0.999
T_MIN = 1e-4
EXTEND = 3.33
RADIX_BITS = 11
RADIX_SIZE = 1 << RADIX_BITS
BLOCK = 256  # Gaussians per culling / projection block
CHUNK = 8  # pixels composited per vector step (two AVX2 float64 vectors: enough independent work)
SIGMA_CLAMP = 6.0  # > ln(255) >= every Gaussian's sigma cut-off
#: Internal tiles are TILE_H rows by a caller-chosen width of at most MAX_TILE_W pixels. They only
#: bound the work: a Gaussian is binned by its exact support box, which lies inside gsplat's
#: 16x16-tile rectangle, so the tile shape cannot change a pixel.
TILE_H = 16
MAX_TILE_W = 128
# Tile state regions (T, then colour and depth sums), padded by CHUNK because a step may run past the
# end of a tile row (those lanes are masked). Fixed, unsigned offsets: numba skips negative-index
# wraparound for unsigned indices, which keeps the addresses affine so the loops vectorize.
_REG = TILE_H * MAX_TILE_W + CHUNK
_R1, _R2, _R3, _R4 = np.uint64(_REG), np.uint64(2 * _REG), np.uint64(3 * _REG), np.uint64(4 * _REG)

# exp(-s) = exp(-s/8)^8, exp(-s/8) = exp(-3/8) exp(-u), u = s/8 - 3/8 in [-3/8, 3/8] for s in
# [0, 6], by its Taylor polynomial of degree 12 (truncation < 5e-16, ~5e-15 relative after the
# squarings), evaluated in Estrin's form for a short dependency chain. No SVML here, so a
# polynomial is what lets LLVM vectorize the pixel loops.
_E38 = math.exp(-0.375)
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = (
    (-1.0) ** k / math.factorial(k) * _E38 for k in range(13))


@njit(cache=True, inline="always")
def _exp_neg(s):
    """exp(-s) for s in [0, SIGMA_CLAMP] (callers clamp), relative error ~5e-15."""
    u = s * 0.125 - 0.375
    u2 = u * u
    u4 = u2 * u2
    u8 = u4 * u4
    q0 = (_C0 + _C1 * u) + (_C2 + _C3 * u) * u2
    q1 = (_C4 + _C5 * u) + (_C6 + _C7 * u) * u2
    q2 = (_C8 + _C9 * u) + (_C10 + _C11 * u) * u2
    e = (q0 + q1 * u4) + (q2 + _C12 * u4) * u8
    e = e * e
    e = e * e
    return e * e


@njit(cache=True, nogil=True)
def prepare_world(means, quats, log_scales, logits, order, G):
    """Per-world constants of Gaussians order[k] into column k of G [NG, M] (float64)."""
    for k in range(order.shape[0]):
        i = order[k]
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
        G[G_PX, k] = np.float64(means[i, 0])
        G[G_PY, k] = np.float64(means[i, 1])
        G[G_PZ, k] = np.float64(means[i, 2])
        G[G_XX, k] = m00 * m00 + m01 * m01 + m02 * m02
        G[G_XY, k] = m00 * m10 + m01 * m11 + m02 * m12
        G[G_XZ, k] = m00 * m20 + m01 * m21 + m02 * m22
        G[G_YY, k] = m10 * m10 + m11 * m11 + m12 * m12
        G[G_YZ, k] = m10 * m20 + m11 * m21 + m12 * m22
        G[G_ZZ, k] = m20 * m20 + m21 * m21 + m22 * m22
        G[G_SMAX2, k] = max(s0 * s0, s1 * s1, s2 * s2)
        o = 1.0 / (1.0 + math.exp(-np.float64(logits[i])))
        G[G_OP, k] = o
        # Callers pass only Gaussians with o >= 1/255 (the rest are always culled).
        lo = math.log(o / ALPHA_THR)
        G[G_LNOP, k] = lo
        G[G_EXT, k] = min(EXTEND, math.sqrt(2.0 * lo))


@njit(cache=True, nogil=True)
def span_bounds(G, bstart):
    """Bounding spheres of the column ranges [bstart[b], bstart[b+1]): [nb, 5] centre xyz, radius,
    max ext * s_max (the blocks of :mod:`srender_ros.backends.render.cpu_index`)."""
    nb = bstart.shape[0] - 1
    out = np.zeros((nb, 5))
    for b in range(nb):
        lo = bstart[b]
        hi = bstart[b + 1]
        for a in range(3):
            mn = G[a, lo]
            mx = G[a, lo]
            for i in range(lo, hi):
                mn = min(mn, G[a, i])
                mx = max(mx, G[a, i])
            out[b, a] = 0.5 * (mn + mx)
        r2 = 0.0
        se = 0.0
        for i in range(lo, hi):
            d2 = (G[0, i] - out[b, 0]) ** 2 + (G[1, i] - out[b, 1]) ** 2 + (G[2, i] - out[b, 2]) ** 2
            r2 = max(r2, d2)
            se = max(se, G[G_EXT, i] * math.sqrt(G[G_SMAX2, i]))
        out[b, 3] = math.sqrt(r2) * (1.0 + 1e-9) + 1e-9
        out[b, 4] = se
    return out


@njit(cache=True, nogil=True)
def merge_runs(starts, pos, cov, op, col):
    """Merge each run [starts[s], starts[s+1]) of Gaussians into one by moment matching.

    Weights w = o tr(Sigma); mean and covariance (about the merged mean) by w, colour (all SH
    coefficients) by w, opacity min(max o, sum w / tr(merged Sigma)). pos [n, 3], cov [n, 6]
    (xx xy xz yy yz zz), op [n], col [n, K, 3]; returns the same for the S runs.
    """
    ns = starts.shape[0]
    n = op.shape[0]
    kd = col.shape[1]
    mpos = np.zeros((ns, 3))
    mcov = np.zeros((ns, 6))
    mop = np.zeros(ns)
    mcol = np.zeros((ns, kd, 3), np.float32)
    acc = np.zeros((kd, 3))
    for s in range(ns):
        a = starts[s]
        b = starts[s + 1] if s + 1 < ns else n
        sw = 0.0
        omax = 0.0
        px = 0.0
        py = 0.0
        pz = 0.0
        acc[:, :] = 0.0
        for i in range(a, b):
            w = op[i] * max(cov[i, 0] + cov[i, 3] + cov[i, 5], 1e-30)
            sw += w
            omax = max(omax, op[i])
            px += w * pos[i, 0]
            py += w * pos[i, 1]
            pz += w * pos[i, 2]
            for k in range(kd):
                for ch in range(3):
                    acc[k, ch] += w * col[i, k, ch]
        px /= sw
        py /= sw
        pz /= sw
        c0 = 0.0
        c1 = 0.0
        c2 = 0.0
        c3 = 0.0
        c4 = 0.0
        c5 = 0.0
        for i in range(a, b):
            w = op[i] * max(cov[i, 0] + cov[i, 3] + cov[i, 5], 1e-30)
            dx = pos[i, 0] - px
            dy = pos[i, 1] - py
            dz = pos[i, 2] - pz
            c0 += w * (cov[i, 0] + dx * dx)
            c1 += w * (cov[i, 1] + dx * dy)
            c2 += w * (cov[i, 2] + dx * dz)
            c3 += w * (cov[i, 3] + dy * dy)
            c4 += w * (cov[i, 4] + dy * dz)
            c5 += w * (cov[i, 5] + dz * dz)
        mpos[s, 0] = px
        mpos[s, 1] = py
        mpos[s, 2] = pz
        mcov[s, 0] = c0 / sw
        mcov[s, 1] = c1 / sw
        mcov[s, 2] = c2 / sw
        mcov[s, 3] = c3 / sw
        mcov[s, 4] = c4 / sw
        mcov[s, 5] = c5 / sw
        mtr = max(mcov[s, 0] + mcov[s, 3] + mcov[s, 5], 1e-30)
        mop[s] = min(omax, sw / mtr)
        for k in range(kd):
            for ch in range(3):
                mcol[s, k, ch] = acc[k, ch] / sw
    return mpos, mcov, mop, mcol


@njit(cache=True, inline="always")
def _block_visible(bounds, b, cam):
    """False when no Gaussian of block b can pass :func:`_project_block` (conservative sphere test).

    A Gaussian at camera depth z >= near has rx = ceil(ext sqrt(a)) with a = a0^T Sigma a0 + eps2d,
    a0 = row 0 of J R, |a0|^2 <= (fx / z)^2 (1 + lim_x^2) = C_KX / z^2 and a0^T Sigma a0 <=
    |a0|^2 s_max^2, so rx < fx rho / z + BLOCK_MARGIN_PX with rho = ext s_max sqrt(C_KX) / fx.
    Hence it is off the left border (u + rx <= 0) when x + rho + z (cx + margin) / fx <= 0: a plane
    in camera coordinates, tested against the block's bounding sphere and largest rho; the same for
    the other three borders, plus the near and far planes.
    """
    c0 = bounds[b, 0]
    c1 = bounds[b, 1]
    c2 = bounds[b, 2]
    rad = bounds[b, 3]
    se = bounds[b, 4]
    zc = cam[6] * c0 + cam[7] * c1 + cam[8] * c2 + cam[11]
    if zc + rad < cam[C_NEAR] or zc - rad > cam[C_FAR]:
        return False
    for q in range(4):
        o = C_PLANES + 6 * q
        d = cam[o] * c0 + cam[o + 1] * c1 + cam[o + 2] * c2 + cam[o + 3]
        if d + cam[o + 4] * rad + cam[o + 5] * se <= 0.0:
            return False
    return True


@njit(cache=True, fastmath={"contract"}, error_model="numpy", inline="always")
def _project_block(gf, m, lo, n, cam, tmp):
    """gsplat's fused EWA projection of Gaussians lo..lo+n-1, branch-free (vectorizes), into tmp.

    ``gf`` is G flattened (row f at f*m), ``tmp`` is [11 * BLOCK] with rows: mx, my, conic a b c,
    opacity, ln(255 o), support half-sizes hx hy, z, keep flag (1.0 where gsplat keeps the
    Gaussian: radii > 0). One load and one store array keep LLVM's alias checks
    cheap enough to vectorize; unsigned indices avoid numba's negative-index wraparound.
    """
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = cam[0], cam[1], cam[2], cam[3], cam[4], cam[5], cam[6], cam[7], cam[8]
    t0, t1, t2 = cam[9], cam[10], cam[11]
    fx, fy, cx, cy, W, H = cam[C_FX], cam[C_FY], cam[C_CX], cam[C_CY], cam[C_W], cam[C_H]
    lxp, lxn, lyp, lyn, near, far = cam[C_LXP], cam[C_LXN], cam[C_LYP], cam[C_LYN], cam[C_NEAR], cam[C_FAR]
    um = np.uint64(m)
    ub = np.uint64(BLOCK)
    base = np.uint64(lo)
    for k in range(n):
        i = base + np.uint64(k)
        uk = np.uint64(k)
        gx = gf[i]
        gy = gf[um + i]
        gz = gf[np.uint64(2) * um + i]
        z = r20 * gx + r21 * gy + r22 * gz + t2
        x = r00 * gx + r01 * gy + r02 * gz + t0
        y = r10 * gx + r11 * gy + r12 * gz + t1
        rz = 1.0 / max(z, near)
        mx = fx * x * rz + cx
        my = fy * y * rz + cy
        # Rows of J R: the pinhole Jacobian at the FOV-clamped direction times the view rotation.
        xz = min(lxp, max(-lxn, x * rz))
        yz = min(lyp, max(-lyn, y * rz))
        f0 = fx * rz
        f1 = fy * rz
        a0x = f0 * (r00 - xz * r20)
        a0y = f0 * (r01 - xz * r21)
        a0z = f0 * (r02 - xz * r22)
        a1x = f1 * (r10 - yz * r20)
        a1y = f1 * (r11 - yz * r21)
        a1z = f1 * (r12 - yz * r22)
        sxx = gf[np.uint64(G_XX) * um + i]
        sxy = gf[np.uint64(G_XY) * um + i]
        sxz = gf[np.uint64(G_XZ) * um + i]
        syy = gf[np.uint64(G_YY) * um + i]
        syz = gf[np.uint64(G_YZ) * um + i]
        szz = gf[np.uint64(G_ZZ) * um + i]
        u0x = sxx * a0x + sxy * a0y + sxz * a0z
        u0y = sxy * a0x + syy * a0y + syz * a0z
        u0z = sxz * a0x + syz * a0y + szz * a0z
        u1x = sxx * a1x + sxy * a1y + sxz * a1z
        u1y = sxy * a1x + syy * a1y + syz * a1z
        u1z = sxz * a1x + syz * a1y + szz * a1z
        a = a0x * u0x + a0y * u0y + a0z * u0z + EPS2D
        b = a1x * u0x + a1y * u0y + a1z * u0z
        c = a1x * u1x + a1y * u1y + a1z * u1z + EPS2D
        det = a * c - b * b
        e = gf[np.uint64(G_EXT) * um + i]
        rx = np.ceil(e * math.sqrt(a))
        ry = np.ceil(e * math.sqrt(c))
        ok = ((z >= near) & (z <= far) & (det > 0.0) & ((rx > 0.0) | (ry > 0.0))
              & (mx + rx > 0.0) & (mx - rx < W) & (my + ry > 0.0) & (my - ry < H))
        idet = 1.0 / det
        lnop = gf[np.uint64(G_LNOP) * um + i]
        tmp[uk] = mx
        tmp[ub + uk] = my
        tmp[np.uint64(2) * ub + uk] = c * idet
        tmp[np.uint64(3) * ub + uk] = -b * idet
        tmp[np.uint64(4) * ub + uk] = a * idet
        tmp[np.uint64(5) * ub + uk] = gf[np.uint64(G_OP) * um + i]
        tmp[np.uint64(6) * ub + uk] = lnop
        # Exact support: alpha >= 1/255 needs sigma <= ln(255 o), i.e. |dx| <= sqrt(2 ln(255 o) a).
        tmp[np.uint64(7) * ub + uk] = math.sqrt(2.0 * lnop * a)
        tmp[np.uint64(8) * ub + uk] = math.sqrt(2.0 * lnop * c)
        tmp[np.uint64(9) * ub + uk] = z
        tmp[np.uint64(10) * ub + uk] = 1.0 if ok else 0.0


@njit(cache=True, error_model="numpy")
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


@njit(cache=True, nogil=True, error_model="numpy")
def project_blocks(b0, b1, G, bounds, gid, sh, cam, rec, keyf, rgid, k0, with_color):
    """Project the Gaussians of blocks [b0, b1) into rec / keyf / rgid rows from k0 on.

    Rows are written in block order; returns how many Gaussians survived.
    """
    tmp = np.empty(11 * BLOCK)
    m = G.shape[1]
    gf = G.ravel()
    k = k0
    for blk in range(b0, b1):
        if not _block_visible(bounds, blk, cam):
            continue
        lo = blk * BLOCK
        n = min(BLOCK, m - lo)
        _project_block(gf, m, lo, n, cam, tmp)
        for q in range(n):
            if tmp[10 * BLOCK + q] == 0.0:
                continue
            for f in range(R_Z + 1):
                rec[k, f] = tmp[f * BLOCK + q]
            keyf[k] = np.float32(tmp[9 * BLOCK + q])
            i = lo + q
            rgid[k] = gid[i]
            if with_color:
                _sh_color(sh, gid[i], G[G_PX, i] - cam[C_PX], G[G_PY, i] - cam[C_PY], G[G_PZ, i] - cam[C_PZ], rec, k)
            k += 1
    return k - k0


@njit(cache=True, inline="always")
def cell_level(cells, c, cam, lodvox, lod_k):
    """Level drawn for cell c: the coarsest l with lodvox[l] * lod_k <= distance to the cell's sphere
    (lod_k = max(fx, fy) / lod_px), the distance taken to the box of the cell's Gaussian centres
    (cells[c, 5:8] min, cells[c, 8:11] max); 0 (fine) when none qualifies. See cpu_index's module doc."""
    dx = max(cells[c, 5] - cam[C_PX], 0.0, cam[C_PX] - cells[c, 8])
    dy = max(cells[c, 6] - cam[C_PY], 0.0, cam[C_PY] - cells[c, 9])
    dz = max(cells[c, 7] - cam[C_PZ], 0.0, cam[C_PZ] - cells[c, 10])
    d = max(math.sqrt(dx * dx + dy * dy + dz * dz), cam[C_NEAR])
    for level in range(lodvox.shape[0] - 1, 0, -1):
        if lodvox[level] * lod_k <= d:
            return level
    return 0


@njit(cache=True, nogil=True, error_model="numpy")
def project_cells(c0, c1, G, bstart, bounds, cells, crange, lodvox, lod_k, gid, sh, csh, cam, rec, keyf, rgid, k0,
                  with_color):
    """Project the Gaussians of cells [c0, c1) at their chosen level into rec / keyf / rgid rows from k0 on.

    Cells, then blocks, are culled against the widened frustum (conservative, as _block_visible);
    rows are written in cell/block order; returns how many Gaussians survived.
    """
    tmp = np.empty(11 * BLOCK)
    m = G.shape[1]
    gf = G.ravel()
    nsh = sh.shape[0]
    k = k0
    for c in range(c0, c1):
        if not _block_visible(cells, c, cam):
            continue
        level = cell_level(cells, c, cam, lodvox, lod_k)
        for blk in range(crange[c, level, 0], crange[c, level, 1]):
            if not _block_visible(bounds, blk, cam):
                continue
            lo = bstart[blk]
            n = bstart[blk + 1] - lo
            _project_block(gf, m, lo, n, cam, tmp)
            for q in range(n):
                if tmp[10 * BLOCK + q] == 0.0:
                    continue
                for f in range(R_Z + 1):
                    rec[k, f] = tmp[f * BLOCK + q]
                keyf[k] = np.float32(tmp[9 * BLOCK + q])
                i = lo + q
                g = gid[i]
                rgid[k] = g
                if with_color:
                    dx = G[G_PX, i] - cam[C_PX]
                    dy = G[G_PY, i] - cam[C_PY]
                    dz = G[G_PZ, i] - cam[C_PZ]
                    if g < nsh:
                        _sh_color(sh, g, dx, dy, dz, rec, k)
                    else:
                        _sh_color(csh, g - nsh, dx, dy, dz, rec, k)
                k += 1
    return k - k0


@njit(cache=True)
def compact_chunks(starts, counts, rec, keyf, rgid):
    """Move the survivors of several :func:`project_blocks` calls (row starts[c], counts[c] rows)
    together into rows 0..n-1; returns n."""
    n = counts[0]
    for c in range(1, counts.shape[0]):
        lo = starts[c]
        for r in range(lo, lo + counts[c]):
            for f in range(NREC):
                rec[n, f] = rec[r, f]
            keyf[n] = keyf[r]
            rgid[n] = rgid[r]
            n += 1
    return n


@njit(cache=True)
def _radix_sort_by(ka, ra):
    """Stable LSD radix sort of uint32 keys ``ka`` carrying ``ra`` (int32); returns (keys, payload)."""
    n = ka.shape[0]
    kb = np.empty(n, np.uint32)
    rb = np.empty(n, np.int32)
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
    return ka, ra


@njit(cache=True)
def _radix_order(keyf, rgid, n):
    """Order of rows 0..n-1 by (float32 depth bits, Gaussian index): gsplat's per-tile order.

    A stable radix sort of the depth bits (positive floats sort as uint32). Rows arrive in
    spatial-block order, so rows that share a depth (common in lifted worlds: half the keys of an
    office view) are then ordered by Gaussian index within each run of equal keys.
    """
    keys = keyf.view(np.uint32)
    sk, order = _radix_sort_by(keys[:n].copy(), np.arange(n).astype(np.int32))
    # Runs of equal depth keys (usually 2-3 rows) are put into Gaussian-index order in place.
    i = 0
    while i < n:
        j = i + 1
        while j < n and sk[j] == sk[i]:
            j += 1
        if j - i > 1:
            if j - i <= 32:
                for a in range(i + 1, j):  # insertion sort by Gaussian index
                    v = order[a]
                    g = rgid[v]
                    b = a - 1
                    while b >= i and rgid[order[b]] > g:
                        order[b + 1] = order[b]
                        b -= 1
                    order[b + 1] = v
            else:
                run = order[i:j].copy()
                by = np.argsort(rgid[run.astype(np.int64)], kind="mergesort")
                for a in range(j - i):
                    order[i + a] = run[by[a]]
        i = j
    return order


@njit(cache=True, inline="always")
def _tile_span(c, h, tile, ntiles):
    """Tiles [t0, t1] of size ``tile`` holding the pixels whose centre lies within c +- h (1e-3 margin)."""
    t0 = int(math.floor(max(c - h - 0.5 - 1e-3, -1.0) / tile))
    t1 = int(math.floor(min(c + h - 0.5 + 1e-3, ntiles * tile + 1.0) / tile))
    return max(t0, 0), min(t1, ntiles - 1)


@njit(cache=True, nogil=True)
def sort_and_bin(rec, keyf, rgid, n, tw, ntx, nty, srec, ncols):
    """Depth-sort rows 0..n-1 (first ``ncols`` record fields) into srec and scatter them into the
    lists of the tw x TILE_H tiles their support boxes touch (each list front to back).

    Returns:
        (offsets int64 [ntiles + 1], lists int32 [n_isect]): tile t's srec rows are
        lists[offsets[t]:offsets[t + 1]], increasing (= front to back).
    """
    order = _radix_order(keyf, rgid, n)
    ntiles = ntx * nty
    offsets = np.zeros(ntiles + 1, np.int64)
    span = np.empty((n, 4), np.int32)
    for s in range(n):
        r = order[s]
        for f in range(ncols):
            srec[s, f] = rec[r, f]
        tx0, tx1 = _tile_span(rec[r, R_MX], rec[r, R_HX], tw, ntx)
        ty0, ty1 = _tile_span(rec[r, R_MY], rec[r, R_HY], TILE_H, nty)
        span[s, 0] = tx0
        span[s, 1] = ty0
        span[s, 2] = tx1
        span[s, 3] = ty1
        for ty in range(ty0, ty1 + 1):
            for tx in range(tx0, tx1 + 1):
                offsets[ty * ntx + tx + 1] += 1
    for t in range(ntiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[ntiles], np.int32)
    for s in range(n):
        for ty in range(span[s, 1], span[s, 3] + 1):
            for tx in range(span[s, 0], span[s, 2] + 1):
                t = ty * ntx + tx
                lists[fill[t]] = s
                fill[t] += 1
    return offsets, lists


@njit(cache=True, inline="always")
def _window(rec, j, x0, y0, x1, y1, W, H):
    """Rows [gy0, gy1] of the tile that meet Gaussian j's support box, its first column relative to
    the tile and the number of CHUNK-pixel steps covering its columns (chunks start at the box, not
    at a multiple of CHUNK, so a Gaussian up to CHUNK px wide takes one step per row)."""
    mx = rec[j, R_MX]
    my = rec[j, R_MY]
    hx = rec[j, R_HX]
    hy = rec[j, R_HY]
    gy0 = max(y0, int(math.ceil(max(my - hy - 0.5 - 1e-3, -1.0))))
    gy1 = min(y1 - 1, int(math.floor(min(my + hy - 0.5 + 1e-3, H + 1.0))))
    gx0 = max(x0, int(math.ceil(max(mx - hx - 0.5 - 1e-3, -1.0))))
    gx1 = min(x1 - 1, int(math.floor(min(mx + hx - 0.5 + 1e-3, W + 1.0))))
    nch = (gx1 - gx0 + CHUNK) // CHUNK if gx1 >= gx0 else 0
    return gy0, gy1, gx0 - x0, nch


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def raster_tile_rgb(t, rec, lists, offsets, W, H, tw, ntx, bg, rgb, depth, alpha, depth_min_alpha):
    """Front-to-back compositing of tile ``t``; writes its pixels of rgb [H, W, 3], depth, alpha [H, W].

    Branch-free over CHUNK-pixel row pieces so LLVM vectorizes it. The state is one array so the
    vectorizer sees no aliasing: st[p] = transmittance T (negated once the pixel is done),
    st[_REG + p], st[2 _REG + p], st[3 _REG + p] = colour sums, st[4 _REG + p] = depth sum.
    """
    x0 = (t % ntx) * tw
    y0 = (t // ntx) * TILE_H
    x1 = min(x0 + tw, W)
    y1 = min(y0 + TILE_H, H)
    xw = x1 - x0
    npix = xw * (y1 - y0)
    used = tw * TILE_H + CHUNK
    st = np.empty(5 * _REG)
    st[:used] = 1.0
    for k in range(1, 5):
        st[k * _REG:k * _REG + used] = 0.0
    rowdone = np.zeros(TILE_H, np.int64)
    ndone = 0
    for q in range(offsets[t], offsets[t + 1]):
        if ndone >= npix:
            break
        j = lists[q]
        gy0, gy1, gxl, nch = _window(rec, j, x0, y0, x1, y1, W, H)
        ca = rec[j, R_CA]
        cb = rec[j, R_CB]
        cc = rec[j, R_CC]
        op = rec[j, R_OP]
        # sigma above ln(255 o) means alpha < 1/255 (the reference's test, up to 1 ulp).
        sig_max = rec[j, R_LNOP] + 1e-9
        cr = rec[j, R_R]
        cg = rec[j, R_G]
        cbl = rec[j, R_B]
        zj = rec[j, R_Z]
        my = rec[j, R_MY]
        mxl = rec[j, R_MX] - 0.5 - x0
        for py in range(gy0, gy1 + 1):
            r = py - y0
            if rowdone[r] >= xw:
                continue
            dy = my - (py + 0.5)
            cbdy = cb * dy
            ccdy2 = cc * dy * dy
            base = np.uint64(r * tw)
            nfin = 0
            for ch in range(nch):
                for k in range(CHUNK):
                    i = gxl + ch * CHUNK + k
                    p = base + np.uint64(i)
                    dx = mxl - i
                    sigma = 0.5 * (ca * dx * dx + ccdy2) + cbdy * dx
                    a = min(MAX_ALPHA, op * _exp_neg(min(max(sigma, 0.0), SIGMA_CLAMP)))
                    tp = st[p]
                    nt = tp * (1.0 - a)
                    ok = (sigma <= sig_max) & (sigma >= 0.0) & (a >= ALPHA_THR) & (tp > 0.0) & (i < xw)
                    fin = ok & (nt <= T_MIN)
                    add = ok & (nt > T_MIN)
                    w = a * tp if add else 0.0
                    st[p + _R1] += w * cr
                    st[p + _R2] += w * cg
                    st[p + _R3] += w * cbl
                    st[p + _R4] += w * zj
                    st[p] = nt if add else (-tp if fin else tp)
                    nfin += 1 if fin else 0
            rowdone[r] += nfin
            ndone += nfin
    for py in range(y0, y1):
        for px in range(x0, x1):
            p = (py - y0) * tw + (px - x0)
            tp = abs(st[p])
            al = 1.0 - tp
            alpha[py, px] = al
            rgb[py, px, 0] = st[_REG + p] + tp * bg[0]
            rgb[py, px, 1] = st[2 * _REG + p] + tp * bg[1]
            rgb[py, px, 2] = st[3 * _REG + p] + tp * bg[2]
            if al >= depth_min_alpha:
                depth[py, px] = st[4 * _REG + p] / max(al, 1e-10)
            else:
                depth[py, px] = np.nan


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def raster_tile_alpha(t, rec, lists, offsets, W, H, tw, ntx, alpha):
    """Alpha-only twin of :func:`raster_tile_rgb` (same decisions, no colour or depth sums)."""
    x0 = (t % ntx) * tw
    y0 = (t // ntx) * TILE_H
    x1 = min(x0 + tw, W)
    y1 = min(y0 + TILE_H, H)
    xw = x1 - x0
    npix = xw * (y1 - y0)
    st = np.ones(tw * TILE_H + CHUNK)
    rowdone = np.zeros(TILE_H, np.int64)
    ndone = 0
    for q in range(offsets[t], offsets[t + 1]):
        if ndone >= npix:
            break
        j = lists[q]
        gy0, gy1, gxl, nch = _window(rec, j, x0, y0, x1, y1, W, H)
        ca = rec[j, R_CA]
        cb = rec[j, R_CB]
        cc = rec[j, R_CC]
        op = rec[j, R_OP]
        sig_max = rec[j, R_LNOP] + 1e-9
        my = rec[j, R_MY]
        mxl = rec[j, R_MX] - 0.5 - x0
        for py in range(gy0, gy1 + 1):
            r = py - y0
            if rowdone[r] >= xw:
                continue
            dy = my - (py + 0.5)
            cbdy = cb * dy
            ccdy2 = cc * dy * dy
            base = np.uint64(r * tw)
            nfin = 0
            for ch in range(nch):
                for k in range(CHUNK):
                    i = gxl + ch * CHUNK + k
                    p = base + np.uint64(i)
                    dx = mxl - i
                    sigma = 0.5 * (ca * dx * dx + ccdy2) + cbdy * dx
                    a = min(MAX_ALPHA, op * _exp_neg(min(max(sigma, 0.0), SIGMA_CLAMP)))
                    tp = st[p]
                    nt = tp * (1.0 - a)
                    ok = (sigma <= sig_max) & (sigma >= 0.0) & (a >= ALPHA_THR) & (tp > 0.0) & (i < xw)
                    fin = ok & (nt <= T_MIN)
                    add = ok & (nt > T_MIN)
                    st[p] = nt if add else (-tp if fin else tp)
                    nfin += 1 if fin else 0
            rowdone[r] += nfin
            ndone += nfin
    for py in range(y0, y1):
        for px in range(x0, x1):
            alpha[py, px] = 1.0 - abs(st[(py - y0) * tw + (px - x0)])


@njit(cache=True, nogil=True)
def raster_tiles_rgb(tiles, rec, lists, offsets, W, H, tw, ntx, bg, rgb, depth, alpha, depth_min_alpha):
    """Composite the given tiles of one view (callers split a view's tiles across threads)."""
    for t in tiles:
        raster_tile_rgb(t, rec, lists, offsets, W, H, tw, ntx, bg, rgb, depth, alpha, depth_min_alpha)


@njit(cache=True, nogil=True)
def raster_tiles_alpha(tiles, rec, lists, offsets, W, H, tw, ntx, alpha):
    """Alpha of the given tiles of one view."""
    for t in tiles:
        raster_tile_alpha(t, rec, lists, offsets, W, H, tw, ntx, alpha)


@njit(cache=True, nogil=True)
def render_view_rgb(G, bstart, bounds, cells, crange, lodvox, lod_k, gid, sh, csh, cam, rec, keyf, rgid, srec,
                    tw, ntx, nty, W, H, bg, rgb, depth, alpha, depth_min_alpha):
    """One whole view in one thread: cull + project every cell, sort and bin, composite every tile.

    The batched path runs one view per thread (views of a batch share the threads), which for small
    images beats splitting one view across threads: no hand-offs, no per-stage Python. Same stages
    and order as the per-view path, so the pixels are identical.
    """
    n = project_cells(0, cells.shape[0], G, bstart, bounds, cells, crange, lodvox, lod_k, gid, sh, csh, cam, rec,
                      keyf, rgid, 0, True)
    offsets, lists = sort_and_bin(rec, keyf, rgid, n, tw, ntx, nty, srec, NREC)
    tiles = np.arange(ntx * nty)
    raster_tiles_rgb(tiles, srec, lists, offsets, W, H, tw, ntx, bg, rgb, depth, alpha, depth_min_alpha)
    return n
