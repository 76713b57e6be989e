"""Pictures of rasterised meshes for people to look at: shaded bodies, part labels, overlays.

These are for previews, overlays and sample sheets, not for training; images are uint8 (B, H, W, 3) RGB.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch

from lwgan.render.raster import Fragments


def face_normals(verts: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) vertices, (F, 3) faces -> (B, F, 3) unit normals (right-hand rule on the corner order)."""
    corners = verts[:, faces]  # (B, F, 3 corners, 3)
    normal = torch.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0], dim=-1)
    return normal / normal.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def shade(
    fragments: Fragments, verts: torch.Tensor, faces: torch.Tensor, ambient: float = 0.3
) -> torch.Tensor:
    """Two-sided Lambert shading with a light at the camera: (B, H, W) float in [0, 1], 0 on background.

    verts: (B, V, 3) in camera axes or projected (x, y, depth); either way the camera looks along +z.
    """
    normals = face_normals(verts.float(), faces)  # (B, F, 3)
    lit = normals[..., 2].abs()  # (B, F): |cos| between normal and the viewing axis
    face = fragments.face_index.long()  # (B, H, W)
    value = torch.gather(lit, 1, face.clamp(min=0).flatten(1)).reshape(face.shape)  # (B, H, W)
    return torch.where(face >= 0, ambient + (1.0 - ambient) * value, torch.zeros_like(value))


def palette(count: int, saturation: float = 0.65, value: float = 0.95) -> np.ndarray:
    """`count` distinct colours, (count, 3) uint8, hues spread by the golden ratio."""
    hues = (np.arange(count) * 0.618033988749895) % 1.0
    rgb = [colorsys.hsv_to_rgb(h, saturation, value) for h in hues]
    return (np.asarray(rgb) * 255).round().astype(np.uint8).reshape(count, 3)


def label_image(
    fragments: Fragments,
    faces: torch.Tensor,
    vertex_labels: torch.Tensor,
    colours: np.ndarray,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Colour each pixel by the label of the face seen there (the label of its first corner).

    vertex_labels: (V,) int in [0, len(colours)).  Returns (B, H, W, 3) uint8.
    """
    face = fragments.face_index.long().cpu()  # (B, H, W)
    face_label = vertex_labels.cpu().long()[faces.cpu()[:, 0]]  # (F,)
    label = face_label[face.clamp(min=0)].numpy()  # (B, H, W)
    out = np.asarray(colours, dtype=np.uint8)[label]  # (B, H, W, 3)
    out[face.numpy() < 0] = background
    return out


def to_uint8(images: torch.Tensor, low: float = 0.0, channels_first: bool = False) -> np.ndarray:
    """Float images with values in [low, 1] (0 or -1: masks and shading, or the networks' images) ->
    (B, H, W, 3) uint8 numpy RGB, grey replicated. images: (B, H, W) or (B, H, W, C), or with
    `channels_first` (B, C, H, W); C is 1 or 3."""
    x = images.detach().float()
    if channels_first:
        x = x.permute(0, 2, 3, 1)
    array = ((x.clamp(low, 1.0) - low) * (255.0 / (1.0 - low))).round().to(torch.uint8).cpu().numpy()
    if array.ndim == 3:
        array = array[..., None]
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


def overlay(image: np.ndarray, drawn: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend `drawn` over `image` where `mask` is set. (H, W, 3) uint8, (H, W, 3) uint8, (H, W) bool."""
    out = image.astype(np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * drawn[mask].astype(np.float32)
    return out.round().astype(np.uint8)
