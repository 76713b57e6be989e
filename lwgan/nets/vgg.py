"""VGG19 feature extractor for the perceptual (and style) losses, in torchvision's weight layout.

The module's state dict uses torchvision's `vgg19` key names, `features.<i>.weight` / `features.<i>.bias`
for the convolutions at indices `VGG19_CONVS`; it keeps the layers up to relu5_1 (index 29), the deepest
feature the loss reads. The rest of a torchvision checkpoint (features.30/32/34, the `classifier.*`
ImageNet head) is recognised and not used (`lwgan.nets.pretrained`).

Input: images (B, 3, H, W) in [-1, 1]; they are mapped to [0, 1] and normalised with the ImageNet
mean/std, as torchvision's weights expect. Output: the five features relu1_1, relu2_1, relu3_1, relu4_1,
relu5_1 at H, H/2, H/4, H/8, H/16 with 64, 128, 256, 512, 512 channels.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's vgg19 `features`: index -> (in, out) channels for each 3x3 conv; "M" = 2x2 max pool.
_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                  512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
FEATURE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
FEATURE_INDICES = (1, 6, 11, 20, 29)  # indices of those ReLUs in `features`


def _layout() -> tuple[dict[int, tuple[int, int]], int]:
    """Conv shapes by `features` index, and the number of `features` modules (37)."""
    convs: dict[int, tuple[int, int]] = {}
    index, channels = 0, 3
    for item in _CONFIG:
        if item == "M":
            index += 1
        else:
            convs[index] = (channels, int(item))
            channels = int(item)
            index += 2  # conv + ReLU
    return convs, index


VGG19_CONVS, VGG19_MODULES = _layout()


def vgg19_state_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every `features` tensor of torchvision's vgg19 (all 16 convolutions)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for index, (c_in, c_out) in VGG19_CONVS.items():
        shapes[f"features.{index}.weight"] = (c_out, c_in, 3, 3)
        shapes[f"features.{index}.bias"] = (c_out,)
    return shapes


class VGG19Features(nn.Module):
    """torchvision's vgg19 `features[:30]`, returning the relu1_1 ... relu5_1 activations."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index in range(FEATURE_INDICES[-1] + 1):
            if index in VGG19_CONVS:
                layers.append(nn.Conv2d(*VGG19_CONVS[index], kernel_size=3, padding=1))
            elif index - 1 in VGG19_CONVS:
                layers.append(nn.ReLU(inplace=False))
            else:
                layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """images (B, 3, H, W) in [-1, 1] -> five features (B, C_i, H / 2**i, W / 2**i)."""
        x = ((images + 1.0) * 0.5 - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in FEATURE_INDICES:
                outs.append(x)
        return tuple(outs)
