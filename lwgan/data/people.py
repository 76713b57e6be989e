"""Find the people of a video at its source resolution and follow one of them.

MediaPipe Pose finds one person per image and misses people under about a fifth of the image height, so a
keyframe is searched in overlapping square tiles at two scales (squares of the frame's short side and of
half of it, each tile a window of the full-resolution frame), plus the whole frame. Every tile that holds a
person whole gives a `Sighting` (COCO-17 keypoints, a body box and a colour signature, all in source
pixels); sightings of one person from several tiles are merged. `follow` links the sightings of the
keyframes into tracks (position, size and clothing colours) and `choose` picks the person a video is about:
the largest (the sum of body sizes over the keyframes, so a bystander seen briefly loses), the most
central, or the n-th track in order of first appearance (left to right).

Boxes are (x0, y0, x1, y1) in source pixels with exclusive ends, as in `lwgan.data.crop`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

TILE_SCALES = (1.0, 0.5)  # tile sides as fractions of the frame's short side
TILE_OVERLAP = 0.5  # neighbouring tiles share this fraction of their side
TILE_MAX_SIDE = 512  # tiles are shrunk to at most this side before detection (the model works at 256)
MIN_SCORE = 0.5  # mean keypoint confidence of an accepted sighting
CONFIDENT = 0.3  # a keypoint above this confidence counts for boxes and matching
MIN_CONFIDENT = 8  # keypoints a sighting needs above CONFIDENT
MIN_SIZE = 0.1  # a sighting's body box diagonal must be at least this fraction of the frame's short side
EDGE_MARGIN = 0.02  # a body box this close (fraction of the tile side) to an inner tile edge is cut off
BOX_GROWTH = (0.15, 0.25, 0.15, 0.12)  # keypoint box grown by these fractions of its height: left, top
# (the head above the nose), right, bottom (feet below the ankles)
SAME_PERSON_IOU = 0.3  # two sightings of one keyframe with more box overlap are one person
CHIMERA_INSIDE = 0.6  # a box holding this share of each of two other boxes is not one person
HIST_BINS = (8, 4)  # hue x saturation bins of the colour signature
MATCH_DISTANCE = 1.0  # centre distance, in body sizes (box diagonals) per keyframe gap, a track may move
JOIN_DISTANCE = 2.0  # the same for joining track pieces (a fall accelerates)
MATCH_COLOUR = 0.2  # minimum histogram intersection of a match
MAX_GAP = 4  # keyframes a track may go unseen and still be continued
MAX_SIZE_CHANGE = 2.0  # body size factor between linked sightings


@dataclass(frozen=True)
class Sighting:
    """One person in one keyframe.

    frame: the frame number. keypoints: (17, 3) u, v, confidence in source pixels. box: (x0, y0, x1, y1)
    body box in source pixels. score: mean keypoint confidence. colour: (HIST_BINS product,) normalised
    hue-saturation histogram of the body's pixels (the person mask inside the box where the detector
    gives one).
    """

    frame: int
    keypoints: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    colour: np.ndarray

    @property
    def size(self) -> float:
        """The body box's diagonal: unlike its height, it barely changes when the person bends or jumps."""
        return math.hypot(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0


@dataclass
class Track:
    """The sightings of one person, in keyframe order, and the index of each one's keyframe."""

    sightings: list[Sighting] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    @property
    def last(self) -> Sighting:
        return self.sightings[-1]

    def bounds(self, height: int, width: int) -> tuple[float, float, float, float]:
        """The union of the track's boxes, clipped to a (height, width) frame: (x0, y0, x1, y1)."""
        boxes = np.array([s.box for s in self.sightings], np.float64)
        (x0, y0), (x1, y1) = boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)
        return (max(0.0, float(x0)), max(0.0, float(y0)), min(float(width), float(x1)),
                min(float(height), float(y1)))

    def presence(self) -> float:
        """Sum of the body sizes over the keyframes (seen long and large -> high)."""
        return float(sum(s.size for s in self.sightings))


def rescaled(sighting: Sighting, scale: float) -> Sighting:
    """`sighting` found in a frame shrunk by 1 / `scale`, in the full frame's pixels."""
    keypoints = sighting.keypoints.copy()
    keypoints[:, :2] = (keypoints[:, :2] + 0.5) * scale - 0.5
    return dataclasses.replace(sighting, keypoints=keypoints,
                               box=tuple(float(v) * scale for v in sighting.box))  # type: ignore[arg-type]


