"""Least-squares adversarial losses as the original LWGAN codes them, with one-sided label smoothing.

The original (Mao et al.'s LSGAN with the labels a = -1 for fakes, b = +1 for reals, c = 0 as the
generator's target, the Pearson-chi^2 setting) minimises, on raw patch scores D(.) (no sigmoid):

    L_D = mean((D(x_real, C_t) - s * b)^2) + mean((D(G(.), C_t) - a)^2)
    L_G = mean((D(G(.), C_t) - c)^2)

where the means run over the batch and every patch, and s = `real_target` in (0, 1] is one-sided label
smoothing: only the real label is scaled (s = 0.9 makes the real target 0.9), fakes keep a. s = 1 is the
original. The textbook LSGAN (a, b, c) = (0, 1, 1) is `LSGANLabels(real=1, fake=0, generator=1)`.
Scores are compared in float32 (safe under autocast).
"""

from __future__ import annotations

import dataclasses

import torch

from lwgan.losses.terms import LossTerm, detached, wide


@dataclasses.dataclass(frozen=True)
class LSGANLabels:
    """Targets of the least-squares losses: `real` (b) and `fake` (a) for D, `generator` (c) for G."""

    real: float = 1.0
    fake: float = -1.0
    generator: float = 0.0


ORIGINAL_LABELS = LSGANLabels()


def discriminator_loss(
    real_scores: torch.Tensor,
    fake_scores: torch.Tensor,
    labels: LSGANLabels = ORIGINAL_LABELS,
    real_target: float = 1.0,
) -> LossTerm:
    """L_D for raw scores (B, 1, h, w) of real and (detached) fake inputs; see the module docstring.

    Stats: d_real / d_fake (mean scores), loss_d_real / loss_d_fake (the two squared-error terms).
    """
    if not 0.0 < real_target <= 1.0:
        raise ValueError(f"real_target (one-sided label smoothing) must be in (0, 1], got {real_target}")
    loss_real = (wide(real_scores) - real_target * labels.real).square().mean()
    loss_fake = (wide(fake_scores) - labels.fake).square().mean()
    stats = detached(d_real=wide(real_scores).mean(), d_fake=wide(fake_scores).mean(),
                     loss_d_real=loss_real, loss_d_fake=loss_fake)
    return LossTerm(loss_real + loss_fake, stats)


def generator_loss(fake_scores: torch.Tensor, labels: LSGANLabels = ORIGINAL_LABELS) -> LossTerm:
    """L_G = mean((D(fake) - labels.generator)^2) for raw scores (B, 1, h, w). Stats: g_adv, d_fake_g."""
    loss = (wide(fake_scores) - labels.generator).square().mean()
    return LossTerm(loss, detached(g_adv=loss, d_fake_g=wide(fake_scores).mean()))
