"""Hard rasteriser: triangle meshes in NDC -> per-pixel face index, barycentrics and depth.

Coordinates, axes and the pixel-centre rule are those of `lwgan.geometry`. Three backends implement the
rules below and are tested against each other pixel for pixel: a Numba z-buffer kernel for CPU tensors
(`_numba_kernel`, one thread: scale out with processes), a vectorised torch path for CUDA (or CPU)
tensors (`_torch_kernel`), and a slow reference used by the tests (`lwgan.render.reference`).

Rules (the same in every backend)
    Snapping. Vertex (x, y) is mapped to pixel units with `geometry.ndc_to_pixel` (centres at integers)
        and snapped to a fixed-point grid of 1/256 pixel, in float64 and in this order:
            X = floor(((x + 1) * (W / 2) - 0.5) * 256 + 0.5),   Y likewise with y and H.
        Pixel (row i, column j) has its centre at (256 j, 256 i) on that grid. All coverage decisions are
        exact integer arithmetic, so backends cannot disagree through rounding.
    Coverage. With E_k(P) the edge function of the edge opposite vertex k (E_0(P) = (X2 - X1)(Py - Y1) -
        (Y2 - Y1)(Px - X1), cyclic) and A = (X1 - X0)(Y2 - Y0) - (Y1 - Y0)(X2 - X0) = E_0 + E_1 + E_2,
        a pixel is covered when its centre is inside the snapped triangle: sign(A) E_k > 0 for k = 0, 1, 2.
        Both windings rasterise (no back-face culling).
    Tie rule (top-left). A centre exactly on an edge (sign(A) E_k == 0) is covered only if that edge is a
        top edge (horizontal, the triangle below it; y points down) or a left edge (the triangle to its
        right). Two triangles sharing an edge therefore cover every centre along it exactly once.
    Skipped triangles. Zero snapped area (A == 0); any vertex with a non-finite coordinate or whose
        unrounded fixed-point x or y is not strictly inside (-2**25, 2**25), i.e. ~2**17 pixels away (there
        is no clipping); with perspective_correct, any vertex with z <= 0 (no near-plane clipping either).
    Depth. w_k = sign(A) E_k as float64, sums taken left to right. Weak perspective: depth = (w0 z0 + w1 z1
        + w2 z2) / |A|, linear in screen space. Perspective-correct (z is view depth, q_k = 1 / z_k
        computed first): depth = |A| / (w0 q0 + w1 q1 + w2 q2). The z-test compares depth rounded to
        float32: the strictly nearer face wins, a tie goes to the lower face index (for every pixel: the
        lexicographic minimum of (float32 depth, face index)).
    Barycentrics of the winning face: b_k = E_k / A, or perspective-correct b_k = E_k q_k / (E_0 q0 +
        E_1 q1 + E_2 q2); they sum to 1 and reproduce the pixel centre up to the 1/512-pixel snapping error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from lwgan.geometry import pixel_centers
from lwgan.render._numba_kernel import rasterize_numba
from lwgan.render._torch_kernel import rasterize_torch

Backend = Literal["auto", "numba", "torch"]
_MAX_SIDE = 1 << 16
_CHUNK = {"cpu": 1 << 18, "cuda": 1 << 22}  # (face, pixel) candidates per torch step: bounds memory


@dataclass(frozen=True)
class RasterSettings:
    """How to rasterise.

    height, width: output size in pixels, each in [1, 65536].
    perspective_correct: z is view depth of a pinhole camera; depth and barycentrics are interpolated
        perspective-correctly (see the module docstring). False for weak perspective (linear in screen).
    backend: "numba" (CPU kernel; tensors on another device are copied there and back), "torch"
        (vectorised, any device) or "auto" (numba for CPU tensors, torch otherwise).
    """

    height: int
    width: int
    perspective_correct: bool = False
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            is_int = isinstance(value, int | np.integer) and not isinstance(value, bool)
            if not (is_int and 1 <= value <= _MAX_SIDE):
                raise ValueError(f"RasterSettings.{name} must be an int in [1, {_MAX_SIDE}], got {value!r}")
        if self.backend not in ("auto", "numba", "torch"):
            raise ValueError(
                f"RasterSettings.backend must be 'auto', 'numba' or 'torch', got {self.backend!r}"
            )


@dataclass(frozen=True)
class Fragments:
    """What covers each pixel; all tensors on the device of the input vertices.

    face_index: (B, H, W) int32, index into faces of the nearest covering face; -1 on background.
    bary: (B, H, W, 3) float32, barycentric weights of that face's 3 vertices (in faces' column order),
        each in [0, 1] and summing to 1; perspective-correct when the settings say so; 0 on background.
    depth: (B, H, W) float32, interpolated depth of that face at the pixel centre; +inf on background.
    """

    face_index: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def silhouette(self) -> torch.Tensor:
        """(B, H, W) bool, True where some face covers the pixel centre."""
        return self.face_index >= 0


def check_mesh(verts: torch.Tensor, faces: torch.Tensor, coords: tuple[int, ...] = (3,)) -> None:
    """Raise ValueError naming the bad value unless verts is a (B, V, C) float tensor with C in `coords`
    and faces an (F, 3) integer tensor of indices in [0, V) on the same device."""
    if not isinstance(verts, torch.Tensor) or verts.dim() != 3 or verts.shape[-1] not in coords:
        shape = tuple(verts.shape) if isinstance(verts, torch.Tensor) else type(verts).__name__
        wanted = " or ".join(f"(B, V, {c})" for c in coords)
        raise ValueError(f"verts must be a {wanted} tensor, got {shape}")
    if not verts.is_floating_point():
        raise ValueError(f"verts must be floating point, got {verts.dtype}")
    if not isinstance(faces, torch.Tensor) or faces.dim() != 2 or faces.shape[1] != 3:
        shape = tuple(faces.shape) if isinstance(faces, torch.Tensor) else type(faces).__name__
        raise ValueError(f"faces must be an (F, 3) tensor, got {shape}")
    if faces.is_floating_point() or faces.is_complex() or faces.dtype == torch.bool:
        raise ValueError(f"faces must be an integer tensor, got {faces.dtype}")
    if faces.device != verts.device:
        raise ValueError(f"faces are on {faces.device} but verts on {verts.device}")
    if faces.numel():
        lo, hi = int(faces.min()), int(faces.max())
        if lo < 0 or hi >= verts.shape[1]:
            bad = lo if lo < 0 else hi
            raise ValueError(f"faces index out of range: {bad} (verts has {verts.shape[1]} vertices)")


def rasterize(verts: torch.Tensor, faces: torch.Tensor, settings: RasterSettings) -> Fragments:
    """Rasterise a batch of meshes that share one topology.

    verts: (B, V, 3) float: x, y in NDC (`lwgan.geometry`), z = depth (smaller is nearer; view depth > 0
        when settings.perspective_correct). Not differentiable (see `lwgan.render.soft` for that).
    faces: (F, 3) integer vertex indices in [0, V), either winding.
    Returns `Fragments` of size (settings.height, settings.width) on verts' device.
    """
    check_mesh(verts, faces)
    height, width, persp = int(settings.height), int(settings.width), settings.perspective_correct
    backend = settings.backend
    if backend == "auto":
        backend = "numba" if verts.device.type == "cpu" else "torch"
    verts = verts.detach()
    faces = faces.detach().to(torch.int64)
    if backend == "torch":
        chunk = _CHUNK.get(verts.device.type, _CHUNK["cuda"])
        face_index, bary, depth = rasterize_torch(verts, faces, height, width, persp, chunk)
        return Fragments(face_index=face_index, bary=bary, depth=depth)
    v = np.ascontiguousarray(verts.to(device="cpu", dtype=torch.float64).numpy())
    f = np.ascontiguousarray(faces.cpu().numpy())
    face_index, bary, depth = rasterize_numba(v, f, height, width, persp)
    device = verts.device
    return Fragments(
        face_index=torch.from_numpy(face_index).to(device),
        bary=torch.from_numpy(bary).to(device),
        depth=torch.from_numpy(depth).to(device),
    )


def interpolate(fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes with the fragments' barycentrics.

    fragments: from `rasterize` with these faces; faces: (F, 3) integer; attributes: (B, V, C) float.
    Returns (B, H, W, C) in attributes' dtype; 0 on background. Differentiable w.r.t. attributes.
    """
    return interpolate_maps(fragments.face_index, fragments.bary, faces, attributes)


