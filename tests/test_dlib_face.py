"""dlib's face ResNet from @vladmandic/face-api's tfjs weights: the converter against the raw bytes, the
torch module against a NumPy forward pass written from the package's JavaScript, and identity on photos.

Needs the extracted npm package (face-api 1.7.15): $LWGAN_FACE_API_DIR, else
data/weights/downloads/face-api/package; the tests skip when neither holds the model files.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from lwgan.nets.dlib_face import ChannelScale, DlibFaceResNet, convert_tfjs, dequantize, dlib_state_shapes
from lwgan.nets.pretrained import freeze

DEFAULT_DIR = Path(__file__).resolve().parents[1] / "data/weights/downloads/face-api/package"
MANIFEST = "model/face_recognition_model-weights_manifest.json"
BIN = "model/face_recognition_model.bin"
# FaceRecognitionNet.forwardInput: normalize(x, [122.782, 117.001, 104.298]); dlib's input layer then
# divides by 256 (the package by 255; the module follows dlib)
MEAN = np.array([122.782, 117.001, 104.298])
DIVISOR = 256.0
# (top, left, side) of square face boxes in skimage's sample photos, picked by eye: the face centred, from
# the hairline to below the chin, as in dlib's 150 px chips with 25 % padding
ASTRONAUT_BOX = (70, 155, 140)
CAMERAMAN_BOX = (75, 150, 130)
SAME_PERSON = 0.6  # dlib's threshold on the Euclidean distance of two descriptors


@pytest.fixture(scope="module")
def package() -> Path:
    root = Path(os.environ.get("LWGAN_FACE_API_DIR", DEFAULT_DIR))
    if not (root / MANIFEST).is_file() or not (root / BIN).is_file():
        pytest.skip(f"face-api package not found at {root} (set LWGAN_FACE_API_DIR to an extracted "
                    f"@vladmandic/face-api 1.7.15 npm package, the folder holding model/)")
    return root


@pytest.fixture(scope="module")
def manifest(package: Path) -> list[dict]:
    groups = json.loads((package / MANIFEST).read_text())
    return [weight for group in groups for weight in group["weights"]]


@pytest.fixture(scope="module")
def raw(package: Path, manifest: list[dict]) -> dict[str, np.ndarray]:
    """tfjs name -> float64 values in tfjs layout, read here from the bin without the module's code."""
    data = (package / BIN).read_bytes()
    out, offset = {}, 0
    for entry in manifest:
        count = math.prod(entry["shape"])
        quant = entry.get("quantization")
        if quant:
            assert quant["dtype"] == "uint8"
            q = np.frombuffer(data, np.uint8, count, offset).astype(np.float64)
            values = q * quant["scale"] + quant["min"]
            offset += count
        else:
            assert entry["dtype"] == "float32"
            values = np.frombuffer(data, "<f4", count, offset).astype(np.float64)
            offset += 4 * count
        out[entry["name"]] = values.reshape(entry["shape"])
    assert offset == len(data)
    return out


@pytest.fixture(scope="module")
def state(package: Path) -> dict[str, torch.Tensor]:
    return convert_tfjs(package / MANIFEST, package / BIN)


@pytest.fixture(scope="module")
def net(state: dict[str, torch.Tensor]) -> DlibFaceResNet:
    model = DlibFaceResNet().eval()
    model.load_state_dict(state, strict=True)
    return model.requires_grad_(False)


def test_dequantize_follows_the_manifest_formula(manifest: list[dict]) -> None:
    quantized = [entry for entry in manifest if "quantization" in entry]
    assert len(quantized) == 109
    q = np.array([0, 1, 17, 255], dtype=np.uint8)
    for entry in quantized[:3] + quantized[-1:]:
        scale, minimum = entry["quantization"]["scale"], entry["quantization"]["min"]
        expected = np.array([minimum, minimum + scale, minimum + 17 * scale, minimum + 255 * scale],
                            dtype=np.float32)
        got = dequantize(q, scale, minimum)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)


def test_converted_tensors_equal_the_raw_bytes(state, raw, manifest) -> None:
    # quantized 3x3 conv (HWIO -> OIHW), float32 conv, the quantized 7x7 stem and the fc matrix
    pairs = {
        "conv32_1.conv1.conv.weight": raw["conv32_1/conv1/conv/filters"].transpose(3, 2, 0, 1),
        "conv64_down.conv1.conv.weight": raw["conv64_down/conv1/conv/filters"].transpose(3, 2, 0, 1),
        "conv32_down.conv.weight": raw["conv32_down/conv/filters"].transpose(3, 2, 0, 1),
        "conv128_2.conv2.scale.bias": raw["conv128_2/conv2/scale/biases"],
        "fc.weight": raw["fc"].T,
    }
    for key, expected in pairs.items():
        got = state[key]
        assert got.dtype == torch.float32 and got.is_contiguous()
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6, atol=1e-12, err_msg=key)
    # min/max quantization: the smallest code is 0 and the largest 255
    stem = next(e for e in manifest if e["name"] == "conv32_down/conv/filters")["quantization"]
    weight = state["conv32_down.conv.weight"]
    assert weight.min().item() == pytest.approx(stem["min"], abs=1e-7)
    assert weight.max().item() == pytest.approx(stem["min"] + 255 * stem["scale"], abs=1e-7)


