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
the rest in one vectorised step each, which is what a cache should exploit: bytes per frame add up over
a data set of iPER's size (241,564 frames).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.render.raster import RasterSettings, conditioning_map, rasterize


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
    """What the correspondence cache stores for a fitted video (see `lwgan.correspond.maps_cache`).

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
