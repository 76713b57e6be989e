"""Vectorised torch path of `lwgan.render.raster` (CPU or CUDA), chunked over (face, pixel) candidates.

Every face is expanded into the pixel centres of its clipped bounding box; inside tests use the same
integer edge functions as the Numba kernel, and the z-buffer is a scatter-min over packed int64 keys
(ordered float32 depth in the high 32 bits, face index in the low 32 bits), so "nearest depth, then lowest
face index" falls out of one `scatter_reduce_(..., "amin")`. The float arithmetic is written in the same
order as in `_numba_kernel` so that depths are bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from lwgan.render._numba_kernel import SNAP_LIMIT, SUBPIXEL, SUBPIXEL_BITS, SUBPIXEL_F

_EMPTY_KEY = torch.iinfo(torch.int64).max
_LOW32 = 0xFFFFFFFF


def candidate_chunks(
    col0: torch.Tensor, col1: torch.Tensor, row0: torch.Tensor, row1: torch.Tensor, max_candidates: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Enumerate the pixel centres inside N inclusive integer boxes, in chunks of about `max_candidates`.

    col0, col1, row0, row1: (N,) int64 box bounds (a box with col1 < col0 or row1 < row0 is empty).
    Yields (item, row, col), each (M,) int64: box index in [0, N) and the pixel's offset from the box's
    corner (row0, col0). A box larger than `max_candidates` comes in a chunk of its own.
    """
    widths = (col1 - col0 + 1).clamp_min(0)
    counts = widths * (row1 - row0 + 1).clamp_min(0)  # (N,)
    nonempty = torch.nonzero(counts > 0).squeeze(1)
    if nonempty.numel() == 0:
        return
    counts = counts[nonempty]
    widths = widths[nonempty]
    ends = counts.cumsum(0)
    starts = ends - counts
    total = int(ends[-1])
    bounds = torch.searchsorted(starts, torch.arange(0, total, max_candidates, device=starts.device))
    bounds = torch.unique(torch.cat((bounds, bounds.new_tensor([nonempty.numel()])))).tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        n = int(ends[hi - 1] - starts[lo])
        local = torch.repeat_interleave(
            torch.arange(lo, hi, device=counts.device), counts[lo:hi], output_size=n
        )  # (M,)
        offset = torch.arange(n, device=counts.device) - (starts[local] - starts[lo])
        width = widths[local]
        row = torch.div(offset, width, rounding_mode="floor")
        yield nonempty[local], row, offset - row * width


