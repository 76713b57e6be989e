"""Numba z-buffer kernel of `lwgan.render.raster` (CPU, one thread; scale out with processes).

It implements the rules written in `lwgan.render.raster` exactly; the torch path and the slow reference
implement the same rules and the tests hold the three to the same pixels. Arithmetic that decides a pixel
(snapping, edge functions, depth) is spelled out in the same order in every backend so that the float
results are bit-identical: do not reassociate it here without changing the others.
"""

from __future__ import annotations

import numpy as np
from numba import njit

SUBPIXEL_BITS = 8
SUBPIXEL = 1 << SUBPIXEL_BITS  # snapped coordinates are integers in 1/256 pixel
SUBPIXEL_F = float(SUBPIXEL)
SNAP_LIMIT = float(1 << 25)  # |snapped coordinate| < 2**25 (2**17 px): edge functions stay below 2**53


@njit(cache=True)
def _snap_frame(verts, height, width, perspective, xs, ys, zs, ok):
    """Snap one frame's (V, 3) float64 NDC vertices to fixed point; see `raster` for the formula."""
    half_w = 0.5 * width
    half_h = 0.5 * height
    for k in range(verts.shape[0]):
        u = ((verts[k, 0] + 1.0) * half_w - 0.5) * SUBPIXEL_F + 0.5
        v = ((verts[k, 1] + 1.0) * half_h - 0.5) * SUBPIXEL_F + 0.5
        z = verts[k, 2]
        good = -SNAP_LIMIT < u < SNAP_LIMIT and -SNAP_LIMIT < v < SNAP_LIMIT and np.isfinite(z)
        if perspective:
            good = good and z > 0.0
        ok[k] = good
        if good:
            xs[k] = np.int64(np.floor(u))
            ys[k] = np.int64(np.floor(v))
            zs[k] = 1.0 / z if perspective else z
        else:
            xs[k] = 0
            ys[k] = 0
            zs[k] = 0.0


@njit(cache=True)
def _scan_frame(faces, xs, ys, zs, ok, perspective, face_index, zbuf):
    """First pass for one frame: z-buffer over all faces in index order (strictly nearer wins)."""
    height, width = zbuf.shape
    for f in range(faces.shape[0]):
        i0 = faces[f, 0]
        i1 = faces[f, 1]
        i2 = faces[f, 2]
        if not (ok[i0] and ok[i1] and ok[i2]):
            continue
        x0 = xs[i0]
        y0 = ys[i0]
        x1 = xs[i1]
        y1 = ys[i1]
        x2 = xs[i2]
        y2 = ys[i2]
        # Pixel centres inside the bounding box: ceil(min / 256) .. floor(max / 256), clipped to the image.
        c0 = -((-min(x0, x1, x2)) >> SUBPIXEL_BITS)
        c1 = max(x0, x1, x2) >> SUBPIXEL_BITS
        r0 = -((-min(y0, y1, y2)) >> SUBPIXEL_BITS)
        r1 = max(y0, y1, y2) >> SUBPIXEL_BITS
        c0 = max(c0, 0)
        r0 = max(r0, 0)
        c1 = min(c1, width - 1)
        r1 = min(r1, height - 1)
        if c0 > c1 or r0 > r1:
            continue
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if area == 0:
            continue
        s = 1 if area > 0 else -1
        # Oriented edge i (opposite vertex i): E_i(P) = a_i * (Py - yb) - b_i * (Px - xb) with interior > 0.
        a0 = s * (x2 - x1)
        b0 = s * (y2 - y1)
        a1 = s * (x0 - x2)
        b1 = s * (y0 - y2)
        a2 = s * (x1 - x0)
        b2 = s * (y1 - y0)
        # Top-left rule: a centre exactly on an edge is inside only for top or left edges (bias 0, else -1).
        t0 = 0 if (b0 < 0 or (b0 == 0 and a0 > 0)) else -1
        t1 = 0 if (b1 < 0 or (b1 == 0 and a1 > 0)) else -1
        t2 = 0 if (b2 < 0 or (b2 == 0 and a2 > 0)) else -1
        px0 = c0 << SUBPIXEL_BITS
        py = r0 << SUBPIXEL_BITS
        row0 = a0 * (py - y1) - b0 * (px0 - x1) + t0
        row1 = a1 * (py - y2) - b1 * (px0 - x2) + t1
        row2 = a2 * (py - y0) - b2 * (px0 - x0) + t2
        sx0 = -b0 * SUBPIXEL
        sx1 = -b1 * SUBPIXEL
        sx2 = -b2 * SUBPIXEL
        sy0 = a0 * SUBPIXEL
        sy1 = a1 * SUBPIXEL
        sy2 = a2 * SUBPIXEL
        fz0 = zs[i0]
        fz1 = zs[i1]
        fz2 = zs[i2]
        farea = np.float64(s * area)
        for r in range(r0, r1 + 1):
            e0 = row0
            e1 = row1
            e2 = row2
            for c in range(c0, c1 + 1):
                if (e0 | e1 | e2) >= 0:
                    w0 = np.float64(e0 - t0)
                    w1 = np.float64(e1 - t1)
                    w2 = np.float64(e2 - t2)
                    if perspective:
                        z = np.float32(farea / (w0 * fz0 + w1 * fz1 + w2 * fz2))
                    else:
                        z = np.float32((w0 * fz0 + w1 * fz1 + w2 * fz2) / farea)
                    if z < zbuf[r, c]:
                        zbuf[r, c] = z
                        face_index[r, c] = f
                e0 += sx0
                e1 += sx1
                e2 += sx2
            row0 += sy0
            row1 += sy1
            row2 += sy2


