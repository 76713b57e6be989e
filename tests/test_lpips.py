"""LPIPS from weight files generated in the published layouts, against a functional reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lwgan.metrics.lpips import SCALE, SHIFT, layout, load_lpips
from lwgan.nets.pretrained import WeightLayoutError


def published(net: str, tmp_path) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(1)
    backbone_shapes, linear_shapes = layout(net)
    backbone = {k: torch.randn(s, generator=gen) * (0.1 if k.endswith("weight") else 0.01)
                for k, s in backbone_shapes.items()}
    backbone["classifier.1.weight"] = torch.zeros(4, 9216)  # unused head, as in torchvision's file
    linear = {k: torch.rand(s, generator=gen) for k, s in linear_shapes.items()}
    torch.save(backbone, tmp_path / f"{net}_backbone.pth")
    torch.save(linear, tmp_path / f"{net}_lin.pth")
    return backbone, linear


def reference(net: str, backbone: dict, linear: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if net == "alex":
        plan = [("c", 0, 4, 2), "t", "p3", ("c", 3, 1, 2), "t", "p3", ("c", 6, 1, 1), "t",
                ("c", 8, 1, 1), "t", ("c", 10, 1, 1), "t"]
    else:
        convs = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]
        plan = []
        for block, indices in enumerate(convs):
            for j, i in enumerate(indices):
                plan.append(("c", i, 1, 1))
                if j == len(indices) - 1:
                    plan.append("t")
                else:
                    plan.append("r")
            if block < 4:
                plan.append("p2")

    def feats(t: torch.Tensor) -> list[torch.Tensor]:
        t = (t - torch.tensor(SHIFT).view(1, 3, 1, 1)) / torch.tensor(SCALE).view(1, 3, 1, 1)
        out = []
        for step in plan:
            if isinstance(step, tuple):
                _, i, stride, pad = step
                t = F.conv2d(t, backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"], stride, pad)
            elif step == "r":
                t = F.relu(t)
            elif step == "t":
                t = F.relu(t)
                out.append(t / (t.norm(dim=1, keepdim=True) + 1e-10))
            else:
                t = F.max_pool2d(t, int(step[1]), 2)
        return out

    return sum((F.conv2d((a - b) ** 2, linear[f"lin{k}.model.1.weight"])).mean(dim=(1, 2, 3))
               for k, (a, b) in enumerate(zip(feats(x), feats(y), strict=True)))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_from_published_layout_files_matches_the_reference(net, tmp_path):
    backbone, linear = published(net, tmp_path)
    model = load_lpips(net, tmp_path / f"{net}_backbone.pth", tmp_path / f"{net}_lin.pth")
    gen = torch.Generator().manual_seed(2)
    x, y = torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1, torch.rand(2, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        got = model(x, y)
        assert torch.allclose(got, reference(net, backbone, linear, x, y), rtol=1e-4, atol=1e-6)
        assert torch.allclose(model(x, x), torch.zeros(2), atol=1e-7) and (got > 0).all()
    assert not any(p.requires_grad for p in model.parameters())


def test_lpips_files_in_another_layout_or_missing_are_refused(tmp_path):
    _, linear = published("alex", tmp_path)
    torch.save({**linear, "lin9.model.1.weight": torch.zeros(1, 3, 1, 1)}, tmp_path / "wrong.pth")
    with pytest.raises(WeightLayoutError, match="lin9"):
        load_lpips("alex", tmp_path / "alex_backbone.pth", tmp_path / "wrong.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_lpips("alex", tmp_path / "absent.pth", tmp_path / "alex_lin.pth")
