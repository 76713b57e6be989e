"""LWGAN's losses. Each returns a `LossTerm` (a scalar to back-propagate + named statistics) and knows
nothing about logging; the training loop weights and sums them."""

from lwgan.losses.adversarial import ORIGINAL_LABELS, LSGANLabels, discriminator_loss, generator_loss
from lwgan.losses.face import FACE_FEATURES, FaceLoss, crop_boxes
from lwgan.losses.masks import attention_loss, attention_target, total_variation
from lwgan.losses.penalty import gradient_penalty, interpolate, penalty_from_scores
from lwgan.losses.perceptual import (
    VGG_LAYER_WEIGHTS,
    PerceptualLoss,
    gram_matrix,
    perceptual_loss,
    reconstruction_loss,
    style_loss,
)
from lwgan.losses.terms import LossTerm

__all__ = [
    "FACE_FEATURES",
    "ORIGINAL_LABELS",
    "VGG_LAYER_WEIGHTS",
    "FaceLoss",
    "LSGANLabels",
    "LossTerm",
    "PerceptualLoss",
    "attention_loss",
    "attention_target",
    "crop_boxes",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "interpolate",
    "penalty_from_scores",
    "gram_matrix",
    "perceptual_loss",
    "reconstruction_loss",
    "style_loss",
    "total_variation",
]
