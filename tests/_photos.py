"""Real photos of people for the tests of several --source photos: scikit-image's astronaut, her mirror
image, her photo on a wider canvas, and her photo with Grace Hopper's head (matplotlib's sample portrait)
set on her suit by the eyes, read off both photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

ASTRONAUT_FACE = (70, 155, 140)  # (top, left, side): hairline to below the chin, read off the photo
# the eyes' centres read off the photos (x, y): the astronaut's at 512 x 512, Hopper's at 512 x 600
ASTRONAUT_EYES = ((200.0, 101.0), (245.0, 101.0))
HOPPER_EYES = ((220.0, 190.0), (306.0, 190.0))


def hopper_on_the_suit(astronaut: np.ndarray, hopper: np.ndarray) -> np.ndarray:
    """The astronaut photo with Hopper's head (face, hair and cap) in place of hers: Hopper's photo scaled
    and moved so that her eyes fall on the astronaut's, blended in over an ellipse around the head that
    stops above the suit's neck ring."""
    (ax0, ay0), (ax1, ay1) = ASTRONAUT_EYES
    (hx0, hy0), (hx1, hy1) = HOPPER_EYES
    scale = (ax1 - ax0) / (hx1 - hx0)
    shift = ((ax0 + ax1) / 2 - scale * (hx0 + hx1) / 2, (ay0 + ay1) / 2 - scale * (hy0 + hy1) / 2)
    matrix = np.array([[scale, 0.0, shift[0]], [0.0, scale, shift[1]]])
    height, width = astronaut.shape[:2]
    moved = cv2.warpAffine(hopper, matrix, (width, height), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE)
    rows, cols = np.mgrid[0:height, 0:width]
    weight = np.clip(4.0 * (1.0 - np.hypot((cols - (ax0 + ax1) / 2) / 80.0, (rows - 105.0) / 90.0)), 0, 1)
    weight = np.minimum(weight, np.clip((185.0 - rows) / 10.0, 0, 1))[..., None]  # the neck ring kept
    return np.rint(weight * moved + (1.0 - weight) * astronaut).astype(np.uint8)


def write_photos(root: Path) -> dict[str, Path]:
    """The four photos as PNG files in `root`: astronaut, mirror, wider, hopper."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the astronaut")
    cbook = pytest.importorskip("matplotlib.cbook", reason="matplotlib provides Grace Hopper's portrait")
    astronaut = skimage_data.astronaut()
    hopper = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))[..., ::-1]
    images = {"astronaut": astronaut, "mirror": astronaut[:, ::-1],
              "wider": cv2.copyMakeBorder(astronaut, 40, 0, 0, 90, cv2.BORDER_REFLECT),
              "hopper": hopper_on_the_suit(astronaut, hopper)}
    paths = {}
    for name, image in images.items():
        paths[name] = root / f"{name}.png"
        cv2.imwrite(str(paths[name]), np.ascontiguousarray(image[..., ::-1]))
    return paths
