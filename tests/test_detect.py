"""The MediaPipe detector on real photos, on renders of the synthetic set and on images without a person.

Skipped where mediapipe is not installed (it is an optional extra)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("mediapipe")

import matplotlib.cbook  # noqa: E402

from lwgan.body.detect import GroundTruthKeypoints, MediaPipeDetector, detect_video  # noqa: E402
from lwgan.body.extras import COCO_KEYPOINT_NAMES  # noqa: E402
from lwgan.body.model import BodyModel  # noqa: E402
from lwgan.data.cache import FramesCache  # noqa: E402
from lwgan.data.prepare import PrepareOptions, prepare  # noqa: E402
from lwgan.synth.background import make_background  # noqa: E402
from lwgan.synth.synthesize import SynthOptions, synthesize  # noqa: E402

TINY = SynthOptions(subjects=2, clothes=1, frames_per_action=4, image_size=256, val_subjects=1)
KP = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}
LEFT_RIGHT = [KP[n] for n in COCO_KEYPOINT_NAMES[:1]] + [
    KP[n.replace("left", "right")] if n.startswith("left") else KP[n.replace("right", "left")]
    for n in COCO_KEYPOINT_NAMES[1:]
]  # index of each keypoint's mirror partner


@pytest.fixture(scope="module")
def detector() -> MediaPipeDetector:
    with MediaPipeDetector() as built:
        yield built


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FramesCache]:
    root = tmp_path_factory.mktemp("detect")
    synthesize(TINY, BodyModel.default(), root / "raw")
    prepare(PrepareOptions(source="iper", root=root / "raw", image_size=256), root / "cache")
    return root / "raw", FramesCache(root / "cache" / "frames.h5")


def sample_photo(name: str) -> np.ndarray:
    """A photo shipped inside matplotlib, (H, W, 3) uint8 RGB."""
    bgr = cv2.imread(str(matplotlib.cbook.get_sample_data(name, asfileobj=False)), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[..., ::-1])


def test_portrait_photo(detector: MediaPipeDetector) -> None:
    """Grace Hopper's portrait (512 x 600, head and shoulders, facing the camera)."""
    image = sample_photo("grace_hopper.jpg")
    found = detector.detect(image)
    kp = found.keypoints
    assert found.found and 0.3 < found.score <= 1.0
    nose, left_eye, right_eye = kp[KP["nose"]], kp[KP["left_eye"]], kp[KP["right_eye"]]
    left_sh, right_sh = kp[KP["left_shoulder"]], kp[KP["right_shoulder"]]
    assert 230 < nose[0] < 310 and 180 < nose[1] < 270 and nose[2] > 0.9
    # facing the camera, the person's left is on the image's right
    assert right_eye[0] < nose[0] < left_eye[0] and max(left_eye[1], right_eye[1]) < nose[1]
    assert right_sh[0] < 200 < 320 < left_sh[0] and 370 < left_sh[1] < 480 and 370 < right_sh[1] < 480
    assert min(left_sh[2], right_sh[2]) > 0.9
    # below the frame: extrapolated, not shown, so confidence 0
    assert (kp[[KP["left_knee"], KP["right_knee"], KP["left_ankle"], KP["right_ankle"]], 2] == 0).all()
    assert found.mask is not None and found.mask.shape == image.shape[:2]
    assert found.mask[int(nose[1]), int(nose[0])] and not found.mask[10, 10]
    assert 0.4 < found.mask.mean() < 0.8
    # the metric 3D estimate: in metres about the hips, camera axes; a person's shoulders are 0.3-0.45 m
    # apart, and facing the camera the left one is on the right (+x), the nose in front of them (-z)
    world = found.world
    assert world is not None and world.shape == (17, 4) and world.dtype == np.float32
    shoulders = world[[KP["left_shoulder"], KP["right_shoulder"]], :3]
    assert 0.3 < float(np.linalg.norm(shoulders[0] - shoulders[1])) < 0.45
    assert shoulders[0, 0] > shoulders[1, 0] and world[KP["nose"], 2] < shoulders[:, 2].min()
    assert shoulders[:, 1].max() < world[KP["left_hip"], 1]  # y down: the shoulders above the hips


