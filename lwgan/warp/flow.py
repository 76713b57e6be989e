"""Transformation flow between two correspondence records, and warping with it.

For a target pixel p covered by face f with barycentric weights w, the flow is the point with the same
barycentric coordinates on the same face in the source image:

    T(p) = sum_k w_k * source_verts[faces[f, k], :2]          (B, H, W, 2) in NDC

Background pixels (face -1) get `lwgan.geometry.OUTSIDE`, so `grid_sample` with zero padding reads 0
there. The original LWGAN computes exactly this with its renderer in the loop; here it is one gather from
cached records. With ``source_face_index`` given, only faces that are visible in the source image (cover at
least one source pixel) are used, so parts hidden in the source (an arm behind the back) do not pull the
texture of whatever occludes them; their target pixels get OUTSIDE as well.

All functions take device and dtype from their inputs and use ``align_corners=False`` (geometry.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lwgan.geometry import ALIGN_CORNERS, OUTSIDE


def visible_faces(face_index: torch.Tensor, num_faces: int) -> torch.Tensor:
    """Which faces cover at least one pixel.

    face_index: (B, H, W) int, -1 background.  Returns (B, F) bool.
    """
    batch = face_index.shape[0]
    flat = face_index.reshape(batch, -1).long()  # (B, H*W)
    visible = torch.zeros(batch, num_faces + 1, dtype=torch.bool, device=face_index.device)
    # Background (-1) lands in the extra last column, which is dropped.
    visible.scatter_(1, torch.where(flat >= 0, flat, num_faces), True)
    return visible[:, :num_faces]


def flow(
    target_face_index: torch.Tensor,
    target_bary: torch.Tensor,
    source_verts: torch.Tensor,
    faces: torch.Tensor,
    source_face_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Transformation flow from the source frame to the target frame.

    target_face_index: (B, H, W) int, -1 background (target record).
    target_bary:       (B, H, W, 3) float barycentrics of the target record.
    source_verts:      (B, V, 2+) projected source vertices; [..., :2] are NDC x, y.
    faces:             (F, 3) int64 vertex indices.
    source_face_index: (B, H', W') int or None; when given, only faces visible in the source are used.
    Returns T: (B, H, W, 2) float NDC sample positions, OUTSIDE where nothing corresponds.
    """
    batch, height, width = target_face_index.shape
    face = target_face_index.reshape(batch, -1).long()  # (B, P) with P = H*W
    valid = face >= 0
    if source_face_index is not None:
        seen = visible_faces(source_face_index, faces.shape[0])  # (B, F)
        valid &= torch.gather(seen, 1, face.clamp(min=0))
    out = torch.full((batch, height * width, 2), OUTSIDE, dtype=source_verts.dtype,
                     device=source_verts.device)  # (B, P, 2)
    b_idx, p_idx = valid.nonzero(as_tuple=True)  # only covered pixels do any work
    if b_idx.numel() == 0:
        return out.reshape(batch, height, width, 2)
    corners = faces[face[b_idx, p_idx]]  # (N, 3) vertex ids
    xy = source_verts[b_idx[:, None], corners, :2]  # (N, 3, 2)
    weights = target_bary.reshape(batch, -1, 3)[b_idx, p_idx].to(xy.dtype)  # (N, 3)
    out[b_idx, p_idx] = torch.einsum("nk,nkd->nd", weights, xy)  # n pixels, k corners, d = x, y
    return out.reshape(batch, height, width, 2)


def flow_valid(flow_map: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 2) flow -> (B, H, W) bool, True where the flow points to a source correspondence."""
    return flow_map[..., 0] > OUTSIDE / 2


def resize_flow(flow_map: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow at another resolution, e.g. for feature maps at every encoder scale.

    The flow is in NDC, so values need no rescaling; only the sampling grid changes. Valid entries are
    averaged with their validity as weight (plain bilinear resizing would mix OUTSIDE into real positions
    at the silhouette); an output pixel is valid when at least half of its footprint is.
    flow_map: (B, H, W, 2).  size: (h, w).  Returns (B, h, w, 2).
    """
    if tuple(flow_map.shape[1:3]) == tuple(size):
        return flow_map
    valid = flow_valid(flow_map).to(flow_map.dtype)[:, None]  # (B, 1, H, W)
    values = flow_map.permute(0, 3, 1, 2) * valid  # (B, 2, H, W)
    shrink = size[0] < flow_map.shape[1]
    mode = "area" if shrink else "bilinear"
    kwargs = {} if shrink else {"align_corners": ALIGN_CORNERS}
    weight = F.interpolate(valid, size=size, mode=mode, **kwargs)  # (B, 1, h, w)
    summed = F.interpolate(values, size=size, mode=mode, **kwargs)  # (B, 2, h, w)
    resized = (summed / weight.clamp(min=1e-6)).permute(0, 2, 3, 1)  # (B, h, w, 2)
    keep = (weight >= 0.5).permute(0, 2, 3, 1)  # (B, h, w, 1)
    return torch.where(keep, resized, torch.full_like(resized, OUTSIDE))


def warp(image: torch.Tensor, flow_map: torch.Tensor) -> torch.Tensor:
    """Sample `image` at the flow's positions; pixels without correspondence become 0.

    image: (B, C, Hs, Ws), an image in [-1, 1] or a feature map at any resolution.
    flow_map: (B, H, W, 2) NDC. The output has the flow's resolution: to warp a feature map in place,
    first bring the flow to the map's size with `resize_flow`.
    Returns (B, C, H, W) in the dtype of `image`.
    """
    # Sampled in float32 whatever the autocast context: NDC positions in bfloat16 would be off by up to a
    # pixel at 256^2 (8 mantissa bits).
    with torch.autocast(image.device.type, enabled=False):
        out = F.grid_sample(image.float(), flow_map.float(), mode="bilinear", padding_mode="zeros",
                            align_corners=ALIGN_CORNERS)
    return out.to(image.dtype)
