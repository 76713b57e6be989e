"""Per-vertex extras of a body model, and how they are derived for a model that lacks them.

lwgan needs, beside the SMPL key set, a COCO-17 keypoint regressor, body-part labels (the head region
among them) and a per-vertex surface coordinate for the conditioning map. The shipped default body
carries all of them; for an SMPL-topology model they are derived here from the model's own data, so no
vertex id or vertex count is ever written in code.

Using your own SMPL model
-------------------------
lwgan runs out of the box with its open default body (``lwgan/assets/default_body.npz``, CC0 mesh). To
use SMPL instead, download a model file yourself from the SMPL website (registration required; its
licence does not allow lwgan to redistribute it) and point the body-model path at it. Accepted are the
official ``.pkl`` files (e.g. ``SMPL_NEUTRAL.pkl`` or ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``)
as they are — neither chumpy nor scipy is needed, and the pickle is read by a restricted loader that
refuses anything but arrays — or any ``.npz``/``.pkl`` holding the SMPL keys ``v_template``,
``shapedirs``, ``posedirs``, ``J_regressor``, ``weights``, ``kintree_table`` and ``f``. Anything with
SMPL's 24-joint skeleton (SMPL 1.0/1.1, any gender) works. What SMPL does not carry is derived:

- body-part labels: each vertex goes to the part of the joint with its largest skinning weight;
- COCO-17 keypoints: shoulders, elbows, wrists, hips, knees and ankles are the joint regressor's rows;
  nose, eyes and ears are placed on the head part's surface from its rest-pose geometry;
- surface coordinates: the normalised position of each vertex in a spread rest pose (see below).

To use your own values instead (for instance a hand-made part segmentation or a keypoint regressor
fitted to your detector), write an ``.npz`` with any of the keys ``kp_regressor`` (K, V) with
``kp_names``, ``part_labels`` (V,) with ``part_names``, ``surface_coords`` (V, 3) in [0, 1], and give
it as the extras file: its arrays replace both the model file's and the derived ones. A model with a
skeleton other than SMPL's must supply all extras this way.

Surface coordinates
-------------------
``surface_coords`` (V, 3) in [0, 1] are the vertex positions of the mean shape posed in a spread rest
pose (legs abducted by `SPREAD_HIP_DEGREES` so the inner thighs separate; an SMPL rest pose already
holds the arms out), each axis min-max normalised over the body. They are smooth over the surface (a
continuous function of the rest surface), distinct across parts (two points of the spread body never
coincide), identical for every shape and pose of the same vertex (a canonical code, like the original
LWGAN's template-coordinate map), and defined for any topology without a hand-made UV layout. A UV
atlas was not used because its charts have seams: a per-vertex code would jump across them.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from lwgan.body.model_io import BodyModelData, BodyModelError

logger = logging.getLogger(__name__)

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)  # fmt: skip

COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

PART_NAMES: tuple[str, ...] = (
    "head", "torso", "left_upper_arm", "right_upper_arm", "left_lower_arm", "right_lower_arm",
    "left_hand", "right_hand", "left_upper_leg", "right_upper_leg", "left_lower_leg", "right_lower_leg",
    "left_foot", "right_foot",
)  # fmt: skip
HEAD_PART = "head"

# The part each SMPL joint's skinning region belongs to (a joint moves the limb segment below it).
SMPL_JOINT_TO_PART: dict[str, str] = {
    "pelvis": "torso", "spine1": "torso", "spine2": "torso", "spine3": "torso", "neck": "torso",
    "left_collar": "torso", "right_collar": "torso", "head": "head",
    "left_hip": "left_upper_leg", "right_hip": "right_upper_leg",
    "left_knee": "left_lower_leg", "right_knee": "right_lower_leg",
    "left_ankle": "left_foot", "right_ankle": "right_foot",
    "left_foot": "left_foot", "right_foot": "right_foot",
    "left_shoulder": "left_upper_arm", "right_shoulder": "right_upper_arm",
    "left_elbow": "left_lower_arm", "right_elbow": "right_lower_arm",
    "left_wrist": "left_hand", "right_wrist": "right_hand",
    "left_hand": "left_hand", "right_hand": "right_hand",
}  # fmt: skip

# COCO body keypoints that are SMPL joints.
COCO_FROM_SMPL_JOINT: dict[str, str] = {
    name: name
    for name in (
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    )
}  # fmt: skip

SPREAD_HIP_DEGREES = 25.0

# Face landmarks relative to the head part, as fractions of the nose-tip-to-crown height and of the head
# width; adult proportions (eyes ~4 cm above the nose tip, ~6.3 cm apart, ears a little below the eyes).
_EYE_HEIGHT = 0.27
_EYE_HALF_SPACING = 0.2
_EAR_HEIGHT = 0.15
_LANDMARK_RADIUS = 0.012  # metres: vertices averaged around a landmark


def smpl_joint_names(data: BodyModelData) -> tuple[str, ...] | None:
    """The model's joint names if its skeleton is SMPL's 24-joint tree, else None."""
    names = data.joint_names
    if names is None and data.num_joints == len(SMPL_JOINT_NAMES):
        names = SMPL_JOINT_NAMES
    if names != SMPL_JOINT_NAMES or tuple(int(p) for p in data.parents) != SMPL_PARENTS:
        return None
    return names


def part_labels_from_weights(
    weights: np.ndarray, joint_names: tuple[str, ...] = SMPL_JOINT_NAMES
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Body-part label of each vertex: the part of its most-weighted joint.

    weights: (V, J) skinning weights. Returns labels (V,) int64 indexing `PART_NAMES`, and `PART_NAMES`.
    """
    joint_part = np.array([PART_NAMES.index(SMPL_JOINT_TO_PART[name]) for name in joint_names])
    return joint_part[np.argmax(weights, axis=1)].astype(np.int64), PART_NAMES


