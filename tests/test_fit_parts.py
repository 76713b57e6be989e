"""The pieces under `fit_video`: the keypoint-only body, the priors, rotations, interpolation, the
candidate path of stage 1."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from _tiny_body import tiny_smpl_arrays

from lwgan.body.cameras import axis_angle_to_matrix, facing_camera_orient
from lwgan.body.extras import SMPL_JOINT_NAMES
from lwgan.body.fitting_stages import _best_path
from lwgan.body.fitting_state import FitState, geman_mcclure, interpolate_missing, so3_exp
from lwgan.body.kinematics import LEVELS_FROM, KeypointBody
from lwgan.body.model import BodyModel
from lwgan.body.model_io import make_body_model_data
from lwgan.body.priors import PosePrior, euler_to_matrix, joint_limits, matrix_to_euler, prior_mean


@pytest.fixture(scope="module")
def body() -> BodyModel:
    return BodyModel.default()


def _random_pose(frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.4 * torch.randn(frames, 72, generator=generator)


@pytest.mark.parametrize("frames", [5, LEVELS_FROM])  # the chain by pointer jumping, and level by level
def test_keypoint_body_equals_the_full_model(body, frames):
    skeleton = KeypointBody(body)
    pose = _random_pose(frames, 0)
    betas = torch.randn(frames, body.num_betas, generator=torch.Generator().manual_seed(1))
    rotations = axis_angle_to_matrix(pose.reshape(frames, 24, 3))
    with torch.no_grad():
        full = body(betas, pose)
        for shared in (betas, betas[:1]):  # per-frame shapes, and one shape for the batch
            reference = full if shared.shape[0] == frames else body(shared.expand(frames, -1), pose)
            fast = skeleton(shared, rotations)
            torch.testing.assert_close(fast.joints, reference.joints, atol=2e-6, rtol=0.0)
            torch.testing.assert_close(fast.keypoints, reference.keypoints, atol=2e-6, rtol=0.0)


def test_keypoint_body_includes_pose_blend_shapes():
    arrays = tiny_smpl_arrays(num_betas=2)
    generator = np.random.default_rng(0)
    arrays["posedirs"] = 0.01 * generator.standard_normal(arrays["posedirs"].shape)
    data = make_body_model_data(arrays, source="tiny.npz")
    tiny = BodyModel(data)
    pose = _random_pose(3, 2)
    betas = torch.tensor([[0.5, -1.0]]).expand(3, -1)
    with torch.no_grad():
        reference = tiny(betas, pose)
        fast = KeypointBody(tiny)(betas, axis_angle_to_matrix(pose.reshape(3, 24, 3)))
    torch.testing.assert_close(fast.keypoints, reference.keypoints, atol=2e-6, rtol=0.0)
    torch.testing.assert_close(fast.joints, reference.joints, atol=2e-6, rtol=0.0)


def test_limits_mirror_left_to_right_and_the_prior_mean_respects_them():
    limits = joint_limits()
    left, right = SMPL_JOINT_NAMES.index("left_elbow"), SMPL_JOINT_NAMES.index("right_elbow")
    np.testing.assert_array_equal(limits[right, 0], limits[left, 0])  # x kept
    np.testing.assert_array_equal(limits[right, 1], -limits[left, 1, ::-1])  # y negated
    mean = prior_mean()[1:]
    assert bool(((mean >= limits[1:, :, 0]) & (mean <= limits[1:, :, 1])).all())


def test_pose_prior_limits_penalise_only_beyond_the_box():
    prior = PosePrior()
    inside = prior.mean[None].clone()  # (1, J - 1, 3)
    assert float(prior.limits(inside)) == 0.0 and float(prior.gaussian(inside)) == 0.0
    elbow = SMPL_JOINT_NAMES.index("left_elbow") - 1
    bent_backwards = inside.clone()
    bent_backwards[0, elbow, 1] = math.radians(20.0)  # the left elbow bends forward for y < 0 only
    assert float(prior.limits(bent_backwards)) == pytest.approx(math.radians(20.0) ** 2, rel=1e-5)
    torch.testing.assert_close(prior.clamp(bent_backwards)[0, elbow, 1], torch.tensor(0.0))


def test_euler_matrix_roundtrip_and_so3_exp():
    generator = torch.Generator().manual_seed(3)
    euler = (torch.rand(100, 3, generator=generator) - 0.5) * torch.tensor([6.0, 3.0, 6.0])  # |y| < pi/2
    torch.testing.assert_close(matrix_to_euler(euler_to_matrix(euler)), euler, atol=1e-4, rtol=0.0)
    vectors = torch.randn(50, 3, generator=generator)
    vectors[0] = 0.0
    vectors[1] = 1e-5
    torch.testing.assert_close(so3_exp(vectors), axis_angle_to_matrix(vectors), atol=1e-6, rtol=0.0)
    delta = torch.zeros(3, requires_grad=True)
    (so3_exp(delta) @ torch.tensor([1.0, 0.0, 0.0]))[1].backward()
    torch.testing.assert_close(delta.grad, torch.tensor([0.0, 0.0, 1.0]))  # d(R x)/d(delta) = -[x]_x


def test_geman_mcclure_is_quadratic_near_zero_and_bounded():
    squared = torch.tensor([0.0, 1e-4, 1e6])
    rho = geman_mcclure(squared, 10.0)
    torch.testing.assert_close(rho[:2], squared[:2], rtol=1e-5, atol=0.0)
    assert float(rho[2]) < 100.0


def test_interpolation_fills_gaps_between_and_beside_valid_frames():
    n = 5
    yaw = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    state = FitState(
        rotation=axis_angle_to_matrix(torch.stack((0 * yaw, yaw, 0 * yaw), dim=-1)),
        euler=torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 23, 3).clone(),
        cam=torch.tensor([[1.0, 0.0, 0.0]]).repeat(n, 1) * torch.arange(1, n + 1)[:, None],
        betas=torch.zeros(10),
    )
    valid = torch.tensor([False, True, False, True, False])
    filled = interpolate_missing(state, valid, anchor=None)
    torch.testing.assert_close(filled.euler[0], state.euler[1])  # before the first: a copy
    torch.testing.assert_close(filled.euler[2], 0.5 * (state.euler[1] + state.euler[3]))
    torch.testing.assert_close(filled.cam[4], state.cam[3])  # after the last: a copy
    half = axis_angle_to_matrix(torch.tensor([0.0, 0.5, 0.0]))
    torch.testing.assert_close(filled.rotation[2], half, atol=1e-5, rtol=0.0)
    anchor = dataclasses.replace(state.slice(slice(0, 1)), euler=torch.full((1, 23, 3), -1.0))
    anchored = interpolate_missing(state, valid, anchor=anchor)
    torch.testing.assert_close(anchored.euler[0], torch.full((23, 3), -1.0 + 2.0 / 2.0))  # -1 .. 1


def test_best_path_keeps_the_turn_continuous():
    yaw = torch.tensor([0.0, math.pi])  # two candidates: front and back
    rotation = axis_angle_to_matrix(facing_camera_orient(yaw))[None].expand(4, -1, -1, -1)  # (4, 2, 3, 3)
    energy = torch.tensor([[0.0, 10.0], [0.0, 10.0], [5.0, 4.0], [0.0, 10.0]])  # frame 2 prefers the back
    valid = torch.ones(4, dtype=torch.bool)
    assert _best_path(energy, rotation, 40.0, None, valid).tolist() == [0, 0, 0, 0]
    assert _best_path(energy, rotation, 0.0, None, valid).tolist() == [0, 0, 1, 0]
    back = rotation[0, 1]  # the previous chunk ended showing the back: a flip costs more than staying
    assert _best_path(energy, rotation, 40.0, back, valid).tolist() == [1, 1, 1, 1]
