"""Several photos given as one person's (`lwgan.apps.identity`): the face chip cut from the fitted body lands
on the face, photos of one person pass and a photo of another person is told apart, on real photos:
scikit-image's astronaut, her mirror image, her photo on a wider canvas, and her photo with Grace Hopper's
head (matplotlib's sample portrait) set on her suit by the eyes, read off both photos. The references are
a face box read off the astronaut photo by eye and dlib's own threshold for one person (0.6), not the
module's constants."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _photos import ASTRONAUT_FACE, write_photos

from lwgan.apps import identity, media
from lwgan.apps.person import fit_person
from lwgan.body import load_configured
from lwgan.body.fitting import FitOptions
from lwgan.body.model import BodyModel
from lwgan.nets.pretrained import load_feature_net

pytest.importorskip("mediapipe", reason="the person detector (MediaPipe) is not installed")
pytestmark = pytest.mark.slow

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "weights" / "dlib_face.pth"  # `make weights`
SAME_PERSON = 0.6  # dlib's threshold on the distance of two descriptors of one person
BODY = BodyModel(load_configured("default"))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    return write_photos(tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def fitted(photos) -> dict[str, tuple]:
    """name -> (the fitted person, the photo, their face)."""
    if not WEIGHTS.is_file():
        pytest.skip(f"{WEIGHTS} is missing: run `make weights`")
    from lwgan.body.detect import MediaPipePeople

    net = load_feature_net("dlib", WEIGHTS)[0]
    found = {}
    with MediaPipePeople() as people:
        for name, path in photos.items():
            clip = media.read_image(path)
            person, photo = fit_person(clip, people, BODY, 256, 0.1, FitOptions()), next(clip.frames())
            found[name] = (person, photo, identity.described(identity.face_of(person, BODY), photo, net))
    return found


@pytest.fixture(scope="module")
def faces(fitted) -> dict[str, identity.Face]:
    return {name: face for name, (_, _, face) in fitted.items()}


def distance(a: identity.Face, b: identity.Face) -> float:
    return float((a.descriptor - b.descriptor).norm())


def test_the_chip_cut_from_the_fitted_body_is_the_face_read_off_the_photo(faces):
    """The chip cut by the fit is the astronaut's face by the face box read off the photo by eye (the two
    framings differ: the fit's chip is tighter, so the distance is not 0), and the chip cut the same way
    from the photo with Hopper's head is not."""
    from skimage import data

    top, left, side = ASTRONAUT_FACE
    chip = cv2.resize(data.astronaut()[top:top + side, left:left + side], (150, 150),
                      interpolation=cv2.INTER_AREA)
    net = load_feature_net("dlib", WEIGHTS)[0]
    with torch.no_grad():
        by_eye = net.descriptor(torch.from_numpy(chip).permute(2, 0, 1)[None].float() / 127.5 - 1.0)[0]
    assert float((faces["astronaut"].descriptor - by_eye).norm()) < SAME_PERSON - 0.15
    assert float((faces["hopper"].descriptor - by_eye).norm()) > SAME_PERSON


def test_one_person_passes_and_another_is_told_apart(faces):
    same = [distance(faces["astronaut"], faces[k]) for k in ("mirror", "wider")]
    other = [distance(faces[k], faces["hopper"]) for k in ("astronaut", "mirror", "wider")]
    assert max(same) < SAME_PERSON - 0.2, same
    assert min(other) > SAME_PERSON, other
    pairs = identity.different([faces[k] for k in ("astronaut", "mirror", "wider", "hopper")])
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 3), (1, 3), (2, 3)]
    record = identity.summary([faces["astronaut"], faces["mirror"]])
    json.dumps(record)  # goes into the output's JSON record as it is
    assert [f["compared"] for f in record["faces"]] == [True, True]


def test_a_face_not_seen_from_the_front_or_too_small_is_not_compared(fitted):
    """The astronaut's fitted body turned half round about the vertical (the back of her head towards the
    camera), and her photo and crop shrunk to a quarter (her face, about 140 px read off the photo, then
    about 35): neither is compared, though the network is given."""
    person, photo, face = fitted["astronaut"]
    assert face.descriptor is not None
    root = cv2.Rodrigues(person.pose[0, :3].astype(np.float64))[0]
    half_turn = cv2.Rodrigues(np.array([0.0, np.pi, 0.0]))[0]
    pose = person.pose.copy()
    pose[0, :3] = cv2.Rodrigues(half_turn @ root)[0].ravel()
    net = load_feature_net("dlib", WEIGHTS)[0]
    back = identity.described(identity.face_of(dataclasses.replace(person, pose=pose), BODY), photo, net)
    assert back.descriptor is None and "front" in back.why
    crop = person.crop
    quarter = dataclasses.replace(person, crop=dataclasses.replace(crop, x0=crop.x0 // 4, y0=crop.y0 // 4,
                                                                    side=crop.side // 4))
    small = cv2.resize(photo, (photo.shape[1] // 4, photo.shape[0] // 4), interpolation=cv2.INTER_AREA)
    tiny = identity.described(identity.face_of(quarter, BODY), small, net)
    assert tiny.descriptor is None and tiny.chip_side < identity.MIN_CHIP < face.chip_side / 2
