"""3D and 2D pose errors: MPJPE, Procrustes-aligned MPJPE, keypoint reprojection error.

Joint sets: the body model's J joints as they are, or `LSP14_FROM_SMPL` (the 14 joints of the LSP
benchmark: ankles, knees, hips, wrists, elbows, shoulders, neck and head) picked from SMPL's 24. Root
alignment subtracts the pelvis (joint 0 of SMPL's tree) or, for a joint set without a pelvis, the hip
centre. Inputs and outputs are in the units of the inputs (metres for lwgan's bodies).
"""

from __future__ import annotations

import torch

from lwgan.body.extras import SMPL_JOINT_NAMES

LSP14_NAMES: tuple[str, ...] = (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head",
)  # fmt: skip
LSP14_FROM_SMPL: tuple[int, ...] = tuple(SMPL_JOINT_NAMES.index(name) for name in LSP14_NAMES)
LSP14_HIPS: tuple[int, int] = (LSP14_NAMES.index("left_hip"), LSP14_NAMES.index("right_hip"))


def _check_pair(pred: torch.Tensor, gt: torch.Tensor, dims: int) -> None:
    if pred.shape != gt.shape or pred.dim() != 3 or pred.shape[-1] != dims:
        raise ValueError(
            f"pred and gt must both be (N, J, {dims}) tensors, got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )


def root_align(joints: torch.Tensor, root: int | tuple[int, ...] = 0) -> torch.Tensor:
    """(N, J, 3) -> the same minus the root joint (an index, or a tuple of indices averaged: hip centre)."""
    index = (root,) if isinstance(root, int) else tuple(root)
    return joints - joints[:, list(index)].mean(dim=1, keepdim=True)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, root: int | tuple[int, ...] = 0) -> torch.Tensor:
    """(N,) mean per-joint position error after root alignment of both. pred, gt: (N, J, 3)."""
    _check_pair(pred, gt, 3)
    return (root_align(pred, root) - root_align(gt, root)).norm(dim=-1).mean(dim=-1)


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N, J, 3) pred mapped by the similarity (scale, rotation, translation; no reflection) that
    minimises the squared distance to gt (N, J, 3), per sample (Umeyama). Computed in float64."""
    _check_pair(pred, gt, 3)
    x, y = pred.double(), gt.double()
    x_mean, y_mean = x.mean(dim=1, keepdim=True), y.mean(dim=1, keepdim=True)
    xc, yc = x - x_mean, y - y_mean  # (N, J, 3)
    cov = torch.einsum("nji,njk->nik", yc, xc)  # (N, 3, 3) sum_j y_j x_j^T
    u, sigma, vt = torch.linalg.svd(cov)
    sign = torch.sign(torch.linalg.det(u @ vt))  # (N,) -1 where the best orthogonal map reflects
    fix = torch.ones_like(sigma)
    fix[:, -1] = sign
    rotation = u @ torch.diag_embed(fix) @ vt  # (N, 3, 3)
    variance = xc.pow(2).sum(dim=(1, 2)).clamp_min(1e-30)
    scale = (sigma * fix).sum(dim=1) / variance  # (N,)
    aligned = scale[:, None, None] * torch.einsum("nik,njk->nji", rotation, xc) + y_mean
    return aligned.to(pred.dtype)


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(N,) mean per-joint position error after Procrustes similarity alignment of pred to gt."""
    return (procrustes_align(pred, gt) - gt).norm(dim=-1).mean(dim=-1)


def lsp14(joints: torch.Tensor) -> torch.Tensor:
    """(N, 24, 3) SMPL-tree joints -> (N, 14, 3) LSP joints (`LSP14_NAMES`; root them with `LSP14_HIPS`)."""
    if joints.dim() != 3 or joints.shape[1] != len(SMPL_JOINT_NAMES):
        raise ValueError(
            f"expected (N, {len(SMPL_JOINT_NAMES)}, 3) SMPL-tree joints, got {tuple(joints.shape)}"
        )
    return joints[:, list(LSP14_FROM_SMPL)]


def reprojection_error(
    pred: torch.Tensor, target: torch.Tensor, confidence: torch.Tensor | None = None, threshold: float = 0.0
) -> torch.Tensor:
    """(N,) mean 2D distance between pred (N, K, 2) and target (N, K, 2) keypoints (same units, e.g.
    pixels) over the keypoints with confidence (N, K) > threshold (all if None); NaN for a frame with
    none."""
    _check_pair(pred, target, 2)
    distance = (pred - target).norm(dim=-1)  # (N, K)
    if confidence is None:
        return distance.mean(dim=-1)
    if confidence.shape != distance.shape:
        raise ValueError(
            f"confidence must be (N, K) = {tuple(distance.shape)}, got {tuple(confidence.shape)}"
        )
    used = (confidence > threshold).to(distance.dtype)
    count = used.sum(dim=-1)
    error = (distance * used).sum(dim=-1) / count.clamp_min(1.0)
    return torch.where(count > 0, error, torch.full_like(error, float("nan")))
