"""What a warp cannot follow: a skirt that swings over the legs and long hair that hangs from the head.

Both are meshes of their own beside the body, built every frame from the posed joints (camera axes,
metres, y down: gravity is +y), and rendered with the body. Nothing about them is in the ground-truth
pose: the body model underneath is what a fit recovers, and the correspondence maps, the warp and the
naive reference move only the body surface. A skirt flares from the waist to about the knees, rigid with
the pelvis, its hem pulled after the knees with a lag (exponential smoothing over frames), so a kick lifts
it late and a step swings it. Long hair is a sheet from a ring around the back of the head that falls
along gravity, not along the neck, and trails the head's motion. Lighting stays fixed in the camera's
frame, so the shading of both changes as the person turns.

`LooseSet.for_video` returns the per-frame vertices (N, V', 3), the faces (F', 3), each vertex's
pattern coordinates (angle around, metres along) and which piece a face belongs to.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lwgan.body.poses import SMPL_JOINTS

SKIRT, HAIR = 0, 1
_ROWS, _COLS = 8, 36  # skirt: rings from waist to hem, points around
_HAIR_ROWS, _HAIR_COLS = 7, 15  # hair: rows from the head down, strands across the back


@dataclasses.dataclass(frozen=True)
class LooseChoice:
    """What one video wears beyond the body surface: skirt (length below the waist in metres, flare of the
    hem over the hips' radius, lag 0..1 of the hem behind the knees) and hair (length in metres, lag), None
    for none."""

    skirt: tuple[float, float, float] | None
    hair: tuple[float, float] | None

    @classmethod
    def draw(cls, rng: np.random.Generator, skirt_probability: float, long_hair: bool) -> LooseChoice:
        """A skirt with `skirt_probability`, hair that hangs free for a long-haired subject. The draws are
        made in a fixed order whatever is chosen, so one choice never shifts another's numbers."""
        has_skirt = rng.random() < skirt_probability
        skirt = (float(rng.uniform(0.38, 0.52)), float(rng.uniform(1.25, 1.6)), float(rng.uniform(0.35, 0.6)))
        hair = (float(rng.uniform(0.2, 0.32)), float(rng.uniform(0.4, 0.65)))
        return cls(skirt if has_skirt else None, hair if long_hair else None)

    def describe(self) -> dict:
        out: dict = {}
        if self.skirt is not None:
            out["skirt"] = {"length_m": round(self.skirt[0], 4), "flare": round(self.skirt[1], 4),
                            "lag": round(self.skirt[2], 4)}
        if self.hair is not None:
            out["hair"] = {"length_m": round(self.hair[0], 4), "lag": round(self.hair[1], 4)}
        return out


@dataclasses.dataclass(frozen=True)
class LooseSet:
    """vertices (N, V', 3) float32 camera axes; faces (F', 3) int64 (indices into V'); piece (F',) SKIRT
    or HAIR; angle (V',) radians around the piece's axis; along (V',) metres from its top edge."""

    vertices: np.ndarray
    faces: np.ndarray
    piece: np.ndarray
    angle: np.ndarray
    along: np.ndarray

    @classmethod
    def for_video(cls, choice: LooseChoice, rest_vertices: np.ndarray, rest_joints: np.ndarray,
                  joints: np.ndarray, ears: np.ndarray) -> LooseSet | None:
        """rest_vertices (V, 3) / rest_joints (J, 3): the subject standing in the rest pose (body axes, y
        up); joints (N, J, 3): the posed joints in camera axes; ears (N, 2, 3): posed left and right ear
        keypoints. None when the video wears nothing loose."""
        parts = []
        if choice.skirt is not None:
            parts.append((SKIRT, *_skirt(choice.skirt, rest_vertices, rest_joints, joints)))
        if choice.hair is not None:
            parts.append((HAIR, *_hair(choice.hair, joints, ears)))
        if not parts:
            return None
        verts, faces, piece, angle, along, offset = [], [], [], [], [], 0
        for kind, v, f, a, s in parts:
            verts.append(v)
            faces.append(f + offset)
            piece.append(np.full(len(f), kind, dtype=np.int64))
            angle.append(a)
            along.append(s)
            offset += v.shape[1]
        return cls(np.concatenate(verts, axis=1).astype(np.float32), np.concatenate(faces),
                   np.concatenate(piece), np.concatenate(angle), np.concatenate(along))


def _grid_faces(rows: int, cols: int, wrap: bool) -> np.ndarray:
    """(F, 3) two triangles per cell of a rows x cols vertex grid (row-major), the last column joined to
    the first when `wrap`."""
    faces = []
    last = cols if wrap else cols - 1
    for r in range(rows - 1):
        for c in range(last):
            a, b = r * cols + c, r * cols + (c + 1) % cols
            faces += [(a, b + cols, b), (a, a + cols, b + cols)]
    return np.asarray(faces, dtype=np.int64)


def _frames(origin_up: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal (right, up, forward) (N, 3) each from an up direction and a left-pointing side vector:
    forward = right x up, as +x, +y, +z are left, up and front in the body's rest axes."""
    up = origin_up / np.linalg.norm(origin_up, axis=-1, keepdims=True)
    right = side - np.sum(side * up, axis=-1, keepdims=True) * up
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    return right, up, np.cross(right, up)


def _smooth(values: np.ndarray, lag: float) -> np.ndarray:
    """(N, ...) exponentially smoothed along the frames: out[i] = (1 - lag) * v[i] + lag * out[i - 1]."""
    out = values.copy()
    for i in range(1, len(values)):
        out[i] = (1.0 - lag) * values[i] + lag * out[i - 1]
    return out


def _radii(points: np.ndarray, centre: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """(A,) the largest horizontal distance from `centre` (x, z) of `points` (P, 3) in each of the angular
    sectors centred on `angles` (0 = front, +pi/2 = left), for a ring around them."""
    dx, dz = points[:, 0] - centre[0], points[:, 2] - centre[1]
    theta, radius = np.arctan2(dx, dz), np.hypot(dx, dz)
    width = np.pi / len(angles) * 1.5
    out = np.empty(len(angles))
    for k, a in enumerate(angles):
        near = np.abs(np.angle(np.exp(1j * (theta - a)))) < width
        out[k] = radius[near].max() if near.any() else radius.max()
    return out


def _skirt(shape: tuple[float, float, float], rest: np.ndarray, rest_joints: np.ndarray,
           joints: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    length, flare, lag = shape
    j = {n: SMPL_JOINTS.index(n) for n in ("pelvis", "spine1", "left_hip", "right_hip", "left_knee",
                                           "right_knee")}
    pelvis = rest_joints[j["pelvis"]]
    waist_y = 0.35 * rest_joints[j["spine1"], 1] + 0.65 * pelvis[1] + 0.03
    angles = np.linspace(-np.pi, np.pi, _COLS, endpoint=False)  # 0 = front
    centre = pelvis[[0, 2]]
    band = rest[np.abs(rest[:, 1] - waist_y) < 0.025]
    hips = rest[(rest[:, 1] < waist_y) & (rest[:, 1] > waist_y - 0.22)]  # the widest part it must clear
    r_waist = _radii(band, centre, angles) + 0.012
    r_hem = np.maximum(_radii(hips, centre, angles) + 0.02, r_waist) * flare
    t = np.linspace(0.0, 1.0, _ROWS)[:, None]  # (R, 1) waist -> hem
    radius = r_waist[None] + (r_hem - r_waist)[None] * t ** 0.8  # (R, C): a bell, not a cone
    # In the pelvis frame (x left, y up, z front) relative to the pelvis joint
    height = np.broadcast_to(waist_y - pelvis[1] - length * t, radius.shape)
    local = np.stack((radius * np.sin(angles), height, radius * np.cos(angles)), axis=-1)  # (R, C, 3)

    right, up, forward = _frames(joints[:, j["spine1"]] - joints[:, j["pelvis"]],
                                 joints[:, j["left_hip"]] - joints[:, j["right_hip"]])
    basis = np.stack((right, up, forward), axis=1)  # (N, 3 axes, 3)
    origin = joints[:, j["pelvis"]]  # (N, 3)
    # The hem follows the knees' mean displacement (in the pelvis frame) from where they stand at rest,
    # with a lag; rows lower down follow more.
    knees = 0.5 * (joints[:, j["left_knee"]] + joints[:, j["right_knee"]]) - origin  # (N, 3)
    knees_local = np.einsum("nac,nc->na", basis, knees)  # (N, 3)
    rest_knees = 0.5 * (rest_joints[j["left_knee"]] + rest_joints[j["right_knee"]]) - pelvis
    pull = _smooth(knees_local - rest_knees, lag)  # (N, 3)
    pull[:, 1] = np.maximum(pull[:, 1], 0.0) * 0.5  # a raised knee lifts the hem a little, never lowers it
    shifted = local[None] + 0.7 * (t[None, :, :, None] ** 1.5) * pull[:, None, None, :]  # (N, R, C, 3)
    world = origin[:, None, None] + np.einsum("nrca,nak->nrck", shifted, basis)  # (N, R, C, 3)
    along = np.broadcast_to(length * t, radius.shape).reshape(-1)
    angle = np.broadcast_to(angles, radius.shape).reshape(-1)
    return world.reshape(len(joints), -1, 3), _grid_faces(_ROWS, _COLS, wrap=True), angle, along


def _hair(shape: tuple[float, float], joints: np.ndarray,
          ears: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    length, lag = shape
    head, neck = joints[:, SMPL_JOINTS.index("head")], joints[:, SMPL_JOINTS.index("neck")]
    right, up, forward = _frames(head - neck, ears[:, 0] - ears[:, 1])
    centre = ears.mean(axis=1) + 0.035 * up  # (N, 3) above the ears, inside the skull
    half_width = 0.5 * np.linalg.norm(ears[:, 0] - ears[:, 1], axis=-1)[:, None]  # (N, 1)
    phi = np.linspace(-0.62 * np.pi, 0.62 * np.pi, _HAIR_COLS)  # 0 = straight back
    ring = (np.sin(phi)[None, :, None] * right[:, None] - np.cos(phi)[None, :, None] * forward[:, None])
    anchor = centre[:, None] + (1.12 * half_width[:, :, None] + 0.012) * ring  # (N, C, 3)
    gravity = np.array([0.0, 1.0, 0.0])  # camera y points down
    trail = -(_smooth(np.diff(centre, axis=0, prepend=centre[:1]), lag))  # (N, 3) behind the head's motion
    s = np.linspace(0.0, 1.0, _HAIR_ROWS)  # (R,) from the ring down
    fall = (0.65 * gravity - 0.35 * up)  # mostly down, a little along the head's own down
    fall = fall / np.linalg.norm(fall, axis=-1, keepdims=True)  # (N, 3)
    outward = ring - np.sum(ring * fall[:, None], axis=-1, keepdims=True) * fall[:, None]  # (N, C, 3)
    points = (anchor[:, None]
              + length * s[None, :, None, None] * fall[:, None, None]
              + 0.04 * (s[None, :, None, None] ** 0.7) * outward[:, None]
              + 3.0 * (s[None, :, None, None] ** 2) * trail[:, None, None])  # (N, R, C, 3)
    along = np.repeat(length * s, _HAIR_COLS)
    angle = np.tile(phi, _HAIR_ROWS)
    return points.reshape(len(joints), -1, 3), _grid_faces(_HAIR_ROWS, _HAIR_COLS, wrap=False), angle, along
