"""Kernel Inception Distance against an element-by-element computation of the unbiased MMD^2."""

from __future__ import annotations

import numpy as np
import pytest

from lwgan.metrics.distribution import kernel_inception_distance


def slow_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a . b / D + 1)^3, pair by pair: x, y (m, D)."""
    m, d = x.shape

    def k(a, b):
        return (sum(float(a[t]) * float(b[t]) for t in range(d)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2.0 * xy


def test_kid_matches_the_pairwise_formula():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(9, 5)) * 1.3 + 0.4
    # Subsets of every row of x: each is a permutation of x, and MMD^2 does not depend on the order.
    mean, std = kernel_inception_distance(x, y[:7], subsets=4, subset_size=50)
    assert mean == pytest.approx(slow_mmd2(x, y[:7]), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # m = min(subset_size, N, M) = 7 rows of y's 9, a different subset each time: the mean of the
    # pairwise formula over the same draws (default_rng(seed), x's rows then y's, per subset).
    draws = np.random.default_rng(3)
    values = []
    for _ in range(5):
        a, b = x[draws.choice(7, 7, replace=False)], y[draws.choice(9, 7, replace=False)]
        values.append(slow_mmd2(a, b))
    mean, std = kernel_inception_distance(x, y, subsets=5, subset_size=100, seed=3)
    assert (mean, std) == pytest.approx((np.mean(values), np.std(values)), rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    d = 16
    real = rng.normal(size=(600, d))
    same = rng.normal(size=(600, d))
    kid_same, std_same = kernel_inception_distance(real, same, subsets=20, subset_size=200)
    shifted = [kernel_inception_distance(real, same + shift, subsets=20, subset_size=200)[0]
               for shift in (0.25, 0.5, 1.0)]
    assert abs(kid_same) < 3 * std_same + 1e-3
    assert abs(kid_same) < 0.05 * shifted[0]
    assert shifted[0] < shifted[1] < shifted[2]
    # The very same set: the unbiased estimate is slightly negative, -O(1/m) of the kernel's scale.
    ident, _ = kernel_inception_distance(real, real, subsets=5, subset_size=200)
    assert -0.1 < ident < 0.0 and abs(ident) < 0.2 * shifted[0]


def test_kid_refuses_mismatched_or_tiny_inputs():
    with pytest.raises(ValueError, match="shapes"):
        kernel_inception_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="at least 2 rows"):
        kernel_inception_distance(np.zeros((1, 3)), np.zeros((5, 3)))
