"""Gradient penalty on the discriminator (Gulrajani et al. 2017, "WGAN-GP"), for the conditional D.

    x_hat = alpha * x_real + (1 - alpha) * x_fake,     alpha ~ U[0, 1] per sample
    GP    = weight * mean_b (|| d D(x_hat, C) / d x_hat ||_2 - 1)^2

Two-sided (norms below 1 are penalised as well). The norm is taken per sample over all of the image's
elements and over the sum of the sample's patch scores; the condition C is the same for the real and the
fake image, so it is not interpolated and not differentiated. The gradient is built with
``create_graph=True`` so that the penalty back-propagates into D's parameters. weight = 0 disables it
and skips the extra D pass entirely. Computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lwgan.losses.terms import LossTerm, detached, wide

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None = None,
                alpha: torch.Tensor | None = None) -> torch.Tensor:
    """x_hat = alpha * real + (1 - alpha) * fake with alpha ~ U[0, 1] per sample, detached from both and
    requiring grad: (B, 3, H, W) each -> (B, 3, H, W). alpha: (B,) weights to use, else drawn with
    `generator` (an optional RNG on real's device)."""
    if alpha is None:
        alpha = torch.rand(real.shape[0], generator=generator, device=real.device)
    alpha = alpha.to(real.device, real.dtype).reshape(-1, 1, 1, 1)  # (B, 1, 1, 1)
    return (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)


def penalty_from_scores(scores: torch.Tensor, mixed: torch.Tensor, weight: float) -> LossTerm:
    """weight * GP for scores (B, 1, h, w) that D gave `mixed` (B, 3, H, W) in the current graph.

    This form lets the training loop score reals, fakes and interpolates in one D pass (one forward and
    one backward per D step, as DistributedDataParallel wants). Stats: gp (unweighted), grad_norm (mean).
    """
    (grad,) = torch.autograd.grad(wide(scores).sum(), mixed, create_graph=True)
    # sqrt(|g|^2 + eps): the gradient of a plain norm is NaN where D's input gradient is exactly zero
    norm = (wide(grad).flatten(1).square().sum(dim=1) + 1e-12).sqrt()  # (B,)
    penalty = (norm - 1.0).square().mean()
    return LossTerm(weight * penalty, detached(gp=penalty, grad_norm=norm.mean()))


def gradient_penalty(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    cond: torch.Tensor,
    weight: float,
    generator: torch.Generator | None = None,
) -> LossTerm:
    """weight * GP for `critic(image, cond) -> scores (B, 1, h, w)`.

    real, fake: (B, 3, H, W) images (fake is detached here). cond: (B, 4, H, W).
    generator: optional RNG for alpha (on real's device). Stats: gp (unweighted), grad_norm (mean).
    With weight == 0 the value is a zero scalar and stats are empty.
    """
    if weight < 0:
        raise ValueError(f"gradient penalty weight must be >= 0, got {weight}")
    if weight == 0:
        return LossTerm(real.new_zeros((), dtype=torch.float32), {})
    mixed = interpolate(real, fake, generator)  # (B, 3, H, W)
    return penalty_from_scores(critic(mixed, cond), mixed, weight)
