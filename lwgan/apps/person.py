"""A person in a photo or a video, made ready for the generator with the pipeline's own tools and the
prepare stage's rule: the people of keyframes found at the source resolution and followed from keyframe to
keyframe, one chosen (`lwgan.data.people`; "largest" unless told otherwise), one square around that
person's box over the clip with a margin, the fit stage's detector on a square `DETECT_CONTEXT` times as
large at up to `DETECT_SIDE` pixels (its keypoints mapped to the generator's crops) and its body fit
(`lwgan.body.fitting.fit_video`). The footage is read twice, to find the person and then to cut the crops, so
only the crops are held in memory.
"""

from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
import torch

from lwgan.apps.media import Footage, InputError
from lwgan.body.detect import DetectionBatch, PoseDetector, mask_to_cache, most_consistent
from lwgan.body.fitting import NO_PERSON, FitOptions, fit_video
from lwgan.body.keypoint_io import cache_to_source, source_to_cache
from lwgan.body.model import BodyModel
from lwgan.data import people
from lwgan.data.crop import CropBox, PersonBox, apply_crop, square_crop
from lwgan.progress import ProgressLog

log = logging.getLogger(__name__)

KEYFRAMES = 16  # keyframes searched for people, as in the prepare stage
DETECT_SIDE = 512  # the square around the person is detected at up to this side
DETECT_CONTEXT = 1.5  # that square's side, in crop sides


@dataclasses.dataclass(frozen=True)
class Person:
    """A fitted person of a clip of N frames.

    frames: (N, side, side, 3) uint8 RGB person-centred crops. crop: the square cut from every frame.
    betas (S,), pose (N, J * 3), cam (N, 3) weak perspective in the crops (`lwgan.body.fitting.FitResult`);
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


def find_person(footage: Footage, rule: str = "largest") -> PersonBox | None:
    """The box over the footage of the person `rule` chooses ("largest", "central" or an index), found as
    the prepare stage finds it: the people of up to `KEYFRAMES` keyframes at the source resolution,
    followed from keyframe to keyframe (`lwgan.data.people`). None when nobody is found."""
    total = 1 if footage.kind == "image" else max(1, footage.estimated_frames())
    every = max(1, -(-total // KEYFRAMES))
    detect = people.mediapipe_detect_fn()
    seen, size = [], (0, 0)
    progress = ProgressLog(f"find people {footage.path.name}", "frames") if footage.kind == "video" else None
    for i, image in enumerate(footage.frames()):
        size = image.shape[:2]
        if i % every == 0:
            seen.append(people.find_people(image, detect, i))
        if progress is not None:
            progress(i + 1, total)
    chosen = people.choose(people.follow(seen), rule, size)
    if chosen is None:
        return None
    return PersonBox(*chosen.bounds(*size), "detector",
                     f"seen in {len(chosen.sightings)} of {len(seen)} keyframes")


def fit_person(footage: Footage, detector: PoseDetector, body: BodyModel, side: int, margin: float,
               options: FitOptions, rule: str = "largest") -> Person:
    """Find the person (`find_person`, first pass), crop to `side`² and detect the keypoints in the crops
    as the fit stage does in the cached frames (second pass), and fit the body; InputError naming the file
    when no person is found. Memory: the crops and the per-frame keypoints, whatever the input size."""
    what = footage.kind
    box = find_person(footage, rule)
    if box is None:
        raise InputError(f"no person was found in the {what} {footage.path}: it needs one person, seen "
                         "whole and large enough for the detector")
    height, width = next(footage.frames()).shape[:2]
    crop = square_crop(box, height, width, margin)
    # The keypoints come from a square around the person with room to spare (the detector misses people
    # who fill the image), at up to DETECT_SIDE pixels (the source's where it is smaller), mapped to the
    # side² crops: a small G size does not starve the detector.
    grow = int(round(crop.side * (DETECT_CONTEXT - 1.0) / 2.0))
    around = CropBox(crop.x0 - grow, crop.y0 - grow, crop.side + 2 * grow)
    detect_side = min(around.side, DETECT_SIDE)
    crops, found = [], []
    for frame in footage.frames():
        crops.append(apply_crop(frame, crop, side))
        found.append(detector.detect(apply_crop(frame, around, detect_side)))
    # a driving video's frames where left and right flicker are swapped back (`most_consistent`)
    batch = most_consistent([DetectionBatch.stack(found, (detect_side, detect_side))])
    keypoints = source_to_cache(cache_to_source(batch.keypoints, around.as_tuple(), detect_side),
                                crop.as_tuple(), side)  # (N, K, 3) crop pixels
    keypoints[~batch.found] = 0.0
    masks = None
    if options.silhouette_weight > 0 and batch.packed_masks is not None:
        masks = torch.from_numpy(np.stack([
            mask_to_cache(cv2.resize(m.astype(np.uint8), (around.side, around.side),
                                     interpolation=cv2.INTER_NEAREST), (grow, grow, crop.side), side)
            for m in batch.masks()]))
    crops = np.stack(crops)  # (N, side, side, 3)
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