@njit(cache=True)
def _resolve_frame(faces, xs, ys, zs, perspective, face_index, bary):
    """Second pass for one frame: barycentrics of the winning face only."""
    height, width = face_index.shape
    for r in range(height):
        py = r << SUBPIXEL_BITS
        for c in range(width):
            f = face_index[r, c]
            if f < 0:
                continue
            px = c << SUBPIXEL_BITS
            i0 = faces[f, 0]
            i1 = faces[f, 1]
            i2 = faces[f, 2]
            x0 = xs[i0]
            y0 = ys[i0]
            x1 = xs[i1]
            y1 = ys[i1]
            x2 = xs[i2]
            y2 = ys[i2]
            w0 = np.float64((x2 - x1) * (py - y1) - (y2 - y1) * (px - x1))
            w1 = np.float64((x0 - x2) * (py - y2) - (y0 - y2) * (px - x2))
            w2 = np.float64((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0))
            if perspective:
                w0 = w0 * zs[i0]
                w1 = w1 * zs[i1]
                w2 = w2 * zs[i2]
            total = w0 + w1 + w2
            bary[r, c, 0] = np.float32(w0 / total)
            bary[r, c, 1] = np.float32(w1 / total)
            bary[r, c, 2] = np.float32(w2 / total)


@njit(cache=True)
def rasterize_numba(verts, faces, height, width, perspective):
    """Rasterise (B, V, 3) float64 NDC vertices with (F, 3) int64 faces (indices already validated).

    Returns face_index (B, H, W) int32 (-1 background), bary (B, H, W, 3) float32 (0 on background) and
    depth (B, H, W) float32 (+inf on background), all freshly allocated.
    """
    n_batch = verts.shape[0]
    n_verts = verts.shape[1]
    face_index = np.full((n_batch, height, width), -1, dtype=np.int32)
    depth = np.full((n_batch, height, width), np.inf, dtype=np.float32)
    bary = np.zeros((n_batch, height, width, 3), dtype=np.float32)
    xs = np.empty(n_verts, dtype=np.int64)
    ys = np.empty(n_verts, dtype=np.int64)
    zs = np.empty(n_verts, dtype=np.float64)
    ok = np.empty(n_verts, dtype=np.bool_)
    for b in range(n_batch):
        _snap_frame(verts[b], height, width, perspective, xs, ys, zs, ok)
        _scan_frame(faces, xs, ys, zs, ok, perspective, face_index[b], depth[b])
        _resolve_frame(faces, xs, ys, zs, perspective, face_index[b], bary[b])
    return face_index, bary, depth
