"""Feature networks in published weight layouts: torchvision's vgg19 and the sphere20a port."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F

from lwgan.nets import SphereFace20a, VGG19Features, WeightLayoutError, load_feature_net
from lwgan.nets.pretrained import SUBSTITUTE_SEED, check_layout
from lwgan.weights import WeightsError

# torchvision's vgg19 `features`: the indices of its 16 convolutions, written out, and their widths
VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
VGG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
VGG_POOL_AFTER = (2, 7, 16, 25)  # conv indices followed by a 2x2 max pool
VGG_TAPS = (0, 5, 10, 19, 28)  # the conv before relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
SPHERE_UNITS = (1, 2, 4, 1)
SPHERE_WIDTHS = (64, 128, 256, 512)


def he(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    return torch.randn(shape, generator=gen) * (2.0 / max(fan_in, 1)) ** 0.5


def vgg19_checkpoint() -> dict[str, torch.Tensor]:
    """A torchvision-layout vgg19 state dict (all 16 conv layers; the 400 MB classifier left out but for
    one tensor, which the loader must accept and ignore)."""
    gen = torch.Generator().manual_seed(1)
    state, c_in = {}, 3
    for index, c_out in zip(VGG_CONV_INDICES, VGG_WIDTHS, strict=True):
        state[f"features.{index}.weight"] = he((c_out, c_in, 3, 3), gen)
        state[f"features.{index}.bias"] = torch.randn(c_out, generator=gen) * 0.1
        c_in = c_out
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


def sphere20a_checkpoint() -> dict[str, torch.Tensor]:
    """A sphere20a_20171020.pth-layout state dict, including the unused A-Softmax weight fc6."""
    gen = torch.Generator().manual_seed(2)
    state, c_in = {}, 3
    for stage, (units, c_out) in enumerate(zip(SPHERE_UNITS, SPHERE_WIDTHS, strict=True), start=1):
        for i in range(1, 2 * units + 2):
            state[f"conv{stage}_{i}.weight"] = he((c_out, c_in if i == 1 else c_out, 3, 3), gen) * 0.5
            state[f"conv{stage}_{i}.bias"] = torch.randn(c_out, generator=gen) * 0.1
            state[f"relu{stage}_{i}.weight"] = torch.rand(c_out, generator=gen) * 0.5
        c_in = c_out
    state["fc5.weight"] = he((512, 512 * 7 * 6), gen)
    state["fc5.bias"] = torch.zeros(512)
    state["fc6.weight"] = torch.randn(512, 10574, generator=gen)
    return state


def vgg_reference(state: dict[str, torch.Tensor], images: torch.Tensor) -> list[torch.Tensor]:
    """relu1_1 ... relu5_1 straight from the checkpoint's tensors."""
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    x = ((images + 1) / 2 - mean) / std
    taps = []
    for index in VGG_CONV_INDICES[:13]:
        x = F.relu(F.conv2d(x, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        if index in VGG_TAPS:
            taps.append(x)
        if index in VGG_POOL_AFTER:
            x = F.max_pool2d(x, 2)
    return taps


def sphere_reference(state: dict[str, torch.Tensor], crops: torch.Tensor) -> list[torch.Tensor]:
    def layer(name: str, x: torch.Tensor, stride: int = 1) -> torch.Tensor:
        y = F.conv2d(x, state[f"conv{name}.weight"], state[f"conv{name}.bias"], stride=stride, padding=1)
        return F.prelu(y, state[f"relu{name}.weight"])

    outs, x = [], crops
    for stage, units in enumerate(SPHERE_UNITS, start=1):
        x = layer(f"{stage}_1", x, stride=2)
        for u in range(units):
            x = x + layer(f"{stage}_{3 + 2 * u}", layer(f"{stage}_{2 + 2 * u}", x))
        outs.append(x)
    outs.append(F.linear(x.reshape(x.shape[0], -1), state["fc5.weight"], state["fc5.bias"]))
    return outs


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    vgg, sphere = vgg19_checkpoint(), sphere20a_checkpoint()
    torch.save(vgg, folder / "vgg19-dcbb9e9d.pth")
    torch.save(sphere, folder / "sphere20a_20171020.pth")
    return {"vgg19": (folder / "vgg19-dcbb9e9d.pth", vgg),
            "sphere20a": (folder / "sphere20a_20171020.pth", sphere)}


def test_vgg19_from_a_torchvision_layout_file(checkpoints):
    path, state = checkpoints["vgg19"]
    net, info = load_feature_net("vgg19", path)
    assert not info.substitute and info.source == str(path) and "weights from" in info.note
    assert len(info.sha256) == 64
    images = torch.rand(2, 3, 48, 48) * 2 - 1
    with torch.no_grad():
        got = net(images)
    want = vgg_reference(state, images)
    assert [tuple(f.shape[1:]) for f in got] == [(64, 48, 48), (128, 24, 24), (256, 12, 12), (512, 6, 6),
                                                 (512, 3, 3)]
    for g, w in zip(got, want, strict=True):  # float32 sums reordered by the channels_last kernels: the
        # error scales with the layer's magnitude (up to ~14 here), not with each element
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5 * float(w.abs().max()))


def test_sphere20a_from_a_port_layout_file(checkpoints):
    path, state = checkpoints["sphere20a"]
    net, info = load_feature_net("sphere20a", path)
    assert not info.substitute and info.kind == "sphere20a"
    crops = torch.rand(2, 3, 112, 96) * 2 - 1
    with torch.no_grad():
        got = net(crops)
    want = sphere_reference(state, crops)
    assert got[-1].shape == (2, 512)
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["vgg19", "sphere20a"])
def test_layout_errors_name_the_key(kind):
    state = vgg19_checkpoint() if kind == "vgg19" else sphere20a_checkpoint()
    key = "features.28.bias" if kind == "vgg19" else "relu3_7.weight"
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(WeightLayoutError, match=f"missing key '{key}'"):
        check_layout(kind, missing, "ckpt.pth")
    with pytest.raises(WeightLayoutError, match="unexpected key 'module.fc7.weight'"):
        check_layout(kind, {**state, "module.fc7.weight": torch.zeros(1)}, "ckpt.pth")
    wrong = {**state, key: torch.zeros(3)}
    with pytest.raises(WeightLayoutError, match=rf"key '{key}' has shape \(3,\)"):
        check_layout(kind, wrong, "ckpt.pth")


