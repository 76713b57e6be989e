"""Cameras: HMR weak perspective and pinhole projection, in the conventions of `lwgan.geometry`.

Points are in camera axes (x right, y down, z forward) after the body's global orientation; projections
return (B, N, 3) with x, y in NDC (y down, pixel centres at (2 j + 1) / W - 1) and the depth z.
A body model is Y up and faces +Z, so an upright body facing the camera has the global orientation
pi about the x-axis (`facing_camera_orient`).
"""

from __future__ import annotations

import dataclasses
import math

import torch


def weak_perspective_project(points: torch.Tensor, cam: torch.Tensor) -> torch.Tensor:
    """HMR weak perspective: x = s (X + tx), y = s (Y + ty), depth = Z.

    points: (B, N, 3) camera axes; cam: (B, 3) as (s, tx, ty). Returns (B, N, 3): NDC x, y and depth.
    """
    scale = cam[:, None, 0:1]  # (B, 1, 1)
    offset = cam[:, None, 1:3]  # (B, 1, 2)
    xy = scale * (points[..., :2] + offset)  # (B, N, 2)
    return torch.cat((xy, points[..., 2:3]), dim=-1)


@dataclasses.dataclass(frozen=True)
class PinholeCamera:
    """Pinhole intrinsics in NDC units: x = fx X / Z + cx, y = fy Y / Z + cy (fx = 2 f_pixels / W).

    Each field is a float or a (B,) tensor. ``cx = cy = 0`` puts the principal point at the image centre.
    """

    fx: float | torch.Tensor
    fy: float | torch.Tensor
    cx: float | torch.Tensor = 0.0
    cy: float | torch.Tensor = 0.0

    @classmethod
    def from_pixels(
        cls,
        focal_px: float,
        width: int,
        height: int,
        principal_px: tuple[float, float] | None = None,
    ) -> PinholeCamera:
        """Intrinsics from a focal length in pixels and a principal point (u = column, v = row) in pixel
        coordinates with pixel centres at integers; None = image centre ((W - 1) / 2, (H - 1) / 2)."""
        if principal_px is None:
            principal_px = ((width - 1) / 2.0, (height - 1) / 2.0)
        u, v = principal_px
        return cls(
            fx=2.0 * focal_px / width,
            fy=2.0 * focal_px / height,
            cx=(2.0 * u + 1.0) / width - 1.0,
            cy=(2.0 * v + 1.0) / height - 1.0,
        )

    def project(self, points: torch.Tensor) -> torch.Tensor:
        """points: (B, N, 3) camera axes with Z > 0 -> (B, N, 3): NDC x, y and depth Z."""

        def per_batch(value: float | torch.Tensor) -> torch.Tensor | float:
            if isinstance(value, torch.Tensor):
                return value.to(points).reshape(-1, 1)  # (B, 1)
            return value

        depth = points[..., 2]  # (B, N)
        x = per_batch(self.fx) * points[..., 0] / depth + per_batch(self.cx)
        y = per_batch(self.fy) * points[..., 1] / depth + per_batch(self.cy)
        return torch.stack((x, y, depth), dim=-1)


def facing_camera_orient(
    yaw: torch.Tensor | float = 0.0, batch_size: int = 1, dtype: torch.dtype = torch.float32, device=None
) -> torch.Tensor:
    """Global orientation (B, 3) axis-angle of an upright body turned by ``yaw`` about its vertical axis.

    The rotation is R = Rx(pi) Ry(yaw): yaw = 0 faces the camera, pi shows the back, pi / 2 turns the body to
    face the image's right (the camera sees its right side). Rx(pi) Ry(yaw) is a half turn about the axis
    (cos(yaw / 2), 0, sin(yaw / 2)), which gives the axis-angle directly.
    yaw: float or (B,) radians. Returns (B, 3); B = len(yaw), or ``batch_size`` for a scalar yaw.
    """
    yaw = torch.as_tensor(yaw, dtype=dtype, device=device).reshape(-1)
    if yaw.numel() == 1:
        yaw = yaw.expand(batch_size)
    axis = torch.stack((torch.cos(yaw / 2), torch.zeros_like(yaw), torch.sin(yaw / 2)), dim=-1)  # (B, 3)
    return math.pi * axis


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (Rodrigues; differentiable, safe at 0)."""
    angle = torch.linalg.norm(axis_angle, dim=-1, keepdim=True)  # (..., 1)
    axis = axis_angle / angle.clamp_min(1e-12)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*axis.shape[:-1], 3, 3)
    sin = torch.sin(angle)[..., None]  # (..., 1, 1)
    cos = torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(cross)
    return eye + sin * cross + (1.0 - cos) * (cross @ cross)


def fit_weak_perspective(
    points: torch.Tensor, fill: float = 0.8, center: tuple[float, float] = (0.0, 0.0)
) -> torch.Tensor:
    """(s, tx, ty) that makes the points span ``fill`` of the image height, centred on ``center`` (NDC).

    points: (B, N, 3) camera axes (global orientation applied). Returns (B, 3).
    """
    if not 0.0 < fill <= 2.0:
        raise ValueError(f"fill={fill} must be in (0, 2]: the fraction of the image height to cover")
    low = points[..., :2].amin(dim=1)  # (B, 2)
    high = points[..., :2].amax(dim=1)  # (B, 2)
    mid = 0.5 * (low + high)
    scale = (2.0 * fill) / (high[:, 1] - low[:, 1]).clamp_min(1e-9)  # (B,)
    target = torch.as_tensor(center, dtype=points.dtype, device=points.device)  # (2,)
    offset = target / scale[:, None] - mid  # (B, 2): s (mid + offset) = target
    return torch.cat((scale[:, None], offset), dim=-1)
