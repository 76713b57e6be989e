"""The hard rasteriser: both fast backends equal the slow reference; the rules of raster.py hold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _meshes import POSES, procedural_body, to_image

from lwgan.body.cameras import fit_weak_perspective, weak_perspective_project
from lwgan.body.model import BodyModel
from lwgan.body.preview import preview_batch
from lwgan.geometry import pixel_centers, pixel_to_ndc
from lwgan.render.raster import Fragments, RasterSettings, interpolate, rasterize
from lwgan.render.reference import rasterize_reference

BACKENDS = ("numba", "torch")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def run(verts, faces, height, width, backend, perspective=False) -> Fragments:
    settings = RasterSettings(height, width, perspective_correct=perspective, backend=backend)
    return rasterize(torch.as_tensor(verts), torch.as_tensor(faces), settings)


def grid_ndc(pix: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., 2) pixel coordinates (u = column, v = row) -> NDC, so vertices can sit on pixel centres."""
    return pixel_to_ndc(torch.as_tensor(pix, dtype=torch.float64), height, width).numpy()


def random_soup(seed: int, height: int, width: int, n_verts: int = 14, n_faces: int = 12) -> tuple:
    """Overlapping triangles of both windings, some vertices exactly on pixel centres or pixel edges (so
    edges pass through centres and the tie rule matters), a degenerate face and a repeated-index face."""
    rng = np.random.default_rng(seed)
    verts = rng.uniform(-1.2, 1.2, (2, n_verts, 3))
    # Few distinct values, so horizontal and vertical edges through pixel centres are common.
    on_grid = np.round(rng.integers(-1, 6, (2, n_verts - 4, 2)) * [width / 5, height / 5] * 2) / 2
    verts[:, : n_verts - 4, :2] = grid_ndc(on_grid, height, width)
    verts[..., 2] = rng.uniform(0.5, 3.0, (2, n_verts))
    faces = rng.integers(0, n_verts, (n_faces, 3))
    verts[:, -3:, :2] = np.linspace(verts[:, -3, :2], verts[:, -3, :2] + 0.3, 3, axis=1)  # collinear
    faces[0] = (n_verts - 3, n_verts - 2, n_verts - 1)
    faces[1] = (0, 0, 1)
    faces[2] = faces[3, ::-1]  # the same triangle in the other winding
    return verts.astype(np.float32), faces


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("perspective", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_backends_equal_reference(seed, perspective, backend):
    height, width = 19, 23
    verts, faces = random_soup(seed, height, width)
    ref = rasterize_reference(verts, faces, height, width, perspective)
    out = run(verts, faces, height, width, backend, perspective)
    assert out.face_index.dtype == torch.int32 and out.bary.dtype == out.depth.dtype == torch.float32
    assert 0.1 < ref.silhouette.float().mean() < 0.95  # the scenes are neither empty nor full
    assert torch.equal(out.face_index, ref.face_index)
    assert torch.equal(out.depth, ref.depth)
    torch.testing.assert_close(out.bary, ref.bary, rtol=0, atol=1e-6)


def test_background_sentinels():
    verts = torch.tensor([[[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]])
    for backend in BACKENDS:
        out = run(verts, torch.tensor([[0, 1, 2]]), 8, 8, backend)
        bg = ~out.silhouette
        assert bg.any() and (~bg).any()
        assert (out.face_index[bg] == -1).all() and (out.bary[bg] == 0).all()
        assert torch.isinf(out.depth[bg]).all()
        torch.testing.assert_close(out.bary[~bg].sum(-1), torch.ones(int((~bg).sum())))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_edges_cover_every_centre_exactly_once(backend):
    """A jittered triangulated grid (some vertices exactly on centres): rasterising each face on its own,
    every centre strictly inside the grid's outline is covered by exactly one face."""
    height, width, n = 24, 28, 6
    rng = np.random.default_rng(3)
    u = np.linspace(1.3, width - 2.3, n + 1)
    v = np.linspace(1.3, height - 2.3, n + 1)
    pix = np.stack(np.meshgrid(u, v, indexing="xy"), -1)  # (n+1, n+1, 2) pixel coordinates
    pix[1:-1, 1:-1] += rng.uniform(-0.8, 0.8, (n - 1, n - 1, 2))
    pix[1:-1:2, 1:-1:2] = np.round(pix[1:-1:2, 1:-1:2])  # on pixel centres: edges through centres
    ndc = grid_ndc(pix.reshape(-1, 2), height, width)
    verts = np.concatenate([ndc, np.ones((len(ndc), 1))], 1)[None].astype(np.float32)
    quads = [(i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j, (i + 1) * (n + 1) + j + 1)
             for i in range(n) for j in range(n)]
    faces = [(a, b, d) if k % 2 else (a, d, b) for k, (a, b, _, d) in enumerate(quads)]  # both windings
    faces += [(a, d, c) if k % 3 else (a, c, d) for k, (a, _, c, d) in enumerate(quads)]
    count = torch.zeros(height, width, dtype=torch.int64)
    for face in faces:
        count += run(verts, [face], height, width, backend).silhouette[0].long()
    centres = np.stack(np.meshgrid(np.arange(width), np.arange(height), indexing="xy"), -1)
    strictly_inside = (centres[..., 0] > u[0]) & (centres[..., 0] < u[-1]) & (centres[..., 1] > v[0]) & (
        centres[..., 1] < v[-1])
    assert strictly_inside.sum() > 200
    assert (count[torch.from_numpy(strictly_inside)] == 1).all()
    assert (count <= 1).all()


@pytest.mark.parametrize("winding", [(0, 1, 2), (0, 2, 1)])
def test_top_left_tie_rule(winding):
    """Square split along its diagonal, corners on pixel centres: centres on the top and left sides are
    covered, those on the bottom and right sides are not; the diagonal's centres belong to one face."""
    height = width = 10
    corners = grid_ndc(np.array([[2.0, 2.0], [7.0, 2.0], [7.0, 7.0], [2.0, 7.0]]), height, width)
    verts = torch.tensor(np.concatenate([corners, np.ones((4, 1))], 1)[None], dtype=torch.float32)
    faces = torch.tensor([[(0, 1, 2)[k] for k in winding], [(0, 2, 3)[k] for k in winding]])
    expected = torch.zeros(height, width, dtype=torch.bool)
    expected[2:7, 2:7] = True
    for backend in BACKENDS:
        out = run(verts, faces, height, width, backend)
        assert torch.equal(out.silhouette[0], expected)
        alone = [run(verts, faces[k : k + 1], height, width, backend).silhouette[0] for k in range(2)]
        assert not (alone[0] & alone[1]).any() and torch.equal(alone[0] | alone[1], expected)


@pytest.mark.parametrize("perspective", [False, True])
def test_nearer_face_wins_and_ties_go_to_lower_index(perspective):
    tri = torch.tensor([[-0.8, -0.8], [0.8, -0.8], [0.0, 0.8]])
    depth = torch.tensor([2.0, 1.0, 1.0, 2.0])[:, None].expand(4, 3)  # per face: far, near, near, far
    verts = torch.cat([tri.repeat(4, 1), depth.reshape(-1, 1)], 1)[None]  # (1, 12, 3)
    faces = torch.arange(12).reshape(4, 3)
    for backend in BACKENDS:
        out = run(verts, faces, 16, 16, backend, perspective)
        assert set(out.face_index.unique().tolist()) == {-1, 1}
        torch.testing.assert_close(out.depth[out.silhouette], torch.ones(int(out.silhouette.sum())))
    # A tilted face crossing a flat one: each wins where it is nearer.
    tilted = torch.tensor([[[-0.8, -0.8, 0.5], [0.8, -0.8, 0.5], [0.0, 0.8, 2.5], [-0.8, -0.8, 1.5],
                            [0.8, -0.8, 1.5], [0.0, 0.8, 1.5]]])
    out = run(tilted, [[0, 1, 2], [3, 4, 5]], 32, 32, "numba", perspective)
    rows = pixel_centers(32, 32)[..., 1]
    top = out.silhouette[0] & (rows < -0.3)
    bottom = out.silhouette[0] & (rows > 0.6)  # the faces cross at y = 0 (linear) or y = 0.53 (1/z linear)
    assert top.any() and bottom.any()
    assert (out.face_index[0][top] == 0).all() and (out.face_index[0][bottom] == 1).all()


def procedural_frames() -> tuple[torch.Tensor, torch.Tensor]:
    meshes = [procedural_body(pose) for pose in POSES]
    frames = [to_image(v, yaw=0.7 * k, depth=3.0) for k, (v, _) in enumerate(meshes)]
    return torch.from_numpy(np.stack(frames)), torch.from_numpy(meshes[0][1])


def shipped_frames() -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped default body posed by BodyModel in the preview poses (walking, bending, arms up ...)."""
    model = BodyModel.default()
    _, poses, betas = preview_batch(model, 4)
    with torch.no_grad():
        verts = model(betas, poses).vertices  # (4, V, 3) camera axes
    proj = weak_perspective_project(verts, fit_weak_perspective(verts, fill=0.6))
    proj[..., 2] += 3.0  # positive view depth for the perspective_correct pass
    return proj, model.faces


@pytest.mark.parametrize("mesh", [procedural_frames, shipped_frames])
@pytest.mark.parametrize("size", [128, 256])
def test_backends_agree_on_body(mesh, size):
    verts, faces = mesh()
    assert faces.shape[0] >= 14_000
    for perspective in (False, True):
        settings = [RasterSettings(size, size, perspective, backend) for backend in BACKENDS]
        a, b = (rasterize(verts, faces, s) for s in settings)
        assert 0.02 < a.silhouette.float().mean() < 0.5
        assert (a.face_index == b.face_index).float().mean() >= 0.9999
        same = a.face_index == b.face_index
        torch.testing.assert_close(a.bary[same], b.bary[same], rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_barycentrics_reproduce_pixel_centres(backend):
    verts, faces = procedural_frames()
    out = run(verts, faces, 96, 80, backend)
    xy = interpolate(out, faces, verts[..., :2].double())  # (B, H, W, 2)
    centres = pixel_centers(96, 80, dtype=torch.float64).expand_as(xy)
    assert out.silhouette.sum() > 1000
    error = (xy - centres)[out.silhouette].abs().max()
    assert error < 1e-4  # snapping moves vertices by at most 1/512 pixel
    assert (xy[~out.silhouette] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_perspective_correct_interpolation_on_a_plane(backend):
    """A tilted plane seen by a pinhole camera: depth and interpolated 3D points match the ray-plane
    intersection; screen-linear barycentrics would not."""
    height, width, fx, fy = 40, 48, 1.4, 1.6
    normal, offset = np.array([0.3, -0.5, 1.0]), 4.0  # plane n . P = offset
    ij = np.stack(np.meshgrid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7), indexing="xy"), -1).reshape(-1, 2)
    xy_cam = ij * [2.5, 2.2]
    z = (offset - xy_cam @ normal[:2]) / normal[2]
    points = np.concatenate([xy_cam, z[:, None]], 1)  # (V, 3) on the plane
    proj = np.stack([fx * points[:, 0] / z, fy * points[:, 1] / z, z], 1)[None]
    faces = [(r * 7 + c, r * 7 + c + 1, r * 7 + c + 8) for r in range(6) for c in range(6)]
    faces += [(r * 7 + c, r * 7 + c + 8, r * 7 + c + 7) for r in range(6) for c in range(6)]
    verts, faces = torch.tensor(proj, dtype=torch.float32), torch.tensor(faces)
    centres = pixel_centers(height, width, dtype=torch.float64)
    ray = torch.stack([centres[..., 0] / fx, centres[..., 1] / fy, torch.ones_like(centres[..., 0])], -1)
    true_depth = offset / (ray @ torch.from_numpy(normal))  # (H, W)
    true_point = ray * true_depth[..., None]  # (H, W, 3)
    errors = {}
    for perspective in (True, False):
        out = run(verts, faces, height, width, backend, perspective)
        mask = out.silhouette[0]
        assert mask.float().mean() > 0.3
        got = interpolate(out, faces, torch.from_numpy(points)[None])[0]  # (H, W, 3)
        errors[perspective] = (got - true_point)[mask].abs().max().item()
        if perspective:
            torch.testing.assert_close(out.depth[0][mask].double(), true_depth[mask], rtol=2e-4, atol=0)
    assert errors[True] < 2e-3
    assert errors[False] > 10 * errors[True]


def test_skipped_triangles():
    """No clipping: triangles with a vertex behind the camera (perspective) or absurdly far away are
    skipped, as are NaN vertices; other faces still render."""
    good = [[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0]]
    bad = [[-0.5, -0.5, -1.0], [0.5, -0.5, 1.0], [0.0, 0.5, 1.0], [1e9, 0.0, 1.0], [float("nan"), 0.0, 1.0]]
    verts = torch.tensor([good + bad])
    faces = torch.tensor([[3, 4, 5], [3, 4, 6], [3, 4, 7], [0, 1, 2]])
    for backend in BACKENDS:
        out = run(verts, faces, 12, 12, backend, perspective=True)
        assert set(out.face_index.unique().tolist()) == {-1, 3}
        out = run(verts, faces, 12, 12, backend, perspective=False)
        assert set(out.face_index.unique().tolist()) == {-1, 0}  # face 0 is nearer (z = -1 at a corner)


def test_bad_input_names_the_value():
    verts = torch.zeros(1, 4, 3)
    settings = RasterSettings(8, 8)
    with pytest.raises(ValueError, match="index out of range: 4"):
        rasterize(verts, torch.tensor([[0, 1, 4]]), settings)
    with pytest.raises(ValueError, match="index out of range: -1"):
        rasterize(verts, torch.tensor([[0, 1, -1]]), settings)
    with pytest.raises(ValueError, match=r"\(4, 3\)"):
        rasterize(verts[0], torch.tensor([[0, 1, 2]]), settings)
    with pytest.raises(ValueError, match=r"\(3,\)"):
        rasterize(verts, torch.tensor([0, 1, 2]), settings)
    with pytest.raises(ValueError, match="float32"):
        rasterize(verts, torch.tensor([[0.0, 1.0, 2.0]]), settings)
    with pytest.raises(ValueError, match="height.*0"):
        RasterSettings(0, 8)
    with pytest.raises(ValueError, match="'cuda'"):
        RasterSettings(8, 8, backend="cuda")


def test_empty_mesh_and_auto_backend():
    out = rasterize(torch.zeros(2, 0, 3), torch.zeros(0, 3, dtype=torch.int64), RasterSettings(4, 5))
    assert out.face_index.shape == (2, 4, 5) and (out.face_index == -1).all()
    assert out.bary.shape == (2, 4, 5, 3) and torch.isinf(out.depth).all()


@pytest.mark.cuda
@cuda
def test_cuda_torch_backend_matches_numba():
    verts, faces = procedural_frames()
    for perspective in (False, True):
        a = rasterize(verts, faces, RasterSettings(256, 256, perspective))
        b = rasterize(verts.cuda(), faces.cuda(), RasterSettings(256, 256, perspective))
        assert b.face_index.is_cuda
        assert (a.face_index == b.face_index.cpu()).float().mean() >= 0.9999


def test_interpolation_and_its_gradient_against_a_loop():
    """interpolate_maps (which gathers the covered pixels only) against a per-pixel loop in numpy: the
    values, zeros off the mesh, and the gradient w.r.t. the attributes (each pixel's upstream gradient
    shared out to its face's corners by its barycentrics)."""
    height, width = 24, 20
    verts, faces = random_soup(3, height, width)  # a batch of two
    out = run(verts, faces, height, width, "torch")
    rng = np.random.default_rng(0)
    attributes = torch.from_numpy(rng.normal(size=(2, verts.shape[1], 5))).requires_grad_(True)
    upstream = rng.normal(size=(2, height, width, 5))
    got = interpolate(out, torch.as_tensor(faces), attributes)
    (got * torch.from_numpy(upstream)).sum().backward()
    face_index, bary, a = out.face_index.numpy(), out.bary.double().numpy(), attributes.detach().numpy()
    assert (face_index >= 0).mean() > 0.1
    want, grad = np.zeros((2, height, width, 5)), np.zeros_like(a)
    for b, i, j in np.ndindex(2, height, width):
        if face_index[b, i, j] >= 0:
            corners = faces[face_index[b, i, j]]
            want[b, i, j] = bary[b, i, j] @ a[b, corners]
            for k in range(3):
                grad[b, corners[k]] += bary[b, i, j, k] * upstream[b, i, j]
    np.testing.assert_allclose(got.detach().numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(attributes.grad.numpy(), grad, rtol=0, atol=1e-12)
