"""Losses on the attention maps A (1 = take the background stream's pixel).

    L_mask   = BCE(A, erode(rendered background, 3 px))          (the original, lambda_mask 1)
    L_smooth = mean |A[..., :, 1:] - A[..., :, :-1]| + mean |A[..., 1:, :] - A[..., :-1, :]|
               (anisotropic total variation, lambda_smooth 1)

The original applies both to the source and the target attention maps, concatenated along the batch.
BCE is computed by hand because `torch.nn.functional.binary_cross_entropy` refuses to run under CUDA
autocast. Its value is torch's (logs clamped at -100, in float64), and its gradient is finite everywhere: a
sigmoid that saturates to exactly 0 or 1 takes the constant branch of a `where` whose other branch never
sees the singular input, where a log clamped after the fact would back-propagate 0 * inf = NaN into G.
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
    a, t = attention.double(), target.double()
    zero, one = a <= 0.0, a >= 1.0
    log_a = torch.where(zero, LOG_FLOOR, torch.log(torch.where(zero, 1.0, a)).clamp(min=LOG_FLOOR))
    log_not_a = torch.where(one, LOG_FLOOR, torch.log1p(-torch.where(one, 0.0, a)).clamp(min=LOG_FLOOR))
    loss = -(t * log_a + (1.0 - t) * log_not_a).mean().float()
    return LossTerm(loss, detached(mask=loss, attention=wide(attention).mean()))


def total_variation(attention: torch.Tensor) -> LossTerm:
    """Anisotropic TV of (B, 1, H, W): mean horizontal + mean vertical absolute difference. Stats: smooth."""
    a = wide(attention)
    loss = (a[..., :, 1:] - a[..., :, :-1]).abs().mean() + (a[..., 1:, :] - a[..., :-1, :]).abs().mean()
    return LossTerm(loss, detached(smooth=loss))
