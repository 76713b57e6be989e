"""Named body poses on SMPL's 24-joint kinematic tree, as axis-angle vectors (72 = 24 x 3).

Joint rotations are given per joint name as XYZ Euler angles in degrees in the body's own frame (Y up,
facing +Z, the person's left on +X), composed R = Rz @ Ry @ Rx. The global orientation (joint 0) is left
at zero here: `lwgan.body.cameras` turns a body to face the camera.
"""

from __future__ import annotations

import math
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
    """(..., 3, 3) rotation matrices -> (..., 3) axis-angle, stable near 0 and pi."""
    trace = rot[..., 0, 0] + rot[..., 1, 1] + rot[..., 2, 2]
    angle = torch.acos(((trace - 1) / 2).clamp(-1.0, 1.0))  # (...)
    axis = torch.stack(
        (rot[..., 2, 1] - rot[..., 1, 2], rot[..., 0, 2] - rot[..., 2, 0], rot[..., 1, 0] - rot[..., 0, 1]),
        -1,
    )  # (..., 3) = 2 sin(angle) * axis
    sin = angle.sin()
    small = angle < 1e-3
    near_pi = angle > math.pi - 1e-3
    safe_sin = torch.where(small | near_pi, torch.ones_like(sin), sin)
    scale = torch.where(small, 0.5 + angle**2 / 12, angle / (2 * safe_sin))
    out = axis * scale[..., None]
    if near_pi.any():
        # Near pi the antisymmetric part vanishes: k k^T = (sym(R) - cos I) / (1 - cos); take its dominant
        # column and the sign that agrees with what is left of the antisymmetric part.
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        cos = angle.cos()[..., None, None]
        kkt = ((rot + rot.transpose(-1, -2)) / 2 - cos * eye) / (1 - cos)
        col = torch.diagonal(kkt, dim1=-2, dim2=-1).argmax(-1)
        k = torch.gather(kkt, -1, col[..., None, None].expand(*col.shape, 3, 1))[..., 0]
        k = k / k.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        sign = torch.where((k * axis).sum(-1, keepdim=True) < 0, -1.0, 1.0)
        out = torch.where(near_pi[..., None], k * sign * angle[..., None], out)
    return out


def pose_from_angles(angles: Mapping[str, tuple[float, float, float]], dtype=torch.float32) -> torch.Tensor:
    """A (72,) axis-angle pose from {joint name: (x, y, z) Euler degrees}; unnamed joints stay at rest."""
    unknown = sorted(set(angles) - set(SMPL_JOINTS))
    if unknown:
        raise KeyError(f"unknown joint name(s) {unknown}; joints are {', '.join(SMPL_JOINTS)}")
    euler = torch.zeros(len(SMPL_JOINTS), 3, dtype=torch.float64)
    for name, value in angles.items():
        euler[SMPL_JOINTS.index(name)] = torch.tensor(value, dtype=torch.float64)
    return euler_to_axis_angle(euler).reshape(-1).to(dtype)  # (72,)
