"""Correspondence records: what the correspond stage caches per frame, and what it is computed from.

A record holds, for B frames of one body model:

    face_index  (B, H, W) int32, -1 background: the mesh face seen at each pixel centre
    bary        (B, H, W, 3) float32: barycentric weights of that face's corners (0 on background)
    verts       (B, V, 3) float32: projected vertices, x and y in NDC, z = depth (geometry.py)
    cond        (B, 4, H, W) float32: the conditioning map C — channels 0-2 the body's canonical surface
                coordinate interpolated at the pixel (in [0, 1], 0 on background), channel 3 = 1 on
                background and 0 on the body
    head_box    (B, 4) float32: NDC box (x0, y0, x1, y1) around the head part's projected vertices

Only `face_index` and `verts` cannot be recomputed cheaply: `barycentrics` and `conditioning_map` rebuild
the rest in one vectorised step each, which is what a cache should exploit (DESIGN.md: mind bytes/frame).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.geometry import pixel_centers
from lwgan.render.raster import RasterSettings, interpolate_maps, rasterize


@dataclasses.dataclass(frozen=True)
class Correspondence:
    """Per-frame correspondence maps of B frames; see the module docstring for every field."""

    face_index: torch.Tensor
    bary: torch.Tensor
    verts: torch.Tensor
    cond: torch.Tensor
    head_box: torch.Tensor

    @property
    def silhouette(self) -> torch.Tensor:
        """(B, H, W) bool, True on the body."""
        return self.face_index >= 0

    def __getitem__(self, index: int | slice) -> Correspondence:
        """The records of a subset of frames, keeping the batch dimension for slices."""
        pick = (lambda t: t[index : index + 1]) if isinstance(index, int) else (lambda t: t[index])
        return Correspondence(*(pick(getattr(self, f.name)) for f in dataclasses.fields(self)))


def barycentrics(
    face_index: torch.Tensor,
    verts: torch.Tensor,
    faces: torch.Tensor,
    perspective_correct: bool = False,
) -> torch.Tensor:
    """Barycentric weights of every pixel centre in its face, from the face index and projected vertices.

    face_index: (B, H, W) int, -1 background.  verts: (B, V, 3) NDC x, y and depth.  faces: (F, 3).
    Returns (B, H, W, 3) float32 (zeros on background). With `perspective_correct`, weights are corrected
    with the corners' depths (pinhole renders), as the rasteriser does.
    """
    batch, height, width = face_index.shape
    out = torch.zeros(batch, height * width, 3, dtype=torch.float32, device=verts.device)
    face = face_index.reshape(batch, -1).long()  # (B, P)
    b_idx, p_idx = (face >= 0).nonzero(as_tuple=True)
    if b_idx.numel() == 0:
        return out.reshape(batch, height, width, 3)
    corners = verts[b_idx[:, None], faces[face[b_idx, p_idx]]].double()  # (N, 3 corners, 3)
    centre = pixel_centers(height, width, device=verts.device, dtype=torch.float64).reshape(-1, 2)[p_idx]
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]  # (N, 2) each

    def cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]

    # The rasteriser skips degenerate faces, but vertices read back from a fixed-point cache can make a
    # sliver collinear (area 0) or move the centre just outside it: such weights are clamped to [0, 1]
    # and renormalised, and a face with no area gets equal weights, so no pixel is ever NaN or extrapolated.
    area = cross(b - a, c - a)  # (N,)
    flat = area.abs() < 1e-12
    area = torch.where(flat, torch.ones_like(area), area)
    w0 = cross(b - centre, c - centre) / area
    w1 = cross(c - centre, a - centre) / area
    weights = torch.stack((w0, w1, 1.0 - w0 - w1), dim=-1).clamp(0.0, 1.0)  # (N, 3)
    weights = torch.where(flat[:, None], torch.full_like(weights, 1.0 / 3.0),
                          weights / weights.sum(dim=-1, keepdim=True).clamp(min=1e-12))
    if perspective_correct:
        weights = weights / corners[:, :, 2]
        weights = weights / weights.sum(dim=-1, keepdim=True)
    out[b_idx, p_idx] = weights.float()
    return out.reshape(batch, height, width, 3)


def conditioning_map(
    face_index: torch.Tensor,
    bary: torch.Tensor,
    faces: torch.Tensor,
    surface_coords: torch.Tensor,
) -> torch.Tensor:
    """The conditioning map C (B, 4, H, W): interpolated surface coordinate + background channel.

    face_index: (B, H, W) int, -1 background.  bary: (B, H, W, 3).  faces: (F, 3).
    surface_coords: (V, 3) in [0, 1], the body model's canonical per-vertex code.
    """
    fg = face_index >= 0  # (B, H, W)
    codes = surface_coords.to(bary.dtype).expand(face_index.shape[0], -1, -1)  # (B, V, 3)
    code = interpolate_maps(face_index, bary, faces, codes)  # (B, H, W, 3), 0 on background
    cond = torch.cat((code, (~fg)[..., None].to(code.dtype)), dim=-1)  # (B, H, W, 4)
    return cond.permute(0, 3, 1, 2).contiguous()  # (B, 4, H, W)


def head_box(verts: torch.Tensor, head_mask: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """NDC box (x0, y0, x1, y1) around the head vertices, grown by `margin` of its size on each side.

    verts: (B, V, 2+) projected vertices.  head_mask: (V,) bool.  Returns (B, 4) float32.
    """
    head = verts[:, head_mask, :2]  # (B, Vh, 2)
    lo, hi = head.amin(dim=1), head.amax(dim=1)  # (B, 2) each
    pad = (hi - lo) * margin
    return torch.cat((lo - pad, hi + pad), dim=-1).float()


FACE_KEYPOINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")  # COCO-17's face points
MIRROR_FACE = (0, 2, 1, 4, 3)  # the same points in a mirror image: left and right swap


def face_regressor(body: BodyModel) -> torch.Tensor:
    """(5, V) rows of the body model's keypoint regressor for `FACE_KEYPOINTS`, in that order."""
    names = tuple(body.keypoint_names)
    missing = [n for n in FACE_KEYPOINTS if n not in names]
    if missing:
        raise ValueError(f"{body.source}: the keypoint regressor has no {missing[0]!r} keypoint "
                         f"(the face loss aligns head crops on {FACE_KEYPOINTS})")
    return body.kp_regressor[[names.index(n) for n in FACE_KEYPOINTS]].clone()


