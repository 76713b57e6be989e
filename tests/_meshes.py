"""Test meshes for the renderer: tiny hand-made triangles and a procedural closed body-like mesh.

The procedural body is a union of closed ellipsoids placed along a simple articulated skeleton (Y-up,
metres, facing +Z like SMPL's rest frame); with the default resolution it has ~15k faces. `to_image`
places any Y-up mesh in NDC the way a weak-perspective camera of `lwgan.geometry` would.
"""

from __future__ import annotations

import numpy as np

# (name, parent joint, offset from parent in metres, Y-up) of a ~1.7 m person in a T-less rest pose.
_SKELETON = [
    ("pelvis", None, (0.0, 0.95, 0.0)),
    ("chest", "pelvis", (0.0, 0.30, 0.0)),
    ("neck", "chest", (0.0, 0.22, 0.0)),
    ("head", "neck", (0.0, 0.22, 0.0)),
    ("l_shoulder", "chest", (0.18, 0.18, 0.0)),
    ("l_elbow", "l_shoulder", (0.0, -0.28, 0.0)),
    ("l_wrist", "l_elbow", (0.0, -0.25, 0.0)),
    ("l_hand", "l_wrist", (0.0, -0.12, 0.0)),
    ("r_shoulder", "chest", (-0.18, 0.18, 0.0)),
    ("r_elbow", "r_shoulder", (0.0, -0.28, 0.0)),
    ("r_wrist", "r_elbow", (0.0, -0.25, 0.0)),
    ("r_hand", "r_wrist", (0.0, -0.12, 0.0)),
    ("l_hip", "pelvis", (0.10, -0.05, 0.0)),
    ("l_knee", "l_hip", (0.0, -0.42, 0.0)),
    ("l_ankle", "l_knee", (0.0, -0.42, 0.0)),
    ("l_toe", "l_ankle", (0.0, -0.05, 0.15)),
    ("r_hip", "pelvis", (-0.10, -0.05, 0.0)),
    ("r_knee", "r_hip", (0.0, -0.42, 0.0)),
    ("r_ankle", "r_knee", (0.0, -0.42, 0.0)),
    ("r_toe", "r_ankle", (0.0, -0.05, 0.15)),
]
# (from joint, to joint, thickness radius in metres): one ellipsoid per segment.
_SEGMENTS = [
    ("pelvis", "chest", 0.16), ("chest", "neck", 0.17), ("neck", "head", 0.06),
    ("l_shoulder", "l_elbow", 0.055), ("l_elbow", "l_wrist", 0.045), ("l_wrist", "l_hand", 0.04),
    ("r_shoulder", "r_elbow", 0.055), ("r_elbow", "r_wrist", 0.045), ("r_wrist", "r_hand", 0.04),
    ("l_hip", "l_knee", 0.08), ("l_knee", "l_ankle", 0.06), ("l_ankle", "l_toe", 0.045),
    ("r_hip", "r_knee", 0.08), ("r_knee", "r_ankle", 0.06), ("r_ankle", "r_toe", 0.045),
]


def rotation(axis: tuple[float, float, float], angle: float) -> np.ndarray:
    """(3, 3) rotation matrix of `angle` radians about `axis` (Rodrigues)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def ellipsoid(n_lat: int, n_lon: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed unit sphere: (V, 3) vertices with poles at +-y, (F, 3) int64 faces, consistently wound."""
    theta = np.linspace(0.0, np.pi, n_lat + 1)[1:-1]  # (n_lat - 1,) rings between the poles
    phi = np.linspace(0.0, 2 * np.pi, n_lon, endpoint=False)
    ring = np.stack(
        [np.outer(np.sin(theta), np.cos(phi)), np.repeat(np.cos(theta)[:, None], n_lon, 1),
         np.outer(np.sin(theta), np.sin(phi))], axis=-1,
    ).reshape(-1, 3)  # ((n_lat - 1) * n_lon, 3)
    verts = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    top, bottom = 0, len(verts) - 1
    faces = []
    for j in range(n_lon):
        jn = (j + 1) % n_lon
        faces.append((top, 1 + jn, 1 + j))
        for i in range(n_lat - 2):
            a, b = 1 + i * n_lon + j, 1 + i * n_lon + jn
            c, d = a + n_lon, b + n_lon
            faces += [(a, b, d), (a, d, c)]
        last = 1 + (n_lat - 2) * n_lon
        faces.append((bottom, last + j, last + jn))
    return verts, np.asarray(faces, dtype=np.int64)


