"""Detections chosen over time (`most_consistent`), mapped between frame sizes (`DetectionBatch.rescaled`),
and the source squares cut again at more pixels (`lwgan.data.recut`). The references are built here: a
skeleton moving on a straight line, the pixel-centre geometry, and crops cut with numpy from the PNGs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from lwgan.body.detect import DetectionBatch, most_consistent
from lwgan.body.extras import COCO_KEYPOINT_NAMES
from lwgan.data.cache import FramesCache
from lwgan.data.errors import DataError
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.recut import detection_side, recut

MIRROR = [COCO_KEYPOINT_NAMES.index(n.replace("left", "R").replace("right", "left").replace("R", "right"))
          for n in COCO_KEYPOINT_NAMES]

# An asymmetric standing pose (u, v) in a 256-px frame: the person's right arm raised, facing the camera.
POSE = np.array([[128, 40], [132, 36], [124, 36], [138, 38], [118, 38], [150, 60], [106, 60],
                 [158, 90], [92, 40], [162, 118], [90, 14], [142, 120], [114, 120], [144, 160],
                 [112, 160], [146, 200], [110, 200]], np.float32)


def walking(frames: int = 12) -> np.ndarray:
    """(frames, 17, 3): POSE moving 2 px right per frame, every keypoint confident."""
    track = np.zeros((frames, len(POSE), 3), np.float32)
    for t in range(frames):
        track[t, :, :2] = POSE + (2.0 * t, 0.0)
        track[t, :, 2] = 0.9
    return track


def batch(keypoints: np.ndarray, found: np.ndarray | None = None) -> DetectionBatch:
    found = (keypoints[..., 2] > 0).any(axis=-1) if found is None else found
    return DetectionBatch(keypoints.copy(), found, keypoints[..., 2].mean(axis=-1), None, (256, 256))


def test_a_single_wrong_frame_is_taken_from_the_candidate_that_continues_its_neighbours() -> None:
    truth = walking()
    first = truth.copy()
    first[5, 5:11, :2] = first[5, 5:11, :2] * [0.2, 1.0] + [0.8 * 128, 0.0]  # arms collapsed onto the middle
    second = truth.copy()
    second[..., :2] += (0.0, 0.5)  # another detector's keypoints, half a pixel lower everywhere
    out = most_consistent([batch(first), batch(second)])
    # The least movement: the second candidate throughout (changing candidates costs its half pixel twice)
    np.testing.assert_array_equal(out.keypoints, second)
    third = truth.copy()
    third[9, 11:17, :2] += 35.0  # the second candidate with its own wrong frame, the legs off
    out = most_consistent([batch(first), batch(third)])
    np.testing.assert_array_equal(out.keypoints[5], third[5])
    np.testing.assert_array_equal(out.keypoints[9], first[9])
    keep = (np.arange(12) != 5) & (np.arange(12) != 9)
    np.testing.assert_array_equal(out.keypoints[keep], truth[keep])


def test_the_metric_estimate_is_the_chosen_candidates_as_it_was_made() -> None:
    """Each frame's 3D estimate (`DetectionBatch.world`) comes from the candidate whose keypoints were
    chosen, unswapped where the keypoints' sides were swapped back (the fit compares the two); a candidate
    without estimates gives NaN, and the estimates survive `rescaled`."""
    truth = walking()
    world = np.random.default_rng(0).normal(size=(12, 17, 4)).astype(np.float32)
    flickering = truth.copy()
    flickering[7] = truth[7][MIRROR]

    def with_world(keypoints: np.ndarray) -> DetectionBatch:
        return DetectionBatch(keypoints.copy(), np.ones(12, bool), keypoints[..., 2].mean(-1), None,
                              (256, 256), world)

    out = most_consistent([with_world(flickering)])
    np.testing.assert_array_equal(out.keypoints, truth)  # frame 7 swapped back in 2D ...
    np.testing.assert_array_equal(out.world, world)  # ... its estimate as the detector made it
    np.testing.assert_array_equal(out.rescaled(128).world, out.world)
    first = truth.copy()
    first[5, 5:11, :2] = first[5, 5:11, :2] * [0.2, 1.0] + [0.8 * 128, 0.0]  # its frame 5 is wrong
    out = most_consistent([with_world(first), batch(truth + [0.0, 0.5, 0.0])])
    np.testing.assert_array_equal(out.keypoints[5], truth[5] + [0.0, 0.5, 0.0])  # the other candidate's
    from_first = np.array([np.array_equal(out.keypoints[i], first[i]) for i in range(12)])
    assert not from_first[5]
    np.testing.assert_array_equal(out.world[from_first], world[from_first])
    assert np.isnan(out.world[~from_first]).all()
    assert most_consistent([batch(first)]).world is None


def test_left_and_right_swapped_on_one_frame_are_swapped_back() -> None:
    truth = walking()
    flickering = truth.copy()
    flickering[7] = truth[7][MIRROR]
    out = most_consistent([batch(flickering)])
    np.testing.assert_array_equal(out.keypoints, truth)
    mirrored = truth[:, MIRROR]  # the same labels on every frame: nothing to choose
    np.testing.assert_array_equal(most_consistent([batch(mirrored)]).keypoints, mirrored)
    assert most_consistent([batch(flickering)], swap_penalty=10.0).keypoints[7].tolist() == \
        flickering[7].tolist()  # a swap dearer than the jump it saves is not taken


def test_a_long_run_of_frames_labelled_the_other_way_round_is_turned_back() -> None:
    """A person facing the camera whom the detector labels as seen from behind for ten frames in a row
    (every left keypoint where the right one is): turned back, however long the run, because each end of
    it jumps by the width between the two sides (here 0.19 body sizes in the mean); the frames labelled
    as found are the longer part."""
    truth = walking(24)
    relabelled = truth.copy()
    relabelled[6:16] = truth[6:16][:, MIRROR]
    np.testing.assert_array_equal(most_consistent([batch(relabelled)]).keypoints, truth)


def turning(frames: int = 13) -> np.ndarray:
    """(frames, 17, 3): POSE turning on the spot about the vertical through u = 128, from facing the
    camera to showing it the back (half a turn: the sides meet at a side view in the middle frame), with
    the labels a turning body has (its left keypoints pass from the image's right to its left)."""
    track = np.zeros((frames, len(POSE), 3), np.float32)
    for t in range(frames):
        angle = np.pi * t / (frames - 1)
        track[t, :, 0] = 128 + (POSE[:, 0] - 128) * np.cos(angle)
        track[t, :, 1] = POSE[:, 1]
        track[t, :, 2] = 0.9
    return track


def test_a_person_who_turns_round_keeps_the_labels_found() -> None:
    """A real half turn ends with the labels the other way round on the image, but nothing jumps on the
    way (the sides meet at the side view): no frame is swapped."""
    truth = turning()
    np.testing.assert_array_equal(most_consistent([batch(truth)]).keypoints, truth)
    ls, rs = COCO_KEYPOINT_NAMES.index("left_shoulder"), COCO_KEYPOINT_NAMES.index("right_shoulder")
    assert truth[0, ls, 0] > truth[0, rs, 0] and truth[-1, ls, 0] < truth[-1, rs, 0]  # it did turn round


def test_a_sparse_clip_that_turns_round_between_two_frames_keeps_the_labels_found() -> None:
    """Sampled sparsely (40 px of walking between frames, a fifth of the body's height), a person may turn
    round between two frames: the labels then jump as a relabelling's would, but by no more than the
    person's usual movement between frames, so they are kept as found. The same jump in a clip that
    moves 2 px per frame is turned back (the test above)."""
    track = np.zeros((12, len(POSE), 3), np.float32)
    for t in range(12):
        track[t, :, :2] = POSE + (40.0 * t, 0.0)
        track[t, :, 2] = 0.9
    track[6:] = track[6:][:, MIRROR]  # seen from behind from frame 6 on, as a body that turned round is
    np.testing.assert_array_equal(most_consistent([batch(track)]).keypoints, track)


def test_a_frame_without_a_person_breaks_the_path() -> None:
    truth = walking()
    first = truth.copy()
    first[5, 5:11, :2] += 40.0
    first[6] = 0.0
    second = truth.copy()
    second[6] = 0.0
    out = most_consistent([batch(first), batch(second)])
    assert out.found.tolist() == [t != 6 for t in range(12)]
    np.testing.assert_array_equal(out.keypoints[5], truth[5])  # the last frame before the gap still judged
    np.testing.assert_array_equal(out.keypoints[6], 0.0)
    with pytest.raises(ValueError, match="same frames"):
        most_consistent([batch(truth), batch(truth[:5])])


def test_rescaled_maps_pixel_edges_to_pixel_edges_and_halves_masks() -> None:
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, 0] = (-0.5, -0.5, 1.0)  # the outer corner of the first pixel
    keypoints[0, 1] = (511.5, 511.5, 0.8)  # the outer corner of the last
    keypoints[0, 2] = (99.5, 199.5, 0.5)  # the edge between pixels 99 and 100, 199 and 200
    mask = np.zeros((512, 512), bool)
    mask[100:200, 50:150] = True
    big = DetectionBatch(keypoints, np.array([True]), np.array([0.5], np.float32),
                         np.packbits(mask, axis=-1)[None], (512, 512))
    small = big.rescaled(256)
    assert small.image_size == (256, 256)
    np.testing.assert_allclose(small.keypoints[0, :3], [[-0.5, -0.5, 1.0], [255.5, 255.5, 0.8],
                                                        [49.5, 99.5, 0.5]])
    np.testing.assert_array_equal(small.keypoints[0, 3:], 0.0)  # unfound keypoints stay zero
    expected = np.zeros((256, 256), bool)
    expected[50:100, 25:75] = True
    np.testing.assert_array_equal(small.masks()[0], expected)


