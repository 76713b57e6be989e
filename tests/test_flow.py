"""Correspondence records and the transformation flow between them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _meshes import POSES, procedural_body, to_image

from lwgan.correspond.maps import correspond, head_box
from lwgan.geometry import OUTSIDE, pixel_centers
from lwgan.render.raster import RasterSettings, barycentrics, conditioning_map, rasterize
from lwgan.warp.flow import flow, flow_valid, resize_flow, visible_faces, warp

SIZE = 128


@pytest.fixture(scope="module")
def mesh():
    verts, faces = procedural_body(POSES[1])
    return verts, torch.from_numpy(faces)


def project(verts: np.ndarray, yaw: float = 0.0) -> torch.Tensor:
    return torch.from_numpy(to_image(verts, fill=0.7, yaw=yaw, depth=3.0))[None]  # (1, V, 3)


def frags(verts: torch.Tensor, faces: torch.Tensor, size: int = SIZE):
    return rasterize(verts, faces, RasterSettings(size, size))


def test_flow_from_a_frame_to_itself_is_the_identity(mesh):
    verts, faces = mesh
    proj = project(verts)
    f = frags(proj, faces)
    t = flow(f.face_index, f.bary, proj, faces)
    fg = f.face_index >= 0
    assert fg.float().mean() > 0.05
    centres = pixel_centers(SIZE, SIZE).expand(1, -1, -1, -1)
    err = (t - centres).norm(dim=-1)[fg]
    assert err.max() < 1e-3  # snapping to 1/256 px is ~1e-5 NDC at this size
    assert torch.equal(flow_valid(t), fg)
    assert torch.all(t[~fg] == OUTSIDE)


def test_flow_under_camera_scale_and_translation_is_analytic(mesh):
    verts, faces = mesh
    source = project(verts)
    scale, shift = 1.3, torch.tensor([0.12, -0.07])
    target = source.clone()
    target[..., :2] = source[..., :2] * scale + shift
    f = frags(target, faces)
    t = flow(f.face_index, f.bary, source, faces)
    fg = f.face_index >= 0
    expected = (pixel_centers(SIZE, SIZE) - shift) / scale  # (H, W, 2)
    assert (t[0] - expected).norm(dim=-1)[fg[0]].max() < 1e-3


def test_visible_only_never_samples_faces_hidden_in_the_source(mesh):
    verts, faces = mesh
    source, target = project(verts, yaw=0.0), project(verts, yaw=np.pi * 0.75)
    fs, ft = frags(source, faces), frags(target, faces)
    t_all = flow(ft.face_index, ft.bary, source, faces)
    t_vis = flow(ft.face_index, ft.bary, source, faces, source_face_index=fs.face_index)
    seen = visible_faces(fs.face_index, faces.shape[0])[0]  # (F,)
    valid = flow_valid(t_vis)[0]
    assert valid.any()
    assert torch.all(seen[ft.face_index[0][valid].long()])
    hidden = (ft.face_index[0] >= 0) & ~seen[ft.face_index[0].clamp(min=0).long()]
    assert hidden.sum() > 50, "the turned view must show parts the source hides"
    assert not valid[hidden].any()
    assert torch.equal(flow_valid(t_all)[0], ft.face_index[0] >= 0)  # without the option: all body pixels


def test_visible_faces_counts_only_covered_faces():
    face_index = torch.tensor([[[-1, 2], [2, 0]]], dtype=torch.int32)
    assert visible_faces(face_index, 4).tolist() == [[True, False, True, False]]


def test_warp_with_identity_flow_reproduces_the_image(mesh):
    verts, faces = mesh
    proj = project(verts)
    f = frags(proj, faces)
    t = flow(f.face_index, f.bary, proj, faces)
    xy = pixel_centers(SIZE, SIZE).permute(2, 0, 1)  # (2, H, W): a smooth image, so sampling error shows
    image = torch.cat((xy, (xy[:1] * 3).sin()), dim=0)[None]  # (1, 3, H, W)
    out = warp(image, t)
    fg = (f.face_index >= 0)[:, None].expand_as(image)
    assert torch.allclose(out[fg], image[fg], atol=1e-4)
    assert torch.all(out[~fg] == 0)


def test_resize_flow_averages_only_valid_entries(mesh):
    verts, faces = mesh
    proj = project(verts)
    f = frags(proj, faces)
    t = flow(f.face_index, f.bary, proj, faces)
    half = resize_flow(t, (SIZE // 2, SIZE // 2))
    assert half.shape == (1, SIZE // 2, SIZE // 2, 2)
    # Where all four children are valid, the parent's flow is the parent's own pixel centre.
    full = flow_valid(t)[0].reshape(SIZE // 2, 2, SIZE // 2, 2).all(dim=3).all(dim=1)
    centres = pixel_centers(SIZE // 2, SIZE // 2)
    assert (half[0] - centres).norm(dim=-1)[full].max() < 1e-3
    none = ~flow_valid(t)[0].reshape(SIZE // 2, 2, SIZE // 2, 2).any(dim=3).any(dim=1)
    assert torch.all(half[0][none] == OUTSIDE)
    up = resize_flow(t, (SIZE * 2, SIZE * 2))
    assert up.shape == (1, SIZE * 2, SIZE * 2, 2) and flow_valid(up).float().mean() > 0.05


def test_barycentrics_from_cache_match_the_rasteriser(mesh):
    verts, faces = mesh
    proj = project(verts)
    f = frags(proj, faces)
    again = barycentrics(f.face_index, proj, faces)
    fg = f.face_index >= 0
    # Weights of sliver faces are sensitive to the rasteriser's 1/256-px vertex snapping; the points they
    # interpolate are not: both give back the pixel centres.
    centres = pixel_centers(SIZE, SIZE)[fg[0]]
    for weights in (again, f.bary):
        corners = proj[0, faces[f.face_index[fg].long()], :2]  # (N, 3, 2)
        points = (weights[fg][..., None] * corners).sum(1)
        assert (points - centres).abs().max() < 1e-4
    assert torch.allclose(again.sum(-1)[fg], torch.ones(int(fg.sum())), atol=1e-5)
    assert torch.all(again[~fg] == 0)


def test_perspective_barycentrics_from_cache_match_the_rasteriser(mesh):
    verts, faces = mesh
    proj = project(verts)
    z = proj[..., 2:3]
    pinhole = torch.cat((proj[..., :2] * 3.0 / z, z), dim=-1)  # x/z, y/z with f = 3 keeps the size
    f = rasterize(pinhole, faces, RasterSettings(SIZE, SIZE, perspective_correct=True))
    again = barycentrics(f.face_index, pinhole, faces, perspective_correct=True)
    fg = f.face_index >= 0
    # Perspective-correct weights interpolate 1/z-correct attributes: z itself is the cleanest check.
    corners_z = pinhole[0, faces[f.face_index[fg].long()], 2]  # (N, 3)
    for weights in (again, f.bary):
        depth = (weights[fg] * corners_z).sum(-1)
        assert torch.allclose(depth, f.depth[fg], rtol=1e-3)


def test_conditioning_map_and_record(mesh):
    verts, faces = mesh
    proj = project(verts)
    coords = torch.from_numpy(((verts - verts.min(0)) / np.ptp(verts, 0)).astype(np.float32))
    head = torch.from_numpy(verts[:, 1] > np.quantile(verts[:, 1], 0.9))
    rec = correspond(proj, faces, coords, head, RasterSettings(SIZE, SIZE))
    assert rec.cond.shape == (1, 4, SIZE, SIZE)
    assert torch.equal(rec.cond[:, 3] == 1, ~rec.silhouette)
    assert rec.cond[:, :3].min() >= 0 and rec.cond[:, :3].max() <= 1
    assert torch.all(rec.cond[:, :3][(~rec.silhouette)[:, None].expand(-1, 3, -1, -1)] == 0)
    # The code interpolated at a pixel is the code of the surface point seen there (here: its position).
    again = conditioning_map(rec.face_index, rec.bary, faces, coords)
    assert torch.equal(again, rec.cond)
    box = rec.head_box[0]
    head_xy = proj[0, head, :2]
    assert torch.all(head_xy[:, 0] >= box[0]) and torch.all(head_xy[:, 0] <= box[2])
    assert torch.all(head_xy[:, 1] >= box[1]) and torch.all(head_xy[:, 1] <= box[3])
    assert box[1] < -0.3, "the head is near the top of the image (y down)"
    assert torch.equal(head_box(proj, head), rec.head_box)
    one = rec[0]
    assert one.face_index.shape == (1, SIZE, SIZE) and one.verts.shape == proj.shape
