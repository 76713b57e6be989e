"""Are several photos given as one person's (`lwgan imitate` / `lwgan view` with more than one --source)
really of one person? Each body face is textured from the first photo that shows it, so photos of two
people would be sewn into one body without a word. The check compares faces with dlib's face ResNet (the
network the face loss uses, `make weights`), which was trained for exactly this: two 128-d descriptors
closer than `SAME_PERSON` are one person.

The face chip of each photo is cut as the face loss cuts its chips (`lwgan.losses.face.aligned_crops`):
aligned on the face keypoints of the fitted body, from the photo at its own resolution (the crop square,
not G's small frames). A photo counts only where its face is seen from the front (`frontal_faces`: a back
view shows no face to compare) and its chip is at least `MIN_CHIP` pixels of the photo on a side: below
that the descriptor of one face drifts towards another's (scikit-image's astronaut against its own chip
shrunk and enlarged again: distance 0.29 at 40 px, 0.39 at 32, 0.54 at 24, against 0.66-0.72 between
her and the cameraman at every size down to 40). Pairs of counted photos further apart than `SAME_PERSON`
stop the command before anything is synthesised, unless the user says they are one person anyway.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
import torch

from lwgan.apps.person import Person
from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.correspond.maps import face_keypoints, face_regressor, head_box
from lwgan.data.crop import apply_crop
from lwgan.losses.face import aligned_crops, frontal_faces
from lwgan.nets.dlib_face import DlibFaceResNet

SAME_PERSON = 0.6  # dlib's threshold on the Euclidean distance of two face descriptors
NO_NETWORK = "no face network given"  # a face worth comparing, sized up without the network
MIN_CHIP = 40  # photo pixels on a side: a smaller face chip is not compared
CHIP_SAMPLING = 2.0  # the crop square is first reduced (area averaging) until the chip is at most this
# many times the network's chip: the chip's bilinear resampling then skips no pixel's worth of detail


@dataclasses.dataclass(frozen=True)
class Face:
    """One photo's face: its chip's side in photo pixels, and its descriptor (None: not compared, `why`)."""

    name: str
    chip_side: float
    descriptor: torch.Tensor | None
    why: str = ""


def face_of(person: Person, photo: np.ndarray, body: BodyModel, net: DlibFaceResNet | None) -> Face:
    """The face of a fitted `person` in `photo` (H, W, 3) uint8 RGB, the image it was fitted on. With `net`
    None only the chip's size and view are found (no descriptor)."""
    verts = project_video(body, person.betas, person.pose[:1], person.cam[:1])  # (1, V, 3) NDC of the crop
    box = head_box(verts, body.head_mask)
    kp = face_keypoints(verts, face_regressor(body))
    frontal, side = frontal_faces(box, kp)
    chip_side = float(side[0]) * 0.5 * person.crop.side  # NDC spans 2 units of the square
    if not bool(frontal[0]):
        return Face(person.name, chip_side, None, "the face is not seen from the front")
    if chip_side < MIN_CHIP:
        return Face(person.name, chip_side, None, f"the face is {chip_side:.0f} px, under {MIN_CHIP}")
    if net is None:
        return Face(person.name, chip_side, None, NO_NETWORK)
    size = tuple(net.CROP_SIZE)
    reduce = min(1.0, CHIP_SAMPLING * max(size) / chip_side)
    square = apply_crop(photo, person.crop, max(1, round(person.crop.side * reduce)))
    image = torch.from_numpy(square).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        descriptor = net.descriptor(aligned_crops(image, box, kp, size))[0]
    return Face(person.name, chip_side, descriptor)


def compared(faces: Sequence[Face]) -> list[tuple[int, int, float]]:
    """(i, j, distance) for every pair of faces that both have a descriptor."""
    return [(i, j, float((a.descriptor - b.descriptor).norm()))
            for (i, a), (j, b) in itertools.combinations(enumerate(faces), 2)
            if a.descriptor is not None and b.descriptor is not None]


def different(faces: Sequence[Face]) -> list[tuple[int, int, float]]:
    """The compared pairs further apart than `SAME_PERSON`."""
    return [pair for pair in compared(faces) if pair[2] > SAME_PERSON]


def summary(faces: Sequence[Face]) -> dict[str, object]:
    """What the output's JSON record says about the check."""
    return {"threshold": SAME_PERSON,
            "faces": [{"input": f.name, "chip_px": round(f.chip_side, 1),
                       "compared": f.descriptor is not None, **({"why_not": f.why} if f.why else {})}
                      for f in faces],
            "distances": [{"inputs": [faces[i].name, faces[j].name], "distance": round(d, 4)}
                          for i, j, d in compared(faces)]}