def snap_vertices(
    verts: torch.Tensor, height: int, width: int, perspective: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, V, 3) NDC -> xs, ys (B, V) int64 fixed point, zs (B, V) float64 (z or 1/z), ok (B, V) bool."""
    v = verts.to(torch.float64)
    u = ((v[..., 0] + 1.0) * (0.5 * width) - 0.5) * SUBPIXEL_F + 0.5  # (B, V)
    w = ((v[..., 1] + 1.0) * (0.5 * height) - 0.5) * SUBPIXEL_F + 0.5  # (B, V)
    z = v[..., 2]
    ok = (u > -SNAP_LIMIT) & (u < SNAP_LIMIT) & (w > -SNAP_LIMIT) & (w < SNAP_LIMIT) & torch.isfinite(z)
    if perspective:
        ok &= z > 0.0
        z = 1.0 / z
    xs = torch.where(ok, torch.floor(u), 0.0).to(torch.int64)
    ys = torch.where(ok, torch.floor(w), 0.0).to(torch.int64)
    zs = torch.where(ok, z, 0.0)
    return xs, ys, zs, ok


def _edges(x: torch.Tensor, y: torch.Tensor, px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """Unoriented edge functions E_i (opposite vertex i) of (..., 3) int64 triangles at (...) pixels."""
    x0, x1, x2 = x.unbind(-1)
    y0, y1, y2 = y.unbind(-1)
    e0 = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1)
    e1 = (x0 - x2) * (py - y2) - (y0 - y2) * (px - x2)
    e2 = (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0)
    return torch.stack((e0, e1, e2), dim=-1)  # (..., 3)


def _ordered_key(depth: torch.Tensor) -> torch.Tensor:
    """float32 -> int64 whose signed order is the float order (-0.0 made +0.0 first)."""
    bits = (depth + 0.0).view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).to(torch.int64)


def _key_depth(key: torch.Tensor) -> torch.Tensor:
    """Inverse of `_ordered_key` on the high 32 bits of packed keys: (...) int64 -> (...) float32."""
    ordered = (key >> 32).to(torch.int32)
    return torch.where(ordered < 0, ordered ^ 0x7FFFFFFF, ordered).view(torch.float32)


def rasterize_torch(
    verts: torch.Tensor, faces: torch.Tensor, height: int, width: int, perspective: bool, max_candidates: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch twin of `_numba_kernel.rasterize_numba` (same inputs and outputs, on verts' device)."""
    n_batch, n_faces = verts.shape[0], faces.shape[0]
    device = verts.device
    xs, ys, zs, ok = snap_vertices(verts, height, width, perspective)
    tri_x = xs[:, faces].reshape(n_batch * n_faces, 3)  # (B*F, 3): one row per face instance
    tri_y = ys[:, faces].reshape(n_batch * n_faces, 3)  # (B*F, 3)
    tri_z = zs[:, faces].reshape(n_batch * n_faces, 3)  # (B*F, 3)
    x0, x1, x2 = tri_x.unbind(-1)
    y0, y1, y2 = tri_y.unbind(-1)
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)  # (B*F,)
    col0 = (-((-torch.minimum(torch.minimum(x0, x1), x2)) >> SUBPIXEL_BITS)).clamp_min(0)
    row0 = (-((-torch.minimum(torch.minimum(y0, y1), y2)) >> SUBPIXEL_BITS)).clamp_min(0)
    col1 = (torch.maximum(torch.maximum(x0, x1), x2) >> SUBPIXEL_BITS).clamp_max(width - 1)
    row1 = (torch.maximum(torch.maximum(y0, y1), y2) >> SUBPIXEL_BITS).clamp_max(height - 1)
    good = ok[:, faces].all(-1).flatten() & (area != 0) & (col0 <= col1) & (row0 <= row1)  # (B*F,)
    kept = torch.nonzero(good).squeeze(1)  # (K,) face instances that can cover a pixel centre
    kx, ky, area, col0, col1, row0, row1 = (t[kept] for t in (tri_x, tri_y, area, col0, col1, row0, row1))
    sign = torch.where(area > 0, 1, -1).unsqueeze(-1)  # (K, 1)
    # Oriented edge directions (a_k, b_k) = sign * (end - start) of the edge opposite vertex k, its
    # top-left threshold t_k (inside: sign * E_k >= t_k), and e_k = sign * E_k - t_k at the box corner;
    # stepping one column adds -256 b_k, one row 256 a_k (exact integers, as in the Numba kernel).
    a = sign * (kx.roll(-2, dims=-1) - kx.roll(-1, dims=-1))  # (K, 3)
    b = sign * (ky.roll(-2, dims=-1) - ky.roll(-1, dims=-1))  # (K, 3)
    threshold = torch.where((b < 0) | ((b == 0) & (a > 0)), 0, 1)  # (K, 3)
    corner = sign * _edges(kx, ky, col0 << SUBPIXEL_BITS, row0 << SUBPIXEL_BITS)  # (K, 3)
    test = torch.cat((corner - threshold, -b * SUBPIXEL, a * SUBPIXEL), dim=-1).T.contiguous()  # (9, K)
    frame = torch.div(kept, n_faces, rounding_mode="floor")
    base = (frame * height + row0) * width + col0  # (K,) flat index of the box corner pixel
    ints = torch.cat((threshold, base.unsqueeze(-1), (kept - frame * n_faces).unsqueeze(-1)), dim=-1)
    floats = torch.cat((tri_z[kept], (sign * area.unsqueeze(-1)).to(torch.float64)), dim=-1)  # (K, 4)

    keys = torch.full((n_batch * height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
    for item, row, col in candidate_chunks(col0, col1, row0, row1, max_candidates=max_candidates):
        p = test[:, item]  # (9, M)
        e = p[0:3] + col * p[3:6] + row * p[6:9]  # (3, M)
        inside = torch.nonzero((e[0] | e[1] | e[2]) >= 0).squeeze(1)
        item, row, col = item[inside], row[inside], col[inside]
        q = ints[item]  # (M', 5)
        w0, w1, w2 = (e[:, inside] + q[:, 0:3].T).to(torch.float64)
        z0, z1, z2, farea = floats[item].unbind(-1)
        if perspective:
            depth = farea / (w0 * z0 + w1 * z1 + w2 * z2)
        else:
            depth = (w0 * z0 + w1 * z1 + w2 * z2) / farea
        key = (_ordered_key(depth.to(torch.float32)) << 32) | q[:, 4]
        keys.scatter_reduce_(0, q[:, 3] + row * width + col, key, reduce="amin")

    covered = keys != _EMPTY_KEY
    face_index = torch.where(covered, keys & _LOW32, -1).to(torch.int32).view(n_batch, height, width)
    depth = torch.where(covered, _key_depth(keys), torch.inf).view(n_batch, height, width)
    bary = torch.zeros(n_batch * height * width, 3, dtype=torch.float32, device=device)
    pix = torch.nonzero(covered).squeeze(1)
    if pix.numel():
        frame = torch.div(pix, height * width, rounding_mode="floor")
        rest = pix - frame * (height * width)
        row = torch.div(rest, width, rounding_mode="floor")
        item = frame * n_faces + (keys[pix] & _LOW32)
        w = _edges(tri_x[item], tri_y[item], (rest - row * width) << SUBPIXEL_BITS, row << SUBPIXEL_BITS)
        w = w.to(torch.float64)
        if perspective:
            w = w * tri_z[item]
        total = w[:, 0] + w[:, 1] + w[:, 2]
        bary[pix] = (w / total.unsqueeze(-1)).to(torch.float32)
    return face_index, bary.view(n_batch, height, width, 3), depth