def tiles(height: int, width: int, scales: Sequence[float] = TILE_SCALES,
          overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int]]:
    """Square windows (x0, y0, side) covering a (height, width) frame at each scale of its short side,
    neighbours overlapping by `overlap` of the side; the last window of a row or column is flush with the
    frame's edge."""
    out = []
    short = min(height, width)
    for scale in scales:
        side = max(16, int(round(short * scale)))
        stride = max(1, int(round(side * (1.0 - overlap))))

        def starts(extent: int, side: int = side, stride: int = stride) -> list[int]:
            if extent <= side:
                return [0]
            count = math.ceil((extent - side) / stride) + 1
            return sorted({int(round(i * (extent - side) / (count - 1))) for i in range(count)})

        out += [(x, y, side) for y in starts(height) for x in starts(width)]
    return out


def colour_signature(image_rgb: np.ndarray, box: Sequence[float], mask: np.ndarray | None) -> np.ndarray:
    """Normalised hue-saturation histogram of the body pixels of `image_rgb` inside `box` (the mask's pixels
    there when a mask is given and covers enough of the box)."""
    h, w = image_rgb.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(math.ceil(box[2]))), min(h, int(math.ceil(box[3])))
    bins = int(np.prod(HIST_BINS))
    if x1 <= x0 or y1 <= y0:
        return np.full(bins, 1.0 / bins, np.float32)
    patch = cv2.cvtColor(np.ascontiguousarray(image_rgb[y0:y1, x0:x1]), cv2.COLOR_RGB2HSV)
    region = None
    if mask is not None:
        region = mask[y0:y1, x0:x1].astype(np.uint8)
        if region.sum() < 0.1 * region.size:
            region = None
    hist = cv2.calcHist([patch], [0, 1], region, list(HIST_BINS), [0, 180, 0, 256]).reshape(-1)
    total = float(hist.sum())
    return (hist / total).astype(np.float32) if total > 0 else np.full(bins, 1.0 / bins, np.float32)


def body_box(keypoints: np.ndarray) -> tuple[float, float, float, float] | None:
    """The body box from COCO-17 keypoints (confident ones), grown by `BOX_GROWTH`; None without enough."""
    good = keypoints[keypoints[:, 2] > CONFIDENT]
    if len(good) < MIN_CONFIDENT:
        return None
    x0, y0 = good[:, :2].min(axis=0)
    x1, y1 = good[:, :2].max(axis=0) + 1.0
    size = max(y1 - y0, (x1 - x0) * 0.5, 1.0)
    left, top, right, bottom = BOX_GROWTH
    return (float(x0 - left * size), float(y0 - top * size), float(x1 + right * size),
            float(y1 + bottom * size))


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


DetectFn = Callable[[np.ndarray], "tuple[np.ndarray, np.ndarray | None] | None"]


