"""Pose errors of `lwgan.body.pose_metrics` against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lwgan.body.cameras import axis_angle_to_matrix
from lwgan.body.pose_metrics import (
    LSP14_HIPS,
    LSP14_NAMES,
    lsp14,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    reprojection_error,
)


def _points(n: int = 6, j: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, j, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _numpy_pa(pred: np.ndarray, gt: np.ndarray) -> float:
    """Procrustes (Umeyama) for one sample with numpy's SVD, the textbook way."""
    mu_x, mu_y = pred.mean(0), gt.mean(0)
    x, y = pred - mu_x, gt - mu_y
    u, s, vt = np.linalg.svd(y.T @ x)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.diag([1.0, 1.0, d])
    rotation = u @ fix @ vt
    scale = np.trace(np.diag(s) @ fix) / (x**2).sum()
    aligned = scale * x @ rotation.T + mu_y
    return float(np.linalg.norm(aligned - gt, axis=1).mean())


def test_mpjpe_is_zero_for_the_same_joints_and_ignores_a_root_offset():
    gt = _points()
    assert float(mpjpe(gt, gt).max()) == 0.0
    shifted = gt + torch.tensor([1.0, -2.0, 3.0], dtype=gt.dtype)
    torch.testing.assert_close(mpjpe(shifted, gt), torch.zeros(6, dtype=gt.dtype))
    moved = gt.clone()
    moved[:, 5] += torch.tensor([0.0, 0.0, 0.24], dtype=gt.dtype)  # one joint off by 24 cm
    torch.testing.assert_close(mpjpe(moved, gt), torch.full((6,), 0.01, dtype=gt.dtype))


def test_mpjpe_with_the_hip_centre_as_root():
    gt = _points(j=14)
    moved = gt.clone()
    moved[:, LSP14_HIPS[0]] += torch.tensor([0.2, 0.0, 0.0], dtype=gt.dtype)  # moves the hip centre by 0.1
    expected = (13 * 0.1 + 0.1) / 14  # every other joint off by 0.1 after rooting, the moved hip by 0.1
    torch.testing.assert_close(mpjpe(moved, gt, root=LSP14_HIPS), torch.full((6,), expected, dtype=gt.dtype))


def test_pa_mpjpe_removes_a_similarity_transform():
    gt = _points()
    rotation = axis_angle_to_matrix(torch.tensor([[0.3, -1.2, 2.0]], dtype=gt.dtype))[0]
    pred = 1.7 * gt @ rotation.T + torch.tensor([0.5, 2.0, -1.0], dtype=gt.dtype)
    torch.testing.assert_close(pa_mpjpe(pred, gt), torch.zeros(6, dtype=gt.dtype), atol=1e-10, rtol=0.0)
    torch.testing.assert_close(procrustes_align(pred, gt), gt, atol=1e-10, rtol=0.0)


def test_pa_mpjpe_matches_a_direct_svd_implementation():
    gt, pred = _points(seed=1), _points(seed=2)
    expected = [_numpy_pa(p, g) for p, g in zip(pred.numpy(), gt.numpy(), strict=True)]
    np.testing.assert_allclose(pa_mpjpe(pred, gt).numpy(), expected, rtol=1e-10)
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0], dtype=gt.dtype)  # no reflection is allowed
    errors = pa_mpjpe(mirrored, gt)
    assert float(errors.min()) > 0.1
    direct = [_numpy_pa(p, g) for p, g in zip(mirrored.numpy(), gt.numpy(), strict=True)]
    np.testing.assert_allclose(errors.numpy(), direct, rtol=1e-10)


def test_pa_mpjpe_keeps_float32_and_is_no_larger_than_mpjpe():
    gt, pred = _points(seed=3).float(), _points(seed=4).float()
    error = pa_mpjpe(pred, gt)
    assert error.dtype == torch.float32 and error.shape == (6,)
    assert bool((error <= mpjpe(pred, gt) + 1e-6).all())


def test_lsp14_picks_named_joints():
    joints = torch.arange(24, dtype=torch.float32)[None, :, None].expand(2, 24, 3)
    picked = lsp14(joints)
    assert picked.shape == (2, 14, 3) and len(LSP14_NAMES) == 14
    assert picked[0, LSP14_NAMES.index("neck"), 0] == 12 and picked[0, LSP14_NAMES.index("head"), 0] == 15
    with pytest.raises(ValueError, match="SMPL-tree"):
        lsp14(joints[:, :14])


def test_reprojection_error_over_confident_keypoints():
    target = torch.zeros(2, 3, 2)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 1.0], [10.0, 0.0]], [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])
    torch.testing.assert_close(reprojection_error(pred, target), torch.tensor([16.0 / 3.0, 1.0]))
    confidence = torch.tensor([[1.0, 0.9, 0.05], [0.0, 0.0, 0.0]])
    error = reprojection_error(pred, target, confidence, threshold=0.1)
    assert float(error[0]) == pytest.approx(3.0) and math.isnan(float(error[1]))
    with pytest.raises(ValueError, match="confidence"):
        reprojection_error(pred, target, confidence[:, :2])
    with pytest.raises(ValueError, match=r"\(N, J, 2\)"):
        reprojection_error(pred, target[:, :2])
