"""Losses on the attention maps A (1 = take the background stream's pixel).

    L_mask   = BCE(A, erode(rendered background, 3 px))          (the original, lambda_mask 1)
    L_smooth = mean |A[..., :, 1:] - A[..., :, :-1]| + mean |A[..., 1:, :] - A[..., :-1, :]|
               (anisotropic total variation, lambda_smooth 1)

The original applies both to the source and the target attention maps, concatenated along the batch.
BCE is computed in float32 with log clamped at -100, as `torch.nn.functional.binary_cross_entropy` does
(which refuses to run under CUDA autocast).
"""

from __future__ import annotations

import torch

from lwgan.losses.terms import LossTerm, detached, wide
from lwgan.nets.masks import FOREGROUND_ERODE, background

LOG_FLOOR = -100.0


def attention_target(cond: torch.Tensor, size: int = FOREGROUND_ERODE) -> torch.Tensor:
    """The attention target: the rendered background of cond (B, 4, H, W) eroded by `size` px,
    (B, 1, H, W) in {0, 1}."""
    return background(cond, size)


def attention_loss(attention: torch.Tensor, target: torch.Tensor) -> LossTerm:
    """Mean binary cross-entropy of attention (B, 1, H, W) in [0, 1] against target (B, 1, H, W) in
    [0, 1]. Stats: mask (the BCE), attention (mean A)."""
    a, t = wide(attention), wide(target)
    log_a = torch.log(a).clamp(min=LOG_FLOOR)
    log_not_a = torch.log1p(-a).clamp(min=LOG_FLOOR)
    loss = -(t * log_a + (1.0 - t) * log_not_a).mean()
    return LossTerm(loss, detached(mask=loss, attention=a.mean()))


def total_variation(attention: torch.Tensor) -> LossTerm:
    """Anisotropic TV of (B, 1, H, W): mean horizontal + mean vertical absolute difference. Stats: smooth."""
    a = wide(attention)
    loss = (a[..., :, 1:] - a[..., :, :-1]).abs().mean() + (a[..., 1:, :] - a[..., :-1, :]).abs().mean()
    return LossTerm(loss, detached(smooth=loss))
