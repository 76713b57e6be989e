"""Calibrated cameras, triangulation and the comparison of a monocular fit with a multi-view reference.

A fit sees one camera; three calibrated cameras of one take (`lwgan.footage.CALIBRATION`) give the body's
keypoints in 3D by triangulation from the views the fit did not see, a reference that shares no input
with it. `read_qualisys` reads the Qualisys ``.qca.txt`` export shipped with Pose2Sim's demo, as
Pose2Sim converts it: intrinsics in 1/64 sensor pixels less the video window's corner; the transform is
the camera's pose in the world (row i of its rotation, r_i1 r_i2 r_i3, the camera's i-th axis in world
coordinates; the position in mm), and the camera looks down its -z axis with y up, so a half turn about x
gives OpenCV's axes (x right, y down, z forward). The three cameras' detections of one man, triangulated,
land back on each view within the detector's own scatter (`tests/test_multiview.py`); a transposed
rotation or a missing half turn puts them hundreds of pixels off. `triangulate` is the linear (DLT)
triangulation weighted by the keypoints' confidences.

Camera axes are OpenCV's throughout, as are the fitted body's (`lwgan.body.cameras`: image x right, y
down, depth away from the camera), so a fitted body and the reference in that camera's axes differ by a
scale and a translation (weak perspective has no depth and its own units) and by nothing else where the
fit is right: `align_scale_shift` finds those two and keeps the fit's rotation, so the error it leaves
includes a body turned the wrong way, which Procrustes alignment (`lwgan.body.pose_metrics.pa_mpjpe`)
would hide.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from lwgan.body.pose_metrics import pa_mpjpe
from lwgan.data.errors import DataError

SUBPIXELS = 64.0  # Qualisys intrinsics are in 1/64 sensor pixels
QUALISYS_TO_OPENCV = np.diag([1.0, -1.0, -1.0])  # a half turn about the camera's x axis


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera: x_image ~ K (R X + t) for world points X (mm). size: (width, height) pixels."""

    name: str
    K: np.ndarray  # (3, 3)
    R: np.ndarray  # (3, 3) world -> camera axes
    t: np.ndarray  # (3,) mm
    size: tuple[int, int]

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) K [R | t]."""
        return self.K @ np.hstack((self.R, self.t[:, None]))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> the same in this camera's axes (mm)."""
        return points @ self.R.T + self.t

    def to_world(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) points in this camera's axes -> world points."""
        return (points - self.t) @ self.R

    def project(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) world points -> (..., 2) pixels (pixel centres at integers)."""
        p = self.to_camera(points) @ self.K.T
        return p[..., :2] / p[..., 2:3]


def read_qualisys(path: str | Path) -> dict[str, Camera]:
    """The cameras of a Qualisys ``.qca.txt`` calibration, by serial (module docstring); DataError naming
    the file and the missing attribute where it is not one."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        raise DataError(f"cannot read the calibration {path}: {err}") from err
    cameras = {}
    for node in root.findall("cameras/camera"):
        try:
            name = node.attrib["serial"]
            fov = {k: float(v) for k, v in node.find("fov_video").attrib.items()}
            intrinsic = {k: float(v) for k, v in node.find("intrinsic").attrib.items()}
            transform = {k: float(v) for k, v in node.find("transform").attrib.items()}
            f = (intrinsic["focalLengthU"] / SUBPIXELS, intrinsic["focalLengthV"] / SUBPIXELS)
            c = (intrinsic["centerPointU"] / SUBPIXELS - fov["left"],
                 intrinsic["centerPointV"] / SUBPIXELS - fov["top"])
            K = np.array([[f[0], 0.0, c[0]], [0.0, f[1], c[1]], [0.0, 0.0, 1.0]])
            axes = np.array([[transform[f"r{i}{j}"] for j in "123"] for i in "123"])  # rows: camera axes
            position = np.array([transform[k] for k in "xyz"])
            size = (int(fov["right"] - fov["left"]) + 1, int(fov["bottom"] - fov["top"]) + 1)
        except (KeyError, AttributeError) as err:
            raise DataError(f"{path}: a camera without {err} is not a Qualisys calibration") from err
        R = QUALISYS_TO_OPENCV @ axes
        cameras[name] = Camera(name, K, R, -R @ position, size)
    if not cameras:
        raise DataError(f"{path}: no cameras/camera entries; not a Qualisys calibration")
    return cameras


