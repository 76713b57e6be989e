"""SphereFace-20a (Liu et al. 2017, "SphereFace"), the face-identity network of LWGAN's face loss.

The definition and the weight layout follow the widely used PyTorch port `sphere20a` (the checkpoint
`sphere20a_20171020.pth` that the original LWGAN loads): parameter names conv<s>_<i>.weight/.bias for
3x3 convolutions, relu<s>_<i>.weight for the PReLU slopes (one per channel) and fc5.weight/.bias for the
512-d embedding. The checkpoint's classification layer fc6 (an A-Softmax "AngleLinear" weight of shape
(512, 10574)) is recognised and not used (`lwgan.nets.pretrained`).

Four stages, each a stride-2 conv (+PReLU) followed by residual units x + PReLU(conv(PReLU(conv(x)))):

    stage 1: 3 -> 64,    56 x 48, 1 unit  (conv1_1; conv1_2/1_3)
    stage 2: 64 -> 128,  28 x 24, 2 units (conv2_1; 2_2/2_3, 2_4/2_5)
    stage 3: 128 -> 256, 14 x 12, 4 units (conv3_1; 3_2/3_3 ... 3_8/3_9)
    stage 4: 256 -> 512,  7 x 6,  1 unit  (conv4_1; conv4_2/4_3)
    fc5: 512 * 7 * 6 -> 512

Input: face crops (B, 3, 112, 96) in [-1, 1] (the port normalises pixels as (p - 127.5) / 128). Output, as
the original's face loss reads it: the four stage outputs and the fc5 embedding.
"""

from __future__ import annotations

import torch
from torch import nn

CROP_SIZE = (112, 96)  # (height, width) of the face crops the network expects
EMBEDDING = 512
# (input channels, output channels, residual units) per stage
STAGES = ((3, 64, 1), (64, 128, 2), (128, 256, 4), (256, 512, 1))
FC6_SHAPE = (512, 10574)  # the published checkpoint's unused classifier (CASIA-WebFace identities)


def sphere20a_state_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor the network uses, in the port's layout (fc6 excluded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for stage, (c_in, c_out, units) in enumerate(STAGES, start=1):
        for i in range(1, 2 * units + 2):
            shapes[f"conv{stage}_{i}.weight"] = (c_out, c_in if i == 1 else c_out, 3, 3)
            shapes[f"conv{stage}_{i}.bias"] = (c_out,)
            shapes[f"relu{stage}_{i}.weight"] = (c_out,)
    shapes["fc5.weight"] = (EMBEDDING, STAGES[-1][1] * 7 * 6)
    shapes["fc5.bias"] = (EMBEDDING,)
    return shapes


class SphereFace20a(nn.Module):
    """Face crops (B, 3, 112, 96) in [-1, 1] -> (stage1 (B, 64, 56, 48), stage2 (B, 128, 28, 24),
    stage3 (B, 256, 14, 12), stage4 (B, 512, 7, 6), fc5 (B, 512))."""

    CROP_SIZE = CROP_SIZE
    FEATURE_NAMES = ("stage1", "stage2", "stage3", "stage4", "fc5")

    def __init__(self) -> None:
        super().__init__()
        for stage, (c_in, c_out, units) in enumerate(STAGES, start=1):
            for i in range(1, 2 * units + 2):
                stride = 2 if i == 1 else 1
                self.add_module(f"conv{stage}_{i}",
                                nn.Conv2d(c_in if i == 1 else c_out, c_out, 3, stride=stride, padding=1))
                self.add_module(f"relu{stage}_{i}", nn.PReLU(c_out))
        self.fc5 = nn.Linear(STAGES[-1][1] * 7 * 6, EMBEDDING)

    def _layer(self, stage: int, i: int, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, f"relu{stage}_{i}")(getattr(self, f"conv{stage}_{i}")(x))

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if tuple(crops.shape[-2:]) != CROP_SIZE:
            raise ValueError(f"SphereFace20a expects crops of size {CROP_SIZE}, "
                             f"got {tuple(crops.shape[-2:])}")
        outs = []
        x = crops
        for stage, (_, _, units) in enumerate(STAGES, start=1):
            x = self._layer(stage, 1, x)  # stride 2
            for unit in range(units):
                first = 2 + 2 * unit
                x = x + self._layer(stage, first + 1, self._layer(stage, first, x))
            outs.append(x)
        outs.append(self.fc5(x.flatten(1)))  # (B, 512); flatten in (C, H, W) order, as the port's view()
        return tuple(outs)
