"""Calibrated cameras (`lwgan.body.multiview`) and the fit against them: the Qualisys calibration that ships
with Pose2Sim's single-person take is read so that three cameras' detections of the man meet in one 3D
point each (a transposed rotation or a missing half turn does not), and the body fitted to one camera's
clip is measured in 3D against the keypoints triangulated from the other two cameras, which share no input
with it: closer than a body at rest and than the clip's mean pose (`benchmarks/fit_views.py` measures all
three clips)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from lwgan import footage
from lwgan.body.multiview import (
    Camera,
    align_scale_shift,
    frame_errors,
    read_qualisys,
    reprojection_px,
    triangulate,
)
from lwgan.data.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
LIMBS = list(range(5, 17))  # COCO-17: shoulders to ankles


def _cameras() -> dict[str, Camera]:
    path = footage.calibration(ROOT / footage.FOOTAGE_DIR)
    if path is None:
        pytest.skip(f"the calibration of the Pose2Sim take is not fetched: run {footage.FETCH_COMMAND}")
    return read_qualisys(path)


def test_the_calibration_reads_four_portrait_cameras():
    cameras = _cameras()
    assert sorted(cameras) == ["cam01", "cam02", "cam03", "cam04"]
    for camera in cameras.values():
        assert camera.size == (1088, 1920)
        assert np.allclose(camera.R @ camera.R.T, np.eye(3), atol=1e-6) and np.linalg.det(camera.R) > 0
        assert 1500 < camera.K[0, 0] < 1800  # a phone's lens: about 59 degrees across the 1920 px
        assert abs(camera.K[0, 2] - 544) < 40 and abs(camera.K[1, 2] - 960) < 40
        # every camera sees the middle of the capture volume (the world origin) inside its image, in front
        depth = camera.to_camera(np.zeros(3))[2]
        u, v = camera.project(np.zeros(3))
        assert depth > 1000 and 0 <= u < 1088 and 0 <= v < 1920


def test_triangulation_undoes_the_projection():
    """Points projected by K (R X + t), written out here, come back from any two or three views."""
    cameras = list(_cameras().values())[:3]
    rng = np.random.default_rng(0)
    points = rng.uniform(-800, 800, size=(5, 7, 3)) + np.array([0.0, 0.0, 900.0])  # (N, K, 3) mm
    views = []
    for c in cameras:
        h = (points @ c.R.T + c.t) @ c.K.T
        views.append(np.concatenate((h[..., :2] / h[..., 2:], np.ones(points.shape[:2] + (1,))), axis=-1))
    views = np.stack(views)  # (3, N, K, 3)
    assert np.allclose(triangulate(cameras, views), points, atol=1e-6)
    two = views.copy()
    two[0, :, :3, 2] = 0.0  # the first three points unseen by camera 0: two views remain
    two[1, :, :1, 2] = 0.0  # the first point seen by camera 2 alone: not triangulated
    out = triangulate(cameras, two)
    assert np.isnan(out[:, 0]).all() and np.allclose(out[:, 1:], points[:, 1:], atol=1e-6)


def test_scale_and_shift_alignment_keeps_the_rotation():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(3, 12, 3))
    assert np.allclose(align_scale_shift(0.25 * ref + np.array([5.0, -2.0, 9.0]), ref), ref)
    turned = ref @ np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T
    assert not np.allclose(align_scale_shift(turned, ref), ref, atol=0.1)  # a turn is not aligned away
    gap = ref.copy()
    gap[:, 0] = np.nan  # a joint the reference lacks takes no part
    assert np.allclose(align_scale_shift(2.0 * ref, gap)[:, 1:], ref[:, 1:])


def test_a_file_that_is_not_a_calibration_is_named(tmp_path):
    broken = tmp_path / "Calib.qca.txt"
    broken.write_text("<calibration><cameras><camera serial='cam01'/></cameras></calibration>")
    with pytest.raises(DataError, match=str(broken)):
        read_qualisys(broken)
    broken.write_text("not xml")
    with pytest.raises(DataError, match=str(broken)):
        read_qualisys(broken)


# --- on the footage ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def take(tmp_path_factory):
    """Every 5th frame of the three calibrated clips prepared and their keypoints detected as the fit stage
    detects them (source pixels), and the body fitted to portrait_cam02 (a front view), without and with
    the world term (`fit.world_weight` 300, the detector's metric 3D estimate)."""
    pytest.importorskip("mediapipe", reason="the person detector (MediaPipe) is not installed")
    from test_real_footage import detector_fit, prepared

    from lwgan.body import load_configured
    from lwgan.body.fit import FitWorker
    from lwgan.body.fitting import FitOptions, fit_video
    from lwgan.body.keypoint_io import cache_to_source
    from lwgan.body.model import BodyModel

    cameras = _cameras()
    keypoints, frames, fitted = {}, {}, None
    for clip, name in footage.CALIBRATED.items():
        root = tmp_path_factory.mktemp(name)
        cache, video = prepared(root, clip, frame_step=5)
        detections = FitWorker(detector_fit(root)).keypoints(video)
        cached = detections.keypoints  # (N, 17, 3) cache pixels
        keypoints[name] = cache_to_source(cached, cache.crop_boxes(video), 256)
        frames[name] = cache.frame_index(video)
        if name == "cam02":
            body = BodyModel(load_configured("default"))
            plain = fit_video(torch.from_numpy(cached), 256, body, FitOptions())
            guided = fit_video(torch.from_numpy(cached), 256, body, FitOptions(world_weight=300.0),
                               world=torch.from_numpy(detections.world))
            fitted = (body, plain, guided)
    assert all(np.array_equal(frames["cam01"], f) for f in frames.values())
    return cameras, keypoints, fitted


@pytest.mark.slow
def test_three_cameras_detections_meet_where_the_calibration_puts_them(take):
    """The man's keypoints, detected in each camera alone and triangulated from all three, land back on
    every camera's detections within the detector's scatter (median under 25 px on 1920-px frames), in
    front of every camera; with the rotation transposed they are four times as far off, and without the
    half turn from Qualisys's axes to OpenCV's they lie behind the cameras."""
    cameras, keypoints, _ = take
    names = ["cam01", "cam02", "cam03"]

    def off(cams: list[Camera]) -> list[float]:
        points = triangulate(cams, np.stack([keypoints[n] for n in names]))
        return [reprojection_px(c, points, keypoints[n]) for c, n in zip(cams, names, strict=True)]

    right = off([cameras[n] for n in names])
    assert max(right) < 25, right
    points = triangulate([cameras[n] for n in names], np.stack([keypoints[n] for n in names]))
    points = points[np.isfinite(points).all(axis=-1)]
    assert all((cameras[n].to_camera(points)[:, 2] > 1000).all() for n in names)  # in front of each

    def wrong(c: Camera, rotation: np.ndarray) -> Camera:
        world_position = -c.R.T @ c.t
        return dataclasses.replace(c, R=rotation, t=-rotation @ world_position)

    transposed = off([wrong(cameras[n], cameras[n].R.T) for n in names])
    assert min(transposed) > 4 * max(right), transposed
    unturned = [wrong(cameras[n], np.diag([1.0, -1.0, -1.0]) @ cameras[n].R) for n in names]
    points = triangulate(unturned, np.stack([keypoints[n] for n in names]))
    points = points[np.isfinite(points).all(axis=-1)]
    assert all((c.to_camera(points)[:, 2] < 0).mean() > 0.9 for c in unturned)  # behind the cameras


@pytest.mark.slow
def test_the_fit_of_one_camera_meets_the_other_two_in_3d(take):
    """portrait_cam02's fit against the keypoints triangulated from cam01 and cam03 alone, on the frames
    where the reference has at least 8 of the 12 limb keypoints (measured on those): its pose
    (Procrustes-aligned) and its pose as turned against the camera (scale and shift only) are closer than
    the fit's body at rest and than its mean pose held still, and under 110 / 140 mm (median); fitted with
    the world term, closer still in both (measured: 69.1 / 90.4 mm against 76.6 / 95.3)."""
    from lwgan.body.sequence import pose_body

    cameras, keypoints, (body, fit, guided) = take
    reference = triangulate([cameras["cam01"], cameras["cam03"]],
                            np.stack([keypoints["cam01"], keypoints["cam03"]]))[:, LIMBS]
    found = np.isfinite(reference).all(axis=-1)  # (N, 12)
    usable = found.sum(axis=1) >= 8
    assert usable.sum() >= 10, found.sum(axis=1)
    ref = cameras["cam02"].to_camera(reference[usable])
    pose = fit.pose.numpy()[usable]
    rest, still = np.zeros_like(pose), np.repeat(pose.mean(axis=0, keepdims=True), len(pose), axis=0)
    rest[:, :3] = still[:, :3] = pose[:, :3]
    errors = {}
    for label, p in (("fit", pose), ("rest", rest), ("still", still), ("world", guided.pose.numpy()[usable])):
        pred = pose_body(body, fit.betas.numpy(), p).keypoints.numpy().astype(np.float64)[:, LIMBS]
        pa, turned = frame_errors(pred, ref)
        errors[label] = (float(np.median(pa)), float(np.median(turned)))
    assert errors["fit"][0] < 110 and errors["fit"][1] < 140, errors
    assert errors["fit"][0] < errors["rest"][0] and errors["fit"][0] < errors["still"][0], errors
    assert errors["fit"][1] < errors["rest"][1] and errors["fit"][1] < errors["still"][1], errors
    # with the detector's metric 3D estimate the depth the keypoints leave open comes closer, both ways
    assert errors["world"][0] < errors["fit"][0] and errors["world"][1] < errors["fit"][1], errors
