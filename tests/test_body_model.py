"""`BodyModel` on the shipped open default body."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwgan.body.extras import COCO_KEYPOINT_NAMES, PART_NAMES, SMPL_JOINT_NAMES
from lwgan.body.model import BodyModel, default_body_path
from lwgan.body.model_io import BodyModelError, load_body_model


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.default()


def _joint(out, name: str) -> torch.Tensor:
    return out.joints[:, SMPL_JOINT_NAMES.index(name)]


def _keypoint(out, name: str) -> torch.Tensor:
    return out.keypoints[:, COCO_KEYPOINT_NAMES.index(name)]


def _pose(**angles: tuple[float, float, float]) -> torch.Tensor:
    """(1, 72) axis-angle pose from {joint: axis-angle}."""
    pose = torch.zeros(1, 24, 3)
    for name, value in angles.items():
        pose[0, SMPL_JOINT_NAMES.index(name)] = torch.tensor(value)
    return pose.reshape(1, 72)


def test_default_body_ships_with_its_licence_and_all_extras():
    path = default_body_path()
    assert path.is_file() and (path.parent / "LICENSE-default-body.md").is_file()
    data = load_body_model(path)
    assert data.has_extras and data.joint_names == SMPL_JOINT_NAMES
    assert data.kp_names == COCO_KEYPOINT_NAMES and set(PART_NAMES) <= set(data.part_names)
    assert data.num_joints == 24 and data.num_betas >= 10
    assert data.num_faces <= 2 * data.num_vertices  # a closed surface, reduced for the rasteriser


def test_output_shapes_and_faces(body):
    out = body(torch.zeros(2, body.num_betas), torch.zeros(2, 72))
    assert out.vertices.shape == (2, body.num_vertices, 3)
    assert out.joints.shape == (2, 24, 3) and out.keypoints.shape == (2, 17, 3)
    assert (
        body.faces.shape[1] == 3 and int(body.faces.min()) == 0 and int(body.faces.max()) < body.num_vertices
    )


def test_zero_pose_and_betas_give_the_template(body):
    out = body(torch.zeros(1, body.num_betas), torch.zeros(1, 72))
    template = torch.as_tensor(body.rest_vertices())
    torch.testing.assert_close(out.vertices[0], template)
    torch.testing.assert_close(out.joints[0], body.smpl.J_regressor @ template)


def test_rest_frame_is_y_up_facing_plus_z_left_on_plus_x(body):
    out = body(torch.zeros(1, body.num_betas), torch.zeros(1, 72))
    vertices = out.vertices[0]
    height = vertices[:, 1].max() - vertices[:, 1].min()
    assert 1.5 < float(height) < 1.9  # metres
    assert _joint(out, "left_ankle")[0, 1] < _joint(out, "left_knee")[0, 1] < _joint(out, "left_hip")[0, 1]
    assert _joint(out, "head")[0, 1] > _joint(out, "neck")[0, 1] > _joint(out, "pelvis")[0, 1]
    assert (
        float(vertices[:, 1].min())
        < float(_joint(out, "left_ankle")[0, 1])
        < float(vertices[:, 1].min()) + 0.15
    )
    assert _keypoint(out, "nose")[0, 2] > _joint(out, "head")[0, 2] + 0.05  # the face looks along +Z
    for name in ("left_shoulder", "left_elbow", "left_wrist", "left_hip", "left_knee", "left_ankle"):
        assert _joint(out, name)[0, 0] > 0.05 and _joint(out, name.replace("left", "right"))[0, 0] < -0.05
    # T-pose: the arm is straight and horizontal.
    arm = _joint(out, "left_wrist")[0] - _joint(out, "left_shoulder")[0]
    assert abs(float(arm[1])) < 0.03 and float(arm[0]) > 0.4


def test_keypoints_are_near_their_joints(body):
    out = body(torch.zeros(1, body.num_betas), _pose(left_shoulder=(0, 0, -1.2), right_knee=(0.8, 0, 0)))
    limbs = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    for name in [f"{side}_{limb}" for side in ("left", "right") for limb in limbs]:
        distance = torch.linalg.norm(_keypoint(out, name) - _joint(out, name))
        assert float(distance) < 0.07, name
    head = _joint(out, "head")[0]
    for name in COCO_KEYPOINT_NAMES[:5]:
        assert float(torch.linalg.norm(_keypoint(out, name)[0] - head)) < 0.16, name


def test_keypoints_follow_a_bent_elbow(body):
    rest = body(torch.zeros(1, body.num_betas), torch.zeros(1, 72))
    bent = body(torch.zeros(1, body.num_betas), _pose(left_elbow=(0, -np.pi / 2, 0)))
    torch.testing.assert_close(_joint(bent, "left_elbow"), _joint(rest, "left_elbow"))
    forearm = _keypoint(bent, "left_wrist")[0] - _joint(bent, "left_elbow")[0]
    assert float(forearm[2]) > 0.2 and abs(float(forearm[0])) < 0.05  # now points forward (+Z)
    torch.testing.assert_close(_keypoint(bent, "right_wrist"), _keypoint(rest, "right_wrist"))


def test_betas_change_the_shape_and_short_betas_are_padded(body):
    taller = body(torch.tensor([[2.0]]), torch.zeros(1, 72)).vertices[0]
    shorter = body(torch.tensor([[-2.0]]), torch.zeros(1, 72)).vertices[0]
    assert (
        float(taller[:, 1].max() - taller[:, 1].min())
        > float(shorter[:, 1].max() - shorter[:, 1].min()) + 0.1
    )
    padded = torch.zeros(1, body.num_betas)
    padded[0, 0] = 2.0
    torch.testing.assert_close(body(padded, torch.zeros(1, 72)).vertices[0], taller)
    with pytest.raises(ValueError, match="betas"):
        body(torch.zeros(1, body.num_betas + 1), torch.zeros(1, 72))
    with pytest.raises(ValueError, match="pose"):
        body(torch.zeros(1, 2), torch.zeros(1, 69))


def test_translation_moves_everything(body):
    shift = torch.tensor([[0.1, -0.2, 3.0]])
    base = body(torch.zeros(1, 2), torch.zeros(1, 72))
    moved = body(torch.zeros(1, 2), torch.zeros(1, 72), transl=shift)
    for field in ("vertices", "joints", "keypoints"):
        torch.testing.assert_close(
            getattr(moved, field), getattr(base, field) + shift[:, None], atol=1e-4, rtol=0
        )


def test_parts_and_head_mask(body):
    assert body.part_names[: len(PART_NAMES)] == PART_NAMES
    out = body(torch.zeros(1, 2), torch.zeros(1, 72))
    head = out.vertices[0][body.head_mask]
    assert 200 < int(body.head_mask.sum()) < body.num_vertices // 2
    assert float(head[:, 1].min()) > float(_joint(out, "neck")[0, 1])
    assert torch.equal(body.part_mask("head"), body.head_mask)
    left_hand = out.vertices[0][body.part_mask("left_hand")]
    assert float(left_hand[:, 0].min()) > float(_joint(out, "left_wrist")[0, 0]) - 0.05
    with pytest.raises(KeyError, match="tail"):
        body.part_mask("tail")
    assert 0.0 <= float(body.surface_coords.min()) and float(body.surface_coords.max()) <= 1.0


def test_dtype_follows_the_module_and_num_betas_truncates():
    model = BodyModel.default(num_betas=4).double()
    out = model(torch.zeros(1, 4), torch.zeros(1, 72))
    assert out.vertices.dtype == torch.float64 and out.keypoints.dtype == torch.float64
    assert model.num_betas == 4
    with pytest.raises(BodyModelError, match="num_betas"):
        BodyModel.default(num_betas=1000)