def test_state_layout_and_parameter_count(state, manifest) -> None:
    shapes = dlib_state_shapes()
    assert {key: tuple(value.shape) for key, value in state.items()} == shapes
    assert len(state) == len(manifest) == 117
    package_count = sum(math.prod(entry["shape"]) for entry in manifest)
    assert package_count == 5_614_592
    model = DlibFaceResNet()
    assert sum(p.numel() for p in model.parameters()) == package_count
    model.load_state_dict(state, strict=True)


def test_converter_names_the_file_and_key(package: Path, tmp_path: Path) -> None:
    groups = json.loads((package / MANIFEST).read_text())
    groups[0]["weights"][5]["name"] = "conv32_1/conv1/conv/kernel"
    bad_manifest = tmp_path / "renamed.json"
    bad_manifest.write_text(json.dumps(groups))
    with pytest.raises(ValueError, match=r"renamed\.json.*conv32_1/conv1/conv/kernel"):
        convert_tfjs(bad_manifest, package / BIN)
    short_bin = tmp_path / "short.bin"
    short_bin.write_bytes((package / BIN).read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"short\.bin.*'fc'"):
        convert_tfjs(package / MANIFEST, short_bin)


# --- a NumPy forward pass, written from src/faceRecognitionNet/*.ts, on one (H, W, C) image ------------

def np_conv(x: np.ndarray, filters: np.ndarray, stride: int, padding: str) -> np.ndarray:
    """tf.conv2d on (H, W, C) with HWIO filters; 'same' pads as TensorFlow (extra pixel bottom/right)."""
    kh, kw = filters.shape[:2]
    if padding == "same":
        pads = []
        for size, k in ((x.shape[0], kh), (x.shape[1], kw)):
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, (*pads, (0, 0)))
    windows = sliding_window_view(x, (kh, kw), axis=(0, 1))[::stride, ::stride]  # (Ho, Wo, C, kh, kw)
    return np.einsum("hwcij,ijco->hwo", windows, filters, optimize=True)


def np_pool(x: np.ndarray, size: int, stride: int, reduce) -> np.ndarray:
    """'valid' pooling of (H, W, C)."""
    return reduce(sliding_window_view(x, (size, size), axis=(0, 1))[::stride, ::stride], axis=(3, 4))


def np_conv_layer(x, raw, prefix, stride, relu, padding="same"):
    out = np_conv(x, raw[f"{prefix}/conv/filters"], stride, padding) + raw[f"{prefix}/conv/bias"]
    out = out * raw[f"{prefix}/scale/weights"] + raw[f"{prefix}/scale/biases"]
    return np.maximum(out, 0) if relu else out


def np_residual(x, raw, prefix):
    out = np_conv_layer(x, raw, f"{prefix}/conv1", 1, relu=True)
    out = np_conv_layer(out, raw, f"{prefix}/conv2", 1, relu=False)
    return np.maximum(out + x, 0)


def np_residual_down(x, raw, prefix):
    out = np_conv_layer(x, raw, f"{prefix}/conv1", 2, relu=True, padding="valid")
    out = np_conv_layer(out, raw, f"{prefix}/conv2", 1, relu=False)
    pooled = np_pool(x, 2, 2, np.mean)
    if pooled.shape[:2] != out.shape[:2]:  # one zero row (axis 1 in NHWC), then one zero column
        out = np.concatenate([out, np.zeros((1, *out.shape[1:]))], axis=0)
        out = np.concatenate([out, np.zeros((out.shape[0], 1, out.shape[2]))], axis=1)
    if pooled.shape[2] != out.shape[2]:
        pooled = np.concatenate([pooled, np.zeros_like(pooled)], axis=2)
    return np.maximum(pooled + out, 0)


def np_face_net(pixels: np.ndarray, raw: dict[str, np.ndarray]) -> list[np.ndarray]:
    """(150, 150, 3) RGB in 0..255 -> [after conv32_3, conv64_3, conv128_2, conv256_2 (H, W, C); (128,)]."""
    x = (pixels - MEAN) / DIVISOR
    x = np_conv_layer(x, raw, "conv32_down", 2, relu=True, padding="valid")
    x = np_pool(x, 3, 2, np.max)
    taps = []
    for block in ("conv32_1", "conv32_2", "conv32_3", "conv64_down", "conv64_1", "conv64_2", "conv64_3",
                  "conv128_down", "conv128_1", "conv128_2", "conv256_down", "conv256_1", "conv256_2",
                  "conv256_down_out"):
        x = (np_residual_down if "down" in block else np_residual)(x, raw, block)
        if block in ("conv32_3", "conv64_3", "conv128_2", "conv256_2"):
            taps.append(x)
    return [*taps, x.mean(axis=(0, 1)) @ raw["fc"]]


