"""Camera conventions of `lwgan.body.cameras` against `lwgan.geometry`."""

from __future__ import annotations

import math

import pytest
import torch
from smplx.lbs import batch_rodrigues

from lwgan.body.cameras import (
    PinholeCamera,
    axis_angle_to_matrix,
    facing_camera_orient,
    fit_weak_perspective,
    weak_perspective_project,
)
from lwgan.geometry import ndc_to_pixel, pixel_centers

# Body-frame points (Y up, facing +Z, left on +X): top of head, feet, nose tip, back of head, left hand.
HEAD, FEET, NOSE, BACK, LEFT = 0, 1, 2, 3, 4
BODY_POINTS = torch.tensor(
    [[[0.0, 0.8, 0.0], [0.0, -0.9, 0.0], [0.0, 0.65, 0.12], [0.0, 0.65, -0.1], [0.8, 0.4, 0.0]]]
)  # (1, 5, 3)


def _orient(points: torch.Tensor, yaw: float = 0.0) -> torch.Tensor:
    rotation = axis_angle_to_matrix(facing_camera_orient(yaw))  # (1, 3, 3)
    return points @ rotation.transpose(1, 2)


def test_weak_perspective_formula():
    points = torch.tensor([[[1.0, -2.0, 5.0], [0.0, 0.0, -1.0]]])
    cam = torch.tensor([[0.5, 0.2, -0.4]])
    out = weak_perspective_project(points, cam)
    expected = torch.tensor([[[0.5 * 1.2, 0.5 * -2.4, 5.0], [0.1, -0.2, -1.0]]])
    torch.testing.assert_close(out, expected)


def test_upright_body_faces_the_camera_with_head_up_in_the_image():
    projected = weak_perspective_project(_orient(BODY_POINTS), torch.tensor([[1.0, 0.0, 0.0]]))
    assert projected[0, HEAD, 1] < projected[0, FEET, 1]  # y is down: the head is higher in the image
    assert projected[0, NOSE, 2] < projected[0, BACK, 2]  # the face is nearer the camera than the back
    assert projected[0, LEFT, 0] > 0  # facing us, the person's left hand is on the image's right


def test_yaw_turns_the_body_about_its_vertical_axis():
    back = weak_perspective_project(_orient(BODY_POINTS, math.pi), torch.tensor([[1.0, 0.0, 0.0]]))
    assert back[0, NOSE, 2] > back[0, BACK, 2] and back[0, LEFT, 0] < 0 and back[0, HEAD, 1] < 0
    side = weak_perspective_project(_orient(BODY_POINTS, math.pi / 2), torch.tensor([[1.0, 0.0, 0.0]]))
    assert side[0, NOSE, 0] > side[0, BACK, 0]  # faces the image's right
    assert side[0, LEFT, 2] > 0.5  # its left side is turned away from the camera


def test_facing_camera_orient_is_rx_pi_times_ry_yaw():
    yaw = torch.tensor([0.0, 0.7, -2.0, math.pi])
    got = axis_angle_to_matrix(facing_camera_orient(yaw))
    c, s = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    ry = torch.stack((c, zero, s, zero, one, zero, -s, zero, c), -1).reshape(-1, 3, 3)
    rx_pi = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(got, rx_pi @ ry, atol=1e-6, rtol=0)
    assert facing_camera_orient(0.3, batch_size=5).shape == (5, 3)


def test_axis_angle_to_matrix_matches_smplx():
    axis_angle = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    axis_angle[0] = 0.0
    torch.testing.assert_close(
        axis_angle_to_matrix(axis_angle), batch_rodrigues(axis_angle), atol=1e-5, rtol=0
    )


def test_pinhole_principal_point_maps_to_its_pixel():
    centred = PinholeCamera.from_pixels(focal_px=500.0, width=256, height=192)
    on_axis = centred.project(torch.tensor([[[0.0, 0.0, 3.0]]]))
    torch.testing.assert_close(on_axis[0, 0], torch.tensor([0.0, 0.0, 3.0]))  # image centre in NDC
    camera = PinholeCamera.from_pixels(focal_px=500.0, width=256, height=192, principal_px=(100.0, 60.0))
    pixel = ndc_to_pixel(camera.project(torch.tensor([[[0.0, 0.0, 2.0]]]))[..., :2], 192, 256)
    torch.testing.assert_close(pixel[0, 0], torch.tensor([100.0, 60.0]))
    # A point one pixel-focal unit to the right and below lands one pixel right and below.
    moved = camera.project(torch.tensor([[[2.0 / 500.0, 2.0 / 500.0, 2.0]]]))[..., :2]
    torch.testing.assert_close(ndc_to_pixel(moved, 192, 256)[0, 0], torch.tensor([101.0, 61.0]))


def test_pinhole_pixel_centres_agree_with_geometry():
    camera = PinholeCamera.from_pixels(focal_px=300.0, width=64, height=48)
    centres = pixel_centers(48, 64)  # (H, W, 2) NDC
    row, col = 10, 40
    u, v = col - (64 - 1) / 2, row - (48 - 1) / 2  # pixel offsets from the principal point
    point = torch.tensor([[[u / 300.0, v / 300.0, 1.0]]])
    torch.testing.assert_close(camera.project(point)[0, 0, :2], centres[row, col])


def test_pinhole_accepts_per_batch_intrinsics():
    camera = PinholeCamera(fx=torch.tensor([1.0, 2.0]), fy=torch.tensor([1.0, 2.0]))
    out = camera.project(torch.tensor([[[1.0, 1.0, 2.0]], [[1.0, 1.0, 2.0]]]))
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([0.5, 1.0]))


@pytest.mark.parametrize("fill", [0.5, 0.8])
def test_fit_weak_perspective_fills_the_height(fill):
    points = _orient(BODY_POINTS).repeat(2, 1, 1) + torch.tensor([[[0.3, 0.1, 0.0]], [[-1.0, 2.0, 0.0]]])
    cam = fit_weak_perspective(points, fill=fill, center=(0.1, -0.05))
    projected = weak_perspective_project(points, cam)
    extent = projected[..., 1].amax(1) - projected[..., 1].amin(1)
    torch.testing.assert_close(extent, torch.full((2,), 2.0 * fill))
    mid = 0.5 * (projected[..., :2].amax(1) + projected[..., :2].amin(1))
    torch.testing.assert_close(mid, torch.tensor([[0.1, -0.05]] * 2))
    with pytest.raises(ValueError, match="fill"):
        fit_weak_perspective(points, fill=0.0)
