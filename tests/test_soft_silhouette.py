"""The soft silhouette: exact gradients, the hard silhouette in the sharp limit, and useful for fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _meshes import procedural_body, to_image

from lwgan.geometry import pixel_to_ndc
from lwgan.render.raster import RasterSettings, rasterize
from lwgan.render.soft import SoftSilhouetteSettings, soft_silhouette


def small_mesh(dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Two frames of 3 overlapping triangles (both windings) inside a 9 x 11 image."""
    gen = torch.Generator().manual_seed(0)
    verts = (torch.rand(2, 6, 3, generator=gen, dtype=torch.float64) * 1.6 - 0.8).to(dtype)
    return verts, torch.tensor([[0, 1, 2], [3, 4, 5], [1, 3, 4]])


def test_gradients_match_finite_differences():
    verts, faces = small_mesh()
    settings = SoftSilhouetteSettings(9, 11, sigma=2.0, cutoff=1e-30)  # no cut-off: a smooth function

    def render(v: torch.Tensor) -> torch.Tensor:
        return soft_silhouette(v, faces, settings)

    assert torch.autograd.gradcheck(render, (verts.requires_grad_(True),), eps=1e-6, atol=1e-6)


def test_range_and_values():
    verts, faces = small_mesh(torch.float32)
    out = soft_silhouette(verts, faces, SoftSilhouetteSettings(9, 11, sigma=0.5))
    assert out.shape == (2, 9, 11) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1 and out.max() > 0.9 and out.min() == 0
    # A lone triangle: 0.5 on its edge (a vertex on a pixel centre), ~1 deep inside, ~0 far outside.
    corners = pixel_to_ndc(torch.tensor([[2.0, 2.0], [30.0, 2.0], [2.0, 30.0]]), 32, 32)
    tri = torch.cat([corners, torch.ones(3, 1)], 1)[None]
    out = soft_silhouette(tri, torch.tensor([[0, 1, 2]]), SoftSilhouetteSettings(32, 32, sigma=1.0))[0]
    assert out[2, 2] == pytest.approx(0.5, abs=1e-6)
    assert out[8, 8] > 1 - 1e-6 and out[31, 31] == 0


@pytest.mark.parametrize("size", [48, 96])
def test_sharp_limit_is_the_hard_silhouette(size):
    verts, faces = procedural_body(n_lat=12, n_lon=12)
    frame = torch.from_numpy(to_image(verts, yaw=0.8))[None]
    faces = torch.from_numpy(faces)
    hard = rasterize(frame, faces, RasterSettings(size, size)).silhouette
    soft = soft_silhouette(frame.double(), faces, SoftSilhouetteSettings(size, size, sigma=1e-4))
    assert hard.float().mean() > 0.03
    assert ((soft > 0.5) == hard).float().mean() >= 0.998


def test_fits_a_translation():
    """Gradient descent on the soft silhouette moves a triangle onto a target mask."""
    tri = torch.tensor([[[-0.4, -0.4, 1.0], [0.4, -0.3, 1.0], [0.0, 0.5, 1.0]]])
    faces = torch.tensor([[0, 1, 2]])
    settings = SoftSilhouetteSettings(32, 32, sigma=2.0)
    target = soft_silhouette(tri + torch.tensor([0.25, -0.15, 0.0]), faces, settings).detach()
    shift = torch.zeros(1, 1, 3, requires_grad=True)
    optimiser = torch.optim.Adam([shift], lr=0.02)
    for _ in range(60):
        optimiser.zero_grad()
        loss = ((soft_silhouette(tri + shift, faces, settings) - target) ** 2).mean()
        loss.backward()
        optimiser.step()
    np.testing.assert_allclose(shift.detach()[0, 0, :2].numpy(), [0.25, -0.15], atol=0.02)


def test_bad_settings_name_the_value():
    with pytest.raises(ValueError, match="sigma.*-1"):
        SoftSilhouetteSettings(8, 8, sigma=-1.0)
    with pytest.raises(ValueError, match="cutoff.*0.7"):
        SoftSilhouetteSettings(8, 8, cutoff=0.7)
    with pytest.raises(ValueError, match=r"\(B, V, 2\) or \(B, V, 3\)"):
        soft_silhouette(torch.zeros(1, 3, 4), torch.tensor([[0, 1, 2]]), SoftSilhouetteSettings(8, 8))
