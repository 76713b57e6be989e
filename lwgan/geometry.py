"""Geometry conventions of lwgan, written once. Every module that touches images, cameras or meshes
follows this page; tests keep it true.

Symbols: B batch, C channels, H/W image height/width, V vertices, F faces, J joints, K keypoints.

Images
    Float tensors are (B, 3, H, W) in [-1, 1]; on disk and in caches images are uint8 (H, W, 3) RGB.

Normalised image coordinates (NDC)
    A 2D point is (x, y) with x to the right and y DOWN, both in [-1, 1] across the image: x = -1 is the
    left edge of the leftmost pixel, x = +1 the right edge of the rightmost pixel (and likewise for y).
    Pixel (row i, column j) covers [j, j+1) x [i, i+1) in pixel units and its CENTRE is at
        x = (2 j + 1) / W - 1,    y = (2 i + 1) / H - 1.
    This is `torch.nn.functional.grid_sample(..., align_corners=False)`'s rule; lwgan uses
    ``align_corners=False`` everywhere (`ALIGN_CORNERS`). A pixel is covered by a triangle when its centre
    is inside it.

Camera space
    OpenCV axes: x right, y down, z forward (away from the camera); depth = z, smaller is nearer.
    Body models are Y-up with the body facing +Z (SMPL's rest frame). As in HMR and the original LWGAN, a
    person standing upright and facing the camera therefore has a global orientation of pi about the
    x-axis (y -> -y, z -> -z).

Weak-perspective camera (HMR's (s, tx, ty))
    x = s * (X + tx),  y = s * (Y + ty)   with (X, Y, Z) in camera axes (after global orientation);
    depth = Z. A body of height h metres spans about s * h of the [-1, 1] range (2 units).

Pinhole camera
    x = fx * X / Z + cx,  y = fy * Y / Z + cy  with the focal lengths and principal point in NDC units
    (fx = 2 f_pixels / W). Barycentrics of a pinhole render are perspective-correct.

Transformation flow T
    (B, H, W, 2) NDC sample positions for `grid_sample`; a pixel with no source correspondence holds
    `OUTSIDE` (far outside [-1, 1]) so that zero padding samples 0 there.
"""

from __future__ import annotations

import torch

ALIGN_CORNERS = False
OUTSIDE = -2.0  # a flow value outside [-1, 1]: grid_sample with zero padding reads 0 there


def pixel_centers(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """NDC coordinates of every pixel centre.

    Returns (H, W, 2) with [..., 0] = x (columns) and [..., 1] = y (rows), both in (-1, 1).
    """
    xs = (2.0 * torch.arange(width, device=device, dtype=dtype) + 1.0) / width - 1.0
    ys = (2.0 * torch.arange(height, device=device, dtype=dtype) + 1.0) / height - 1.0
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")  # (H, W) each
    return torch.stack((grid_x, grid_y), dim=-1)  # (H, W, 2)


def ndc_to_pixel(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 2) NDC -> (..., 2) continuous pixel coordinates (u = column, v = row; centres at integers)."""
    u = (xy[..., 0] + 1.0) * (width / 2.0) - 0.5
    v = (xy[..., 1] + 1.0) * (height / 2.0) - 0.5
    return torch.stack((u, v), dim=-1)


def pixel_to_ndc(uv: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of `ndc_to_pixel`: (..., 2) pixel coordinates (u = column, v = row) -> (..., 2) NDC."""
    x = (2.0 * uv[..., 0] + 1.0) / width - 1.0
    y = (2.0 * uv[..., 1] + 1.0) / height - 1.0
    return torch.stack((x, y), dim=-1)
