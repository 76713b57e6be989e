"""2D keypoints and a person mask per frame: an offline detector, and the synthetic set's ground truth.

Keypoints are COCO-17 (`lwgan.body.extras.COCO_KEYPOINT_NAMES` order; "left" is the person's left) as
``(u, v, confidence)`` rows: u the column and v the row in pixels of the image given, pixel centres at
integers (the convention of `lwgan.geometry`: pixel (row i, column j) covers [j - 0.5, j + 0.5) x
[i - 0.5, i + 0.5)), confidence in [0, 1]. A keypoint that was not found is all zeros.

Sources
    `MediaPipeDetector`    MediaPipe Pose with its segmentation mask (`lwgan.data.detector`, where the
                           prepare stage uses it too).
    `GroundTruthKeypoints` the synthetic set's ``gt/<video>.npz`` keypoints and ``masks/`` images, mapped
                           through the prepare stage's crop into cache-frame pixels.
Both give a `DetectionBatch` per video; `detect_video` runs a detector over a video's frames,
`detect_followed` keeps it to one person, `most_consistent` chooses among candidate detections over time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lwgan.body.extras import COCO_KEYPOINT_NAMES
from lwgan.body.keypoint_io import KeypointTrack
from lwgan.data.crop import CropBox, apply_crop
from lwgan.data.detector import Detection, MediaPipeDetector, PoseDetector, not_found
from lwgan.data.errors import DataError
from lwgan.data.people import share_inside

if TYPE_CHECKING:
    from lwgan.data.cache import FramesCache

log = logging.getLogger(__name__)

K = len(COCO_KEYPOINT_NAMES)
__all__ = ["Detection", "DetectionBatch", "GroundTruthKeypoints", "MediaPipeDetector", "PoseDetector",
           "detect_followed", "detect_video", "grey_outside", "mask_to_cache", "most_consistent", "not_found"]


@dataclass(frozen=True)
class DetectionBatch:
    """Detections of the N frames of one video.

    keypoints: (N, 17, 3) float32 u, v, confidence in frame pixels; zeros where nothing was found.
    found: (N,) bool.
    scores: (N,) float32 per-frame score (`Detection.score`).
    packed_masks: (N, H, ceil(W / 8)) uint8, the bool masks packed along the width by ``np.packbits``
        (8x smaller); None when the source makes no masks. `masks` unpacks them.
    image_size: (H, W) of the frames.
    """

    keypoints: np.ndarray
    found: np.ndarray
    scores: np.ndarray
    packed_masks: np.ndarray | None
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def masks(self) -> np.ndarray | None:
        """(N, H, W) bool masks, or None."""
        if self.packed_masks is None:
            return None
        return np.unpackbits(self.packed_masks, axis=-1, count=self.image_size[1]).astype(bool)

    def detection(self, i: int) -> Detection:
        """Frame `i` as a `Detection`."""
        mask = None
        if self.packed_masks is not None:
            mask = np.unpackbits(self.packed_masks[i], axis=-1, count=self.image_size[1]).astype(bool)
        return Detection(self.keypoints[i], mask, bool(self.found[i]), float(self.scores[i]))

    def rescaled(self, size: int) -> DetectionBatch:
        """This batch of square frames as detections on the same squares at side `size`: keypoints mapped
        by the pixel-centre convention, u' = (u + 0.5) * size / side - 0.5 (unfound ones stay zero), masks
        area-resized and thresholded at a half."""
        height, width = self.image_size
        if height != width:
            raise ValueError(f"rescaled needs square frames, these are {height}x{width}")
        scale = size / height
        keypoints = self.keypoints.copy()
        seen = (keypoints != 0).any(axis=-1)  # (N, K)
        keypoints[..., :2] = np.where(seen[..., None], (keypoints[..., :2] + 0.5) * scale - 0.5, 0.0)
        packed = None
        if self.packed_masks is not None:
            small = [cv2.resize(np.unpackbits(m, axis=-1, count=width).astype(np.float32), (size, size),
                                interpolation=cv2.INTER_AREA) >= 0.5 for m in self.packed_masks]
            packed = np.stack([np.packbits(m, axis=-1) for m in small]) if small else None
        return DetectionBatch(keypoints, self.found.copy(), self.scores.copy(), packed, (size, size))

    @classmethod
    def stack(cls, detections: Sequence[Detection], image_size: tuple[int, int]) -> DetectionBatch:
        """Batch `detections` of (image_size) frames; masks are kept only when every detection has one."""
        n = len(detections)
        keypoints = np.zeros((n, K, 3), np.float32)
        for i, d in enumerate(detections):
            keypoints[i] = d.keypoints
        packed = None
        if n and all(d.mask is not None for d in detections):
            packed = np.stack([np.packbits(d.mask, axis=-1) for d in detections])  # (N, H, ceil(W/8))
        return cls(keypoints, np.array([d.found for d in detections], bool),
                   np.array([d.score for d in detections], np.float32), packed, image_size)


def detect_video(frames: Iterable[np.ndarray], detector: PoseDetector,
                 progress: Callable[[int, int], None] | None = None) -> DetectionBatch:
    """Run `detector` over the frames of one video ((H, W, 3) uint8 RGB each, all the same size).

    progress: called with (frames done, frames in total; 0 when `frames` has no length) after each frame.
    """
    total = len(frames) if isinstance(frames, Sized) else 0
    detector.reset()
    detections: list[Detection] = []
    size: tuple[int, int] | None = None
    for image in frames:
        if size is None:
            size = (int(image.shape[0]), int(image.shape[1]))
        elif image.shape[:2] != size:
            raise ValueError(f"frame {len(detections)} is {image.shape[:2]}, the video's first frame {size}")
        detections.append(detector.detect(image))
        if progress is not None:
            progress(len(detections), total)
    if size is None:
        raise ValueError("detect_video got no frames")
    batch = DetectionBatch.stack(detections, size)
    log.debug("detected a person in %d of %d frames", int(batch.found.sum()), len(batch))
    return batch


def detect_followed(frames: Iterable[np.ndarray], detector: PoseDetector, person_boxes: np.ndarray,
                    progress: Callable[[int, int], None] | None = None,
                    tracker: PoseDetector | None = None) -> DetectionBatch:
    """`detect_video` that keeps to the person the prepare stage followed: person_boxes (N, 4) x0, y0,
    x1, y1 of that person in each frame's pixels (`lwgan.data.FramesCache.person_boxes`). Where the
    detector's person lies elsewhere (a bystander inside the crop: its keypoint box overlaps the followed
    box by less than `FOLLOW_MIN_OVERLAP` of its area), that person is greyed out (their mask, or their
    keypoint box, grown) and the frame detected again, up to `FOLLOW_TRIES` times; if the followed person
    is still not found, the frame counts as one without a person.

    tracker: a detector that follows its person from frame to frame (MediaPipe in video mode, which runs
    its person detector only when it has lost the person). Every run of frames where the followed person
    was not found is then detected again by it, from the frame before the run, on frames greyed outside
    the followed box (grown by `FOLLOW_CONTEXT` of its size, so that no bystander can be picked up): where
    the person detector sees no person (a side view against the sun, a flip), the landmark model still
    finds him in the region he had in the frame before. Its detections pass the same overlap check."""
    boxes = np.asarray(person_boxes, np.float64)
    following = _Following(detector, boxes, keep_missed=tracker is not None)
    batch = detect_video(frames, following, progress)
    if tracker is None or batch.found.all():
        return batch
    frames = following.kept  # the missed frames and the one before each run of them
    detections = [batch.detection(i) for i in range(len(batch))]
    recovered = 0
    for start, stop in _runs(~batch.found):
        tracker.reset()
        for i in range(max(0, start - 1), stop):
            found = tracker.detect(grey_outside(frames[i], boxes[i], FOLLOW_CONTEXT))
            if i >= start and found.found and _overlap(found.keypoints, boxes[i]) >= FOLLOW_MIN_OVERLAP:
                detections[i] = found
                recovered += 1
    log.debug("tracking found the followed person in %d of %d frames the detector missed", recovered,
              int((~batch.found).sum()))
    return DetectionBatch.stack(detections, batch.image_size)


SWAP_SIDES = [COCO_KEYPOINT_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right"))
              for n in COCO_KEYPOINT_NAMES]  # each keypoint's mirror: left_eye <-> right_eye, ...
SWAP_PENALTY = 0.05  # in body sizes: what turning a person's labels around costs (`most_consistent`)
SWAP_BIAS = 1e-3  # in body sizes per frame: what a frame with swapped labels costs (ties go to the detector)
TURN_MOTION = 2.0  # turning the labels around costs at least this many times the usual movement per frame
CONSISTENT_MIN_CONFIDENCE = 0.3


def most_consistent(batches: Sequence[DetectionBatch], swap_penalty: float = SWAP_PENALTY) -> DetectionBatch:
    """Per frame, one of the candidate detections of the same video (`batches`, same frames and pixels; the
    first is preferred where they tie), each as found and with its left and right keypoints swapped: the
    candidates along the path through the video whose keypoints move least from frame to frame (a Viterbi
    pass; a step costs the mean distance of the keypoints confident in both frames, over the body's size;
    going from labels as found to swapped ones or back costs `swap_penalty` more, or `TURN_MOTION` times
    the person's usual movement between frames where that is more, and every swapped frame `SWAP_BIAS`).

    MediaPipe tells a person's front from their back by the face: on a face it cannot see well (blurred,
    turned, small) it labels a person who faces the camera as seen from behind, for single frames or for
    runs of many (Pose2Sim's `cam02`: 43 of 100 frames). Such a relabelling moves every left and right
    keypoint by the width between them from one frame to the next, which a body cannot do in a frame; a
    person who really turns passes through a side view, where the two sides meet and nothing jumps. So a
    run of relabelled frames is swapped back when the jumps at its two ends cost more than turning the
    labels around twice, however long the run; the labels of the frames where the person is seen longer
    win (a whole video labelled the wrong way round cannot be told from the keypoints). Where frames are
    far apart (a clip sampled sparsely, fast motion) a person can turn round between two of them, and a
    jump no larger than their usual movement is kept as found. A frame without any detection breaks the
    path."""
    first = batches[0]
    n = len(first)
    if any(len(b) != n or b.image_size != first.image_size for b in batches):
        raise ValueError("most_consistent needs detections of the same frames at the same size")
    # (M, N, K, 3): every candidate as found and with its sides swapped
    keypoints = np.stack([k for b in batches for k in (b.keypoints, b.keypoints[:, SWAP_SIDES])])
    swapped = np.tile(np.array([False, True]), len(batches))  # (M,)
    found = np.repeat(np.stack([b.found for b in batches]), 2, axis=0)  # (M, N)
    path = np.zeros(n, np.int64)
    for a, b in _runs(found.any(axis=0)):  # a frame without any detection breaks the path
        path[a:b] = _least_movement(keypoints[:, a:b], found[:, a:b], swapped, swap_penalty)
    frames, batch = np.arange(n), path // 2  # the chosen candidate of every frame, and its batch
    packed = None  # masks are kept only when every candidate has them (as `DetectionBatch.stack`)
    if all(b.packed_masks is not None for b in batches):
        packed = np.stack([b.packed_masks for b in batches])[batch, frames]
    scores = np.stack([b.scores for b in batches])[batch, frames]
    turned, others = int((path % 2).sum()), int((batch > 0).sum())
    if turned or others:
        log.debug("temporal consistency: %d frames from another candidate, %d with sides swapped", others,
                  turned)
    return DetectionBatch(keypoints[path, frames], found[path, frames], scores, packed, first.image_size)


def _least_movement(keypoints: np.ndarray, found: np.ndarray, swapped: np.ndarray,
                    swap_penalty: float) -> np.ndarray:
    """(N,) candidate per frame of the cheapest path (`most_consistent`): keypoints (M, N, K, 3), found
    (M, N) with some candidate found in every frame, swapped (M,) whether a candidate's sides are swapped.
    Turning the labels around costs at least `TURN_MOTION` times the person's usual movement between
    frames (the median over the steps of the least movement any choice allows): in a video sampled
    sparsely, or of fast motion, a body that turns round between two frames moves as much as a relabelled
    one, and the detector's labels are kept."""
    m, n = found.shape
    confident = keypoints[..., 2] > CONSISTENT_MIN_CONFIDENCE  # (M, N, K)
    steps = np.zeros((n, m, m))  # steps[t]: (M before, M now) movement from frame t - 1, in body sizes
    for t in range(1, n):
        before, now = keypoints[:, t - 1, :, :2], keypoints[:, t, :, :2]  # (M, K, 2)
        both = confident[:, None, t - 1] & confident[None, :, t]  # (M before, M now, K)
        dist = np.linalg.norm(before[:, None] - now[None, :], axis=-1)  # (M, M, K)
        count = both.sum(-1)
        step = np.where(count >= 4, (dist * both).sum(-1) / np.maximum(count, 1), 0.0)
        steps[t] = step / _body_size(keypoints[:, t])[None, :]
    usual = float(np.median(steps[1:].min(axis=(1, 2)))) if n > 1 else 0.0
    bias = np.where(swapped, SWAP_BIAS, 0.0)  # (M,)
    turn = max(swap_penalty, TURN_MOTION * usual) * (swapped[:, None] != swapped[None, :])  # (M, M)
    cost = np.where(found[:, 0], bias, np.inf)
    back = np.zeros((n, m), np.int64)
    for t in range(1, n):
        total = cost[:, None] + steps[t] + turn  # (M before, M now)
        back[t] = np.argmin(total, axis=0)
        cost = np.where(found[:, t], total[back[t], np.arange(m)] + bias, np.inf)
    path = np.zeros(n, np.int64)
    path[-1] = int(np.argmin(cost))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _body_size(keypoints: np.ndarray) -> np.ndarray:
    """(M,) the longer side of the confident keypoints' box of each (M, K, 3) candidate, at least 1 px."""
    good = keypoints[..., 2] > CONSISTENT_MIN_CONFIDENCE
    big, small = np.where(good[..., None], keypoints[..., :2], -np.inf), np.where(good[..., None],
                                                                                 keypoints[..., :2], np.inf)
    extent = np.nan_to_num(big.max(axis=1) - small.min(axis=1), nan=0.0, posinf=0.0, neginf=0.0)  # (M, 2)
    return np.maximum(extent.max(axis=1), 1.0)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of True in `flags` (N,) bool."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def grey_outside(image: np.ndarray, box: np.ndarray, grow: float) -> np.ndarray:
    """`image` mid-grey outside `box` (x0, y0, x1, y1) grown on every side by `grow` times its longer side."""
    x0, y0, x1, y1 = (float(c) for c in box)
    g = grow * max(x1 - x0, y1 - y0)
    h, w = image.shape[:2]
    top, bottom = max(0, int(y0 - g)), min(h, int(math.ceil(y1 + g)) + 1)
    left, right = max(0, int(x0 - g)), min(w, int(math.ceil(x1 + g)) + 1)
    out = np.full_like(image, 128)
    out[top:bottom, left:right] = image[top:bottom, left:right]
    return out


class _Following:
    """A `PoseDetector` that keeps to one person: frame i's detection must lie in `boxes[i]`
    (`detect_followed`). keep_missed: `kept` holds, by frame number, every frame where that person was not
    found and the frame before it, for the tracker's second pass (no other frame is held)."""

    def __init__(self, detector: PoseDetector, boxes: np.ndarray, keep_missed: bool = False) -> None:
        self.detector, self.boxes, self.frame = detector, boxes, 0
        self.keep_missed = keep_missed
        self.kept: dict[int, np.ndarray] = {}
        self._previous: np.ndarray | None = None

    def detect(self, image: np.ndarray) -> Detection:
        i = self.frame
        self.frame += 1
        found = self._detect(image, self.boxes[i])
        if self.keep_missed:
            if not found.found:
                if self._previous is not None:
                    self.kept.setdefault(i - 1, self._previous)
                self.kept[i] = image
            self._previous = image
        return found

    def _detect(self, image: np.ndarray, box: np.ndarray) -> Detection:
        found = self.detector.detect(image)
        for _ in range(FOLLOW_TRIES):
            if not found.found or _overlap(found.keypoints, box) >= FOLLOW_MIN_OVERLAP:
                return found
            image = _grey_person(image, found)
            found = self.detector.detect(image)
        if found.found and _overlap(found.keypoints, box) < FOLLOW_MIN_OVERLAP:
            return not_found(*image.shape[:2], with_mask=found.mask is not None)
        return found

    def reset(self) -> None:
        self.detector.reset()
        self.frame = 0
        self.kept, self._previous = {}, None


FOLLOW_MIN_OVERLAP = 0.3  # share of the detected keypoint box inside the followed person's box
FOLLOW_TRIES = 2  # other people greyed out per frame before giving up
FOLLOW_CONTEXT = 0.3  # what the tracker sees around the followed box, in shares of its longer side


def _overlap(keypoints: np.ndarray, box: np.ndarray) -> float:
    """Share of the confident keypoints' box inside `box` (1.0 when there are too few to tell)."""
    good = keypoints[keypoints[:, 2] > 0.3]
    if len(good) < 2:
        return 1.0
    (x0, y0), (x1, y1) = good[:, :2].min(axis=0), good[:, :2].max(axis=0) + 1.0
    return share_inside((float(x0), float(y0), float(x1), float(y1)), box)


def _grey_person(image: np.ndarray, found: Detection) -> np.ndarray:
    """`image` with the detected person set to mid-grey: their mask dilated by a tenth of their size,
    or without a mask their keypoint box grown by a fifth."""
    good = found.keypoints[found.keypoints[:, 2] > 0.3]
    (x0, y0), (x1, y1) = good[:, :2].min(axis=0), good[:, :2].max(axis=0)
    extent = max(x1 - x0, y1 - y0, 1.0)
    out = image.copy()
    if found.mask is not None and found.mask.any():
        k = max(3, int(extent * 0.1) | 1)
        area = cv2.dilate(found.mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        out[area] = 128
    else:
        g = 0.2 * extent
        h, w = image.shape[:2]
        out[max(0, int(y0 - g)):min(h, int(y1 + g) + 1), max(0, int(x0 - g)):min(w, int(x1 + g) + 1)] = 128
    return out


def mask_to_cache(mask: np.ndarray, crop_box: Sequence[int], image_size: int) -> np.ndarray:
    """A source-frame person mask (H, W) bool or uint8 0/255 -> (image_size, image_size) bool in the cache
    frame: the prepare stage's crop (outside the frame is background) and resize, then threshold at half."""
    crop = CropBox(*(int(c) for c in crop_box))
    source = np.where(np.asarray(mask) > 0, np.uint8(255), np.uint8(0))
    return apply_crop(source, crop, image_size, pad="constant") > 127


class GroundTruthKeypoints:
    """The synthetic set's ground truth as a keypoint source (no detector needed).

    root: the synthetic set's folder (``gt/<video>.npz`` with ``keypoints`` (N, 17, 3) u, v, visibility in
    source pixels, one row per frame number, and ``masks/<subject>/<cloth>/<action>/NNNN.png``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not (self.root / "gt").is_dir():
            raise DataError(f"{self.root} has no gt/ folder; point the keypoint source at the synthetic "
                            "data set (the synthesize stage's output)")

    def track(self, video_id: str) -> KeypointTrack:
        """Ground-truth keypoints of `video_id` ("001_1_2") in source pixels, by frame number."""
        path = self.root / "gt" / f"{video_id}.npz"
        if not path.is_file():
            raise DataError(f"ground truth {path} of video {video_id!r} does not exist; synthesize the data "
                            "set again")
        with np.load(path) as data:
            if "keypoints" not in data.files:
                raise DataError(f"ground truth {path} has no 'keypoints' array")
            keypoints = np.asarray(data["keypoints"], np.float32)
        if keypoints.ndim != 3 or keypoints.shape[1:] != (K, 3):
            raise DataError(f"ground truth {path}: 'keypoints' must be (N, {K}, 3), got {keypoints.shape}")
        return KeypointTrack(keypoints, np.arange(len(keypoints), dtype=np.int64), str(path))

    def source_mask(self, video_id: str, frame: int) -> np.ndarray:
        """(H, W) bool ground-truth mask of original frame number `frame`."""
        parts = video_id.split("_")
        if len(parts) != 3:
            raise DataError(f"video id {video_id!r} is not <subject>_<cloth>_<action>")
        path = self.root.joinpath("masks", *parts, f"{frame:04d}.png")
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise DataError(f"ground-truth mask {path} is missing or cannot be decoded; synthesize the data "
                            "set again")
        return mask > 127

    def load(self, video_id: str, frame_index: np.ndarray, crop_box: Sequence[int], image_size: int,
             masks: bool = True) -> DetectionBatch:
        """Ground truth of the cached frames `frame_index` (original frame numbers) of `video_id`, mapped
        into (image_size)² cache frames cut at `crop_box` (x0, y0, side). found: any keypoint visible."""
        keypoints = self.track(video_id).to_cache(frame_index, crop_box, image_size)  # (N, 17, 3)
        packed = None
        if masks:
            packed = np.stack([np.packbits(mask_to_cache(self.source_mask(video_id, int(f)), crop_box,
                                                         image_size), axis=-1) for f in frame_index])
        found = (keypoints[..., 2] > 0).any(axis=1)
        return DetectionBatch(keypoints, found, keypoints[..., 2].mean(axis=1).astype(np.float32), packed,
                              (image_size, image_size))

    def for_cache(self, cache: FramesCache, video_id: str, masks: bool = True) -> DetectionBatch:
        """`load` for a video of a `lwgan.data.FramesCache` (its frame numbers, crop box and image size)."""
        info = cache.info(video_id)
        return self.load(video_id, cache.frame_index(video_id), info.crop_box, int(cache.attrs["image_size"]),
                         masks)