def find_people(image_rgb: np.ndarray, detect: DetectFn, frame: int = 0,
                scales: Sequence[float] = TILE_SCALES) -> list[Sighting]:
    """The people of one (H, W, 3) uint8 RGB frame, searched in the whole frame and in `tiles`.

    detect: one image -> (keypoints (17, 3) in that image's pixels, mask (h, w) bool or None), or None when
    it holds no person (`lwgan.data.detector.MediaPipeDetector` through `mediapipe_detect_fn`).
    """
    height, width = image_rgb.shape[:2]
    windows = [(0, 0, 0)] + tiles(height, width, scales)  # side 0: the whole frame
    found: list[Sighting] = []
    for x, y, side in windows:
        if side == 0:
            view, scale, wx, wy, ww, wh = image_rgb, 1.0, 0, 0, width, height
        else:
            view, wx, wy = image_rgb[y:y + side, x:x + side], x, y
            wh, ww = view.shape[:2]
            scale = 1.0
        longest = max(view.shape[:2])
        if longest > TILE_MAX_SIDE:
            scale = TILE_MAX_SIDE / longest
            size = (max(1, round(view.shape[1] * scale)), max(1, round(view.shape[0] * scale)))
            view = cv2.resize(view, size, interpolation=cv2.INTER_AREA)
        result = detect(np.ascontiguousarray(view))
        if result is None:
            continue
        keypoints, mask = result
        keypoints = keypoints.copy()
        keypoints[:, 0] = (keypoints[:, 0] + 0.5) / scale - 0.5 + wx
        keypoints[:, 1] = (keypoints[:, 1] + 0.5) / scale - 0.5 + wy
        if float(keypoints[:, 2].mean()) < MIN_SCORE:
            continue
        box = body_box(keypoints)
        if box is None or _cut_by_window(box, (wx, wy, wx + ww, wy + wh), (width, height)) \
                or math.hypot(box[2] - box[0], box[3] - box[1]) < MIN_SIZE * min(height, width):
            continue
        full_mask = None
        if mask is not None:
            full_mask = np.zeros((height, width), bool)
            grown = cv2.resize(mask.astype(np.uint8), (ww, wh), interpolation=cv2.INTER_NEAREST) > 0
            full_mask[wy:wy + wh, wx:wx + ww] = grown
        found.append(Sighting(frame, keypoints, box, float(keypoints[:, 2].mean()),
                              colour_signature(image_rgb, box, full_mask)))
    return _merge(found)


def _cut_by_window(box: Sequence[float], window: Sequence[float], frame: tuple[int, int]) -> bool:
    """Whether `box` touches an edge of `window` that is not also an edge of the frame (the person
    continues outside the window: a bigger window sees them whole)."""
    width, height = frame
    tol = EDGE_MARGIN * max(window[2] - window[0], window[3] - window[1])
    return ((window[0] > 0 and box[0] < window[0] + tol) or (window[1] > 0 and box[1] < window[1] + tol)
            or (window[2] < width and box[2] > window[2] - tol)
            or (window[3] < height and box[3] > window[3] - tol))


def _merge(found: list[Sighting]) -> list[Sighting]:
    """One sighting per person: overlapping boxes are one person, the highest-scoring one is kept. A box
    that holds most of two other people's boxes is a chimera (one person's head on another's legs, as a
    large window sees them) and is dropped."""
    kept: list[Sighting] = []
    for s in sorted(found, key=lambda s: -s.score):
        if all(box_iou(s.box, k.box) < SAME_PERSON_IOU for k in kept):
            kept.append(s)
    kept = [s for s in kept
            if sum(share_inside(k.box, s.box) > CHIMERA_INSIDE for k in kept if k is not s) < 2]
    return sorted(kept, key=lambda s: s.box[0])