def triangulate(cameras: Sequence[Camera], keypoints: np.ndarray, min_confidence: float = 0.5,
                min_views: int = 2) -> np.ndarray:
    """World points (N, K, 3) from keypoints (C, N, K, 3) (u, v, confidence in each camera's pixels) by
    DLT, each view's two rows weighted by its confidence; NaN where fewer than `min_views` views have a
    confidence of at least `min_confidence`."""
    keypoints = np.asarray(keypoints, np.float64)
    if keypoints.ndim != 4 or keypoints.shape[0] != len(cameras) or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (C={len(cameras)}, N, K, 3), got {keypoints.shape}")
    projections = np.stack([c.projection for c in cameras])  # (C, 3, 4)
    u, v, w = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]  # (C, N, K)
    used = w >= min_confidence
    weight = np.where(used, w, 0.0)[..., None]  # (C, N, K, 1)
    p = projections[:, None, None]  # (C, 1, 1, 3, 4)
    rows = np.concatenate((weight * (u[..., None] * p[..., 2, :] - p[..., 0, :]),
                           weight * (v[..., None] * p[..., 2, :] - p[..., 1, :])), axis=0)  # (2C, N, K, 4)
    a = np.moveaxis(rows, 0, 2)  # (N, K, 2C, 4)
    x = np.linalg.svd(a)[2][..., -1, :]  # (N, K, 4)
    points = x[..., :3] / x[..., 3:4]
    points[used.sum(axis=0) < min_views] = np.nan
    return points


def align_scale_shift(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N, J, 3) pred mapped by the scale and translation (no rotation) that minimise the squared distance
    to ref (N, J, 3), per frame, over the joints where ref is finite."""
    ok = np.isfinite(ref).all(axis=-1, keepdims=True)  # (N, J, 1)
    count = ok.sum(axis=1, keepdims=True).clip(min=1)
    p_mean = (pred * ok).sum(axis=1, keepdims=True) / count
    r_mean = (np.where(ok, ref, 0.0)).sum(axis=1, keepdims=True) / count
    pc, rc = (pred - p_mean) * ok, np.where(ok, ref - r_mean, 0.0)
    spread = (pc * pc).sum(axis=(1, 2), keepdims=True).clip(min=1e-30)
    scale = (pc * rc).sum(axis=(1, 2), keepdims=True) / spread
    return scale * (pred - p_mean) + r_mean


def frame_errors(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) per frame, over the joints where ref (N, J, 3) is finite: the mean distance of pred (N, J, 3)
    to ref after a similarity alignment (PA-MPJPE, `lwgan.body.pose_metrics.pa_mpjpe`), and after a scale
    and a shift alone (`align_scale_shift`: the turn kept), in ref's units."""
    found = np.isfinite(ref).all(axis=-1)  # (N, J)
    pa = np.array([float(pa_mpjpe(torch.from_numpy(x[f][None]), torch.from_numpy(y[f][None]))[0])
                   for x, y, f in zip(pred, ref, found, strict=True)])
    turned = np.array([np.linalg.norm(a[f] - y[f], axis=-1).mean()
                       for a, y, f in zip(align_scale_shift(pred, ref), ref, found, strict=True)])
    return pa, turned


def reprojection_px(camera: Camera, points: np.ndarray, keypoints: np.ndarray,
                    min_confidence: float = 0.5) -> float:
    """Median pixel distance of world points (..., 3) projected into `camera` from its keypoints (..., 3)
    (u, v, confidence), over those with a confidence of at least `min_confidence`."""
    projected = camera.project(points)
    ok = (keypoints[..., 2] >= min_confidence) & np.isfinite(projected).all(axis=-1)
    return float(np.median(np.linalg.norm(projected[ok] - keypoints[..., :2][ok], axis=-1)))
