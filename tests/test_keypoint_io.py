"""Keypoint importers (OpenPose, COCO) and the mapping of source-frame keypoints into cache frames."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from lwgan.body.keypoint_io import (
    OPENPOSE_TO_COCO17,
    KeypointTrack,
    cache_to_source,
    read_coco,
    read_openpose,
    read_track,
    source_to_cache,
)
from lwgan.data.crop import CropBox, apply_crop
from lwgan.data.errors import DataError

RNG = np.random.default_rng(7)


def person(seed: int, scale: float = 1.0) -> np.ndarray:
    """(17, 3) COCO-17 u, v, confidence with distinct positions and confidences in (0.5, 1)."""
    rng = np.random.default_rng(seed)
    points = np.zeros((17, 3), np.float32)
    points[:, :2] = rng.uniform(100, 400, (17, 2)) * scale
    points[:, 2] = rng.uniform(0.5, 1.0, 17)
    return points


def to_openpose(points: np.ndarray, layout: str) -> list[float]:
    """COCO-17 -> an OpenPose flat list of `layout`, extra joints (neck, mid hip, feet) filled with noise."""
    size = 25 if layout == "BODY_25" else 18
    flat = RNG.uniform(0, 50, (size, 3))
    flat[list(OPENPOSE_TO_COCO17[layout])] = points
    return [float(x) for x in flat.ravel()]


def write_json(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


# -- crop mapping ----------------------------------------------------------------------------------------
def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted (u, v) of a single-channel image, pixel centres at integers."""
    weights = image.astype(np.float64)
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    return np.array([(cols * weights).sum(), (rows * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("crop", [CropBox(150, 40, 600), CropBox(60, 70, 190), CropBox(-80, -30, 500)])
def test_source_to_cache_agrees_with_the_crop_that_prepare_applies(crop: CropBox) -> None:
    """A blob drawn in the source frame and cut + resized by `apply_crop` lands where the mapping says."""
    height, width, size = 560, 900, 256
    rows, cols = np.mgrid[:height, :width]
    for centre in [(crop.x0 + 0.3 * crop.side, crop.y0 + 0.6 * crop.side),
                   (crop.x0 + 0.71 * crop.side + 0.25, crop.y0 + 0.2 * crop.side + 0.5)]:
        blob = np.exp(-((cols - centre[0]) ** 2 + (rows - centre[1]) ** 2) / (2 * 12.0**2))
        source = np.round(blob * 255).astype(np.uint8)
        cached = apply_crop(source[..., None].repeat(3, axis=2), crop, size, pad="constant")[..., 0]
        mapped = source_to_cache(np.array([[*centre, 1.0]]), crop.as_tuple(), size)[0]
        np.testing.assert_allclose(mapped[:2], centroid(cached), atol=0.15)
        assert mapped[2] == 1.0


def test_crop_edges_map_to_cache_edges_and_back() -> None:
    crop, size = (30, 50, 200), 256
    points = np.array([[29.5, 49.5, 1.0], [229.5, 249.5, 1.0], [129.5, 149.5, 0.7]], np.float32)
    mapped = source_to_cache(points, crop, size)
    np.testing.assert_allclose(mapped[0, :2], [-0.5, -0.5], atol=1e-5)
    np.testing.assert_allclose(mapped[2, :2], [127.5, 127.5], atol=1e-5)
    np.testing.assert_allclose(cache_to_source(mapped, crop, size)[:, :2], points[:, :2], atol=1e-4)
    # the far edge is outside the half-open frame: the cache frame does not show it
    np.testing.assert_array_equal(mapped[:, 2], np.float32([1.0, 0.0, 0.7]))


def test_track_selects_cached_frames_and_maps_them(caplog: pytest.LogCaptureFixture) -> None:
    keypoints = np.stack([person(i) for i in range(5)])  # (5, 17, 3)
    track = KeypointTrack(keypoints, np.array([0, 2, 4, 6, 8]), "demo")
    with caplog.at_level(logging.WARNING):
        selected = track.select(np.array([2, 3, 8]))
    np.testing.assert_array_equal(selected[0], keypoints[1])
    np.testing.assert_array_equal(selected[1], 0.0)
    np.testing.assert_array_equal(selected[2], keypoints[4])
    assert "demo has no keypoints for 1 of 3 frames (first missing: frame 3)" in caplog.text
    cached = track.to_cache(np.array([4]), (100, 100, 400), 200)
    np.testing.assert_allclose(cached[0, :, :2], (keypoints[2, :, :2] - 100 + 0.5) / 2 - 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="strictly increasing"):
        KeypointTrack(keypoints, np.array([0, 2, 2, 6, 8]))


# -- OpenPose --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["BODY_25", "COCO_18"])
def test_openpose_layouts_map_to_coco17_with_left_and_right_kept(tmp_path: Path, layout: str) -> None:
    truth = [person(1), person(2)]
    for frame, points in zip((0, 5), truth, strict=True):
        write_json(tmp_path / f"clip_{frame:012d}_keypoints.json",
                   {"version": 1.3, "people": [{"pose_keypoints_2d": to_openpose(points, layout)}]})
    track = read_openpose(tmp_path)
    np.testing.assert_array_equal(track.frame_numbers, [0, 5])
    np.testing.assert_allclose(track.keypoints, np.stack(truth), atol=1e-5)


def test_openpose_names_joints_as_openpose_does() -> None:
    """BODY_25 index 5 is LShoulder and 2 RShoulder; COCO-17 puts left_shoulder (5) before the right (6)."""
    assert OPENPOSE_TO_COCO17["BODY_25"][5:7] == (5, 2)
    assert OPENPOSE_TO_COCO17["BODY_25"][1:5] == (16, 15, 18, 17)  # LEye, REye, LEar, REar
    assert OPENPOSE_TO_COCO17["COCO_18"][11:13] == (11, 8)  # LHip, RHip


def test_openpose_picks_one_person_and_handles_empty_frames(tmp_path: Path) -> None:
    sure, big = person(3), person(4, scale=2.0)
    sure[:, 2], big[:, 2] = 0.95, 0.6
    write_json(tmp_path / "000.json", {"people": [{"pose_keypoints_2d": to_openpose(big, "BODY_25")},
                                                  {"pose_keypoints_2d": to_openpose(sure, "BODY_25")}]})
    write_json(tmp_path / "001.json", {"people": []})
    by_confidence = read_openpose(tmp_path)
    np.testing.assert_allclose(by_confidence.keypoints[0], sure, atol=1e-5)
    np.testing.assert_array_equal(by_confidence.keypoints[1], 0.0)
    by_area = read_openpose([tmp_path / "000.json"], pick="area")
    np.testing.assert_allclose(by_area.keypoints[0], big, atol=1e-4)


def test_openpose_missing_joints_get_zero_confidence(tmp_path: Path) -> None:
    points = person(5)
    points[3] = 0.0  # OpenPose writes (0, 0, 0) for a joint it did not find
    write_json(tmp_path / "7.json", {"people": [{"pose_keypoints_2d": to_openpose(points, "COCO_18")}]})
    track = read_openpose(tmp_path)
    assert track.keypoints[0, 3, 2] == 0.0 and track.frame_numbers.tolist() == [7]


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ('{"version": 1.3}', "no 'people' key"),
    ('{"people": {}}', "'people' must be a list"),
    ('{"people": [{"face_keypoints_2d": []}]}', r"people\[0\] has no 'pose_keypoints_2d'"),
    ('{"people": [{"pose_keypoints_2d": [1, 2, 3]}]}',
     r"people\[0\]: pose_keypoints_2d must be a list of 75"),
    ('{"people": [{"pose_keypoints_2d": "abc"}]}', "got str"),
])  # fmt: skip
def test_malformed_openpose_files_name_the_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "f_000000000003_keypoints.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_openpose(tmp_path)
    assert str(path) in str(info.value)


def test_openpose_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        read_openpose(tmp_path / "nope")
    with pytest.raises(DataError, match="holds no .json files"):
        read_openpose(tmp_path)


# -- COCO ------------------------------------------------------------------------------------------------
def coco_annotation(image_id: object, points: np.ndarray, flags: bool = True, **extra: object) -> dict:
    values = points.copy()
    if flags:
        values[:, 2] = np.where(points[:, 2] > 0, 2, 0)
    return {"image_id": image_id, "category_id": 1, "keypoints": [float(x) for x in values.ravel()], **extra}


def test_coco_annotations_by_image_id(tmp_path: Path) -> None:
    a, b, small = person(6), person(7), person(8, scale=0.3)
    a[4, 2] = 0.0
    path = write_json(tmp_path / "kp.json", {"images": [], "annotations": [
        coco_annotation(3, a), coco_annotation(1, b), coco_annotation(1, small)]})
    track = read_coco(path, pick="area")
    np.testing.assert_array_equal(track.frame_numbers, [1, 3])
    np.testing.assert_allclose(track.keypoints[0, :, :2], b[:, :2], atol=1e-4)
    np.testing.assert_array_equal(track.keypoints[1, :, 2], np.where(np.arange(17) == 4, 0.0, 1.0))
    np.testing.assert_array_equal(track.keypoints[1, 4], 0.0)


def test_coco_results_use_scores_and_file_names(tmp_path: Path) -> None:
    a, b = person(9), person(10)
    results = [coco_annotation(11, a, flags=False, score=0.2), coco_annotation(11, b, flags=False, score=0.9)]
    track = read_coco(write_json(tmp_path / "results.json", results))
    np.testing.assert_allclose(track.keypoints[0], b, atol=1e-5)
    data = {"images": [{"id": 11, "file_name": "frames/0042.jpg"}], "annotations": [coco_annotation(11, a)]}
    track = read_coco(write_json(tmp_path / "f.json", data), frame_from="file_name")
    assert track.frame_numbers.tolist() == [42]


@pytest.mark.parametrize("content, message", [
    ('{"images": []}', "needs an 'annotations' list"),
    ('"text"', "expected a COCO dict"),
    ('{"annotations": {}}', "'annotations' must be a list"),
    ('{"annotations": [[1, 2]]}', r"annotations\[0\] must be an object"),
    ('{"annotations": [{"image_id": 1}]}', r"annotations\[0\] has no 'keypoints'"),
    ('{"annotations": [{"image_id": 1, "keypoints": [1, 2, 2]}]}',
     r"annotations\[0\]: 'keypoints' must be 51"),
    ('{"annotations": [{"image_id": "a.jpg", "keypoints": ' + json.dumps([1] * 51) + "}]}",
     "image_id must be a frame number"),
    ('{"annotations": []}', "holds no keypoint annotations"),
])  # fmt: skip
def test_malformed_coco_files_name_the_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "kp.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_coco(path)
    assert str(path) in str(info.value)


def test_coco_file_name_numbering_errors(tmp_path: Path) -> None:
    ann = coco_annotation(5, person(1))
    path = write_json(tmp_path / "a.json",
                      {"annotations": [ann], "images": [{"id": 5, "file_name": "x.jpg"}]})
    with pytest.raises(DataError, match=r"images\[0\].file_name 'x.jpg' carries no frame number"):
        read_coco(path, frame_from="file_name")
    path = write_json(tmp_path / "b.json",
                      {"annotations": [ann], "images": [{"id": 6, "file_name": "6.jpg"}]})
    with pytest.raises(DataError, match=r"annotations\[0\]: image_id 5 is not in 'images'"):
        read_coco(path, frame_from="file_name")
    with pytest.raises(DataError, match="does not exist"):
        read_coco(tmp_path / "missing.json")


def test_read_track_finds_a_videos_files(tmp_path: Path) -> None:
    points = person(11)
    (tmp_path / "op" / "001_1_1").mkdir(parents=True)
    write_json(tmp_path / "op" / "001_1_1" / "0004.json",
               {"people": [{"pose_keypoints_2d": to_openpose(points, "BODY_25")}]})
    (tmp_path / "coco").mkdir()
    write_json(tmp_path / "coco" / "001_1_1.json", {"annotations": [coco_annotation(4, points)]})
    from_openpose = read_track("openpose", tmp_path / "op", "001_1_1")
    from_coco = read_track("coco", tmp_path / "coco", "001_1_1")
    np.testing.assert_allclose(from_openpose.keypoints[0, :, :2], from_coco.keypoints[0, :, :2], atol=1e-4)
    assert from_openpose.frame_numbers.tolist() == from_coco.frame_numbers.tolist() == [4]
    with pytest.raises(DataError, match="no OpenPose keypoints for video '002_1_1'"):
        read_track("openpose", tmp_path / "op", "002_1_1")
    with pytest.raises(DataError, match="no COCO keypoints for video '002_1_1'"):
        read_track("coco", tmp_path / "coco", "002_1_1")


def test_per_frame_crop_boxes_map_bit_for_bit_like_one_box():
    """A video cut with one square per frame (`FramesCache.crop_boxes`) whose squares are all alike maps
    keypoints exactly as the one square does, both ways: the two paths are one arithmetic."""
    rng = np.random.default_rng(0)
    for _ in range(100):
        keypoints = rng.uniform(-300, 2000, (7, 17, 3)).astype(np.float32)
        box = np.array([rng.integers(-500, 1500), rng.integers(-500, 1500), rng.integers(50, 3000)])
        size = int(rng.choice([48, 64, 256, 512]))
        frames = np.tile(box, (7, 1))
        np.testing.assert_array_equal(source_to_cache(keypoints, frames, size),
                                      source_to_cache(keypoints, box, size))
        np.testing.assert_array_equal(cache_to_source(keypoints, frames, size),
                                      cache_to_source(keypoints, box, size))
