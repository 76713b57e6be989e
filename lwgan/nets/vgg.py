"""VGG16 / VGG19 feature extractors for the perceptual (and style) losses, in torchvision's weight layout.

The module's state dict uses torchvision's `vgg16` / `vgg19` key names, `features.<i>.weight` /
`features.<i>.bias` for the convolutions at the indices of `vgg_convs(depth)`; it keeps the layers up to
relu5_1, the deepest feature the loss reads (index 29 in VGG19, 25 in VGG16). The rest of a torchvision
checkpoint (the convolutions after relu5_1, the `classifier.*` ImageNet head) is recognised and not used
(`lwgan.nets.pretrained`).

The original LWGAN reads VGG19's relu1_1 ... relu5_1. VGG16 has the same five stages with one conv less in
stages 3-5, so its relu1_1 ... relu5_1 are the closest match: the first ReLU of each stage, at the same
resolutions and widths, after the same number of pooling steps (VGG16's weights ship in a registry
package, VGG19's do not).

Input: images (B, 3, H, W) in [-1, 1]; they are mapped to [0, 1] and normalised with the ImageNet
mean/std, as torchvision's weights expect. Output: the five features relu1_1, relu2_1, relu3_1, relu4_1,
relu5_1 at H, H/2, H/4, H/8, H/16 with 64, 128, 256, 512, 512 channels.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg `features`: convs per stage (3x3, widths 64, 128, 256, 512, 512), each stage ending in
# a 2x2 max pool.
STAGE_WIDTHS = (64, 128, 256, 512, 512)
STAGE_CONVS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
FEATURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def vgg_convs(depth: int) -> dict[int, tuple[int, int]]:
    """(in, out) channels of every conv of torchvision's vgg<depth> `features`, by index."""
    convs: dict[int, tuple[int, int]] = {}
    index, channels = 0, 3
    for width, count in zip(STAGE_WIDTHS, STAGE_CONVS[depth], strict=True):
        for _ in range(count):
            convs[index] = (channels, width)
            channels = width
            index += 2  # conv + ReLU
        index += 1  # max pool
    return convs


def feature_indices(depth: int) -> tuple[int, ...]:
    """Indices of the relu1_1 ... relu5_1 modules in torchvision's vgg<depth> `features`: the ReLU after
    the first conv of each stage ((1, 6, 11, 18, 25) for VGG16, (1, 6, 11, 20, 29) for VGG19)."""
    starts = [0]
    for count in STAGE_CONVS[depth][:-1]:
        starts.append(starts[-1] + 2 * count + 1)
    return tuple(start + 1 for start in starts)


def vgg_state_shapes(depth: int) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every `features` tensor of torchvision's vgg<depth> (all convolutions)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (c_in, c_out) in vgg_convs(depth).items():
        shapes[f"features.{index}.weight"] = (c_out, c_in, 3, 3)
        shapes[f"features.{index}.bias"] = (c_out,)
    return shapes


def vgg19_state_shapes() -> dict[str, tuple[int, ...]]:
    return vgg_state_shapes(19)


class VGGFeatures(nn.Module):
    """torchvision's vgg<depth> `features` up to relu5_1, returning the relu1_1 ... relu5_1 activations."""

    def __init__(self, depth: int = 19) -> None:
        super().__init__()
        if depth not in STAGE_CONVS:
            raise ValueError(f"VGG depth {depth} is not one of {tuple(STAGE_CONVS)}")
        self.depth = depth
        self.taps = feature_indices(depth)
        convs = vgg_convs(depth)
        layers: list[nn.Module] = []
        for index in range(self.taps[-1] + 1):
            if index in convs:
                layers.append(nn.Conv2d(*convs[index], kernel_size=3, padding=1))
            elif index - 1 in convs:
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """images (B, 3, H, W) in [-1, 1] -> five features (B, C_i, H / 2**i, W / 2**i)."""
        x = ((images + 1.0) * 0.5 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's layout: 10-20 % faster on the CPU here
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outs.append(x)
        return tuple(outs)


class VGG19Features(VGGFeatures):
    def __init__(self) -> None:
        super().__init__(19)


class VGG16Features(VGGFeatures):
    def __init__(self) -> None:
        super().__init__(16)