def test_astronaut_photo(detector: MediaPipeDetector) -> None:
    data = pytest.importorskip("skimage.data")
    found = detector.detect(data.astronaut())
    nose = found.keypoints[KP["nose"]]
    assert found.found and abs(nose[0] - 222) < 20 and abs(nose[1] - 128) < 20
    assert found.keypoints[KP["right_shoulder"], 0] < nose[0] < found.keypoints[KP["left_shoulder"], 0]


def test_synthetic_renders_match_ground_truth(detector: MediaPipeDetector,
                                              prepared: tuple[Path, FramesCache]) -> None:
    raw, cache = prepared
    truth = GroundTruthKeypoints(raw)
    errors, swapped, ious, found = [], [], [], []
    for video in cache.videos:
        frames = cache.frames(video, range(cache.num_frames(video)))
        batch, gt = detect_video(frames, detector), truth.for_cache(cache, video)
        found.append(batch.found)
        both = batch.found & gt.found
        det, ref = batch.keypoints[both, :, :2], gt.keypoints[both, :, :2]
        errors.append(np.linalg.norm(det - ref, axis=-1).ravel())
        swapped.append(np.linalg.norm(det[:, LEFT_RIGHT] - ref, axis=-1).ravel())
        det_masks, gt_masks = batch.masks(), gt.masks()
        assert det_masks is not None and gt_masks is not None
        for i in np.flatnonzero(both):
            ious.append((det_masks[i] & gt_masks[i]).sum() / (det_masks[i] | gt_masks[i]).sum())
    error, mirror = np.concatenate(errors), np.concatenate(swapped)
    assert np.concatenate(found).mean() >= 14 / 16
    assert np.median(error) < 4.0 and np.percentile(error, 90) < 12.0  # px in 256² frames
    assert np.median(mirror) > 2 * np.median(error)  # left and right are not swapped
    assert np.median(ious) > 0.85


def test_tracking_mode_follows_the_video(prepared: tuple[Path, FramesCache]) -> None:
    raw, cache = prepared
    video = cache.videos[1]
    frames = cache.frames(video, range(cache.num_frames(video)))
    gt = GroundTruthKeypoints(raw).for_cache(cache, video, masks=False)
    with MediaPipeDetector(static_image_mode=False) as tracker:
        first, again = detect_video(frames, tracker), detect_video(frames, tracker)
    assert first.found.all()
    np.testing.assert_allclose(first.keypoints, again.keypoints, atol=1e-3)  # reset between videos
    assert np.median(np.linalg.norm(first.keypoints[..., :2] - gt.keypoints[..., :2], axis=-1)) < 5.0


def test_images_without_a_person(detector: MediaPipeDetector) -> None:
    rng = np.random.default_rng(5)
    images = [sample_photo("Minduka_Present_Blue_Pack.png"), np.full((256, 256, 3), 128, np.uint8)]
    for _ in range(3):
        background, _kind = make_background(rng, 256, 256, 0.8)
        images.append(np.round(background * 255).astype(np.uint8))
    for image in images:
        found = detector.detect(image)
        assert not found.found and found.score == 0.0
        assert (found.keypoints == 0).all()
        assert found.mask is not None and found.mask.shape == image.shape[:2] and not found.mask.any()


def test_detector_settings_and_input_checks() -> None:
    with MediaPipeDetector(segmentation=False) as plain:
        found = plain.detect(sample_photo("grace_hopper.jpg"))
        assert found.found and found.mask is None
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB image, got \(8, 8\)"):
            plain.detect(np.zeros((8, 8), np.uint8))
        with pytest.raises(ValueError, match="float32"):
            plain.detect(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="min_detection_confidence must be in"):
        MediaPipeDetector(min_detection_confidence=1.5)
