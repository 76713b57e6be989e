"""Conditional PatchGAN discriminator (pix2pix), as the original LWGAN builds it.

Input: [image (3), conditioning map C (4)] -> (B, 7, H, W). Layers (ndf = `base_width`, all 4x4 kernels,
padding 1, LeakyReLU 0.2):

    conv stride 2 -> ndf, no norm                                  (H/2)
    d_layers - 1 x conv stride 2 -> ndf * min(2**n, 8), norm        (H/4 ... H/2**d_layers)
    conv stride 1 -> ndf * min(2**d_layers, 8), norm                (H/2**d_layers - 1)
    conv stride 1 -> 1 raw score per patch, no sigmoid              (H/2**d_layers - 2)

so at d_layers = 4 the score map is 14x14 at 256^2, 6x6 at 128^2 and 2x2 at 64^2 (`patch_output_size`).
Instance norms have no affine parameters and convolutions keep their biases (pix2pix; a batch norm drops
them). With `spectral_norm_d` every convolution, the first and last included, is spectrally normalised
through `torch.nn.utils.parametrizations.spectral_norm` (one power iteration per training forward).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from lwgan.nets.blocks import init_weights, norm_layer
from lwgan.nets.generator import COND_CHANNELS
from lwgan.nets.options import NetOptions, width

KERNEL = 4
SLOPE = 0.2


def patch_output_size(size: int, d_layers: int) -> int:
    """Side of the discriminator's score map for inputs of side `size`: each 4x4 / stride 2 / pad 1 conv
    maps s -> s // 2 and each 4x4 / stride 1 / pad 1 conv maps s -> s - 1."""
    for _ in range(d_layers):
        size //= 2
    return size - 2


class PatchDiscriminator(nn.Module):
    """(image (B, 3, H, W) in [-1, 1], cond (B, 4, H, W)) -> raw scores (B, 1, h, w), h = w =
    `patch_output_size(H, d_layers)`."""

    def __init__(self, opts: NetOptions | None = None) -> None:
        super().__init__()
        self.opts = opts = opts or NetOptions()
        ndf, bias = opts.base_width, opts.norm != "batch"

        def block(c_in: int, c_out: int, stride: int, norm: bool) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, KERNEL, stride=stride, padding=1, bias=bias or not norm)
            layers: list[nn.Module] = [conv]
            if norm:
                layers.append(norm_layer(opts.norm, c_out, affine=False))
            return [*layers, nn.LeakyReLU(SLOPE, inplace=True)]

        layers = block(3 + COND_CHANNELS, ndf, 2, norm=False)
        for n in range(1, opts.d_layers):
            layers += block(width(ndf, n - 1), width(ndf, n), 2, norm=True)
        layers += block(width(ndf, opts.d_layers - 1), width(ndf, opts.d_layers), 1, norm=True)
        layers.append(nn.Conv2d(width(ndf, opts.d_layers), 1, KERNEL, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self)
        if opts.spectral_norm_d:
            for index, layer in enumerate(self.model):
                if isinstance(layer, nn.Conv2d):
                    self.model[index] = spectral_norm(layer)

    def forward(self, image: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        size = (self.opts.image_size, self.opts.image_size)
        if tuple(image.shape[-2:]) != size or tuple(cond.shape[-2:]) != size:
            raise ValueError(f"discriminator inputs have sizes {tuple(image.shape[-2:])} (image) and "
                             f"{tuple(cond.shape[-2:])} (cond), but it was built for "
                             f"NetOptions.image_size={self.opts.image_size}")
        return self.model(torch.cat((image, cond), dim=1))  # (B, 1, h, w)
