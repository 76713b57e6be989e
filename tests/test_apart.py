"""MediaPipe Pose taken apart (`lwgan.data.detector.MediaPipePeople`) and the fill that hides a person
from the landmark model (`lwgan.body.detect.fill_people`). The references are MediaPipe Pose's own whole
graph (its body region and landmarks, computed by its calculators) and a mean over each window written
out in numpy.

Skipped where mediapipe is not installed (it is an optional extra)."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from lwgan.body.detect import fill_people

WHOLE_OUTPUTS = ["pose_landmarks", "pose_world_landmarks", "pose_detection", "pose_rect_from_detection",
                 "pose_rect_from_landmarks"]


def photo(name: str) -> np.ndarray:
    """A photo shipped inside matplotlib, (H, W, 3) uint8 RGB."""
    bgr = cv2.imread(str(matplotlib.cbook.get_sample_data(name, asfileobj=False)), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[..., ::-1])


@pytest.fixture(scope="module")
def whole():
    """MediaPipe Pose's whole graph on single images, with its person detection and both body regions."""
    pytest.importorskip("mediapipe", reason="the person detector (MediaPipe) is not installed")
    from mediapipe.python.solution_base import SolutionBase
    from mediapipe.python.solutions import pose

    graph = SolutionBase(binary_graph_path=pose._BINARYPB_FILE_PATH, side_inputs={
        "model_complexity": 1, "smooth_landmarks": False, "enable_segmentation": True,
        "smooth_segmentation": False, "use_prev_landmarks": False}, outputs=WHOLE_OUTPUTS)
    yield graph
    graph.close()


@pytest.fixture(scope="module")
def people():
    pytest.importorskip("mediapipe", reason="the person detector (MediaPipe) is not installed")
    from lwgan.data.detector import MediaPipePeople

    with MediaPipePeople() as built:
        yield built


def as_rect(rect, width: int, height: int) -> np.ndarray:
    """MediaPipe's NormalizedRect as (centre u, centre v, side, rotation) in pixels (pixel centres at
    integers), the side from its width."""
    return np.array([rect.x_center * width - 0.5, rect.y_center * height - 0.5, rect.width * width,
                     rect.rotation])


def region_as_rect(region) -> np.ndarray:
    return np.array([region.hip[0], region.hip[1], region.size, region.rotation()])


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "astronaut"])
def test_body_regions_are_mediapipes_own(whole, people, name):
    """The region built from a sighting's two points, and the one carried to the next frame from the
    landmarks, are the squares MediaPipe's own calculators make (``PoseDetectionToRoi``,
    ``PoseLandmarksToRoi``): same centre, side and turn."""
    from lwgan.data.detector import BodyRegion

    image = photo(name) if name.endswith(".jpg") else _astronaut()
    height, width = image.shape[:2]
    whole.reset()  # its filter of the carried region would otherwise blend in the image before
    out = whole.process(image)
    assert out.pose_detection is not None, name
    points = [np.array((p.x * width - 0.5, p.y * height - 0.5))
              for p in out.pose_detection.location_data.relative_keypoints[:2]]
    expected = as_rect(out.pose_rect_from_detection, width, height)
    np.testing.assert_allclose(region_as_rect(BodyRegion(*points)), expected, atol=0.5, rtol=1e-3)
    # the landmark model on that region: its next region is MediaPipe's region from the landmarks
    found = people.landmarks(image, BodyRegion(*points))
    assert found is not None
    np.testing.assert_allclose(region_as_rect(found.region), as_rect(out.pose_rect_from_landmarks, width,
                                                                     height), atol=1.0, rtol=1e-2)


