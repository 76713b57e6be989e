"""Slow, obviously correct rasteriser used only to test the fast ones.

Plain Python loops over every face and every pixel, Python integers for the edge functions, and the rules
of `lwgan.render.raster` read off its docstring one by one. Only for tiny images and meshes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lwgan.render.raster import Fragments

_GRID = 256  # fixed-point steps per pixel
_LIMIT = 2.0**25  # |snapped coordinate| below this


def _snap(value: float, size: int) -> int | None:
    """NDC coordinate -> fixed-point pixel coordinate, or None when it is out of range or not finite."""
    scaled = ((value + 1.0) * (0.5 * size) - 0.5) * float(_GRID) + 0.5
    if not -_LIMIT < scaled < _LIMIT:
        return None
    return math.floor(scaled)


def _is_top_left(dx: int, dy: int) -> bool:
    """Is the oriented edge (interior on the side where the edge function is positive) top or left?"""
    top = dy == 0 and dx > 0  # horizontal, interior below (y points down)
    left = dy < 0  # interior to its right
    return top or left


def rasterize_reference(
    verts: np.ndarray, faces: np.ndarray, height: int, width: int, perspective_correct: bool = False
) -> Fragments:
    """verts (B, V, 3) float NDC + depth, faces (F, 3) int -> `Fragments` (CPU tensors)."""
    verts = np.asarray(verts, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    n_batch = verts.shape[0]
    face_index = np.full((n_batch, height, width), -1, dtype=np.int32)
    bary = np.zeros((n_batch, height, width, 3), dtype=np.float32)
    depth = np.full((n_batch, height, width), np.inf, dtype=np.float32)
    for b in range(n_batch):
        for f, corners in enumerate(faces.tolist()):
            xs = [_snap(float(verts[b, k, 0]), width) for k in corners]
            ys = [_snap(float(verts[b, k, 1]), height) for k in corners]
            zs = [float(verts[b, k, 2]) for k in corners]
            if None in xs or None in ys or not all(math.isfinite(z) for z in zs):
                continue
            if perspective_correct and min(zs) <= 0.0:
                continue
            area = (xs[1] - xs[0]) * (ys[2] - ys[0]) - (ys[1] - ys[0]) * (xs[2] - xs[0])
            if area == 0:
                continue
            sign = 1 if area > 0 else -1
            # Edge k runs from vertex k+1 to vertex k+2 (opposite vertex k); oriented so the inside is > 0.
            edges = [((k + 1) % 3, (k + 2) % 3) for k in range(3)]
            top_left = [_is_top_left(sign * (xs[q] - xs[p]), sign * (ys[q] - ys[p])) for p, q in edges]
            inv_z = [1.0 / z if perspective_correct else 1.0 for z in zs]
            for i in range(height):
                for j in range(width):
                    px, py = j * _GRID, i * _GRID
                    e = [(xs[q] - xs[p]) * (py - ys[p]) - (ys[q] - ys[p]) * (px - xs[p]) for p, q in edges]
                    inside = all(
                        sign * e[k] > 0 or (sign * e[k] == 0 and top_left[k]) for k in range(3)
                    )
                    if not inside:
                        continue
                    w = [float(sign * e[k]) for k in range(3)]
                    if perspective_correct:
                        z = float(sign * area) / (w[0] * inv_z[0] + w[1] * inv_z[1] + w[2] * inv_z[2])
                    else:
                        z = (w[0] * zs[0] + w[1] * zs[1] + w[2] * zs[2]) / float(sign * area)
                    z32 = np.float32(z)
                    if z32 < depth[b, i, j]:
                        depth[b, i, j] = z32
                        face_index[b, i, j] = f
                        weights = [float(e[k]) * inv_z[k] for k in range(3)]
                        total = weights[0] + weights[1] + weights[2]
                        bary[b, i, j] = [weights[k] / total for k in range(3)]
    return Fragments(
        face_index=torch.from_numpy(face_index),
        bary=torch.from_numpy(bary),
        depth=torch.from_numpy(depth),
    )
