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
from typing import Any

import numpy as np
import torch

from lwgan.apps.person import Person
from lwgan.body.model import BodyModel
from lwgan.body.sequence import project_video
from lwgan.correspond.maps import face_keypoints, face_regressor, head_box
from lwgan.data.crop import CropBox, apply_crop
from lwgan.losses.face import aligned_crops, frontal_faces
from lwgan.nets.dlib_face import DlibFaceResNet

SAME_PERSON = 0.6  # dlib's threshold on the Euclidean distance of two face descriptors
MIN_CHIP = 40  # photo pixels on a side: a smaller face chip is not compared
CHIP_SAMPLING = 2.0  # the crop square is first reduced (area averaging) until the chip is at most this
# many times the network's chip: the chip's bilinear resampling then skips no pixel's worth of detail


@dataclasses.dataclass(frozen=True)
class Face:
    """One photo's face: where its chip lies (the fitted head box and face keypoints, NDC of the person's
    crop square), its side in photo pixels, why it is not compared ("" where it is worth comparing) and,
    once `described`, its descriptor."""

    name: str
    crop: CropBox
    box: torch.Tensor  # (1, 4)
    keypoints: torch.Tensor  # (1, 5, 3)
    chip_side: float
    why: str = ""
    descriptor: torch.Tensor | None = None


def face_of(person: Person, body: BodyModel) -> Face:
    """The face of a fitted `person`: its chip from the body's first frame, and whether it is seen from
    the front and large enough to be compared (module docstring)."""
    verts = project_video(body, person.betas, person.pose[:1], person.cam[:1])  # (1, V, 3) NDC of the crop
    box = head_box(verts, body.head_mask)
    kp = face_keypoints(verts, face_regressor(body))
    frontal, side = frontal_faces(box, kp)
    chip_side = float(side[0]) * 0.5 * person.crop.side  # NDC spans 2 units of the square
    why = ("the face is not seen from the front" if not bool(frontal[0])
           else f"the face is {chip_side:.0f} px, under {MIN_CHIP}" if chip_side < MIN_CHIP else "")
    return Face(person.name, person.crop, box, kp, chip_side, why)


def described(face: Face, photo: np.ndarray, net: DlibFaceResNet) -> Face:
    """`face` with the descriptor of its chip cut from `photo` (H, W, 3) uint8 RGB, the image the person
    was fitted on; a face not worth comparing is returned as it is."""
    if face.why:
        return face
    size = tuple(net.CROP_SIZE)
    reduce = min(1.0, CHIP_SAMPLING * max(size) / face.chip_side)
    square = apply_crop(photo, face.crop, max(1, round(face.crop.side * reduce)))
    image = torch.from_numpy(square).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        descriptor = net.descriptor(aligned_crops(image, face.box, face.keypoints, size))[0]
    return dataclasses.replace(face, descriptor=descriptor)


def compared(faces: Sequence[Face]) -> list[tuple[int, int, float]]:
    """(i, j, distance) for every pair of faces that both have a descriptor."""
    return [(i, j, float((a.descriptor - b.descriptor).norm()))
            for (i, a), (j, b) in itertools.combinations(enumerate(faces), 2)
            if a.descriptor is not None and b.descriptor is not None]


def different(faces: Sequence[Face]) -> list[tuple[int, int, float]]:
    """The compared pairs further apart than `SAME_PERSON`."""
    return [pair for pair in compared(faces) if pair[2] > SAME_PERSON]


def summary(faces: Sequence[Face]) -> dict[str, Any]:
    """What the output's JSON record says about the check."""
    def why_not(face: Face) -> dict[str, str]:
        if face.descriptor is not None:
            return {}
        return {"why_not": face.why or "no other photo's face to compare it with"}

    return {"threshold": SAME_PERSON,
            "faces": [{"input": f.name, "chip_px": round(f.chip_side, 1),
                       "compared": f.descriptor is not None, **why_not(f)} for f in faces],
            "distances": [{"inputs": [faces[i].name, faces[j].name], "distance": round(d, 4)}
                          for i, j, d in compared(faces)]}
