"""A picture a person can check: a body model in a few poses and views, with its part labels, its
conditioning map (the canonical surface coordinate as colour) and its keypoints.

Used by the `body` stage; the sheet has one row per pose and three panels per row.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from lwgan.body.cameras import facing_camera_orient, fit_weak_perspective, weak_perspective_project
from lwgan.body.model import BodyModel
from lwgan.body.poses import SMPL_JOINTS, pose_from_angles
from lwgan.geometry import ndc_to_pixel
from lwgan.render.raster import RasterSettings, conditioning_map, rasterize
from lwgan.render.shade import label_image, palette, shade, to_uint8

# (name, {joint: XYZ Euler degrees in the body frame}, yaw in degrees). The rest pose is a T-pose with the
# arms along +-X, so "arms down" is a rotation about Z at the shoulders.
PREVIEW_POSES: tuple[tuple[str, dict[str, tuple[float, float, float]], float], ...] = (
    ("A-pose, front", {"left_shoulder": (0, 0, -50), "right_shoulder": (0, 0, 50)}, 0.0),
    ("walking, three-quarter", {
        "left_hip": (-30, 0, 0), "right_hip": (20, 0, 0), "right_knee": (40, 0, 0), "left_knee": (10, 0, 0),
        "left_shoulder": (0, 25, -70), "right_shoulder": (0, 25, 70), "left_elbow": (0, -30, 0),
        "right_elbow": (0, 30, 0),
    }, 35.0),
    ("bending, side", {
        "spine1": (25, 0, 0), "spine2": (15, 0, 0), "spine3": (10, 0, 0), "left_shoulder": (0, 0, -80),
        "right_shoulder": (0, 0, 80), "left_hip": (-20, 0, 0), "right_hip": (-20, 0, 0),
    }, 90.0),
    ("arms up, back", {"left_shoulder": (0, 0, 60), "right_shoulder": (0, 0, -60), "neck": (-15, 0, 0)},
     180.0),
    ("kneeling step, front", {
        "left_hip": (-80, 0, 0), "left_knee": (90, 0, 0), "right_hip": (10, 0, 10),
        "left_shoulder": (0, -40, -30), "right_shoulder": (0, 40, 30),
    }, -20.0),
    ("reaching, three-quarter back", {
        "right_shoulder": (0, -60, 20), "right_elbow": (0, 40, 0), "left_shoulder": (0, 0, -40),
        "spine2": (0, 20, 0),
    }, 140.0),
)


def preview_batch(model: BodyModel, count: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Names, (B, J*3) poses with global orientation, and (B, S) zero betas of the first `count` poses,
    cycling through `PREVIEW_POSES` with an extra 45 degrees of turn per cycle."""
    names, poses = [], []
    for i in range(count):
        name, angles, yaw = PREVIEW_POSES[i % len(PREVIEW_POSES)]
        yaw += 45.0 * (i // len(PREVIEW_POSES))
        pose = pose_from_angles(angles).reshape(len(SMPL_JOINTS), 3)
        pose[0] = facing_camera_orient(np.deg2rad(yaw))[0]
        names.append(name)
        poses.append(pose.reshape(-1))
    if model.num_joints != len(SMPL_JOINTS):
        raise ValueError(f"{model.source}: preview poses are defined on SMPL's {len(SMPL_JOINTS)} joints, "
                         f"the model has {model.num_joints}")
    return names, torch.stack(poses), torch.zeros(count, model.num_betas)


def _draw_keypoints(image: np.ndarray, keypoints: np.ndarray) -> None:
    """Draw (K, 2) pixel positions onto image (H, W, 3) uint8 in place."""
    radius = max(1, image.shape[0] // 96)
    for u, v in keypoints:
        cv2.circle(image, (int(round(u)), int(round(v))), radius, (220, 30, 30), -1, lineType=cv2.LINE_AA)


def _caption(image: np.ndarray, text: str) -> None:
    scale = max(0.3, image.shape[0] / 512)
    cv2.putText(image, text, (4, int(14 * scale + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0),
                max(1, int(scale * 1.5)), cv2.LINE_AA)


def preview_sheet(model: BodyModel, size: int, count: int) -> tuple[np.ndarray, dict[str, float]]:
    """Render the preview sheet (count rows x 3 panels of size x size) and measure the body.

    Returns the sheet as (H, W, 3) uint8 RGB and metrics: counts, standing height (m), coverage of the
    image by the silhouette and the mean rasterisation time per frame (ms, CPU kernel).
    """
    names, poses, betas = preview_batch(model, count)
    with torch.no_grad():
        posed = model(betas, poses)
        cam = fit_weak_perspective(posed.vertices, fill=0.75)  # (B, 3)
        verts = weak_perspective_project(posed.vertices, cam)  # (B, V, 3)
        keypoints = weak_perspective_project(posed.keypoints, cam)
        rest = model(torch.zeros(1, model.num_betas), torch.zeros(1, 3 * model.num_joints)).vertices[0]
    settings = RasterSettings(size, size)
    rasterize(verts[:1], model.faces, settings)  # the first call may compile the kernel: not timed
    start = time.perf_counter()
    frags = rasterize(verts, model.faces, settings)
    raster_ms = (time.perf_counter() - start) * 1000 / count
    silhouette = frags.face_index >= 0  # (B, H, W)
    shaded = to_uint8(torch.where(silhouette, shade(frags, verts, model.faces), 0.93))
    parts = label_image(frags, model.faces, model.part_labels, palette(len(model.part_names)))
    cond = conditioning_map(frags.face_index, frags.bary, model.faces, model.surface_coords)
    cond = to_uint8((cond[:, :3] + cond[:, 3:]).permute(0, 2, 3, 1))  # background drawn white
    pixels = ndc_to_pixel(keypoints[..., :2], size, size).numpy()  # (B, K, 2)
    rows = []
    for i in range(count):
        panels = [shaded[i].copy(), parts[i].copy(), cond[i].copy()]
        _draw_keypoints(panels[0], pixels[i])
        _caption(panels[0], names[i])
        _caption(panels[1], "body parts")
        _caption(panels[2], "conditioning map")
        rows.append(np.concatenate(panels, axis=1))
    sheet = np.concatenate(rows, axis=0)
    metrics = {
        "vertices": model.num_vertices,
        "faces": int(model.faces.shape[0]),
        "joints": model.num_joints,
        "keypoints": model.num_keypoints,
        "parts": len(model.part_names),
        "betas": model.num_betas,
        "height_m": float(rest[:, 1].max() - rest[:, 1].min()),
        "silhouette_coverage": float(silhouette.float().mean()),
        "raster_ms_per_frame": raster_ms,
    }
    return sheet, metrics