@pytest.fixture()
def folder_video(tmp_path: Path) -> tuple[Path, FramesCache, str]:
    """A 6-frame 240x160 PNG video with a bright moving block, prepared to 32-px frames."""
    frames = tmp_path / "iper" / "images" / "001" / "1" / "1"  # iPER's layout: a folder of frames
    frames.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for t in range(6):
        image = rng.integers(0, 60, (160, 240, 3), dtype=np.uint8)
        image[40:130, 90 + 4 * t:130 + 4 * t] = (40, 200, 250)
        cv2.imwrite(str(frames / f"{t:04d}.png"), image)
    prepare(PrepareOptions(source="iper", root=tmp_path / "iper", image_size=32, val_fraction=0.0,
                           person_box="motion", codec="lzf"), tmp_path / "cache")
    cache = FramesCache(tmp_path / "cache" / "frames.h5")
    return frames, cache, cache.videos[0]


def test_recut_gives_the_prepare_squares_at_more_pixels(folder_video) -> None:
    frames, cache, video = folder_video
    side = detection_side(cache, video, 512)
    square = cache.crop_boxes(video)
    assert side == int(square[:, 2].min()) > 32
    assert detection_side(cache, video, 0) == 0 and detection_side(cache, video, 32) == 0
    cut = list(recut(cache, video, side))
    assert len(cut) == cache.num_frames(video) == 6
    for t, image in enumerate(cut):
        source = cv2.cvtColor(cv2.imread(str(frames / f"{t:04d}.png")), cv2.COLOR_BGR2RGB)
        x0, y0, s = (int(v) for v in square[t])
        padded = np.pad(source, ((s, s), (s, s), (0, 0)))  # zeros outside the frame (constant padding)
        want = padded[y0 + s:y0 + 2 * s, x0 + s:x0 + 2 * s]
        if s != side:
            want = cv2.resize(want, (side, side), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(image, want)


def test_recut_refuses_a_source_that_changed_or_is_gone(folder_video) -> None:
    frames, cache, video = folder_video
    image = cv2.imread(str(frames / "0002.png"))
    cv2.imwrite(str(frames / "0002.png"), 255 - image)
    with pytest.raises(DataError, match=r"images/001/1/1.*changed since the prepare stage.*set it to 0"):
        list(recut(cache, video, 64, hint="set it to 0"))
    for path in frames.iterdir():
        path.unlink()
    frames.rmdir()
    with pytest.raises(DataError, match="does not exist any more"):
        list(recut(cache, video, 64))
