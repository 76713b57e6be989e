"""LWGAN's networks: the three-stream generator with the Liquid Warping Block, the conditional PatchGAN
discriminator, and the frozen feature networks its losses use (VGG16 or VGG19 perceptual, dlib's face
ResNet or SphereFace-20a for identity; `lwgan.nets.pretrained`)."""

from lwgan.nets.blocks import count_parameters, init_weights
from lwgan.nets.discriminator import PatchDiscriminator, patch_output_size
from lwgan.nets.face import SphereFace20a
from lwgan.nets.generator import (
    Generator,
    GeneratorOutput,
    ResNetGenerator,
    ResUNet,
    ResUNetOutput,
    compose,
    liquid_warping_block,
)
from lwgan.nets.options import NetOptions
from lwgan.nets.pretrained import VGG19_URL, FeatureNetInfo, WeightLayoutError, load_feature_net
from lwgan.nets.vgg import VGG19Features

__all__ = [
    "VGG19_URL",
    "FeatureNetInfo",
    "Generator",
    "GeneratorOutput",
    "NetOptions",
    "PatchDiscriminator",
    "ResNetGenerator",
    "ResUNet",
    "ResUNetOutput",
    "SphereFace20a",
    "VGG19Features",
    "WeightLayoutError",
    "compose",
    "count_parameters",
    "init_weights",
    "liquid_warping_block",
    "load_feature_net",
    "patch_output_size",
]