def _rodrigues(axis_angle: np.ndarray) -> np.ndarray:
    """(3,) axis-angle -> (3, 3) rotation matrix."""
    angle = float(np.linalg.norm(axis_angle))
    if angle < 1e-12:
        return np.eye(3)
    k = axis_angle / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


def pose_rest_vertices(data: BodyModelData, rotations: dict[int, np.ndarray]) -> np.ndarray:
    """Linear-blend-skin the template with per-joint axis-angle rotations (SMPL semantics).

    rotations: joint index -> (3,) axis-angle relative to the parent; other joints keep the rest pose.
    Returns (V, 3) float64 posed vertices of the mean shape.
    """
    vertices = data.v_template.astype(np.float64)
    joints = data.J_regressor.astype(np.float64) @ vertices  # (J, 3)
    parents = data.parents
    transforms = np.zeros((data.num_joints, 4, 4))
    for j in range(data.num_joints):
        local = np.eye(4)
        local[:3, :3] = _rodrigues(np.asarray(rotations.get(j, np.zeros(3)), dtype=np.float64))
        local[:3, 3] = joints[j] - (joints[parents[j]] if j > 0 else 0.0)
        transforms[j] = local if j == 0 else transforms[parents[j]] @ local
    skinning = transforms.copy()
    skinning[:, :3, 3] -= np.einsum("jab,jb->ja", transforms[:, :3, :3], joints)  # rest joint -> origin first
    blended = np.einsum("vj,jab->vab", data.weights.astype(np.float64), skinning)  # (V, 4, 4)
    return np.einsum("vab,vb->va", blended[:, :3, :3], vertices) + blended[:, :3, 3]


def surface_coords_from_rest(data: BodyModelData) -> np.ndarray:
    """(V, 3) float32 in [0, 1]: normalised vertex positions in the spread rest pose (module docstring)."""
    rotations: dict[int, np.ndarray] = {}
    if smpl_joint_names(data) is not None:
        angle = np.deg2rad(SPREAD_HIP_DEGREES)
        rotations[SMPL_JOINT_NAMES.index("left_hip")] = np.array([0.0, 0.0, angle])
        rotations[SMPL_JOINT_NAMES.index("right_hip")] = np.array([0.0, 0.0, -angle])
    posed = pose_rest_vertices(data, rotations)
    low, high = posed.min(axis=0), posed.max(axis=0)
    coords = (posed - low) / np.maximum(high - low, 1e-9)
    return np.clip(coords, 0.0, 1.0).astype(np.float32)


