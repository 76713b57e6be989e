"""2D keypoints and a person mask per frame: an offline detector, and the synthetic set's ground truth.

Keypoints are COCO-17 (`lwgan.body.extras.COCO_KEYPOINT_NAMES` order; "left" is the person's left) as
``(u, v, confidence)`` rows: u the column and v the row in pixels of the image given, pixel centres at
integers (the convention of `lwgan.geometry`: pixel (row i, column j) covers [j - 0.5, j + 0.5) x
[i - 0.5, i + 0.5)), confidence in [0, 1]. A keypoint that was not found is all zeros.

Sources
    `MediaPipeDetector`    MediaPipe Pose with its segmentation mask (`lwgan.data.detector`, where the
                           prepare stage uses it too).
    `MediaPipePeople`      MediaPipe Pose taken apart: every person its person detector sees, and its
                           landmark model on a body region of the caller's choosing.
    `GroundTruthKeypoints` the synthetic set's ``gt/<video>.npz`` keypoints and ``masks/`` images, mapped
                           through the prepare stage's crop into cache-frame pixels.
Both give a `DetectionBatch` per video; `detect_video` runs a detector over a video's frames,
`follow_apart` keeps to one person, apart from everyone near them, and `most_consistent` chooses among
candidate detections over time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lwgan.body.extras import COCO_KEYPOINT_NAMES
from lwgan.body.keypoint_io import KeypointTrack
from lwgan.data.crop import CropBox, apply_crop
from lwgan.data.detector import (
    BodyRegion,
    Detection,
    MediaPipeDetector,
    MediaPipePeople,
    PoseDetector,
    RegionLandmarks,
    RegionSighting,
    not_found,
)
from lwgan.data.errors import DataError

if TYPE_CHECKING:
    from lwgan.data.cache import FramesCache

log = logging.getLogger(__name__)

K = len(COCO_KEYPOINT_NAMES)
__all__ = ["Detection", "DetectionBatch", "GroundTruthKeypoints", "MediaPipeDetector", "MediaPipePeople",
           "PoseDetector", "detect_video", "fill_people", "follow_apart",
           "mask_to_cache", "most_consistent", "not_found"]


@dataclass(frozen=True)
class DetectionBatch:
    """Detections of the N frames of one video.

    keypoints: (N, 17, 3) float32 u, v, confidence in frame pixels; zeros where nothing was found.
    found: (N,) bool.
    scores: (N,) float32 per-frame score (`Detection.score`).
    packed_masks: (N, H, ceil(W / 8)) uint8, the bool masks packed along the width by ``np.packbits``
        (8x smaller); None when the source makes no masks. `masks` unpacks them.
    image_size: (H, W) of the frames.
    world: (N, 17, 4) float32 the detector's metric 3D estimate per frame (`Detection.world`; NaN where it
        made none), or None when the source makes none.
    """

    keypoints: np.ndarray
    found: np.ndarray
    scores: np.ndarray
    packed_masks: np.ndarray | None
    image_size: tuple[int, int]
    world: np.ndarray | None = None

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
        world = None if self.world is None or not np.isfinite(self.world[i]).all() else self.world[i]
        return Detection(self.keypoints[i], mask, bool(self.found[i]), float(self.scores[i]), world)

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
        world = None if self.world is None else self.world.copy()  # metric: the same at any pixel size
        return DetectionBatch(keypoints, self.found.copy(), self.scores.copy(), packed, (size, size), world)

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
        world = None  # kept when any detection has one, NaN for the others
        if any(d.world is not None for d in detections):
            world = np.full((n, K, 4), np.nan, np.float32)
            for i, d in enumerate(detections):
                if d.world is not None:
                    world[i] = d.world
        return cls(keypoints, np.array([d.found for d in detections], bool),
                   np.array([d.score for d in detections], np.float32), packed, image_size, world)


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


def follow_apart(frames: Iterable[np.ndarray], people: MediaPipePeople, person_boxes: np.ndarray,
                 progress: Callable[[int, int], None] | None = None) -> DetectionBatch:
    """The person prepare followed, kept apart from everyone near them: person_boxes (N, 4) x0, y0, x1, y1
    of that person in each frame's pixels (`lwgan.data.FramesCache.person_boxes`); frames (H, W, 3) uint8
    RGB.

    MediaPipe Pose finds one person per image and finds them by the face: where two people overlap (one
    seen from behind, the other's face beside his head) it mixes them, the head of one on the body of the
    other, then moves over to the one whose face it sees. So here its two halves run apart
    (`lwgan.data.detector.MediaPipePeople`). The person detector gives everyone it sees; the followed
    person is the sighting inside their prepare box where first seen, and every other sighting within
    `APART_REACH` of them becomes another tracked person. Each person's landmarks come from the landmark
    model on the body region of their own landmarks in the frame before (MediaPipe's tracking, one region
    per person): the others' first, in the frame with the followed person's last mask filled in, and a
    result that lies mostly on the followed person (`APART_OVERLAP`) is refused, the person kept where they
    were; then the followed person's, in the frame with every other person's mask, grown, filled in
    (`fill_people`), so that the landmark model sees only them. Where it loses them, a sighting near their
    last place (`APART_ANCHOR`) takes them up again, and after `APART_FORGET` frames a sighting inside their
    prepare box. The followed person's detection (keypoints and mask) is the frame's."""
    return detect_video(frames, _Apart(people, person_boxes), progress)


class _Apart:
    """`follow_apart` as a `PoseDetector` over the frames of one video, in order."""

    def __init__(self, people: MediaPipePeople, person_boxes: np.ndarray) -> None:
        self.people, self.boxes = people, np.asarray(person_boxes, np.float64)
        self.reset()

    def reset(self) -> None:
        self.frame = 0
        self.followed: _Tracked | None = None
        self.others: list[_Tracked] = []

    def detect(self, image: np.ndarray) -> Detection:
        i = self.frame
        if i >= len(self.boxes):
            raise ValueError(f"follow_apart got more frames than the {len(self.boxes)} person boxes")
        self.frame += 1
        sightings = self.people.sightings(image)
        if self.followed is not None and self.followed.missed > APART_FORGET:
            self.followed, self.others = None, []
        if self.followed is None:
            x0, y0, x1, y1 = self.boxes[i]
            inside = [s for s in sightings if x0 <= s.region.hip[0] <= x1 and y0 <= s.region.hip[1] <= y1]
            if not inside:
                return not_found(*image.shape[:2], with_mask=True)
            self.followed = _Tracked(inside[0].region)  # the best score: sightings come best first
        self.others = _track_others(image, self.people, sightings, self.followed, self.others)
        return _track_followed(image, self.people, sightings, self.followed, self.others)


APART_REACH = 1.5  # another person is tracked when seen this near the followed one (region sizes)
APART_SAME = 0.2  # a sighting this near a tracked person's hip is that person (shares of their region size)
APART_ANCHOR = 0.5  # a lost followed person is taken up again by a sighting this near their last hip
APART_OVERLAP = 0.5  # another person's result with this share of its mask on the followed person is refused
APART_FORGET = 10  # frames a person stays tracked unseen (their last mask still filled in)
FILL_GROW = 0.08  # the other people's masks are grown by this share of their region size before filling
FILL_BLUR = 0.12  # the fill's blur, a share of the image's longer side


@dataclass
class _Tracked:
    """A person followed through the frames: their body region for the next frame, their last mask and how
    many frames ago they were last found."""

    region: BodyRegion
    mask: np.ndarray | None = None
    missed: int = 0

    def take(self, found: RegionLandmarks | None) -> None:
        """This frame's result: where the person is now, or None (not found; kept where they were)."""
        if found is None:
            self.missed += 1
        else:
            self.region, self.mask, self.missed = found.region, found.detection.mask, 0


def _track_others(image: np.ndarray, people: MediaPipePeople, sightings: Sequence[RegionSighting],
                  followed: _Tracked, others: list[_Tracked]) -> list[_Tracked]:
    """The other people near the followed one, carried to this frame (`follow_apart`)."""
    reach = APART_REACH * followed.region.size
    for s in sightings:
        known = any(np.linalg.norm(s.region.hip - t.region.hip) < APART_SAME * t.region.size
                    for t in (followed, *others))
        if not known and np.linalg.norm(s.region.hip - followed.region.hip) < reach:
            others.append(_Tracked(s.region))
    if not others:
        return others
    theirs = image
    if followed.mask is not None and followed.mask.any():
        core = cv2.erode(followed.mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        theirs = fill_people(image, core)
    for other in others:
        found = people.landmarks(theirs, other.region)
        if found is not None and followed.mask is not None and found.detection.mask is not None:
            mask = found.detection.mask
            if (mask & followed.mask).sum() > APART_OVERLAP * max(int(mask.sum()), 1):
                found = None  # the followed person again: keep this one where they were
        other.take(found)
    return [o for o in others if o.missed <= APART_FORGET]


def _track_followed(image: np.ndarray, people: MediaPipePeople, sightings: Sequence[RegionSighting],
                    followed: _Tracked, others: Sequence[_Tracked]) -> Detection:
    """The followed person's detection in this frame, everyone else filled in (`follow_apart`)."""
    cover = np.zeros(image.shape[:2], bool)
    for other in others:
        if other.mask is not None:
            k = max(3, int(FILL_GROW * other.region.size) | 1)
            cover |= cv2.dilate(other.mask.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    alone = fill_people(image, cover) if cover.any() else image
    found = people.landmarks(alone, followed.region)
    if found is None:
        near = [s for s in sightings
                if np.linalg.norm(s.region.hip - followed.region.hip) < APART_ANCHOR * followed.region.size]
        if near:
            found = people.landmarks(alone, near[0].region)
    followed.take(found)
    return not_found(*image.shape[:2], with_mask=True) if found is None else found.detection


def fill_people(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`image` with the pixels of `mask` (H, W) bool filled from the pixels around them, so that no
    person-shaped outline is left for the landmark model (a flat grey one is read as a person): each takes
    the mean of the unmasked pixels in a box of `FILL_BLUR` times the image's longer side around it (a
    normalised convolution), and a pixel with none in its box the mean in a box twice as large, and so on."""
    if not mask.any():
        return image
    keep = (~mask).astype(np.float32)
    if not keep.any():
        return np.full_like(image, 128)
    colours = image.astype(np.float32) * keep[..., None]
    filled = np.zeros(image.shape, np.float32)
    todo = mask.copy()
    k = max(3, int(FILL_BLUR * max(image.shape[:2])) | 1)
    while todo.any():
        weight = cv2.blur(keep, (k, k))
        ready = todo & (weight > 1e-4)
        filled[ready] = cv2.blur(colours, (k, k))[ready] / weight[ready, None]
        todo &= ~ready
        k = 2 * k + 1
    out = image.copy()
    out[mask] = np.clip(np.rint(filled[mask]), 0, 255).astype(np.uint8)
    return out


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
    world = None  # the chosen candidate's estimate as it made it: sides swapped in 2D only (the fit tells)
    if any(b.world is not None for b in batches):
        world = np.stack([np.full((n, K, 4), np.nan, np.float32) if b.world is None else b.world
                          for b in batches])[batch, frames]
    turned, others = int((path % 2).sum()), int((batch > 0).sum())
    if turned or others:
        log.debug("temporal consistency: %d frames from another candidate, %d with sides swapped", others,
                  turned)
    return DetectionBatch(keypoints[path, frames], found[path, frames], scores, packed, first.image_size,
                          world)


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
