"""A person in a photo or a video, made ready for the generator with the pipeline's own tools: the 2D
detector of the fit stage on every frame, one person-centred square crop for the whole clip (the prepare
stage's rule: the box of the detected person over all frames, squared with a margin), and the fit stage's
body fit (`lwgan.body.fit.fit_video`) on the crops. The footage is read twice, to detect and then to cut
the crops, so only the crops are held in memory.

The person's box is the union of the detector's person masks over the frames where a person was found;
without masks, the box of the confident keypoints, grown by `KEYPOINT_BOX_GROWTH` of its size (keypoints
stop at the ankles and the nose, the body does not).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from lwgan.apps.media import Footage, InputError
from lwgan.body.detect import PoseDetector, mask_to_cache
from lwgan.body.fit import NO_PERSON, FitOptions, fit_video
from lwgan.body.keypoint_io import source_to_cache
from lwgan.body.model import BodyModel
from lwgan.data.crop import CropBox, PersonBox, apply_crop, square_crop
from lwgan.progress import ProgressLog

log = logging.getLogger(__name__)

KEYPOINT_BOX_GROWTH = 0.15
KEYPOINT_CONFIDENCE = 0.3


@dataclasses.dataclass(frozen=True)
class Person:
    """A fitted person of a clip of N frames.

    frames: (N, side, side, 3) uint8 RGB person-centred crops. crop: the square cut from every frame.
    betas (S,), pose (N, J * 3), cam (N, 3) weak perspective in the crops (`lwgan.body.fit.FitResult`);
    status (N,) uint8 fit flags (NO_PERSON frames carry interpolated poses); fps of the clip.
    """

    name: str
    frames: np.ndarray
    crop: CropBox
    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray
    status: np.ndarray
    fps: float

    def __len__(self) -> int:
        return len(self.frames)

    def summary(self) -> dict[str, object]:
        return {"input": self.name, "frames": len(self), "crop_box": list(self.crop.as_tuple()),
                "frames_without_person": int(((self.status & NO_PERSON) != 0).sum())}


@dataclasses.dataclass(frozen=True)
class Detections:
    """What the detector found per frame: keypoints (N, K, 3) in frame pixels, found (N,) bool, the box
    (x0, y0, x1, y1) of each person mask (None without one), and the masks themselves, packed along the
    width by np.packbits, only when they are wanted (the silhouette term)."""

    keypoints: np.ndarray
    found: np.ndarray
    mask_boxes: list[tuple[int, int, int, int] | None]
    packed_masks: list[np.ndarray] | None
    size: tuple[int, int]


def detect(footage: Footage, detector: PoseDetector, keep_masks: bool = False) -> Detections:
    """Run the detector over every frame of the footage, keeping only the small results."""
    progress = ProgressLog(f"detect {footage.path.name}", "frames") if footage.kind == "video" else None
    detector.reset()
    keypoints, found, boxes, packed = [], [], [], []
    size = (0, 0)
    for image in footage.frames():
        size = image.shape[:2]
        d = detector.detect(image)
        keypoints.append(d.keypoints)
        found.append(d.found)
        box = None
        if d.found and d.mask is not None and d.mask.any():
            rows, cols = np.nonzero(d.mask.any(axis=1))[0], np.nonzero(d.mask.any(axis=0))[0]
            box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        boxes.append(box)
        if keep_masks:
            mask = d.mask if d.mask is not None else np.zeros(size, bool)
            packed.append(np.packbits(mask, axis=-1))
        if progress is not None:
            progress(len(found), 0)
    return Detections(np.stack(keypoints).astype(np.float32), np.asarray(found, bool), boxes,
                      packed if keep_masks else None, size)


def person_box(detections: Detections) -> PersonBox | None:
    """The person's box over the frames where one was found (module docstring), or None."""
    found = np.flatnonzero(detections.found)
    if len(found) == 0:
        return None
    boxes = np.array([b for b, f in zip(detections.mask_boxes, detections.found, strict=True)
                      if b is not None and f])
    if len(boxes):
        return PersonBox(float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()),
                         float(boxes[:, 3].max()), "mask", "union of the detector's person masks")
    points = detections.keypoints[found].reshape(-1, 3)
    points = points[points[:, 2] >= KEYPOINT_CONFIDENCE]
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    gx, gy = (x1 - x0) * KEYPOINT_BOX_GROWTH, (y1 - y0) * KEYPOINT_BOX_GROWTH
    return PersonBox(float(x0 - gx), float(y0 - gy), float(x1 + gx + 1), float(y1 + gy + 1), "mask",
                     "confident keypoints, grown")


def fit_person(footage: Footage, detector: PoseDetector, body: BodyModel, side: int, margin: float,
               options: FitOptions) -> Person:
    """Detect (first pass), crop to `side`² (second pass) and fit the body; InputError naming the file
    when no person is found. Memory: the crops and the per-frame keypoints, whatever the input size."""
    what = footage.kind
    wants_masks = options.silhouette_weight > 0
    detections = detect(footage, detector, keep_masks=wants_masks)
    box = person_box(detections)
    if box is None:
        raise InputError(f"no person was found in the {what} {footage.path}: it needs one person, seen "
                         "whole and large enough for the detector")
    height, width = detections.size
    crop = square_crop(box, height, width, margin)
    crops = np.stack([apply_crop(frame, crop, side) for frame in footage.frames()])  # (N, side, side, 3)
    if len(crops) != len(detections.found):
        raise InputError(f"{footage.path} gave {len(crops)} frames on the second reading and "
                         f"{len(detections.found)} on the first: is it being written to?")
    keypoints = source_to_cache(detections.keypoints, crop.as_tuple(), side)  # (N, K, 3)
    keypoints[~detections.found] = 0.0
    masks = None
    if detections.packed_masks is not None:
        masks = torch.from_numpy(np.stack([
            mask_to_cache(np.unpackbits(m, axis=-1, count=width).astype(bool), crop.as_tuple(), side)
            for m in detections.packed_masks]))
    fit = fit_video(torch.from_numpy(keypoints), side, body, options, masks)
    status = fit.status.numpy()
    if (status & NO_PERSON).all():
        raise InputError(f"no person was found in the {what} {footage.path}: the detector's keypoints are "
                         f"too few to fit a body (fewer than {options.min_keypoints} confident ones per "
                         "frame)")
    log.info("%s: fitted %d frames (%d without a person)", footage.path, len(status),
             int(((status & NO_PERSON) != 0).sum()))
    return Person(str(footage.path), crops, crop, fit.betas.numpy(), fit.pose.numpy(), fit.cam.numpy(),
                  status, footage.fps)