def test_a_wrong_file_is_refused_not_substituted(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv1_1.weight": torch.zeros(64, 3, 3, 3)}, path)
    with pytest.raises(WeightLayoutError, match=r"other\.pth: unexpected key 'conv1_1.weight'"):
        load_feature_net("vgg19", path)


@pytest.mark.parametrize(("kind", "cls"), [("vgg19", VGG19Features), ("sphere20a", SphereFace20a)])
def test_absent_weights_give_a_stated_deterministic_substitute_only_when_asked(kind, cls, tmp_path):
    rng_before = torch.random.get_rng_state()
    net, info = load_feature_net(kind, None, substitute=True)
    again, _ = load_feature_net(kind, tmp_path / "nowhere.pth", substitute=True)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is left alone
    assert isinstance(net, cls)
    assert info.substitute and info.source == f"random-init(seed={SUBSTITUTE_SEED})"
    assert "SUBSTITUTE" in info.note and kind in info.note and "random" in info.note
    missing_info = load_feature_net(kind, tmp_path / "nowhere.pth", param="train.x", substitute=True)[1]
    assert missing_info.substitute and "nowhere.pth does not exist" in missing_info.note
    for (name, a), b in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("kind", ["vgg16", "vgg19", "dlib", "sphere20a"])
def test_a_missing_network_is_an_error_naming_the_param_and_the_fetch_command(kind, tmp_path):
    with pytest.raises(WeightsError, match=r"train\.face_weights: the weights file .*nowhere\.pth does not "
                                           r"exist.*make weights.*train\.substitute_nets"):
        load_feature_net(kind, tmp_path / "nowhere.pth", param="train.face_weights")
    with pytest.raises(WeightsError, match=r"train\.vgg_weights is empty.*make weights"):
        load_feature_net(kind, "", param="train.vgg_weights")


def test_feature_nets_are_frozen_but_pass_gradients_to_their_input():
    net, _ = load_feature_net("vgg19", None, substitute=True)
    net.train()
    assert not any(p.requires_grad for p in net.parameters())
    images = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_(True)
    net(images)[-1].sum().backward()
    assert images.grad.abs().sum() > 0


def test_vgg19_by_url_uses_torch_hub_and_falls_back_when_offline_only_when_asked(monkeypatch):
    url = "https://example.invalid/vgg19.pth"

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsError, match="train.vgg_weights: could not fetch"):
        load_feature_net("vgg19", url, param="train.vgg_weights")
    _, info = load_feature_net("vgg19", url, substitute=True)
    assert info.substitute and url in info.note and "URLError" in info.note

    state = vgg19_checkpoint()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: state)
    net, info = load_feature_net("vgg19", url)
    assert not info.substitute and info.source == url
    assert torch.equal(net.features[0].weight, state["features.0.weight"])


def test_unknown_kind_and_sphere_urls_are_refused():
    with pytest.raises(ValueError, match="'resnet50'"):
        load_feature_net("resnet50", None, substitute=True)
    with pytest.raises(ValueError, match="local file only"):
        load_feature_net("sphere20a", "https://example.invalid/sphere.pth")


def test_a_file_that_is_not_a_state_dict_is_named(tmp_path):
    path = tmp_path / "vgg19.pth"
    for junk in (b"not a checkpoint", b"hello", bytes(range(256)) * 4):
        path.write_bytes(junk)
        with pytest.raises(WeightLayoutError, match=r"vgg19\.pth: cannot be read"):
            load_feature_net("vgg19", path)
