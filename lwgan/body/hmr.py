"""HMR: a ResNet-50 image encoder and an iterative regressor of body-model parameters, as a fitting start.

Layout (the PyTorch port of HMR used by SPIN, `hmr.py` there), so that its published weights load:

- backbone: torchvision's ResNet-50 v1.5 without its final ``fc`` (keys ``conv1.weight``, ``bn1.*``,
  ``layer1.0.conv1.weight``, ..., ``layer4.2.bn3.*``; the stride sits in each block's 3 x 3 conv, the
  shortcut is ``downsample.0`` (1 x 1 conv) + ``downsample.1`` (batch norm)), global average pooling to
  a 2048 feature;
- regressor: ``fc1`` (2048 + P + 13 -> 1024), dropout, ``fc2`` (1024 -> 1024), dropout, and three
  decoders ``decpose`` (1024 -> P), ``decshape`` (1024 -> 10), ``deccam`` (1024 -> 3), applied three
  times as residual updates (iterative error feedback) from the buffers ``init_pose`` (1, P),
  ``init_shape`` (1, 10) and ``init_cam`` (1, 3), the mean parameters.

P is 72 for axis-angle poses (24 joints, as the original HMR's 85-vector: pose, shape, camera) or 144
for SPIN's 6D rotations (two matrix columns per joint); `load_hmr` reads it from ``decpose.weight``.
The camera is HMR's weak perspective (s, tx, ty) in the NDC of the crop, with `lwgan.geometry`'s axes;
the global orientation follows HMR's convention (an upright person facing the camera has ~pi about x).

Checkpoints: a state dict saved with ``torch.save``, or a dict holding it under ``"model"`` or
``"state_dict"`` (as SPIN's ``model_checkpoint.pt``); a ``module.`` prefix from DataParallel is dropped.
Images go in as lwgan images in [-1, 1] and are normalised with ImageNet's mean and std inside, as SPIN
was trained. No weights ship with lwgan: HMR/SPIN checkpoints are trained with SMPL, so their shape
coefficients mean something only with an SMPL model.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lwgan.body.fit import FitInit
from lwgan.body.poses import matrix_to_axis_angle
from lwgan.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_JOINTS = 24
NUM_BETAS = 10
ITERATIONS = 3


class HMRLoadError(UserError, ValueError):
    """A checkpoint that does not match the HMR layout; the message names the keys."""


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: 1 x 1 -> 3 x 3 (stride) -> 1 x 1 (x4 channels), plus the shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, out, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(inplanes, planes, stride)]
    layers += [Bottleneck(planes * Bottleneck.expansion, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class HMR(nn.Module):
    """ResNet-50 + HMR regressor (module docstring). pose_dim: 72 (axis-angle) or 144 (6D rotations);
    width: channels of the first stage (64 = ResNet-50; smaller only for tests)."""

    def __init__(self, pose_dim: int = 3 * NUM_JOINTS, width: int = 64) -> None:
        super().__init__()
        if pose_dim not in (3 * NUM_JOINTS, 6 * NUM_JOINTS):
            raise ValueError(f"pose_dim={pose_dim}: HMR regresses 72 (axis-angle) or 144 (6D) pose values")
        self.pose_dim = pose_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(width, width, 3, 1)
        self.layer2 = _stage(4 * width, 2 * width, 4, 2)
        self.layer3 = _stage(8 * width, 4 * width, 6, 2)
        self.layer4 = _stage(16 * width, 8 * width, 3, 2)
        features = 32 * width  # 2048 for ResNet-50
        self.fc1 = nn.Linear(features + pose_dim + NUM_BETAS + 3, 1024)
        self.drop1 = nn.Dropout()
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout()
        self.decpose = nn.Linear(1024, pose_dim)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.deccam = nn.Linear(1024, 3)
        for decoder in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(decoder.weight, gain=0.01)
        # Mean parameters of an untrained model: upright, facing the camera, mean shape, body ~ 90 % of
        # the crop height. A checkpoint replaces them.
        pose = torch.zeros(NUM_JOINTS, 3)
        pose[0, 0] = torch.pi
        if pose_dim != 3 * NUM_JOINTS:
            rotations = torch.eye(3).repeat(NUM_JOINTS, 1, 1)
            rotations[0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
            pose = rotations[..., :2]  # (J, 3, 2): SPIN's 6D code, the first two columns
        self.register_buffer("init_pose", pose.reshape(1, -1))
        self.register_buffer("init_shape", torch.zeros(1, NUM_BETAS))
        self.register_buffer("init_cam", torch.tensor([[1.1, 0.0, 0.0]]))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 2048) pooled ResNet features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised images -> pose (B, P), shape (B, 10), camera (B, 3) after three updates."""
        feature = self.features(images)
        batch = feature.shape[0]
        pose = self.init_pose.expand(batch, -1)
        shape = self.init_shape.expand(batch, -1)
        cam = self.init_cam.expand(batch, -1)
        for _ in range(ITERATIONS):
            x = self.drop2(self.fc2(self.drop1(self.fc1(torch.cat((feature, pose, shape, cam), dim=1)))))
            pose = self.decpose(x) + pose
            shape = self.decshape(x) + shape
            cam = self.deccam(x) + cam
        return pose, shape, cam


