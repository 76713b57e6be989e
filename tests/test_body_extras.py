"""Extras derived for an SMPL-layout model that lacks them (tiny synthetic model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from _tiny_body import tiny_smpl_arrays

from lwgan.body.extras import (
    COCO_KEYPOINT_NAMES,
    PART_NAMES,
    SMPL_JOINT_NAMES,
    SMPL_JOINT_TO_PART,
    complete_extras,
    pose_rest_vertices,
)
from lwgan.body.model import BodyModel
from lwgan.body.model_io import BodyModelError, make_body_model_data


@pytest.fixture(scope="module")
def tiny():
    return make_body_model_data(tiny_smpl_arrays(), source="tiny.npz")


@pytest.fixture(scope="module")
def completed(tiny):
    return complete_extras(tiny)


def test_part_labels_follow_the_most_weighted_joint(tiny, completed):
    owner = np.argmax(tiny.weights, axis=1)
    expected = [PART_NAMES.index(SMPL_JOINT_TO_PART[SMPL_JOINT_NAMES[j]]) for j in owner]
    np.testing.assert_array_equal(completed.part_labels, expected)
    assert completed.part_names == PART_NAMES
    assert {"head", "torso", "left_hand", "right_foot"} <= set(completed.part_names)
    assert completed.joint_names == SMPL_JOINT_NAMES


def test_body_keypoints_are_joint_regressor_rows(tiny, completed):
    assert completed.kp_names == COCO_KEYPOINT_NAMES
    for name in ("left_shoulder", "right_elbow", "left_wrist", "right_hip", "left_knee", "right_ankle"):
        row = completed.kp_regressor[COCO_KEYPOINT_NAMES.index(name)]
        np.testing.assert_allclose(row, tiny.J_regressor[SMPL_JOINT_NAMES.index(name)], atol=1e-7)


def test_face_keypoints_sit_on_the_head_front(completed):
    head = completed.part_labels == PART_NAMES.index("head")
    points = completed.kp_regressor @ completed.v_template  # (K, 3) rest keypoints
    face = {name: points[COCO_KEYPOINT_NAMES.index(name)] for name in COCO_KEYPOINT_NAMES[:5]}
    for name in face:  # supported on head vertices only, as a convex average
        row = completed.kp_regressor[COCO_KEYPOINT_NAMES.index(name)]
        assert row[~head].sum() == 0 and row.min() >= 0 and row.sum() == pytest.approx(1.0)
    head_z = completed.v_template[head, 2]
    assert face["nose"][2] == pytest.approx(head_z.max(), abs=0.015)  # nose: the front-most point
    assert face["left_eye"][0] > face["nose"][0] > face["right_eye"][0]  # person's left is +X
    assert face["left_eye"][1] > face["nose"][1] and face["right_eye"][1] > face["nose"][1]
    assert face["left_ear"][0] > face["left_eye"][0] and face["right_ear"][0] < face["right_eye"][0]
    assert face["left_eye"][2] > face["left_ear"][2]  # eyes in front of the ears


def test_surface_coords_are_normalised_and_separate_the_legs(completed):
    coords = completed.surface_coords
    assert coords.shape == (completed.num_vertices, 3)
    np.testing.assert_allclose(coords.min(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(coords.max(axis=0), 1.0, atol=1e-6)
    left_foot = completed.part_labels == PART_NAMES.index("left_foot")
    right_foot = completed.part_labels == PART_NAMES.index("right_foot")
    assert coords[left_foot, 0].min() > coords[right_foot, 0].max()  # spread pose moves feet apart
    assert coords[left_foot, 1].max() < coords[completed.part_labels == 0, 1].min()  # feet below head


def test_pose_rest_vertices_rotates_a_limb_about_its_joint(tiny):
    elbow = SMPL_JOINT_NAMES.index("left_elbow")
    posed = pose_rest_vertices(tiny, {elbow: np.array([0.0, 0.0, -np.pi / 2])})
    forearm = np.argmax(tiny.weights, axis=1) == SMPL_JOINT_NAMES.index("left_wrist")
    joint = tiny.J_regressor[elbow] @ tiny.v_template
    before = tiny.v_template[forearm].mean(0) - joint
    after = posed[forearm].mean(0) - joint
    assert np.linalg.norm(after) == pytest.approx(np.linalg.norm(before), rel=1e-5)
    assert after[1] < -0.2 and abs(after[0]) < 0.02  # the forearm now hangs down


def test_complete_extras_keeps_given_extras(tiny):
    labels = np.zeros(tiny.num_vertices, dtype=np.int64)
    partial = dataclasses.replace(tiny, part_labels=labels, part_names=("head", "torso"))
    done = complete_extras(partial)
    np.testing.assert_array_equal(done.part_labels, labels)
    assert done.kp_regressor is not None and done.surface_coords is not None


def test_non_smpl_skeleton_without_extras_is_an_error(tiny):
    parents = tiny.kintree_table.copy()
    parents[0, 5] = 3  # not SMPL's tree any more
    other = dataclasses.replace(tiny, kintree_table=parents)
    with pytest.raises(BodyModelError, match="tiny.npz.*extras"):
        complete_extras(other)


def test_body_model_on_derived_extras_matches_manual_skinning(tiny):
    model = BodyModel(tiny)
    pose = torch.zeros(1, 72, dtype=torch.float64)
    pose[0, 3 * SMPL_JOINT_NAMES.index("left_elbow") + 2] = -np.pi / 2
    out = model.double()(torch.zeros(1, 2), pose)
    expected = pose_rest_vertices(
        tiny, {SMPL_JOINT_NAMES.index("left_elbow"): np.array([0.0, 0.0, -np.pi / 2])}
    )
    np.testing.assert_allclose(out.vertices[0].numpy(), expected, atol=1e-5)
    assert out.keypoints.shape == (1, 17, 3) and model.head_mask.sum() > 0