def interpolate_maps(face_index: torch.Tensor, bary: torch.Tensor, faces: torch.Tensor,
                     attributes: torch.Tensor) -> torch.Tensor:
    """`interpolate` from a face-index map (B, H, W) and barycentric map (B, H, W, 3), e.g. as rebuilt
    from a correspondence cache. Only the covered pixels are gathered (a person covers a tenth of a
    frame or so), and the rest are zeros."""
    n_batch, height, width = face_index.shape
    if attributes.dim() != 3 or attributes.shape[0] != n_batch:
        raise ValueError(f"attributes must be ({n_batch}, V, C), got {tuple(attributes.shape)}")
    face = face_index.reshape(n_batch, -1)  # (B, H*W)
    b_idx, p_idx = (face >= 0).nonzero(as_tuple=True)  # (N,) each: the covered pixels
    vert = faces.to(device=face.device, dtype=torch.int64)[face[b_idx, p_idx].long()]  # (N, 3)
    corner = attributes[b_idx[:, None], vert]  # (N, 3, C)
    weights = bary.reshape(n_batch, -1, 3)[b_idx, p_idx].to(attributes.dtype).unsqueeze(-1)  # (N, 3, 1)
    out = attributes.new_zeros(n_batch, height * width, attributes.shape[-1])
    out = out.index_put((b_idx, p_idx), (corner * weights).sum(-2))  # not in place: differentiable
    return out.view(n_batch, height, width, -1)  # (B, H, W, C)


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
