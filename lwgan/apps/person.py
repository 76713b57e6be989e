"""A person in a photo or a video, made ready for the generator with the pipeline's own tools: the 2D
detector of the fit stage on every frame, one person-centred square crop for the whole clip (the prepare
stage's rule: the box of the detected person over all frames, squared with a margin), and the fit stage's
body fit (`lwgan.body.fit.fit_video`) on the crops.

The person's box is the union of the detector's person masks over the frames where a person was found;
without masks, the box of the confident keypoints, grown by `KEYPOINT_BOX_GROWTH` of its size (keypoints
stop at the ankles and the nose, the body does not).
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import torch

from lwgan.apps.media import Clip, InputError
from lwgan.body.detect import DetectionBatch, PoseDetector, detect_video, mask_to_cache
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


def person_box(detections: DetectionBatch) -> PersonBox | None:
    """The person's box over the frames where one was found (module docstring), or None."""
    found = np.flatnonzero(detections.found)
    if len(found) == 0:
        return None
    masks = detections.masks()
    if masks is not None and masks[found].any():
        rows, cols = np.nonzero(masks[found].any(axis=0))
        return PersonBox(float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1),
                         "mask", "union of the detector's person masks")
    points = detections.keypoints[found].reshape(-1, 3)
    points = points[points[:, 2] >= KEYPOINT_CONFIDENCE]
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    gx, gy = (x1 - x0) * KEYPOINT_BOX_GROWTH, (y1 - y0) * KEYPOINT_BOX_GROWTH
    return PersonBox(float(x0 - gx), float(y0 - gy), float(x1 + gx + 1), float(y1 + gy + 1), "mask",
                     "confident keypoints, grown")


def fit_person(clip: Clip, detector: PoseDetector, body: BodyModel, side: int, margin: float,
               options: FitOptions) -> Person:
    """Detect, crop to `side`² and fit the body; InputError naming the file when no person is found."""
    what = "image" if len(clip.frames) == 1 else "video"
    progress = ProgressLog(f"detect {clip.path.name}", "frames") if len(clip.frames) > 1 else None
    detections = detect_video(list(clip.frames), detector, progress)
    box = person_box(detections)
    if box is None:
        raise InputError(f"no person was found in the {what} {clip.path}: it needs one person, seen whole "
                         "and large enough for the detector")
    height, width = clip.frames.shape[1:3]
    crop = square_crop(box, height, width, margin)
    crops = np.stack([apply_crop(frame, crop, side) for frame in clip.frames])  # (N, side, side, 3)
    keypoints = source_to_cache(detections.keypoints, crop.as_tuple(), side)  # (N, K, 3)
    keypoints[~detections.found] = 0.0
    masks = detections.masks()
    cache_masks = None
    if masks is not None and options.silhouette_weight > 0:
        cache_masks = torch.from_numpy(np.stack([mask_to_cache(m, crop.as_tuple(), side) for m in masks]))
    fit = fit_video(torch.from_numpy(keypoints), side, body, options, cache_masks)
    status = fit.status.numpy()
    if (status & NO_PERSON).all():
        raise InputError(f"no person was found in the {what} {clip.path}: the detector's keypoints are too "
                         f"few to fit a body (fewer than {options.min_keypoints} confident ones per frame)")
    log.info("%s: fitted %d frames (%d without a person)", clip.path, len(status),
             int(((status & NO_PERSON) != 0).sum()))
    return Person(str(clip.path), crops, crop, fit.betas.numpy(), fit.pose.numpy(), fit.cam.numpy(), status,
                  clip.fps)