def _landmark_weights(vertices: np.ndarray, candidates: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(V,) weights averaging the candidate vertices within `_LANDMARK_RADIUS` of target (else nearest)."""
    distance = np.linalg.norm(vertices[candidates] - target, axis=1)
    chosen = candidates[distance <= _LANDMARK_RADIUS]
    if chosen.size == 0:
        chosen = candidates[[int(np.argmin(distance))]]
    weights = np.zeros(len(vertices), dtype=np.float64)
    weights[chosen] = 1.0 / chosen.size
    return weights


def face_keypoint_weights(vertices: np.ndarray, head_mask: np.ndarray) -> dict[str, np.ndarray]:
    """Regressor rows (V,) for nose, eyes and ears from the rest-pose head (Y up, facing +Z, left = +X).

    vertices: (V, 3) rest vertices; head_mask: (V,) bool, the head part.
    """
    head = np.flatnonzero(head_mask)
    if head.size < 10:
        raise BodyModelError(f"the head part has only {head.size} vertices; cannot place face keypoints")
    points = vertices[head]
    centre_x = float(np.median(points[:, 0]))
    width = float(points[:, 0].max() - points[:, 0].min())
    top = float(points[:, 1].max())
    # Nose tip: the most forward head vertex near the mid-sagittal plane.
    midline = head[np.abs(points[:, 0] - centre_x) < 0.1 * width]
    nose = midline[int(np.argmax(vertices[midline, 2]))]
    nose_y = float(vertices[nose, 1])
    rows = {"nose": _landmark_weights(vertices, head, vertices[nose])}
    eye_y = nose_y + _EYE_HEIGHT * (top - nose_y)
    ear_y = nose_y + _EAR_HEIGHT * (top - nose_y)
    band = head[np.abs(vertices[head, 1] - ear_y) < 0.02]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye_x = centre_x + sign * _EYE_HALF_SPACING * width
        near = head[np.hypot(vertices[head, 0] - eye_x, vertices[head, 1] - eye_y) < 0.015]
        if near.size == 0:
            near = head[[int(np.argmin(np.hypot(vertices[head, 0] - eye_x, vertices[head, 1] - eye_y)))]]
        eye = near[int(np.argmax(vertices[near, 2]))]
        rows[f"{side}_eye"] = _landmark_weights(vertices, head, vertices[eye])
        ear = (
            band[int(np.argmax(sign * vertices[band, 0]))]
            if band.size
            else head[int(np.argmax(sign * points[:, 0]))]
        )
        rows[f"{side}_ear"] = _landmark_weights(vertices, head, vertices[ear])
    return rows


def coco_regressor_from_smpl(data: BodyModelData, head_mask: np.ndarray) -> np.ndarray:
    """(17, V) float32 COCO-17 regressor: joint-regressor rows for the limbs, head geometry for the face."""
    face = face_keypoint_weights(data.v_template.astype(np.float64), head_mask)
    rows = []
    for name in COCO_KEYPOINT_NAMES:
        if name in COCO_FROM_SMPL_JOINT:
            rows.append(
                data.J_regressor[SMPL_JOINT_NAMES.index(COCO_FROM_SMPL_JOINT[name])].astype(np.float64)
            )
        else:
            rows.append(face[name])
    return np.stack(rows).astype(np.float32)


def complete_extras(data: BodyModelData) -> BodyModelData:
    """Return ``data`` with every missing extra derived (module docstring); present extras are kept.

    Raises `BodyModelError` when an extra is missing and the skeleton is not SMPL's 24-joint tree.
    """
    if data.has_extras:
        return data
    joint_names = smpl_joint_names(data)
    if joint_names is None:
        missing = [k for k in ("kp_regressor", "part_labels", "surface_coords") if getattr(data, k) is None]
        raise BodyModelError(
            f"{data.source}: lacks {', '.join(missing)} and its skeleton is not SMPL's 24 joints, so they "
            "cannot be derived; supply them in an extras .npz (kp_regressor + kp_names, part_labels + "
            "part_names, surface_coords)"
        )
    updates: dict[str, object] = {"joint_names": joint_names}
    part_labels, part_names = data.part_labels, data.part_names
    if part_labels is None:
        part_labels, part_names = part_labels_from_weights(data.weights, joint_names)
        updates.update(part_labels=part_labels, part_names=part_names)
    if data.kp_regressor is None:
        if HEAD_PART not in part_names:
            raise BodyModelError(
                f"{data.source}: 'part_names' has no {HEAD_PART!r} part to place face keypoints on"
            )
        head_mask = part_labels == part_names.index(HEAD_PART)
        updates.update(kp_regressor=coco_regressor_from_smpl(data, head_mask), kp_names=COCO_KEYPOINT_NAMES)
    if data.surface_coords is None:
        updates["surface_coords"] = surface_coords_from_rest(data)
    logger.info("%s: derived %s", data.source, ", ".join(k for k in updates if k != "joint_names"))
    return dataclasses.replace(data, **updates)
