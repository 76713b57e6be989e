"""Named body poses on SMPL's 24-joint kinematic tree, as axis-angle vectors (72 = 24 x 3).

Joint rotations are given per joint name as XYZ Euler angles in degrees in the body's own frame (Y up,
facing +Z, the person's left on +X), composed R = Rz @ Ry @ Rx. The global orientation (joint 0) is left
at zero here: `lwgan.body.cameras` turns a body to face the camera.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lwgan.body.extras import SMPL_JOINT_NAMES

SMPL_JOINTS = SMPL_JOINT_NAMES  # the 24 joints of SMPL's kinematic tree, in SMPL's order


def euler_to_axis_angle(angles_deg: torch.Tensor) -> torch.Tensor:
    """(..., 3) XYZ Euler angles in degrees (R = Rz Ry Rx) -> (..., 3) axis-angle in radians."""
    x, y, z = torch.deg2rad(angles_deg.double()).unbind(-1)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rot = torch.stack(
        (
            torch.stack((cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx), -1),
            torch.stack((sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx), -1),
            torch.stack((-sy, cy * sx, cy * cx), -1),
        ),
        -2,
    )  # (..., 3, 3)
    return matrix_to_axis_angle(rot).to(angles_deg.dtype if angles_deg.is_floating_point() else torch.float32)


def matrix_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle (angle in [0, pi]), accurate at every angle.

    Through the unit quaternion by Shepperd's method, in float64: of the four ways to read the quaternion
    off the matrix, the one with the largest divisor is used, so no branch divides by a vanishing term (the
    arccos of the trace and the antisymmetric part lose all precision near pi; a rotation within 1e-3 of
    pi came out several degrees off that way). The result has the input's dtype.
    """
    r = rot.to(torch.float64)
    m00, m01, m02 = r[..., 0, 0], r[..., 0, 1], r[..., 0, 2]
    m10, m11, m12 = r[..., 1, 0], r[..., 1, 1], r[..., 1, 2]
    m20, m21, m22 = r[..., 2, 0], r[..., 2, 1], r[..., 2, 2]
    four = torch.stack((1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22),
                       -1)  # 4 q_i^2 for i = w, x, y, z
    big = four.clamp(min=1e-12).sqrt()  # 2 |q_i|
    anti = (m21 - m12, m02 - m20, m10 - m01)  # 4 w (x, y, z)
    sym = (m01 + m10, m02 + m20, m12 + m21)  # 4 (xy, xz, yz)
    quats = torch.stack((
        torch.stack((big[..., 0], anti[0] / big[..., 0], anti[1] / big[..., 0], anti[2] / big[..., 0]), -1),
        torch.stack((anti[0] / big[..., 1], big[..., 1], sym[0] / big[..., 1], sym[1] / big[..., 1]), -1),
        torch.stack((anti[1] / big[..., 2], sym[0] / big[..., 2], big[..., 2], sym[2] / big[..., 2]), -1),
        torch.stack((anti[2] / big[..., 3], sym[1] / big[..., 3], sym[2] / big[..., 3], big[..., 3]), -1),
    ), -2) / 2  # (..., 4 readings, 4) w, x, y, z
    best = four.argmax(-1)
    q = torch.gather(quats, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = q * torch.where(q[..., :1] < 0, -1.0, 1.0)  # w >= 0: the angle in [0, pi]
    q = q / q.norm(dim=-1, keepdim=True)
    vec, w = q[..., 1:], q[..., 0]
    norm = vec.norm(dim=-1)
    angle = 2 * torch.atan2(norm, w)
    scale = torch.where(norm > 1e-12, angle / norm.clamp(min=1e-12), 2 / w.clamp(min=1e-12))
    return (vec * scale[..., None]).to(rot.dtype)


def pose_from_angles(angles: Mapping[str, tuple[float, float, float]], dtype=torch.float32) -> torch.Tensor:
    """A (72,) axis-angle pose from {joint name: (x, y, z) Euler degrees}; unnamed joints stay at rest."""
    unknown = sorted(set(angles) - set(SMPL_JOINTS))
    if unknown:
        raise KeyError(f"unknown joint name(s) {unknown}; joints are {', '.join(SMPL_JOINTS)}")
    euler = torch.zeros(len(SMPL_JOINTS), 3, dtype=torch.float64)
    for name, value in angles.items():
        euler[SMPL_JOINTS.index(name)] = torch.tensor(value, dtype=torch.float64)
    return euler_to_axis_angle(euler).reshape(-1).to(dtype)  # (72,)
