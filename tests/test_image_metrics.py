"""Image and distribution metrics against slow, obviously-correct computations and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from lwgan.metrics.distribution import feature_statistics, frechet_distance, inception_score
from lwgan.metrics.image import K1, K2, WINDOW, gaussian_window, masked_l1, psnr, ssim


def slow_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Window by window in [0, 1] units: x, y (C, H, W)."""
    w = gaussian_window().numpy()
    n = WINDOW * WINDOW
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - WINDOW + 1):
            for j in range(x.shape[2] - WINDOW + 1):
                a, b = x[c, i : i + WINDOW, j : j + WINDOW], y[c, i : i + WINDOW, j : j + WINDOW]
                ma, mb = (w * a).sum(), (w * b).sum()
                va = (w * (a - ma) ** 2).sum() * n / (n - 1)
                vb = (w * (b - mb) ** 2).sum() * n / (n - 1)
                cov = (w * (a - ma) * (b - mb)).sum() * n / (n - 1)
                values.append(((2 * ma * mb + K1**2) * (2 * cov + K2**2))
                              / ((ma**2 + mb**2 + K1**2) * (va + vb + K2**2)))
    return float(np.mean(values))


def test_ssim_matches_a_window_by_window_computation():
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(2, 3, 16, 18, generator=gen) * 2 - 1
    fake = (real + 0.3 * torch.randn(2, 3, 16, 18, generator=gen)).clamp(-1, 1)
    got = ssim(fake, real)
    for b in range(2):
        want = slow_ssim(((fake[b].double() + 1) / 2).numpy(), ((real[b].double() + 1) / 2).numpy())
        assert got[b].item() == pytest.approx(want, abs=1e-10)
    assert torch.allclose(ssim(real, real), torch.ones(2, dtype=torch.float64))
    assert (got < 0.95).all()  # noise lowers it
    with pytest.raises(ValueError, match="11 x 11"):
        ssim(real[..., :8, :8], real[..., :8, :8])


def test_psnr_and_masked_l1_of_known_errors():
    real = torch.zeros(1, 3, 4, 4)
    fake = real + 0.2  # 0.1 in [0, 1] units everywhere
    assert psnr(fake, real).item() == pytest.approx(20.0)
    assert math.isinf(psnr(real, real).item())
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    fake = real.clone()
    fake[..., :2, :] = 1.0  # 0.5 in [0, 1] units on the masked half, exact elsewhere
    assert masked_l1(fake, real, mask).item() == pytest.approx(0.5)
    assert masked_l1(fake, real, 1 - mask).item() == pytest.approx(0.0)


def test_frechet_distance_against_scipy_sqrtm_and_a_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 0.5
    (m1, s1), (m2, s2) = feature_statistics(a), feature_statistics(b)
    reference = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * np.real(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(reference, rel=1e-8)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])  # diagonal: sum (sqrt a - sqrt b)^2
    closed = 1.0 + 1.0 + 0.0 + 3 * 0.25
    assert frechet_distance(np.zeros(3), np.diag(d1), np.full(3, 0.5), np.diag(d2)) == pytest.approx(closed)
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(m1, s1, m2[:3], s2)


def test_inception_score_bounds():
    k = 5
    uniform = np.full((50, k), 1.0 / k)
    assert inception_score(uniform, splits=5)[0] == pytest.approx(1.0)
    confident = np.eye(k)[np.arange(50) % k]  # every class equally often, each image certain
    mean, std = inception_score(confident, splits=5)
    assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
