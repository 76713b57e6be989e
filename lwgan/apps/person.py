"""A person in a photo or a video, made ready for the generator with the pipeline's own tools and the
prepare stage's rule: the people of keyframes found at the source resolution and followed from keyframe to
keyframe, one chosen (`lwgan.data.people`; "largest" unless told otherwise), one square around that
person's box over the clip with a margin, the fit stage's detector on that square at up to `DETECT_SIDE`
pixels (a photo's on one `DETECT_CONTEXT` times as large; its keypoints mapped to the generator's crops)
and its body fit
(`lwgan.body.fitting.fit_video`). The footage is read twice, to find the person and then to cut the crops, so
only the crops are held in memory.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

import cv2
import numpy as np
import torch

from lwgan.apps.media import Footage, InputError
from lwgan.body.detect import MediaPipePeople, follow_apart, mask_to_cache, most_consistent
from lwgan.body.fitting import NO_PERSON, FitOptions, fit_video
from lwgan.body.keypoint_io import cache_to_source, source_to_cache
from lwgan.body.model import BodyModel
from lwgan.data import people
from lwgan.data.crop import CropBox, PersonBox, apply_crop, square_crop
from lwgan.progress import ProgressLog

log = logging.getLogger(__name__)

KEYFRAMES = 16  # keyframes searched for people, as in the prepare stage
DETECT_SIDE = 512  # the square around the person is detected at up to this side
DETECT_CONTEXT = 1.5  # a photo's square is this many crop sides (a person who fills a photo is missed);
# a video's is the crop, as in the fit stage: in a larger one the people beside the followed one are too
# small for the person detector to see, and cannot be kept apart (Pose2Sim's two_cam03)


@dataclasses.dataclass(frozen=True)
class Person:
    """A fitted person of a clip of N frames.

    frames: (N, side, side, 3) uint8 RGB person-centred crops. crop: the square cut from every frame.
    betas (S,), pose (N, J * 3), cam (N, 3) weak perspective in the crops (`lwgan.body.fitting.FitResult`);
    status (N,) uint8 fit flags (NO_PERSON frames carry interpolated poses); fps of the clip.
    mask: (side, side) bool, the detector's person mask in the first frame's crop (the frame a source
    photo gives), or None where the detector gave none there.
    """

    name: str
    frames: np.ndarray
    crop: CropBox
    betas: np.ndarray
    pose: np.ndarray
    cam: np.ndarray
    status: np.ndarray
    fps: float
    mask: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def summary(self) -> dict[str, object]:
        return {"input": self.name, "frames": len(self), "crop_box": list(self.crop.as_tuple()),
                "frames_without_person": int(((self.status & NO_PERSON) != 0).sum())}


def find_person(footage: Footage, rule: str = "largest") -> PersonBox | None:
    """The box over the footage of the person `rule` chooses ("largest", "central" or an index), found as
    the prepare stage finds it: the people of up to `KEYFRAMES` keyframes at the source resolution,
    followed from keyframe to keyframe (`lwgan.data.people`). None when nobody is found."""
    found = find_track(footage, rule)
    return None if found is None else found[0]


def find_track(footage: Footage, rule: str = "largest") -> tuple[PersonBox, people.Track, int] | None:
    """`find_person`'s box, the person's track over the keyframes (`people.box_at` gives their box in
    any frame) and the number of frames read; None when nobody is found."""
    total = 1 if footage.kind == "image" else max(1, footage.estimated_frames())
    every = max(1, -(-total // KEYFRAMES))
    detect = people.mediapipe_detect_fn()
    seen, size, frames = [], (0, 0), 0
    progress = ProgressLog(f"find people {footage.path.name}", "frames") if footage.kind == "video" else None
    for i, image in enumerate(footage.frames()):
        size, frames = image.shape[:2], i + 1
        if i % every == 0:
            seen.append(people.find_people(image, detect, i))
        if progress is not None:
            progress(i + 1, total)
    chosen = people.choose(people.follow(seen), rule, size)
    if chosen is None:
        return None
    note = f"seen in {len(chosen.sightings)} of {len(seen)} keyframes"
    return PersonBox(*chosen.bounds(*size), "detector", note), chosen, frames


def fit_person(footage: Footage, detector: MediaPipePeople, body: BodyModel, side: int, margin: float,
               options: FitOptions, rule: str = "largest") -> Person:
    """Find the person (`find_track`, first pass), crop to `side`² and detect the keypoints in the crops
    as the fit stage does in the cached frames (second pass: the person found, taken where their track's
    box holds them and kept apart from everyone near them, `follow_apart`), and fit the body; InputError
    naming the file when no person is found. Memory: the crops and the per-frame keypoints, whatever the
    input size."""
    what = footage.kind
    found_person = find_track(footage, rule)
    if found_person is None:
        raise InputError(f"no person was found in the {what} {footage.path}: it needs one person, seen "
                         "whole and large enough for the detector")
    box, track, count = found_person
    height, width = next(footage.frames()).shape[:2]
    crop = square_crop(box, height, width, margin)
    # The keypoints come from a square around the person (with room to spare in a photo, where the
    # detector misses people who fill the image), at up to DETECT_SIDE pixels (the source's where it is
    # smaller), mapped to the side² crops: a small G size does not starve the detector.
    context = DETECT_CONTEXT if footage.kind == "image" else 1.0
    grow = int(round(crop.side * (context - 1.0) / 2.0))
    around = CropBox(crop.x0 - grow, crop.y0 - grow, crop.side + 2 * grow)
    detect_side = min(around.side, DETECT_SIDE)
    # the person's box in each frame, in the detector's pixels
    boxes = np.stack([people.box_at(track, i) for i in range(count)]).astype(np.float64)
    origin = np.array([around.x0, around.y0, around.x0, around.y0], np.float64)
    followed = (boxes - origin + 0.5) * (detect_side / around.side) - 0.5
    crops: list[np.ndarray] = []

    def squares() -> Iterator[np.ndarray]:
        for i, frame in enumerate(footage.frames()):
            if i == count:  # the frames the first pass read (one decoder, so the same ones)
                return
            crops.append(apply_crop(frame, crop, side))
            yield apply_crop(frame, around, detect_side)

    # a driving video's frames where left and right flicker are swapped back (`most_consistent`)
    batch = most_consistent([follow_apart(squares(), detector, followed)])
    keypoints = source_to_cache(cache_to_source(batch.keypoints, around.as_tuple(), detect_side),
                                crop.as_tuple(), side)  # (N, K, 3) crop pixels
    keypoints[~batch.found] = 0.0

    def in_crop(mask: np.ndarray) -> np.ndarray:  # the detector's square -> the side² crop
        return mask_to_cache(cv2.resize(mask.astype(np.uint8), (around.side, around.side),
                                        interpolation=cv2.INTER_NEAREST), (grow, grow, crop.side), side)

    masks = None
    if options.silhouette_weight > 0 and batch.packed_masks is not None:
        masks = torch.from_numpy(np.stack([in_crop(m) for m in batch.masks()]))
    first = batch.detection(0)
    first_mask = in_crop(first.mask) if first.found and first.mask is not None else None
    crops = np.stack(crops)  # (N, side, side, 3)
    world = None if batch.world is None else torch.from_numpy(batch.world)  # metric: no crop to map it to
    fit = fit_video(torch.from_numpy(keypoints), side, body, options, masks, world=world)
    status = fit.status.numpy()
    if (status & NO_PERSON).all():
        raise InputError(f"no person was found in the {what} {footage.path}: the detector's keypoints are "
                         f"too few to fit a body (fewer than {options.min_keypoints} confident ones per "
                         "frame)")
    log.info("%s: fitted %d frames (%d without a person)", footage.path, len(status),
             int(((status & NO_PERSON) != 0).sum()))
    return Person(str(footage.path), crops, crop, fit.betas.numpy(), fit.pose.numpy(), fit.cam.numpy(),
                  status, footage.fps, first_mask)
