"""Open pose and shape priors on SMPL's 24-joint tree, in Euler angles of the body's own frame.

SMPLify's GMM pose prior was learnt from licensed motion capture and may not be redistributed, so
lwgan uses a hand-written one in the joint-angle convention of `lwgan.body.poses` (XYZ Euler angles,
R = Rz Ry Rx, body frame Y up, facing +Z, the person's left on +X):

- a diagonal Gaussian per Euler angle (`PRIOR_MEAN_DEG`, `PRIOR_STD_DEG`): a relaxed standing pose
  (arms down, elbows and knees slightly bent) with wide spreads where joints move freely and narrow ones
  where a rotation is invisible to 2D keypoints (collars, wrists, feet, limb twist);
- box limits per angle (`JOINT_LIMITS_DEG`), penalised by a squared hinge beyond them, so that elbows
  and knees only bend the way they can.

Values are written for the centre and the LEFT side of the body; a right-side joint mirrors them
through the sagittal plane (x kept, y and z negated). In that left-side reading: shoulder y < 0 swings
the arm forward and z < 0 lowers it from the T-pose (-90 = along the body); elbow y < 0 bends the forearm
forward; hip x < 0 swings the thigh forward and z > 0 spreads the legs; knee x > 0 bends the shin
backward; ankle x > 0 points the toes down; spine, neck and head x > 0 bend forward, y turns left and
z > 0 leans to the person's right. Joint 0 (the global orientation) is left free by both priors.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lwgan.body.extras import SMPL_JOINT_NAMES

Box = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
Triple = tuple[float, float, float]

# (x, y, z) ranges in degrees; joints named without a side are either central or the left of a pair.
JOINT_LIMITS_DEG: dict[str, Box] = {
    "pelvis": ((-15.0, 60.0), (0.0, 0.0), (-15.0, 15.0)),
    "spine1": ((-15.0, 40.0), (-20.0, 20.0), (-15.0, 15.0)),
    "spine2": ((-15.0, 35.0), (-20.0, 20.0), (-15.0, 15.0)),
    "spine3": ((-15.0, 30.0), (-20.0, 20.0), (-15.0, 15.0)),
    "neck": ((-30.0, 35.0), (-35.0, 35.0), (-20.0, 20.0)),
    "head": ((-25.0, 30.0), (-40.0, 40.0), (-20.0, 20.0)),
    "collar": ((-10.0, 10.0), (-15.0, 15.0), (-10.0, 20.0)),
    "shoulder": ((-60.0, 60.0), (-100.0, 45.0), (-80.0, 85.0)),
    "elbow": ((-30.0, 30.0), (-145.0, 0.0), (-5.0, 5.0)),
    "wrist": ((-40.0, 40.0), (-30.0, 30.0), (-45.0, 45.0)),
    "hand": ((-10.0, 10.0), (-10.0, 10.0), (-10.0, 10.0)),
    "hip": ((-110.0, 30.0), (-35.0, 35.0), (-15.0, 50.0)),
    "knee": ((0.0, 145.0), (-5.0, 5.0), (-5.0, 5.0)),
    "ankle": ((-35.0, 45.0), (-20.0, 20.0), (-20.0, 20.0)),
    "foot": ((-30.0, 30.0), (-10.0, 10.0), (-10.0, 10.0)),
}

# Mean and standard deviation (degrees) of each Euler angle; the pelvis entry is unused (joint 0).
PRIOR_MEAN_DEG: dict[str, Triple] = {
    "pelvis": (0.0, 0.0, 0.0), "spine1": (3.0, 0.0, 0.0), "spine2": (2.0, 0.0, 0.0),
    "spine3": (2.0, 0.0, 0.0), "neck": (0.0, 0.0, 0.0), "head": (0.0, 0.0, 0.0),
    "collar": (0.0, 0.0, 0.0), "shoulder": (0.0, -5.0, -65.0), "elbow": (0.0, -20.0, 0.0),
    "wrist": (0.0, 0.0, 0.0), "hand": (0.0, 0.0, 0.0), "hip": (-5.0, 0.0, 4.0),
    "knee": (10.0, 0.0, 0.0), "ankle": (0.0, 0.0, 0.0), "foot": (0.0, 0.0, 0.0),
}  # fmt: skip
PRIOR_STD_DEG: dict[str, Triple] = {
    "pelvis": (1.0, 1.0, 1.0), "spine1": (12.0, 8.0, 7.0), "spine2": (12.0, 8.0, 7.0),
    "spine3": (12.0, 8.0, 7.0), "neck": (15.0, 18.0, 10.0), "head": (15.0, 20.0, 10.0),
    "collar": (4.0, 5.0, 6.0), "shoulder": (20.0, 40.0, 45.0), "elbow": (12.0, 50.0, 3.0),
    "wrist": (10.0, 10.0, 10.0), "hand": (5.0, 5.0, 5.0), "hip": (35.0, 12.0, 12.0),
    "knee": (45.0, 3.0, 3.0), "ankle": (12.0, 6.0, 6.0), "foot": (6.0, 5.0, 5.0),
}  # fmt: skip
_MIRROR = np.array([1.0, -1.0, -1.0])  # left-side angles -> right-side angles


def _per_joint(table: dict[str, Triple | Box], names: tuple[str, ...], box: bool) -> np.ndarray:
    """(J, 3) or (J, 3, 2) values of `table` for every joint, right-side joints mirrored."""
    out = []
    for name in names:
        side, _, base = name.partition("_")
        if side not in ("left", "right"):
            base = name
        if base not in table:
            raise KeyError(f"no prior entry for joint {name!r} (looked up as {base!r})")
        value = np.asarray(table[base], dtype=np.float64)
        if side == "right":
            value = np.sort(value * _MIRROR[:, None], axis=1) if box else value * _MIRROR
        out.append(value)
    return np.stack(out)


def joint_limits(names: tuple[str, ...] = SMPL_JOINT_NAMES) -> np.ndarray:
    """(J, 3, 2) float64 lower and upper limit in degrees of every joint's x, y and z Euler angle."""
    return _per_joint(JOINT_LIMITS_DEG, names, box=True)


