"""Real photographs behind the synthetic people (`synth.photos`, off by default): the colour photos that
ship inside scikit-image (`skimage/data`; the dev extras, which `make venv` installs) and scikit-learn
(`sklearn/datasets/images`; installed with mlflow), read from the installed packages and checked by
sha256 before use, so that a set drawn with them is the same on every machine or an error names the file
that differs.

    motorcycle_left, motorcycle_right  a garage with a motorbike (Middlebury 2014 stereo, scikit-image)
    coffee                              a cup on a table (Rachel Michetti, CC0, scikit-image)
    rocket                              a launch pad outdoors (SpaceX, public domain, scikit-image)
    chelsea                             a cat on a carpet (Stefan van der Walt, CC0, scikit-image)
    china, flower                       a temple, a flower (Flickr, CC BY 2.0, scikit-learn)

A background is a square crop of one of them (45-100 % of its shorter side, anywhere in it), mirrored
half of the time and scaled per channel by 0.8-1.15: real clutter, texture and lighting where the
procedural kinds of `lwgan.synth.background` are flat, so that the background stream meets real scenes
in training. On the real clips it did not close the gap to the warp (README "On real people"). Images
are (H, W, 3) float32 RGB in [0, 1].
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from lwgan.errors import UserError


class PhotoError(UserError, RuntimeError):
    """A background photo is missing from its package or is not the recorded file."""


@dataclasses.dataclass(frozen=True)
class Photo:
    name: str
    package: str  # the importable package that ships it
    member: str  # its path inside that package
    sha256: str


PHOTOS: tuple[Photo, ...] = (
    Photo("motorcycle_left", "skimage", "data/motorcycle_left.png",
          "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
    Photo("motorcycle_right", "skimage", "data/motorcycle_right.png",
          "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797"),
    Photo("coffee", "skimage", "data/coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    Photo("rocket", "skimage", "data/rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    Photo("chelsea", "skimage", "data/chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    Photo("china", "sklearn", "datasets/images/china.jpg",
          "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29"),
    Photo("flower", "sklearn", "datasets/images/flower.jpg",
          "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638"),
)
INSTALL = "make venv  (or: pip install scikit-image==0.26.0; scikit-learn comes with mlflow)"


def photo_path(photo: Photo) -> Path:
    """Where the installed package keeps the photo (not checked)."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise PhotoError(f"background photo {photo.name!r}: the package {photo.package!r} is not installed; "
                         f"run {INSTALL}, or set synth.photos to 0")
    return Path(next(iter(spec.submodule_search_locations))) / photo.member


@functools.cache
def read_photo(photo: Photo) -> np.ndarray:
    """`photo` read from its package as (H, W, 3) uint8 RGB (read-only; read once per process);
    PhotoError names the file when it is missing or its sha256 is not the recorded one."""
    path = photo_path(photo)
    if not path.is_file():
        raise PhotoError(f"background photo {photo.name!r}: {path} is missing from {photo.package!r}; "
                         f"run {INSTALL}, or set synth.photos to 0")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != photo.sha256:
        raise PhotoError(f"background photo {path}: sha256 {digest}, not the recorded {photo.sha256} "
                         f"(another version of {photo.package}?); reinstall with {INSTALL}, or set "
                         "synth.photos to 0")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PhotoError(f"background photo {path}: could not be decoded")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    image.setflags(write=False)
    return image


def photo_background(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, dict]:
    """A background cut from a photo of `PHOTOS`: ((H, W, 3) float32 RGB in [0, 1], what was drawn:
    photo name, crop box (x, y, side) in its pixels, mirrored, per-channel gain)."""
    photo = PHOTOS[int(rng.integers(len(PHOTOS)))]
    image = read_photo(photo)
    rows, cols = image.shape[:2]
    side = int(min(rows, cols) * rng.uniform(0.45, 1.0))
    y0, x0 = int(rng.integers(0, rows - side + 1)), int(rng.integers(0, cols - side + 1))
    crop = image[y0 : y0 + side, x0 : x0 + side]
    mirrored = bool(rng.random() < 0.5)
    if mirrored:
        crop = crop[:, ::-1]
    gain = rng.uniform(0.8, 1.15, size=3).astype(np.float32)
    shrink = side > min(height, width)  # area averaging when shrinking (no aliasing), else bicubic
    resized = cv2.resize(np.ascontiguousarray(crop), (width, height),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    out = np.clip(resized.astype(np.float32) / 255.0 * gain, 0.0, 1.0)
    drawn = {"photo": photo.name, "box": [x0, y0, side], "mirrored": mirrored,
             "gain": [round(float(g), 6) for g in gain]}
    return np.ascontiguousarray(out, dtype=np.float32), drawn