def rot6d_to_matrix(code: torch.Tensor) -> torch.Tensor:
    """(..., 6) SPIN's 6D rotation code, read as a (3, 2) matrix of two columns -> (..., 3, 3) rotation
    (Gram-Schmidt on the columns, the third their cross product)."""
    columns = code.reshape(*code.shape[:-1], 3, 2)
    first = F.normalize(columns[..., 0], dim=-1)
    second = columns[..., 1]
    second = F.normalize(second - (first * second).sum(-1, keepdim=True) * first, dim=-1)
    return torch.stack((first, second, torch.cross(first, second, dim=-1)), dim=-1)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"HMR checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with objects, a truncated file, not a torch file at all
        raise HMRLoadError(f"{path}: not a readable PyTorch state dict ({error})") from error
    if isinstance(data, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(data.get(wrapper), dict):
                data = data[wrapper]
                break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise HMRLoadError(f"{path}: expected a state dict of tensors (or one under 'model'/'state_dict')")
    return {key.removeprefix("module."): value for key, value in data.items()}


def _names(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:8])
    return shown + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def load_hmr(path: str | os.PathLike, device: str | torch.device = "cpu") -> HMR:
    """An `HMR` in eval mode with the weights of a checkpoint in the SPIN layout (module docstring).

    Raises `HMRLoadError` naming the missing keys, the unexpected keys, or a key whose shape differs.
    BatchNorm's ``num_batches_tracked`` may be absent (older checkpoints).
    """
    path = Path(path)
    weights = _state_dict(path)
    if "decpose.weight" not in weights:
        raise HMRLoadError(f"{path}: missing key 'decpose.weight' (not an HMR checkpoint in the SPIN layout)")
    model = HMR(pose_dim=int(weights["decpose.weight"].shape[0]))
    expected = model.state_dict()
    optional = {key for key in expected if key.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(weights) - optional)
    unexpected = sorted(set(weights) - set(expected))
    problems = [
        f"{label} key(s) {_names(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected))
        if keys
    ]
    if problems:
        raise HMRLoadError(f"{path}: not the HMR layout: {'; '.join(problems)}")
    for key, value in weights.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise HMRLoadError(
                f"{path}: key {key!r} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict({**expected, **weights})
    return model.to(device).eval()


def hmr_init(model: HMR, crops: torch.Tensor, batch_size: int = 32) -> FitInit:
    """Starting values for `lwgan.body.fit.fit_video` from HMR run on crops.

    crops: (N, 3, H, W) float RGB in [-1, 1] (224 x 224 is what HMR was trained on), each the square
    image the keypoints are given in (e.g. the prepare stage's person-centred frames), so that the camera
    applies to it. Returns `FitInit` with pose (N, 72) axis-angle, betas (N, 10) and cam (N, 3), on CPU.
    """
    if crops.dim() != 4 or crops.shape[1] != 3:
        raise ValueError(f"crops must be (N, 3, H, W) RGB images, got {tuple(crops.shape)}")
    device = next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    poses, shapes, cams = [], [], []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for start in range(0, crops.shape[0], batch_size):
            images = (crops[start : start + batch_size].to(device, torch.float32) + 1.0) / 2.0  # [0, 1]
            pose, shape, cam = model((images - mean) / std)
            if model.pose_dim != 3 * NUM_JOINTS:
                pose = matrix_to_axis_angle(rot6d_to_matrix(pose.reshape(-1, NUM_JOINTS, 6))).flatten(1)
            poses.append(pose.cpu())
            shapes.append(shape.cpu())
            cams.append(cam.cpu())
    model.train(was_training)
    return FitInit(pose=torch.cat(poses), betas=torch.cat(shapes), cam=torch.cat(cams))