def face_keypoints(verts: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """verts (B, V, 3) projected (NDC x, y, depth), regressor (5, V) -> (B, 5, 3) face keypoints: NDC x, y
    and depth (a weak-perspective projection is affine, so regressing projected vertices is projecting
    the regressed 3D points)."""
    return torch.einsum("kv,bvc->bkc", regressor.to(verts), verts)  # (B, 5, 3)


def correspond(
    verts: torch.Tensor,
    faces: torch.Tensor,
    surface_coords: torch.Tensor,
    head_mask: torch.Tensor,
    settings: RasterSettings,
) -> Correspondence:
    """Rasterise projected vertices (B, V, 3) into the full correspondence record of each frame."""
    frags = rasterize(verts, faces, settings)
    return Correspondence(
        face_index=frags.face_index,
        bary=frags.bary,
        verts=verts.float(),
        cond=conditioning_map(frags.face_index, frags.bary, faces.to(verts.device),
                              surface_coords.to(verts.device)),
        head_box=head_box(verts, head_mask.to(verts.device)),
    )


def correspond_sequence(
    body: BodyModel,
    betas: np.ndarray,
    pose: np.ndarray,
    cam: np.ndarray,
    image_size: int,
    chunk: int = 64,
) -> dict[str, np.ndarray]:
    """What the correspondence cache stores for a fitted video (see `lwgan.data.maps_cache`).

    betas (S,), pose (N, J * 3), cam (N, 3) weak perspective. Returns ``face_index`` (N, H, W) int32,
    ``verts_xy`` (N, V, 2) float32 NDC and ``head_box`` (N, 4) float32, computed `chunk` frames at a time.
    """
    settings = RasterSettings(image_size, image_size)
    faces, head = body.faces, body.head_mask
    out: dict[str, list[np.ndarray]] = {"face_index": [], "verts_xy": [], "head_box": []}
    for start in range(0, len(pose), chunk):
        part = slice(start, start + chunk)
        verts = project_video(body, betas, pose[part], cam[part])  # (n, V, 3)
        out["face_index"].append(rasterize(verts, faces, settings).face_index.numpy())
        out["verts_xy"].append(verts[..., :2].numpy())
        out["head_box"].append(head_box(verts, head).numpy())
    return {name: np.concatenate(parts) for name, parts in out.items()}