def _matches_the_numpy_reference(net: DlibFaceResNet, raw) -> None:
    pixels = np.random.default_rng(0).uniform(0, 255, size=(150, 150, 3))
    expected = np_face_net(pixels, raw)
    crops = torch.from_numpy(pixels / 127.5 - 1).float().permute(2, 0, 1)[None]  # (1, 3, 150, 150)
    with torch.no_grad():
        got = [t[0].double().numpy() for t in net(crops)]
    assert [g.shape for g in got] == [(32, 35, 35), (64, 17, 17), (128, 8, 8), (256, 4, 4), (128,)]
    for g, e in zip(got, expected, strict=True):
        e = e.transpose(2, 0, 1) if e.ndim == 3 else e
        np.testing.assert_allclose(g, e, rtol=0, atol=1e-4 * np.abs(e).max())
    assert np.linalg.norm(got[-1] - expected[-1]) < 1e-4 * np.linalg.norm(expected[-1])
    np.testing.assert_array_equal(net.descriptor(crops)[0].numpy(), got[-1].astype(np.float32))


def test_forward_matches_a_numpy_reference(net, raw) -> None:
    _matches_the_numpy_reference(net, raw)


def test_the_frozen_network_folds_its_scale_layers_and_still_matches(state, raw) -> None:
    model = DlibFaceResNet()
    model.load_state_dict(state, strict=True)
    frozen = freeze(model)  # as the face loss gets it from `load_feature_net`
    assert not any(isinstance(m, ChannelScale) for m in frozen.modules())
    _matches_the_numpy_reference(frozen, raw)


def test_rejects_a_wrong_crop_size(net) -> None:
    with pytest.raises(ValueError, match="150"):
        net(torch.zeros(1, 3, 112, 96))


# --- identity on scikit-image's sample photos -----------------------------------------------------------

def face_chip(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """A (150, 150, 3) float chip in [0, 1] of the square box, resized with anti-aliasing."""
    from skimage.transform import resize
    return resize(image[top:top + side, left:left + side] / 255.0, (150, 150), anti_aliasing=True)


def chip_variants(image: np.ndarray, box: tuple[int, int, int]) -> list[np.ndarray]:
    """The chip; flipped left-right; the box shifted 4 px; the box grown and shrunk by 10 px."""
    top, left, side = box
    chip = face_chip(image, top, left, side)
    return [chip, chip[:, ::-1], face_chip(image, top + 4, left - 4, side),
            face_chip(image, top - 5, left - 5, side + 10), face_chip(image, top + 5, left + 5, side - 10)]


def to_crops(chips: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(chips) * 2 - 1).float().permute(0, 3, 1, 2)  # (B, 3, 150, 150)


def test_same_person_is_close_and_different_people_are_far(net) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")
    astronaut = data.astronaut().astype(np.float64)
    cameraman = np.repeat(data.camera()[..., None], 3, axis=2).astype(np.float64)
    with torch.no_grad():
        a = net.descriptor(to_crops(chip_variants(astronaut, ASTRONAUT_BOX)))  # (5, 128)
        c = net.descriptor(to_crops(chip_variants(cameraman, CAMERAMAN_BOX)))
    same = torch.cat([(a[1:] - a[0]).norm(dim=1), (c[1:] - c[0]).norm(dim=1)])
    different = torch.cdist(a, c)  # every variant of one against every variant of the other
    assert same.max() < SAME_PERSON
    assert different.min() > SAME_PERSON
    assert different.min() > same.max() + 0.2


def test_gradient_reaches_the_input_and_bf16_autocast_agrees(net) -> None:
    data = pytest.importorskip("skimage.data", reason="scikit-image provides the sample photos")
    crops = to_crops([face_chip(data.astronaut().astype(np.float64), *ASTRONAUT_BOX)])
    target = net.descriptor(crops.flip(-1)).detach()
    crops.requires_grad_(True)
    outs = net(crops)
    loss = (outs[-1] - target).square().sum() + sum(o.abs().mean() for o in outs[:-1])
    (grad,) = torch.autograd.grad(loss, crops)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = net(crops)
    assert all(torch.isfinite(o).all() for o in low)
    reference = outs[-1].detach()
    assert (low[-1].float() - reference).norm() < 0.05 * reference.norm()
