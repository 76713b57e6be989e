"""Pose helpers: Euler -> axis-angle round trips through Rodrigues' formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lwgan.body.poses import SMPL_JOINTS, euler_to_axis_angle, matrix_to_axis_angle, pose_from_angles


def rodrigues(aa: torch.Tensor) -> torch.Tensor:
    angle = aa.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    k = aa / angle
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    K = torch.stack((torch.stack((zero, -kz, ky), -1), torch.stack((kz, zero, -kx), -1),
                     torch.stack((-ky, kx, zero), -1)), -2)
    a = angle[..., None]
    return torch.eye(3, dtype=aa.dtype) + a.sin() * K + (1 - a.cos()) * K @ K


def euler_matrix(deg):
    x, y, z = (math.radians(d) for d in deg)
    rx = torch.tensor([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]])
    ry = torch.tensor([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = torch.tensor([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    return (rz @ ry @ rx).double()


@pytest.mark.parametrize("deg", [(0, 0, 0), (30, 0, 0), (0, -45, 0), (10, 20, 30), (180, 0, 0),
                                 (0, 180, 0), (-70, 5, 100), (0, 0, 179.9999)])
def test_euler_to_axis_angle_matches_rotation(deg):
    aa = euler_to_axis_angle(torch.tensor(deg, dtype=torch.float64))
    assert torch.allclose(rodrigues(aa), euler_matrix(deg), atol=1e-5)


def test_matrix_to_axis_angle_identity_is_zero():
    assert torch.allclose(matrix_to_axis_angle(torch.eye(3).double()), torch.zeros(3, dtype=torch.float64))


def test_pose_from_angles_places_joints_and_rejects_unknown_names():
    pose = pose_from_angles({"left_elbow": (0, -90, 0)})
    assert pose.shape == (72,)
    i = SMPL_JOINTS.index("left_elbow")
    assert torch.allclose(pose[3 * i : 3 * i + 3], torch.tensor([0, -math.pi / 2, 0]), atol=1e-6)
    assert pose.abs().sum() == pytest.approx(math.pi / 2, abs=1e-5)
    with pytest.raises(KeyError, match="left_elbw"):
        pose_from_angles({"left_elbw": (0, 0, 0)})


def test_matrix_to_axis_angle_matches_scipy_at_every_angle_including_near_pi():
    """Against scipy's rotation vectors (an independent implementation), float32 matrices as the fit
    makes them: random rotations, angles within 1e-2 .. 1e-6 of pi and of 0, and pi itself. The
    arccos-of-the-trace reading this replaces was several degrees off within 1e-3 of pi."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(0)
    axes = rng.normal(size=(40, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi, 16), np.pi - np.array([1e-2, 3e-3, 1e-3, 5e-4, 1e-4, 1e-5,
                                                                          1e-6, 0.0]),
                             np.array([0.0, 1e-6, 1e-4, 1e-2]), rng.uniform(3.1, np.pi, 12)])
    rotvec = axes * angles[:, None]
    matrices = Rotation.from_rotvec(rotvec).as_matrix()
    got = matrix_to_axis_angle(torch.from_numpy(matrices).float()).double().numpy()
    back = Rotation.from_rotvec(got).as_matrix()  # compare rotations: at pi, v and -v are the same one
    assert np.abs(back - matrices).max() < 2e-6
    assert (np.linalg.norm(got, axis=1) <= np.pi + 1e-6).all()
    float64 = matrix_to_axis_angle(torch.from_numpy(matrices)).numpy()
    assert np.abs(Rotation.from_rotvec(float64).as_matrix() - matrices).max() < 1e-12