def share_inside(inner: Sequence[float], outer: Sequence[float]) -> float:
    """The share of box `inner`'s area inside box `outer`."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if area > 0 else 0.0


def follow(keyframes: Sequence[Sequence[Sighting]]) -> list[Track]:
    """Link the sightings of successive keyframes into tracks, then join track pieces.

    A sighting joins the track whose predicted centre (its last centre moved by its last step per keyframe)
    is within `MATCH_DISTANCE` body sizes per keyframe since it was last seen (at most `MAX_GAP`
    keyframes), whose size is within a factor `MAX_SIZE_CHANGE`, and whose colours are not unlike
    (`MATCH_COLOUR`), greedily by cost; the others start new tracks. Colours only break ties: the same
    person's box holds another background as they move. A track that ends and one that starts within
    `MAX_GAP` keyframes of it, within `JOIN_DISTANCE` of its prediction, are then one person (a fall or a
    fast turn breaks the frame-to-frame link)."""
    tracks: list[Track] = []
    for step, sightings in enumerate(keyframes):
        pairs = []
        for i, s in enumerate(sightings):
            for t, track in enumerate(tracks):
                cost = _link_cost(track, s, step)
                if cost is not None:
                    pairs.append((cost, i, t))
        used_s, used_t = set(), set()
        for _, i, t in sorted(pairs):
            if i in used_s or t in used_t:
                continue
            tracks[t].sightings.append(sightings[i])
            tracks[t].steps.append(step)
            used_s.add(i)
            used_t.add(t)
        for i, s in enumerate(sightings):
            if i not in used_s:
                tracks.append(Track([s], [step]))
    return _join(tracks)


def _link_cost(track: Track, s: Sighting, step: int, reach: float = MATCH_DISTANCE) -> float | None:
    """The cost of `s` (keyframe `step`) continuing `track`, whose prediction it may miss by `reach` body
    sizes per keyframe; None when it cannot."""
    gap = step - track.steps[-1]
    if gap <= 0 or gap > MAX_GAP:
        return None
    prev = track.last
    cx, cy = prev.centre
    if len(track.sightings) > 1:  # constant velocity per keyframe
        (px, py), back = track.sightings[-2].centre, track.steps[-1] - track.steps[-2]
        cx, cy = cx + (cx - px) / back * gap, cy + (cy - py) / back * gap
    scale = max(prev.size, s.size, 1.0)
    distance = min(math.dist((cx, cy), s.centre), math.dist(prev.centre, s.centre)) / scale
    change = abs(math.log(max(s.size, 1.0) / max(prev.size, 1.0)))
    alike = float(np.minimum(prev.colour, s.colour).sum())
    if distance > reach * gap or change > math.log(MAX_SIZE_CHANGE) or alike < MATCH_COLOUR:
        return None
    return distance / gap + change + 0.5 * (1.0 - alike) + 0.1 * (gap - 1)


def _join(tracks: list[Track]) -> list[Track]:
    """Join each track to the earlier one it continues (it starts after that one ends and `_link_cost`
    allows its first sighting within `JOIN_DISTANCE`), cheapest first."""
    joined = True
    while joined:
        joined = False
        options = []
        for a, first in enumerate(tracks):
            for b, then in enumerate(tracks):
                if a != b and then.steps[0] > first.steps[-1]:
                    cost = _link_cost(first, then.sightings[0], then.steps[0], JOIN_DISTANCE)
                    if cost is not None:
                        options.append((cost, a, b))
        if options:
            _, a, b = min(options)
            tracks[a].sightings += tracks[b].sightings
            tracks[a].steps += tracks[b].steps
            del tracks[b]
            joined = True
    return tracks


def box_at(track: Track, frame: int) -> np.ndarray:
    """(4,) float32 body box of `track` at frame number `frame`: linear between its keyframes, the first
    or last one outside them."""
    frames = np.array([s.frame for s in track.sightings], np.float64)
    boxes = np.array([s.box for s in track.sightings], np.float64)
    return np.array([np.interp(frame, frames, boxes[:, k]) for k in range(4)], np.float32)


def choose(tracks: Sequence[Track], rule: str, frame_size: tuple[int, int]) -> Track | None:
    """The track a video is about. rule: "largest" (highest `Track.presence`), "central" (the smallest
    mean distance of the body centre to the frame centre, in frame diagonals, among tracks seen in at least
    half as many keyframes as the longest track), or an index "0", "1", ... into the tracks ordered by first
    keyframe, then left to right. None when there is no track (or no such index)."""
    if not tracks:
        return None
    if rule == "largest":
        return max(tracks, key=Track.presence)
    if rule == "central":
        height, width = frame_size
        longest = max(len(t.sightings) for t in tracks)
        eligible = [t for t in tracks if 2 * len(t.sightings) >= longest]
        diagonal = math.hypot(width, height)

        def off_centre(track: Track) -> float:
            return float(np.mean([math.dist(s.centre, (width / 2.0, height / 2.0)) for s in track.sightings])
                         ) / diagonal

        return min(eligible, key=off_centre)
    ordered = sorted(tracks, key=lambda t: (t.sightings[0].frame, t.sightings[0].box[0]))
    index = int(rule)
    return ordered[index] if 0 <= index < len(ordered) else None


_SEARCH: Any = None


def mediapipe_detect_fn(detector: Any = None) -> DetectFn:
    """A `DetectFn` over a `lwgan.data.detector.MediaPipeDetector` in static image mode; without one, over
    this process's search detector (static images, masks on), built on first use and kept."""
    global _SEARCH
    if detector is None:
        if _SEARCH is None:
            from lwgan.data.detector import MediaPipeDetector

            _SEARCH = MediaPipeDetector(segmentation=True, static_image_mode=True)
        detector = _SEARCH

    def detect(image: np.ndarray):
        found = detector.detect(image)
        return (found.keypoints, found.mask) if found.found else None

    return detect
