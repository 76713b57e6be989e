"""Pull-push and harmonic hole filling against closed forms, an exact Laplace solve in numpy and OpenCV's
Telea inpainting."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lwgan.nets.inpaint import fill, pull_push


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


def test_a_smooth_image_is_filled_about_as_well_as_opencv_telea_and_better_by_the_harmonic_fill():
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
    harmonic = fill(torch.from_numpy(truth)[None] * known, known, "harmonic")[0].numpy()
    assert np.abs(harmonic - truth)[:, hole > 0].mean() < 0.5 * err_telea  # measured: 0.009 against 0.030


def test_nothing_known_gives_zeros_and_bad_masks_are_refused():
    assert torch.equal(pull_push(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="known must be"):
        pull_push(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8))


def laplace_solution(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The discrete harmonic interpolant: every unknown pixel the mean of its four neighbours (the image
    border replicated), the known pixels fixed; solved exactly as one linear system."""
    height, width = known.shape
    hole = np.argwhere(~known)
    index = -np.ones((height, width), int)
    index[~known] = np.arange(len(hole))
    a = np.zeros((len(hole), len(hole)))
    b = np.zeros((len(hole), image.shape[0]))
    for k, (y, x) in enumerate(hole):
        a[k, k] = 4.0
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            yy, xx = min(max(y + dy, 0), height - 1), min(max(x + dx, 0), width - 1)
            if known[yy, xx]:
                b[k] += image[:, yy, xx]
            else:
                a[k, index[yy, xx]] -= 1.0
    out = image.copy()
    out[:, ~known] = np.linalg.solve(a, b).T
    return out


def test_the_harmonic_fill_approaches_the_exact_laplace_solution_and_keeps_known_pixels():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1, 1, (3, 32, 32))
    known = np.ones((32, 32), bool)
    known[8:26, 10:22] = False  # a body-sized hole, away from the border
    exact = laplace_solution(image, known)
    mask = torch.from_numpy(known.astype(np.float64))[None, None]
    harmonic = fill(torch.from_numpy(image)[None], mask, "harmonic")[0].numpy()
    plain = fill(torch.from_numpy(image)[None], mask, "pull_push")[0].numpy()
    err_harmonic = np.abs(harmonic - exact)[:, ~known].mean()
    err_plain = np.abs(plain - exact)[:, ~known].mean()
    assert err_harmonic < 0.3 * err_plain and err_harmonic < 0.03  # measured: 0.021 against 0.10
    assert np.array_equal(harmonic[:, known], image[:, known])


@pytest.mark.parametrize("size", [32, 64])
def test_the_harmonic_fill_fills_a_hole_in_a_linear_ramp_with_the_ramp(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    ramp = np.stack([0.02 * x - 0.5, 0.01 * y + 0.005 * x - 0.3, -0.015 * y + 0.2])  # harmonic: a plane
    known = np.ones((size, size), bool)
    known[size // 6: size - size // 6, size // 3: size - size // 3] = False
    mask = torch.from_numpy(known.astype(np.float64))[None, None]
    harmonic = fill(torch.from_numpy(ramp)[None], mask, "harmonic")[0].numpy()
    plain = pull_push(torch.from_numpy(ramp)[None], mask)[0].numpy()
    err_harmonic = np.abs(harmonic - ramp)[:, ~known].max()
    assert err_harmonic < 0.005 and err_harmonic < 0.25 * np.abs(plain - ramp)[:, ~known].max()


def test_fill_refuses_an_unknown_method():
    with pytest.raises(ValueError, match="telea"):
        fill(torch.rand(1, 3, 8, 8), torch.ones(1, 1, 8, 8), "telea")
