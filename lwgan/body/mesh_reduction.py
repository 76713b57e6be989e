"""Reducing a skinned body mesh while keeping every per-vertex quantity consistent.

Used only by `lwgan.body.build_default`. The largest connected component (the body surface) is reduced
by quadric edge collapse (``fast-simplification``); other components (eyeballs and mouth interior inside a
closed head) are dropped, as they never show in a render of a closed surface. Each new vertex is then
snapped to its closest point on the original surface and stored as barycentric coordinates of an
original triangle, so anything linear in the vertices (shapes, skinning weights) carries over exactly
with `MeshReduction.transfer`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MeshReduction:
    """A reduced mesh expressed in an original one.

    corners:      (V', 3) int64 original vertex ids of the triangle each new vertex lies on.
    barycentrics: (V', 3) float64 its barycentric coordinates in that triangle (rows sum to 1).
    faces:        (F', 3) int64 new triangles, same orientation as the original surface.
    owner:        (V,) int64 new vertex that stands for each original vertex (its collapse target, or the
                  nearest new vertex for a vertex of a dropped component).
    """

    corners: np.ndarray
    barycentrics: np.ndarray
    faces: np.ndarray
    owner: np.ndarray

    @property
    def num_vertices(self) -> int:
        return int(self.corners.shape[0])

    def transfer(self, values: np.ndarray, axis: int = 0) -> np.ndarray:
        """Interpolate per-original-vertex values (..., V, ...) along ``axis`` to the new vertices."""
        moved = np.moveaxis(values, axis, 0)  # (V, ...)
        weights = self.barycentrics.reshape(self.barycentrics.shape + (1,) * (moved.ndim - 1))
        out = (moved[self.corners] * weights).sum(axis=1)  # (V', ...)
        return np.moveaxis(out, 0, axis)

    def lump(self, rows: np.ndarray) -> np.ndarray:
        """(K, V) per-original-vertex weights -> (K, V'): each weight moves to its vertex's owner."""
        out = np.zeros((rows.shape[0], self.num_vertices), dtype=np.float64)
        np.add.at(out.T, self.owner, rows.T)
        return out


def connected_components(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """(V,) component id of each vertex (vertices joined by triangle edges)."""
    label = np.arange(num_vertices)
    edges = np.concatenate((faces[:, [0, 1]], faces[:, [1, 2]]))
    while True:  # label propagation: every vertex takes the smallest label among its neighbours
        low = np.minimum(label[edges[:, 0]], label[edges[:, 1]])
        updated = label.copy()
        np.minimum.at(updated, edges[:, 0], low)
        np.minimum.at(updated, edges[:, 1], low)
        updated = updated[updated]
        if np.array_equal(updated, label):
            return label
        label = updated


def closest_on_triangles(points: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(M, 3) barycentric coordinates of the closest point to points[m] on triangle (a, b, c)[m]."""
    ab, ac, ap = b - a, c - a, points - a
    normal = np.cross(ab, ac)
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-20)
    projected = ap - (ap * normal).sum(1, keepdims=True) * normal
    d00, d01, d11 = (ab * ab).sum(1), (ab * ac).sum(1), (ac * ac).sum(1)
    d20, d21 = (projected * ab).sum(1), (projected * ac).sum(1)
    denominator = np.maximum(d00 * d11 - d01 * d01, 1e-30)
    v = (d11 * d20 - d01 * d21) / denominator
    w = (d00 * d21 - d01 * d20) / denominator
    result = np.stack((1.0 - v - w, v, w), axis=1)
    outside = result.min(axis=1) < 0.0
    if outside.any():  # the closest point is on an edge: try all three, keep the nearest
        corners = (a[outside], b[outside], c[outside])
        p = points[outside]
        best = np.full(len(p), np.inf)
        chosen = np.zeros((len(p), 3))
        for i, j in ((0, 1), (1, 2), (2, 0)):
            start, end = corners[i], corners[j]
            edge = end - start
            t = np.clip(((p - start) * edge).sum(1) / np.maximum((edge * edge).sum(1), 1e-30), 0.0, 1.0)
            distance = np.linalg.norm(start + t[:, None] * edge - p, axis=1)
            better = distance < best
            best[better] = distance[better]
            bary = np.zeros((len(p), 3))
            bary[:, i], bary[:, j] = 1.0 - t, t
            chosen[better] = bary[better]
        result[outside] = chosen
    return result


def reduce_mesh(
    vertices: np.ndarray, faces: np.ndarray, target_faces: int, aggressiveness: float = 3.0
) -> MeshReduction:
    """Reduce the largest component of (V, 3) vertices / (F, 3) faces to about ``target_faces`` triangles.

    aggressiveness: fast-simplification's ``agg``; lower keeps the shape better (3 gave under 0.05 %
    flipped triangles on the MakeHuman body, the default 7 about 0.1 %).
    """
    import fast_simplification

    component = connected_components(faces, len(vertices))
    body = np.bincount(component).argmax()
    body_faces = faces[component[faces[:, 0]] == body]
    points, new_faces, collapses = fast_simplification.simplify(
        vertices.astype(np.float64),
        body_faces.astype(np.int32),
        target_count=target_faces,
        agg=aggressiveness,
        return_collapses=True,
    )
    parent = np.arange(len(vertices))
    for survivor, removed in collapses:  # "removed" collapses into "survivor", in this order
        parent[removed] = survivor
    root = parent.copy()
    while not np.array_equal(parent[root], root):  # follow chains of collapses to their final survivor
        root = parent[root]
    # fast-simplification returns its surviving vertices in their original order.
    survivors = np.unique(root[np.unique(body_faces)])
    if len(survivors) != len(points):
        raise RuntimeError(f"{len(points)} reduced vertices but {len(survivors)} collapse survivors")
    new_index = np.full(len(vertices), -1)
    new_index[survivors] = np.arange(len(survivors))
    owner = new_index[root]
    # Snap each new vertex to the closest point of the original triangles around its collapsed vertices.
    pairs = np.unique(
        np.concatenate(
            [np.stack((owner[body_faces[:, k]], np.arange(len(body_faces))), 1) for k in range(3)]
        ),
        axis=0,
    )
    tri = body_faces[pairs[:, 1]]
    bary = closest_on_triangles(
        points[pairs[:, 0]], vertices[tri[:, 0]], vertices[tri[:, 1]], vertices[tri[:, 2]]
    )
    snapped = np.einsum("mk,mkc->mc", bary, vertices[tri])
    distance = np.linalg.norm(snapped - points[pairs[:, 0]], axis=1)
    order = np.lexsort((distance, pairs[:, 0]))
    first = order[np.unique(pairs[order, 0], return_index=True)[1]]  # nearest candidate per new vertex
    dropped = np.flatnonzero(owner < 0)  # vertices of dropped components: nearest new vertex stands for them
    new_positions = np.einsum("mk,mkc->mc", bary[first], vertices[tri[first]])
    for index in dropped:
        owner[index] = int(np.argmin(np.linalg.norm(new_positions - vertices[index], axis=1)))
    return MeshReduction(
        corners=tri[first].astype(np.int64),
        barycentrics=bary[first],
        faces=new_faces.astype(np.int64),
        owner=owner,
    )


def flipped_faces(reduction: MeshReduction, vertices: np.ndarray, faces: np.ndarray) -> int:
    """Number of new triangles whose normal opposes the original surface's normal at their corners."""
    normals = np.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]
    )
    vertex_normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(vertex_normals, faces[:, k], normals)
    new_vertices = reduction.transfer(vertices)
    new_normals = reduction.transfer(vertex_normals)
    f = reduction.faces
    face_normals = np.cross(
        new_vertices[f[:, 1]] - new_vertices[f[:, 0]], new_vertices[f[:, 2]] - new_vertices[f[:, 0]]
    )
    return int(((face_normals * new_normals[f].sum(axis=1)).sum(axis=1) < 0).sum())