def procedural_body(
    pose: dict[str, tuple[tuple[float, float, float], float]] | None = None, n_lat: int = 24, n_lon: int = 22
) -> tuple[np.ndarray, np.ndarray]:
    """Body-like closed mesh: (V, 3) float64 vertices (Y-up metres) and (F, 3) int64 faces (~15k).

    pose maps a joint name to (axis, angle): that joint and all its children rotate about it.
    """
    pose = pose or {}
    world_rot: dict[str, np.ndarray] = {}
    world_pos: dict[str, np.ndarray] = {}
    for name, parent, offset in _SKELETON:
        local = rotation(*pose[name]) if name in pose else np.eye(3)
        if parent is None:
            world_rot[name], world_pos[name] = local, np.asarray(offset, dtype=np.float64)
        else:
            world_rot[name] = world_rot[parent] @ local
            world_pos[name] = world_pos[parent] + world_rot[parent] @ np.asarray(offset)
    unit_v, unit_f = ellipsoid(n_lat, n_lon)
    all_v, all_f = [], []
    for start, end, radius in _SEGMENTS:
        a, b = world_pos[start], world_pos[end]
        axis = b - a
        half = 0.5 * np.linalg.norm(axis) + 0.6 * radius
        y = axis / np.linalg.norm(axis)
        x = np.cross(y, [0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.cross(y, [1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        frame = np.stack([x, y, np.cross(x, y)], axis=1)  # columns: local axes in world
        all_f.append(unit_f + sum(len(v) for v in all_v))
        all_v.append((unit_v * [radius, half, radius]) @ frame.T + 0.5 * (a + b))
    head = world_pos["head"] + world_rot["head"] @ np.array([0.0, 0.02, 0.0])
    all_f.append(unit_f + sum(len(v) for v in all_v))
    all_v.append(unit_v * [0.1, 0.12, 0.11] + head)
    return np.concatenate(all_v), np.concatenate(all_f)


POSES: list[dict[str, tuple[tuple[float, float, float], float]]] = [
    {},
    {"l_shoulder": ((0, 0, 1), 1.3), "r_shoulder": ((0, 0, 1), -0.4), "l_elbow": ((1, 0, 0), -1.2),
     "r_hip": ((1, 0, 0), -0.6), "r_knee": ((1, 0, 0), 1.0), "pelvis": ((0, 1, 0), 0.5)},
    {"l_shoulder": ((1, 0, 0), -1.4), "r_shoulder": ((1, 0, 0), -1.0), "r_elbow": ((0, 1, 0), 1.0),
     "l_hip": ((1, 0, 0), -1.2), "l_knee": ((1, 0, 0), 1.4), "chest": ((1, 0, 0), 0.3),
     "pelvis": ((0, 1, 0), 2.2)},
    {"l_shoulder": ((0, 0, 1), 2.8), "r_shoulder": ((0, 0, 1), -2.8), "l_hip": ((0, 0, 1), 0.4),
     "r_hip": ((0, 0, 1), -0.4), "pelvis": ((0, 1, 0), -1.4), "neck": ((1, 0, 0), 0.4)},
]


def to_image(verts: np.ndarray, fill: float = 0.6, yaw: float = 0.0, depth: float = 0.0) -> np.ndarray:
    """Y-up (V, 3) mesh -> (V, 3) float32 [x, y NDC, z depth] filling `fill` of the image height.

    Rotates by `yaw` about the up axis, then by pi about x (geometry.py: upright, facing the camera), and
    scales (weak perspective) so the mesh spans `fill` * 2 NDC units vertically, centred. z is camera-axis
    depth plus `depth`.
    """
    cam = verts @ (rotation((1, 0, 0), np.pi) @ rotation((0, 1, 0), yaw)).T
    lo, hi = cam.min(0), cam.max(0)
    scale = 2.0 * fill / (hi[1] - lo[1])
    centre = 0.5 * (lo + hi)
    xy = (cam[:, :2] - centre[:2]) * scale
    return np.concatenate([xy, cam[:, 2:] + depth], axis=1).astype(np.float32)
