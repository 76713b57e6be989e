"""Distribution metrics of cross-imitation from network features: Fréchet distance (FID's arithmetic),
the Inception Score's arithmetic and the Kernel Inception Distance. The feature networks are elsewhere;
these take their outputs.

    FID = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
    IS  = exp(E_x KL(p(y|x) || p(y))), averaged over `splits` equal parts as Salimans et al.
    KID = unbiased MMD^2 with the kernel (x . y / D + 1)^3, averaged over random subsets (Bińkowski et al.)

tr((S_1 S_2)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the symmetric
positive semi-definite S_1^(1/2) S_2 S_1^(1/2) (similar to S_1 S_2), in float64: no complex parts to
discard, unlike a general matrix square root.
"""

from __future__ import annotations

import numpy as np


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and sample covariance (D, D), float64."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"expected (N, D) features with N >= 2, got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"statistics do not match: means {mu1.shape} / {mu2.shape}, covariances "
                         f"{s1.shape} / {s2.shape}")
    root = _psd_sqrt(s1)
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    trace_sqrt = np.sqrt(np.clip(inner, 0.0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * trace_sqrt)


def inception_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `splits` parts of class probabilities (N, K)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(p) < splits:
        raise ValueError(f"expected (N, K) probabilities with N >= splits ({splits}), got shape {p.shape}")
    scores = []
    for part in np.array_split(p, splits):
        marginal = part.mean(axis=0, keepdims=True)  # (1, K)
        kl = np.sum(part * (np.log(np.clip(part, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None))),
                    axis=1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def kernel_inception_distance(real_feats: np.ndarray, fake_feats: np.ndarray, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """(mean, std) of the Kernel Inception Distance (Bińkowski et al. 2018) between features (N, D), (M, D).

    The unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x . y / D + 1)^3 on `subsets` pairs of
    random subsets of m = min(subset_size, N, M) rows each (drawn without replacement, from
    numpy's default_rng(seed)):

        MMD^2_u = sum_{i != j} (k(x_i, x_j) + k(y_i, y_j)) / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

    Unbiased, so near zero (and possibly negative) for samples of one distribution. float64 throughout.
    """
    x, y = np.asarray(real_feats, dtype=np.float64), np.asarray(fake_feats, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"expected features (N, D) and (M, D), got shapes {x.shape} and {y.shape}")
    m = min(subset_size, len(x), len(y))
    if m < 2 or subsets < 1:
        raise ValueError(f"KID needs subsets >= 1 of at least 2 rows, got subsets={subsets} of {m} rows "
                         f"(N={len(x)}, M={len(y)}, subset_size={subset_size})")
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for s in range(subsets):
        a = x[rng.choice(len(x), m, replace=False)]  # (m, D)
        b = y[rng.choice(len(y), m, replace=False)]  # (m, D)
        k_aa, k_bb, k_ab = ((a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3)  # (m, m)
        within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
        values[s] = within - 2.0 * k_ab.mean()
    return float(values.mean()), float(values.std())
