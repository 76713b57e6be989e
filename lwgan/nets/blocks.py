"""Building blocks shared by the generator streams and the discriminator, and the original's init."""

from __future__ import annotations

import torch
from torch import nn

INIT_STD = 0.02  # the original's N(0, 0.02) initialisation of every conv / linear weight


def norm_layer(kind: str, channels: int, affine: bool = True) -> nn.Module:
    """A 2D normalisation layer: "instance", "batch" or "none" (identity)."""
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=affine)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use 'instance', 'batch' or 'none'")


def conv_norm_relu(
    in_channels: int,
    out_channels: int,
    kernel: int,
    stride: int,
    norm: str,
    transposed: bool = False,
) -> nn.Sequential:
    """Convolution (padding keeps `size / stride`) + norm + ReLU, as every layer of the original's G.

    A transposed convolution (kernel 3, stride 2, padding 1, output padding 1) exactly doubles the size.
    The convolution has a bias only without normalisation (a norm's shift makes it redundant).
    """
    bias = norm == "none"
    if transposed:
        conv: nn.Module = nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=stride,
                                             padding=kernel // 2, output_padding=stride - 1, bias=bias)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=bias)
    return nn.Sequential(conv, norm_layer(norm, out_channels), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """x + (conv3x3 - norm - ReLU - conv3x3 - norm)(x); shape preserving, (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = norm == "none"
        self.main = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=bias),
            norm_layer(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


@torch.no_grad()
def init_weights(module: nn.Module, std: float = INIT_STD) -> None:
    """The original's initialisation: conv, transposed-conv and linear weights ~ N(0, std), biases 0;
    batch-norm scales ~ N(1, std), shifts 0; instance-norm affine parameters keep (1, 0)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            m.weight.normal_(0.0, std)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.normal_(1.0, std)
            m.bias.zero_()


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameter elements of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