def prior_mean(names: tuple[str, ...] = SMPL_JOINT_NAMES) -> np.ndarray:
    """(J, 3) float64 mean Euler angles in degrees of the pose prior."""
    return _per_joint(PRIOR_MEAN_DEG, names, box=False)


def prior_std(names: tuple[str, ...] = SMPL_JOINT_NAMES) -> np.ndarray:
    """(J, 3) float64 standard deviations in degrees of the pose prior."""
    return np.abs(_per_joint(PRIOR_STD_DEG, names, box=False))


def euler_to_matrix(euler: torch.Tensor) -> torch.Tensor:
    """(..., 3) XYZ Euler angles in RADIANS -> (..., 3, 3) rotation R = Rz Ry Rx (differentiable)."""
    x, y, z = euler.unbind(-1)
    cx, sx, cy, sy, cz, sz = x.cos(), x.sin(), y.cos(), y.sin(), z.cos(), z.sin()
    rows = (
        (cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx),
        (sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx),
        (-sy, cy * sx, cy * cx),
    )
    return torch.stack([torch.stack(row, -1) for row in rows], -2)


def matrix_to_euler(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotation -> (..., 3) XYZ Euler angles in radians with y in [-pi/2, pi/2] (inverse of
    `euler_to_matrix`; at y = +-pi/2 the x/z split is arbitrary and x is set to 0)."""
    sy = (-rot[..., 2, 0]).clamp(-1.0, 1.0)
    y = torch.asin(sy)
    locked = sy.abs() > 1.0 - 1e-7
    x = torch.where(locked, torch.zeros_like(y), torch.atan2(rot[..., 2, 1], rot[..., 2, 2]))
    z_free = torch.atan2(rot[..., 1, 0], rot[..., 0, 0])
    z_locked = torch.atan2(-rot[..., 0, 1], rot[..., 1, 1])  # x = 0: R[0, 1] = -sz, R[1, 1] = cz
    return torch.stack((x, y, torch.where(locked, z_locked, z_free)), dim=-1)


class PosePrior(torch.nn.Module):
    """Gaussian and joint-limit penalties on body-joint Euler angles (joints 1.., radians).

    Buffers: mean, inv_std (J - 1, 3) and lower, upper (J - 1, 3), all radians.
    """

    def __init__(self, names: tuple[str, ...] = SMPL_JOINT_NAMES) -> None:
        super().__init__()
        to_rad = math.pi / 180.0
        limits = torch.as_tensor(joint_limits(names)[1:] * to_rad, dtype=torch.float32)  # (J - 1, 3, 2)
        self.register_buffer("mean", torch.as_tensor(prior_mean(names)[1:] * to_rad, dtype=torch.float32))
        self.register_buffer(
            "inv_std", torch.as_tensor(1.0 / (prior_std(names)[1:] * to_rad), dtype=torch.float32)
        )
        self.register_buffer("lower", limits[..., 0].contiguous())
        self.register_buffer("upper", limits[..., 1].contiguous())

    def gaussian(self, euler: torch.Tensor) -> torch.Tensor:
        """euler: (B, J - 1, 3) radians -> (B,) sum of squared standardised deviations."""
        return (((euler - self.mean) * self.inv_std) ** 2).sum(dim=(1, 2))

    def limits(self, euler: torch.Tensor) -> torch.Tensor:
        """euler: (B, J - 1, 3) radians -> (B,) sum of squared radians beyond the limits."""
        beyond = torch.relu(self.lower - euler) + torch.relu(euler - self.upper)  # (B, J - 1, 3)
        return (beyond**2).sum(dim=(1, 2))

    def clamp(self, euler: torch.Tensor) -> torch.Tensor:
        """(B, J - 1, 3) radians -> the same clamped into the limits."""
        return torch.maximum(torch.minimum(euler, self.upper), self.lower)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """(..., S) shape coefficients -> (...) squared norm (the shape space is unit-variance PCA)."""
    return (betas**2).sum(dim=-1)
