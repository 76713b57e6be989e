"""Pull-push hole filling against closed forms and OpenCV's Telea inpainting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lwgan.nets.inpaint import pull_push


def holes(shape: tuple[int, int], seed: int, share: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 1, *shape, generator=gen) > share).float()


@pytest.mark.parametrize("shape", [(64, 64), (17, 23), (1, 9)])
def test_known_pixels_are_kept_and_a_constant_image_stays_constant(shape):
    known = holes(shape, 0, 0.7)
    known[..., 0, 0] = 1.0
    image = torch.full((1, 3, *shape), 0.3)
    image[:, 1] = -0.6
    filled = pull_push(image * known, known)
    assert torch.allclose(filled, image, atol=1e-6)
    noise = torch.rand(1, 3, *shape) * 2 - 1
    out = pull_push(noise, known)
    assert torch.equal(out[known.expand_as(out) > 0], noise[known.expand_as(noise) > 0])


def test_filled_values_are_convex_combinations_of_known_ones():
    known = holes((48, 40), 1, 0.8)
    image = torch.rand(2, 3, 48, 40) * 2 - 1
    known = known.expand(2, -1, -1, -1)
    out = pull_push(image, known)
    for b in range(2):
        for c in range(3):
            seen = image[b, c][known[b, 0] > 0]
            assert out[b, c].min() >= seen.min() - 1e-6 and out[b, c].max() <= seen.max() + 1e-6


def test_a_smooth_image_is_filled_about_as_well_as_opencv_telea():
    y, x = np.mgrid[0:64, 0:64] / 63.0
    truth = np.stack([np.sin(2 * x + y), x * y, np.cos(3 * y) * 0.5], axis=0).astype(np.float32)  # (3, H, W)
    hole = np.zeros((64, 64), np.uint8)
    hole[20:36, 24:44] = 1  # a body-sized hole
    known = torch.from_numpy(1.0 - hole.astype(np.float32))[None, None]
    ours = pull_push(torch.from_numpy(truth)[None] * known, known)[0].numpy()
    image8 = np.round((truth.transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)
    telea = cv2.inpaint(image8, hole, 3, cv2.INPAINT_TELEA).astype(np.float32).transpose(2, 0, 1) / 127.5 - 1
    err_ours = np.abs(ours - truth)[:, hole > 0].mean()
    err_telea = np.abs(telea - truth)[:, hole > 0].mean()
    assert err_ours < 0.1 and err_ours < 2.0 * err_telea


def test_nothing_known_gives_zeros_and_bad_masks_are_refused():
    assert torch.equal(pull_push(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="known must be"):
        pull_push(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