@pytest.mark.parametrize("name", ["grace_hopper.jpg", "astronaut"])
def test_the_halves_find_what_the_whole_finds(whole, people, name):
    """With one person in view, the best sighting and the landmark model on its region give MediaPipe
    Pose's own keypoints (its merging suppression moves the region by little: within 2 % of the image),
    and a mask covering the same pixels."""
    from lwgan.data.detector import BLAZEPOSE_TO_COCO17

    image = photo(name) if name.endswith(".jpg") else _astronaut()
    height, width = image.shape[:2]
    sightings = people.sightings(image)
    assert len(sightings) >= 1 and sightings[0].score >= 0.5
    found = people.landmarks(image, sightings[0].region)
    assert found is not None and found.detection.found
    whole.reset()
    out = whole.process(image)
    landmarks = out.pose_landmarks.landmark
    expected = np.array([(landmarks[i].x * width - 0.5, landmarks[i].y * height - 0.5)
                         for i in BLAZEPOSE_TO_COCO17])
    seen = found.detection.keypoints[:, 2] > 0.5
    assert seen.sum() >= 5
    error = np.linalg.norm(found.detection.keypoints[seen, :2] - expected[seen], axis=1)
    assert error.max() < 0.02 * max(width, height), error
    assert found.detection.mask.shape == (height, width) and found.detection.mask.any()
    # and its metric 3D estimate is the whole graph's world landmarks (metres about the hips)
    marks = out.pose_world_landmarks.landmark
    world = np.array([(marks[i].x, marks[i].y, marks[i].z) for i in BLAZEPOSE_TO_COCO17])
    assert found.detection.world is not None and found.detection.world.shape == (17, 4)
    assert np.abs(found.detection.world[seen, :3] - world[seen]).max() < 0.05  # metres


def test_an_image_without_a_person_has_no_sightings(people):
    """A smooth gradient, no one in it: no sighting; the landmark model on a region there is not sure of
    anyone either."""
    from lwgan.data.detector import BodyRegion

    ramp = np.linspace(0, 255, 256, dtype=np.float32)
    image = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], np.full((256, 256), 90.0)),
                     axis=-1).astype(np.uint8)
    assert people.sightings(image) == []
    assert people.landmarks(image, BodyRegion(np.array([128.0, 160.0]), np.array([128.0, 80.0]))) is None
    point = np.array([128.0, 160.0])  # a region of no size, or not a number: nothing to look at
    assert people.landmarks(image, BodyRegion(point, point)) is None
    assert people.landmarks(image, BodyRegion(point, np.array([np.nan, 80.0]))) is None


def test_input_checks(people):
    from lwgan.data.detector import MediaPipePeople

    with pytest.raises(ValueError, match="uint8 RGB"):
        people.sightings(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="min_presence"):
        MediaPipePeople(min_presence=1.5)


def _astronaut() -> np.ndarray:
    skimage = pytest.importorskip("skimage")
    return np.ascontiguousarray(skimage.data.astronaut())


def test_fill_people_takes_the_mean_of_the_pixels_around():
    """A person-shaped block on a smooth background: every filled pixel is the mean of the unmasked pixels
    in the box window around it (written out here; twice as large where that box holds none), the rest
    of the image is untouched, and the block's colour is gone."""
    rng = np.random.default_rng(0)
    h, w = 60, 80
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack((2 * xx, 3 * yy, 100 + 0 * xx), axis=-1).astype(np.uint8)
    image += rng.integers(0, 5, image.shape, dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    mask[15:45, 30:42] = True
    image[mask] = (250, 10, 250)
    out = fill_people(image, mask)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[~mask], image[~mask])
    k = max(3, int(0.12 * max(h, w)) | 1)  # the window: FILL_BLUR of the longer side, odd
    for y, x in [(15, 30), (30, 36), (44, 41), (20, 33)]:
        r = k // 2
        while True:
            window = (slice(max(0, y - r), y + r + 1), slice(max(0, x - r), x + r + 1))
            keep = ~mask[window]
            if keep.any():
                break
            r = 2 * r + 1  # the next window, 2k + 1 wide
        want = image[window][keep].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(out[y, x], want, atol=1.0, err_msg=str((y, x, r)))
    assert np.abs(out[mask].astype(int) - (250, 10, 250)).min(axis=1).max() > 50
    np.testing.assert_array_equal(fill_people(image, np.zeros((h, w), bool)), image)
