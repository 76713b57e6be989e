"""Person boxes, the square crop rule and the padded crop, against slow obviously-correct references."""

from __future__ import annotations

import numpy as np
import pytest
from _toy import ToyVideo

from lwgan.data.crop import (
    CropBox,
    PersonBox,
    apply_crop,
    box_from_masks,
    box_from_motion,
    centre_box,
    square_crop,
)
from lwgan.data.video import Frame, FramePlan


def reference_crop(image: np.ndarray, crop: CropBox, pad: str) -> np.ndarray:
    """Pixel-by-pixel crop: outside pixels take the nearest border pixel ("edge") or black."""
    h, w = image.shape[:2]
    out = np.zeros((crop.side, crop.side, 3), image.dtype)
    for r in range(crop.side):
        for c in range(crop.side):
            y, x = crop.y0 + r, crop.x0 + c
            if 0 <= y < h and 0 <= x < w:
                out[r, c] = image[y, x]
            elif pad == "edge":
                out[r, c] = image[min(max(y, 0), h - 1), min(max(x, 0), w - 1)]
    return out


@pytest.mark.parametrize("pad", ["edge", "constant"])
@pytest.mark.parametrize("crop", [CropBox(5, 3, 10), CropBox(-4, -2, 12), CropBox(10, 8, 9),
                                  CropBox(-3, -3, 20)])
def test_apply_crop_matches_reference(crop, pad):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (14, 17, 3), dtype=np.uint8)
    got = apply_crop(image, crop, crop.side, pad)  # no resize: exact
    np.testing.assert_array_equal(got, reference_crop(image, crop, pad))


def test_apply_crop_resizes_to_size():
    image = np.full((40, 30, 3), 7, np.uint8)
    out = apply_crop(image, CropBox(0, 0, 30), 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8 and (out == 7).all()


@pytest.mark.parametrize(("box", "hw"), [
    (PersonBox(10, 20, 30, 80, "mask"), (100, 60)),   # tall person, portrait frame
    (PersonBox(0, 0, 15, 40, "mask"), (100, 60)),     # at the top-left corner
    (PersonBox(40, 50, 60, 100, "mask"), (100, 60)),  # at the bottom-right corner
    (PersonBox(5, 5, 95, 55, "mask"), (60, 100)),     # nearly the whole landscape frame
    (PersonBox(48, 10, 52, 20, "mask"), (60, 100)),   # small
])
@pytest.mark.parametrize("margin", [0.0, 0.15, 0.5])
def test_square_crop_contains_box_and_limits_padding(box, hw, margin):
    h, w = hw
    crop = square_crop(box, h, w, margin)
    assert crop.x0 <= box.x0 + 0.5 and crop.x0 + crop.side >= box.x1 - 0.5
    assert crop.y0 <= box.y0 + 0.5 and crop.y0 + crop.side >= box.y1 - 0.5
    assert crop.side <= max(h, w)
    longer = max(box.x1 - box.x0, box.y1 - box.y0)
    assert crop.side == round(min(longer * (1 + 2 * margin), max(h, w)))
    for start, extent in ((crop.x0, w), (crop.y0, h)):
        if crop.side <= extent:  # the frame has room: no padding on this axis
            assert 0 <= start <= extent - crop.side


def test_square_crop_is_centred_on_the_person_when_there_is_room():
    crop = square_crop(PersonBox(40, 40, 60, 80, "mask"), 200, 200, 0.25)
    assert crop == CropBox(20, 30, 60)  # centre (50, 60), side 40 * 1.5


def test_centre_box_is_the_largest_centred_square():
    box = centre_box(90, 160)
    assert (box.x0, box.y0, box.x1, box.y1, box.method) == (35, 0, 125, 90, "centre")


def test_box_from_masks_is_the_union(tmp_path):
    import cv2

    for t, (x0, y0) in enumerate([(3, 4), (10, 2)]):
        mask = np.zeros((20, 30), np.uint8)
        mask[y0:y0 + 5, x0:x0 + 4] = 255
        cv2.imwrite(str(tmp_path / f"{t:04d}.png"), mask)
    box = box_from_masks(sorted(tmp_path.glob("*.png")), 40, 60)  # masks at half resolution
    assert (box.x0, box.y0, box.x1, box.y1) == (6, 4, 28, 18)


def test_box_from_motion_finds_the_moving_blob():
    video = ToyVideo(frames=12, height=96, width=128, blob_size=(0.12, 0.45), travel=(0.2, 0.8))
    samples = [Frame(t, None, image) for t, (image, _) in enumerate(video.render())]  # type: ignore[arg-type]
    box = box_from_motion(samples, video.height, video.width)
    assert box is not None and box.method == "motion"
    ux0, uy0, ux1, uy1 = video.union_box()
    # within a couple of pixels of the true union box (percentile combination trims the extremes a bit)
    np.testing.assert_allclose([box.x0, box.y0, box.x1, box.y1], [ux0, uy0, ux1, uy1], atol=3)


def test_box_from_motion_gives_up_on_a_static_video():
    image = ToyVideo().background()
    assert box_from_motion([Frame(t, None, image) for t in range(6)], 96, 64) is None  # type: ignore


def test_frame_plan():
    plan = FramePlan(step=3, max_frames=2)
    assert [n for n in range(20) if plan.keeps(n)] == [0, 3]
    assert plan.past_end(6) and not plan.past_end(5)
    assert plan.count(20) == 2 and FramePlan(3).count(20) == 7 and FramePlan().count(0) == 0
