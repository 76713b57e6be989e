"""Image losses: pixel L1 reconstruction, VGG perceptual loss and Gram-matrix style loss.

    L_rec   = mean |I_s_rec - I_s|                                           (the original, lambda_rec 10)
    L_tsf   = sum_l w_l * d_l                                                 (lambda_tsf 10)
              d_l = mean |phi_l(I_t_fake) - phi_l(I_t)|                       (norm "none": the original)
              d_l = mean_b (mean |phi_l(fake_b) - phi_l(real_b)| / mean |phi_l(real_b)|)
                    (norm "relative", the default, which also divides the sum by sum_l w_l: a weighted
                    mean of scale-free distances)
              phi_l = VGG16 (or VGG19) relu1_1 ... relu5_1; w = 1/32, 1/16, 1/8, 1/4, 1
    L_style = sum_l mean |G(phi_l(fake)) - G(phi_l(real))|,  G(f) = f f^T / (h w)   (lambda_style 0)

Real images' features are computed without gradients (the original detaches them). Differences are
taken in float32, so the losses are safe under bfloat16 autocast. VGG inputs are normalised with the
ImageNet statistics inside `lwgan.nets.vgg.VGGFeatures`, as its pretrained weights expect; the original
fed [-1, 1] images unnormalised, which shrinks every activation about fourfold. With the real ImageNet
weights and that normalisation, the raw distances made L_tsf 60 % of L_G at the start of the default run
(relu3_1 alone 2.2), more than every other term together, so by default each layer's distance is divided
by the mean magnitude of the real image's features at that layer (per sample, so a batch's loss is the
mean of its samples' and DDP's ranks agree with one process) and the weighted sum by the sum of the
layer weights (`relative`): a weighted mean of scale-free distances (0 = equal features, about 1 = as far
apart as the features are large), which keeps the layers' relative weights and the paper's loss weights
meaningful; at the start of the default run it brings L_tsf to 48 % of L_G. `train.perceptual_norm: none`
restores the original's raw distances.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lwgan.losses.terms import LossTerm, detached, feature_autocast, wide
from lwgan.nets.vgg import FEATURE_LAYERS

VGG_LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor, body: torch.Tensor | None = None,
                        body_weight: float = 1.0) -> LossTerm:
    """Pixel L1, mean over (B, 3, H, W). body (B, 1, H, W) in [0, 1]: where it is 1 a pixel's error counts
    `body_weight` times (the weights are not renormalised: the background's pixels count as in the plain
    L1). Stats: rec."""
    error = (wide(fake) - wide(real)).abs()
    if body is not None:
        error = error * (1.0 + (body_weight - 1.0) * wide(body))
    loss = error.mean()
    return LossTerm(loss, detached(rec=loss))


NORMS = ("relative", "none")


def perceptual_loss(
    fake_features: Sequence[torch.Tensor],
    real_features: Sequence[torch.Tensor],
    weights: Sequence[float] = VGG_LAYER_WEIGHTS,
    names: Sequence[str] = FEATURE_LAYERS,
    norm: str = "none",
) -> LossTerm:
    """Weighted sum of per-layer L1 distances between features (B, C_l, h_l, w_l), each divided by the
    real features' mean magnitude when `norm` is "relative" (module docstring). Stats: one per layer name
    (the unweighted distance as used)."""
    if not len(fake_features) == len(real_features) == len(weights) == len(names):
        raise ValueError(f"perceptual_loss got {len(fake_features)} fake / {len(real_features)} real "
                         f"features for {len(weights)} weights and {len(names)} names")
    total = torch.zeros((), device=fake_features[0].device)
    stats = {}
    for fake, real, weight, name in zip(fake_features, real_features, weights, names, strict=True):
        if norm == "relative":  # per sample, so that the loss of a batch is the mean of its samples' (DDP)
            distance = (wide(fake) - wide(real)).abs().flatten(1).mean(dim=1)  # (B,)
            term = (distance / (wide(real).detach().abs().flatten(1).mean(dim=1) + 1e-6)).mean()
        else:
            term = (wide(fake) - wide(real)).abs().mean()
        stats[name] = term
        total = total + weight * term
    if norm == "relative":
        total = total / sum(weights)
    return LossTerm(total, detached(**stats))


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, C) in at least float32: f f^T / (h w)."""
    flat = wide(features).flatten(2)  # (B, C, h*w)
    return torch.bmm(flat, flat.transpose(1, 2)) / flat.shape[-1]


def style_loss(fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor]) -> LossTerm:
    """Sum over layers of mean |Gram(fake) - Gram(real)|. Stats: style."""
    total = torch.zeros((), device=fake_features[0].device)
    for fake, real in zip(fake_features, real_features, strict=True):
        total = total + (gram_matrix(fake) - gram_matrix(real)).abs().mean()
    return LossTerm(total, detached(style=total))


class PerceptualLoss(nn.Module):
    """VGG features of a fake and a real batch, compared as `perceptual_loss` (and `style_loss`).

    vgg: a frozen feature network returning the five relu*_1 features (`lwgan.nets.load_feature_net`).
    norm: "relative" or "none" (module docstring). bf16: run the network under bfloat16 autocast (its
    features are widened before the differences are taken).
    forward(fake (B, 3, H, W), real (B, 3, H, W), with_style) -> (perceptual LossTerm, style LossTerm or
    None); the VGG pass over each batch is shared by both.
    """

    def __init__(self, vgg: nn.Module, weights: Sequence[float] = VGG_LAYER_WEIGHTS,
                 norm: str = "none", bf16: bool = False) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"perceptual norm {norm!r} is not one of {NORMS}")
        self.vgg = vgg
        self.weights = tuple(weights)
        self.norm = norm
        self.bf16 = bool(bf16)

    def forward(
        self, fake: torch.Tensor, real: torch.Tensor, with_style: bool = False
    ) -> tuple[LossTerm, LossTerm | None]:
        with feature_autocast(fake, self.bf16):
            fake_features = self.vgg(fake)
            with torch.no_grad():
                real_features = self.vgg(real)
        perceptual = perceptual_loss(fake_features, real_features, self.weights, norm=self.norm)
        style = style_loss(fake_features, real_features) if with_style else None
        return perceptual, style
