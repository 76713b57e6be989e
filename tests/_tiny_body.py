"""A tiny synthetic model in SMPL's layout (24 joints, SMPL's tree) for loader and extras tests.

Every joint carries a small closed octahedron of vertices skinned only to it; the head carries a sphere
so that face keypoints have a surface to sit on. Y up, facing +Z, the person's left on +X, T-pose.
"""

from __future__ import annotations

import numpy as np

from lwgan.body.extras import SMPL_JOINT_NAMES, SMPL_PARENTS

# Rest joint positions (metres) of a ~1.7 m T-posed figure.
JOINTS = np.array(
    [
        [0.00, 0.00, 0.00], [0.08, -0.08, 0.00], [-0.08, -0.08, 0.00], [0.00, 0.12, 0.00],
        [0.09, -0.48, 0.01], [-0.09, -0.48, 0.01], [0.00, 0.25, 0.01], [0.09, -0.88, -0.02],
        [-0.09, -0.88, -0.02], [0.00, 0.31, 0.01], [0.10, -0.93, 0.10], [-0.10, -0.93, 0.10],
        [0.00, 0.52, -0.01], [0.07, 0.43, 0.00], [-0.07, 0.43, 0.00], [0.00, 0.60, 0.03],
        [0.18, 0.44, -0.01], [-0.18, 0.44, -0.01], [0.44, 0.44, -0.02], [-0.44, 0.44, -0.02],
        [0.70, 0.44, -0.01], [-0.70, 0.44, -0.01], [0.79, 0.44, -0.01], [-0.79, 0.44, -0.01],
    ]
)  # fmt: skip
HEAD_RADIUS = 0.1


def _octahedron(centre: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    offsets = radius * np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    return centre + offsets, faces


def _sphere(
    centre: np.ndarray, radius: float, rings: int = 8, segments: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    points = [centre + [0.0, radius, 0.0]]
    for i in range(1, rings):
        theta = np.pi * i / rings
        for j in range(segments):
            phi = 2 * np.pi * j / segments
            direction = [np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)]
            points.append(centre + radius * np.array(direction))
    points.append(centre - [0.0, radius, 0.0])
    faces = []
    ring = lambda i, j: 1 + (i - 1) * segments + j % segments  # noqa: E731
    for j in range(segments):
        faces.append([0, ring(1, j), ring(1, j + 1)])
        faces.append([len(points) - 1, ring(rings - 1, j + 1), ring(rings - 1, j)])
    for i in range(1, rings - 1):
        for j in range(segments):
            faces.append([ring(i, j), ring(i + 1, j), ring(i + 1, j + 1)])
            faces.append([ring(i, j), ring(i + 1, j + 1), ring(i, j + 1)])
    return np.array(points), np.array(faces)


def tiny_smpl_arrays(num_betas: int = 2) -> dict[str, np.ndarray]:
    """The SMPL key set of the tiny model, in the dtypes of an official SMPL file."""
    vertices, faces, owners = [], [], []
    for j, centre in enumerate(JOINTS):
        if SMPL_JOINT_NAMES[j] == "head":
            points, tris = _sphere(centre + [0.0, 0.08, 0.0], HEAD_RADIUS)
        else:
            points, tris = _octahedron(centre, 0.03)
        faces.append(tris + sum(len(v) for v in vertices))
        vertices.append(points)
        owners += [j] * len(points)
    v_template = np.concatenate(vertices)
    num_v, num_j = len(v_template), len(JOINTS)
    weights = np.zeros((num_v, num_j))
    weights[np.arange(num_v), owners] = 1.0
    regressor = np.zeros((num_j, num_v))
    for j in range(num_j):  # the octahedra's means are the joints; the head's is its sphere centre
        members = np.flatnonzero(np.array(owners) == j)
        regressor[j, members] = 1.0 / len(members)
    regressor[15] = 0.0
    head = np.flatnonzero(np.array(owners) == 15)
    bottom = head[np.argmin(v_template[head, 1])]
    regressor[15, bottom] = 1.0  # the head joint sits at the sphere's bottom vertex, near the neck
    shapedirs = np.zeros((num_v, 3, num_betas))
    shapedirs[:, 1, 0] = 0.1 * v_template[:, 1]  # beta 0 stretches the figure vertically
    if num_betas > 1:
        shapedirs[:, 0, 1] = 0.05 * v_template[:, 0]  # beta 1 widens it
    parents = np.array(SMPL_PARENTS, dtype=np.int64)
    parents[0] = 4294967295  # as official SMPL files store the root's parent
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": np.zeros((num_v, 3, 9 * (num_j - 1))),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack((parents, np.arange(num_j))).astype(np.uint32).astype(np.int64),
        "f": np.concatenate(faces).astype(np.uint32),
    }
