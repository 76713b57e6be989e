"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"),
version 0.1, with the AlexNet (the package's default) or VGG16 backbone, in the published weight layouts:

    backbone  torchvision's `alexnet` / `vgg16` checkpoints: `features.<i>.weight` / `.bias` (the
              classifier keys are recognised and not used)
    linear    the lpips package's `weights/v0.1/{alex,vgg}.pth`: `lin<k>.model.1.weight` (1, C_k, 1, 1),
              one non-negative 1x1 convolution per tapped layer

    d(x, y) = sum_k mean_hw  w_k . (f_k(x) / |f_k(x)| - f_k(y) / |f_k(y)|)^2

f_k are the ReLU outputs at the tapped layers of the scaled inputs ((x - shift) / scale, the package's
ScalingLayer), normalised to unit length over channels (eps 1e-10). Inputs are (B, 3, H, W) in [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lwgan.metrics.image import partial
from lwgan.nets.pretrained import WeightLayoutError, _read, freeze

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# backbone: (conv index -> (in, out, kernel, stride, padding)), max-pool indices, tapped ReLU indices
_ALEX = ({0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1),
          10: (256, 256, 3, 1, 1)}, (2, 5), (1, 4, 7, 9, 11))
_VGG_WIDTHS = ((0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
               (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512),
               (28, 512, 512))
_VGG = ({i: (c_in, c_out, 3, 1, 1) for i, c_in, c_out in _VGG_WIDTHS}, (4, 9, 16, 23), (3, 8, 15, 22, 29))
BACKBONES = {"alex": _ALEX, "vgg": _VGG}


def layout(net: str) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Key -> shape of the backbone's used tensors and of the linear layers, for `net` ("alex" | "vgg")."""
    convs, _, taps = BACKBONES[net]
    backbone: dict[str, tuple[int, ...]] = {}
    for index, (c_in, c_out, k, _, _) in convs.items():
        backbone[f"features.{index}.weight"] = (c_out, c_in, k, k)
        backbone[f"features.{index}.bias"] = (c_out,)
    channels = [convs[max(i for i in convs if i < tap)][1] for tap in taps]
    linear = {f"lin{k}.model.1.weight": (1, c, 1, 1) for k, c in enumerate(channels)}
    return backbone, linear


class LPIPS(nn.Module):
    """forward(x (B, 3, H, W), y (B, 3, H, W)) in [-1, 1] -> (B,) distances."""

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {net!r}; use one of {tuple(BACKBONES)}")
        self.net = net
        convs, pools, taps = BACKBONES[net]
        layers: list[nn.Module] = []
        for index in range(taps[-1] + 1):
            if index in convs:
                c_in, c_out, k, stride, pad = convs[index]
                layers.append(nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad))
            elif index in pools:
                layers.append(nn.MaxPool2d(3, 2) if net == "alex" else nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.taps = taps
        _, linear = layout(net)
        self.lins = nn.ModuleList(nn.Conv2d(shape[1], 1, 1, bias=False) for shape in linear.values())
        self.register_buffer("shift", torch.tensor(SHIFT).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).reshape(1, 3, 1, 1), persistent=False)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale
        outs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outs.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return outs

    def forward(self, x: torch.Tensor, y: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """LPIPS of (B, 3, H, W) images in [-1, 1]: (B,). `valid` (B, 1, H, W): average each layer's
        distance map only where at least half of a feature pixel's footprint is valid (a crop's padding
        left out); None or all ones is the published metric."""
        masked = partial(valid)
        total = torch.zeros(x.shape[0], device=x.device)
        for lin, fx, fy in zip(self.lins, self._taps(x), self._taps(y), strict=True):
            dist = lin((fx - fy).square())  # (B, 1, h, w)
            if masked:
                m = F.interpolate(valid.to(dist.dtype), size=dist.shape[-2:], mode="area")
                m = (m >= 0.5).to(dist.dtype)
                total = total + (dist * m).sum(dim=(1, 2, 3)) / m.sum(dim=(1, 2, 3)).clamp(min=1.0)
            else:
                total = total + dist.mean(dim=(1, 2, 3))
        return total


def check_state(state: Mapping[str, torch.Tensor], want: Mapping[str, tuple[int, ...]], source: str,
                ignore_prefix: str) -> None:
    """Every key of `state` is wanted with the wanted shape (or starts with `ignore_prefix`), and every
    wanted key is there; else WeightLayoutError naming `source` and the key."""
    for key, value in state.items():
        if key in want:
            if tuple(value.shape) != want[key]:
                raise WeightLayoutError(f"{source}: key {key!r} has shape {tuple(value.shape)}, expected "
                                        f"{want[key]}")
        elif not key.startswith(ignore_prefix):
            raise WeightLayoutError(f"{source}: unexpected key {key!r} (expected the published layout, e.g. "
                                    f"{next(iter(want))!r})")
    missing = [key for key in want if key not in state]
    if missing:
        raise WeightLayoutError(f"{source}: missing key {missing[0]!r} ({len(missing)} missing in all)")


def load_lpips(net: str, backbone: str | os.PathLike, linear: str | os.PathLike) -> LPIPS:
    """A frozen LPIPS from a torchvision backbone checkpoint (path or URL) and the package's linear-layer
    file (path). Missing files raise FileNotFoundError (LPIPS is then not computed, never substituted);
    a file in the wrong layout raises WeightLayoutError naming the key."""
    model = LPIPS(net)
    want_backbone, want_linear = layout(net)
    states = {}
    for name, source, want, ignore in (("backbone", str(backbone), want_backbone, "classifier."),
                                       ("linear layers", str(linear), want_linear, "\0")):
        state = _read(source)
        if isinstance(state, str):
            raise FileNotFoundError(f"LPIPS {net} {name}: {state}")
        check_state(state, want, source, ignore)
        states[name] = state
    model.features.load_state_dict({k.removeprefix("features."): v for k, v in states["backbone"].items()
                                    if k.startswith("features.")})
    model.lins.load_state_dict({k.removeprefix("lin").replace(".model.1.", ".", 1): v
                                for k, v in states["linear layers"].items()})
    return freeze(model)
