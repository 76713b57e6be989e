"""HMR: torchvision's ResNet-50 layout, checkpoint loading with clear errors, and the fitting start."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lwgan.body.fit import FitOptions, fit_video
from lwgan.body.hmr import HMR, HMRLoadError, hmr_init, load_hmr, rot6d_to_matrix
from lwgan.body.model import BodyModel

RESNET50_WITHOUT_FC = 25_557_032 - (2048 * 1000 + 1000)  # torchvision resnet50 parameters minus its fc


@pytest.fixture(scope="module")
def model() -> HMR:
    torch.manual_seed(0)
    return HMR().eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> Path:
    """A random state dict in the SPIN layout, wrapped as SPIN saves it and with DataParallel's prefix."""
    path = tmp_path_factory.mktemp("hmr") / "model_checkpoint.pt"
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "epoch": 3}, path)
    return path


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    return torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1)) * 2.0 - 1.0


def test_backbone_has_torchvision_resnet50_names_and_sizes(model):
    names = dict(model.named_parameters())
    backbone = sum(p.numel() for n, p in names.items() if n.split(".")[0] in ("conv1", "bn1") or "layer" in n)
    assert backbone == RESNET50_WITHOUT_FC
    state = model.state_dict()
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)  # v1.5: the stride is in the 3 x 3 conv
    assert state["layer4.2.bn3.running_var"].shape == (2048,)
    assert state["fc1.weight"].shape == (1024, 2048 + 85)
    head = {"init_pose", "init_shape", "init_cam", "decpose.weight", "decshape.bias", "deccam.weight"}
    assert head <= set(state)


def test_a_saved_checkpoint_loads_and_gives_the_same_outputs(model, checkpoint, crops):
    loaded = load_hmr(checkpoint)
    assert not loaded.training
    with torch.no_grad():
        for got, expected in zip(loaded(crops), model(crops), strict=True):
            torch.testing.assert_close(got, expected)


def test_hmr_init_gives_a_fitting_start(model, crops):
    init = hmr_init(model, crops)
    assert init.pose.shape == (2, 72) and init.betas.shape == (2, 10) and init.cam.shape == (2, 3)
    assert all(bool(torch.isfinite(t).all()) for t in (init.pose, init.betas, init.cam))
    # An untrained regressor stays near its mean parameters: upright, facing the camera, s ~ 1.1.
    assert bool((init.cam[:, 0] > 0.5).all()) and float(init.betas.abs().max()) < 1.0
    orient = init.pose[:, :3].norm(dim=-1)
    assert float((orient - torch.pi).abs().max()) < 0.3


def test_six_d_poses_become_axis_angle(crops):
    torch.manual_seed(2)
    model = HMR(pose_dim=144, width=8).eval()
    init = hmr_init(model, crops[:1])
    assert init.pose.shape == (1, 72) and float((init.pose[0, :3].norm() - torch.pi).abs()) < 0.3
    rotation = rot6d_to_matrix(torch.randn(5, 6))
    identity = torch.eye(3).expand(5, 3, 3)
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), identity, atol=1e-5, rtol=0.0)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(5))


def test_fit_video_accepts_the_hmr_start(model, crops):
    body = BodyModel.default()
    init = hmr_init(model, crops)
    keypoints = torch.tensor([[128.0, 128.0, 1.0]]).repeat(2, 17, 1) + torch.randn(2, 17, 3) * 20.0
    keypoints[..., 2] = 1.0
    result = fit_video(keypoints, 256, body, FitOptions(pose_iterations=5), init=init)
    assert result.pose.shape == (2, 72) and "camera/total" not in result.loss


def _save(tmp_path: Path, state: dict) -> Path:
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    return path


def test_wrong_keys_and_shapes_are_named(model, tmp_path):
    state = dict(model.state_dict())
    state["fc3.weight"] = state.pop("fc2.weight")
    named = r"missing key\(s\) 'fc2.weight'; unexpected key\(s\) 'fc3.weight'"
    with pytest.raises(HMRLoadError, match=named):
        load_hmr(_save(tmp_path, state))
    state = dict(model.state_dict())
    state["deccam.weight"] = torch.zeros(3, 512)
    with pytest.raises(HMRLoadError, match=r"'deccam.weight' has shape \(3, 512\), expected \(3, 1024\)"):
        load_hmr(_save(tmp_path, state))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("dec")}
    with pytest.raises(HMRLoadError, match="decpose.weight"):
        load_hmr(_save(tmp_path, state))


def test_optional_batch_norm_counters_and_unreadable_files(model, tmp_path):
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert isinstance(load_hmr(_save(tmp_path, state)), HMR)
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        load_hmr(tmp_path / "nowhere.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(HMRLoadError, match="junk.pt"):
        load_hmr(tmp_path / "junk.pt")
    with pytest.raises(HMRLoadError, match="state dict of tensors"):
        load_hmr(_save(tmp_path, {"model": {"conv1.weight": "text"}}))
