"""A person-centred square crop per video: find the person's box over the video, make it square with a
margin, and cut every frame with that one square (no per-frame jitter); or, for a person who crosses the
frame, one square of fixed size that moves with them (`follow_crops`).

Boxes are in source pixels, (x0, y0, x1, y1) with exclusive ends, x to the right and y down. The person box
comes from, in order of preference:

    "mask"    ground-truth masks (union of the mask boxes over the kept frames),
    "detector" the people found at the source resolution in keyframes, one followed (`lwgan.data.people`),
    "motion"  temporal-median background subtraction over up to `MOTION_SAMPLES` frames spread over the
              video (robust percentile boxes), for a static camera and a moving person,
    "centre"  the largest centred square, when neither gives a usable box.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from lwgan.data.video import Frame

log = logging.getLogger(__name__)

BoxMethod = Literal["mask", "motion", "centre"]
PadMode = Literal["edge", "constant"]

MOTION_SAMPLES = 64  # frames decoded for the background model (bounded: memory is flat in video length)
MOTION_SIDE = 320  # the background model works on frames downscaled to this longer side
MOTION_MIN_DIFF = 24.0  # a pixel is foreground when it differs from the median background by more than
MOTION_MAD_FACTOR = 4.0  # max(MOTION_MIN_DIFF, MOTION_MAD_FACTOR * its median absolute deviation)
MOTION_MIN_AREA = 0.002  # a frame with less foreground than this fraction of its pixels has no detection
MOTION_MIN_DETECTIONS = 0.25  # fraction of sampled frames that must have a detection
MOTION_PERCENTILE = 2.0  # per-frame boxes are combined at these percentiles (robust to a few bad frames)
MOTION_MAX_EXTENT = 0.9  # a motion box this close to the whole frame says nothing (moving camera)


@dataclass(frozen=True)
class PersonBox:
    """Where the person is over the video, in source pixels (exclusive ends), and how that was found."""

    x0: float
    y0: float
    x1: float
    y1: float
    method: BoxMethod
    note: str = ""


@dataclass(frozen=True)
class CropBox:
    """The square cut from every frame: columns [x0, x0 + side), rows [y0, y0 + side) of the source.

    It may extend past the image; those pixels are padded.
    """

    x0: int
    y0: int
    side: int

    def as_tuple(self) -> tuple[int, int, int]:
        return self.x0, self.y0, self.side


def centre_box(height: int, width: int, note: str = "") -> PersonBox:
    """The largest square centred in a (height, width) frame."""
    side = min(height, width)
    x0, y0 = (width - side) / 2.0, (height - side) / 2.0
    return PersonBox(x0, y0, x0 + side, y0 + side, "centre", note)


def box_from_masks(masks: list[Path], height: int, width: int) -> PersonBox | None:
    """Union of the non-zero pixels of the mask images, scaled to a (height, width) frame.

    None when no mask can be read or every mask is empty. Masks at another resolution are scaled.
    """
    lo = np.array([np.inf, np.inf])
    hi = np.array([-np.inf, -np.inf])
    for path in masks:
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            log.warning("mask %s cannot be decoded; it is ignored", path)
            continue
        rows, cols = np.nonzero(mask)
        if rows.size == 0:
            continue
        scale = np.array([width / mask.shape[1], height / mask.shape[0]])
        lo = np.minimum(lo, np.array([cols.min(), rows.min()]) * scale)
        hi = np.maximum(hi, (np.array([cols.max(), rows.max()]) + 1) * scale)
    if not np.isfinite(lo).all():
        return None
    return PersonBox(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]), "mask")


def box_from_motion(samples: list[Frame], height: int, width: int) -> PersonBox | None:
    """Person box, in (height, width) source pixels, from foreground against the temporal median of
    `samples` (BGR frames of one video, possibly downscaled: see `Frame.shrunk`; frames of another source
    size are left out).

    None when the foreground is too sparse or covers nearly the whole frame.
    """
    frames = [f.shrunk(MOTION_SIDE) for f in samples if f.source_size == (height, width)]
    if len(frames) < 3:
        return None
    small = np.stack([f.image for f in frames])  # (N, h, w, 3) uint8: small, and no float copies
    scale = np.array([small.shape[2] / width, small.shape[1] / height] * 2)  # (4,) x, y, x, y
    background = _lower_median(small)  # (h, w, 3)
    diff = np.stack([cv2.absdiff(image, background).max(axis=2) for image in small])  # (N, h, w) uint8
    threshold = np.maximum(MOTION_MIN_DIFF, MOTION_MAD_FACTOR * _lower_median(diff).astype(np.float32))
    kernel = np.ones((3, 3), np.uint8)
    boxes = []
    for frame_diff in diff:
        mask = cv2.morphologyEx((frame_diff > threshold).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        rows, cols = np.nonzero(mask)
        if rows.size < MOTION_MIN_AREA * mask.size:
            continue
        boxes.append((np.percentile(cols, 0.5), np.percentile(rows, 0.5),
                      np.percentile(cols, 99.5) + 1, np.percentile(rows, 99.5) + 1))
    if len(boxes) < max(2, MOTION_MIN_DETECTIONS * len(frames)):
        return None
    arr = np.array(boxes) / scale  # (N, 4) x0, y0, x1, y1 in source pixels
    x0, y0 = np.percentile(arr[:, :2], MOTION_PERCENTILE, axis=0)
    x1, y1 = np.percentile(arr[:, 2:], 100 - MOTION_PERCENTILE, axis=0)
    if (x1 - x0) >= MOTION_MAX_EXTENT * width and (y1 - y0) >= MOTION_MAX_EXTENT * height:
        return None
    return PersonBox(float(x0), float(y0), float(x1), float(y1), "motion")


def _lower_median(stack: np.ndarray) -> np.ndarray:
    """Per-pixel lower median over axis 0 of a uint8 stack (np.median would make float64 copies)."""
    k = (stack.shape[0] - 1) // 2
    return np.partition(stack, k, axis=0)[k]


def square_crop(box: PersonBox, height: int, width: int, margin: float) -> CropBox:
    """The square crop for `box` in a (height, width) frame.

    Side: the box's longer side plus `margin` of it on each side, at most the frame's longer side. The
    square is centred on the box and then shifted the least amount that keeps it inside the frame where
    the frame allows; the box stays inside the square either way, so less is padded and nothing of the
    person is lost. A "centre" box is not a person box and gets no margin: it is the crop.
    """
    if box.method == "centre":
        margin = 0.0
    bw, bh = box.x1 - box.x0, box.y1 - box.y0
    side = max(bw, bh) * (1.0 + 2.0 * margin)
    side = int(round(min(max(side, 1.0), max(height, width))))
    cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
    return CropBox(_place(cx, side, width), _place(cy, side, height), side)


def _place(centre: float, side: int, extent: int) -> int:
    """Start of a `side` window centred at `centre` on an axis of `extent` pixels, shifted the least that
    keeps it inside when it fits, centred on the axis when it does not."""
    start = centre - side / 2.0
    if side <= extent:
        start = min(max(start, 0.0), extent - side)
    else:
        start = (extent - side) / 2.0
    return int(round(start))


def follow_crops(numbers: np.ndarray, key_numbers: np.ndarray, key_boxes: np.ndarray, height: int,
                 width: int, margin: float) -> np.ndarray:
    """A square that moves with the person: (N, 3) int64 (x0, y0, side) for frame `numbers`.

    key_boxes: (K, 4) body boxes (x0, y0, x1, y1) at frame numbers `key_numbers` (increasing). The side
    is the same for every frame, the largest keyframe box's longer side plus `margin` of it on each side
    (so the person keeps one share of the crop and nothing zooms); the centre moves linearly between the
    keyframes' box centres and stays at the first/last one outside them; each square is placed as
    `square_crop` places it (inside the frame where it fits).
    """
    key_boxes = np.asarray(key_boxes, np.float64)
    extent = np.maximum(key_boxes[:, 2] - key_boxes[:, 0], key_boxes[:, 3] - key_boxes[:, 1]).max()
    side = int(round(min(max(extent * (1.0 + 2.0 * margin), 1.0), max(height, width))))
    cx = np.interp(numbers, key_numbers, (key_boxes[:, 0] + key_boxes[:, 2]) / 2.0)
    cy = np.interp(numbers, key_numbers, (key_boxes[:, 1] + key_boxes[:, 3]) / 2.0)
    rows = [(_place(x, side, width), _place(y, side, height), side) for x, y in zip(cx, cy, strict=True)]
    return np.array(rows, np.int64).reshape(-1, 3)


def valid_mask(box: tuple[int, int, int], source_size: tuple[int, int], size: int) -> np.ndarray:
    """(size, size) bool: the pixels of a `size` crop of the square `box` (x0, y0, side) whose footprint
    lies wholly inside the (height, width) source, i.e. neither padding nor mixed with it by the resize."""
    x0, y0, side = (float(v) for v in box)
    height, width = source_size
    edges = np.arange(size + 1) * (side / size)  # footprint edges in source pixels, from the box corner
    cols = (x0 + edges[:-1] >= 0) & (x0 + edges[1:] <= width)
    rows = (y0 + edges[:-1] >= 0) & (y0 + edges[1:] <= height)
    return rows[:, None] & cols[None, :]


def apply_crop(image: np.ndarray, crop: CropBox, size: int, pad: PadMode = "constant") -> np.ndarray:
    """Cut `crop` from `image` (H, W, C) uint8, padding outside the image, resized to (size, size, C).

    pad "edge" repeats the border pixels, "constant" fills with black. Resizing uses cv2.INTER_AREA.
    """
    height, width = image.shape[:2]
    x0, y0, side = crop.x0, crop.y0, crop.side
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + side, width), min(y0 + side, height)
    patch = image[iy0:iy1, ix0:ix1]
    top, left = iy0 - y0, ix0 - x0
    bottom, right = y0 + side - iy1, x0 + side - ix1
    if top or left or bottom or right:
        border = cv2.BORDER_REPLICATE if pad == "edge" else cv2.BORDER_CONSTANT
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, border, value=(0, 0, 0))
    if patch.shape[0] == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
