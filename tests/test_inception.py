"""The FID Inception network in the port's weight layout, loaded from a file generated in that layout."""

from __future__ import annotations

import pytest
import torch

from lwgan.metrics.inception import CLASSES, FIDInception, load_inception
from lwgan.nets.pretrained import WeightLayoutError


def published(path) -> dict[str, torch.Tensor]:
    """Random tensors under the port's key names and shapes (no num_batches_tracked, as the port's file)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, value in FIDInception().state_dict().items():
        noise = torch.randn(value.shape, generator=gen)
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("conv.weight"):  # He-normal, so the signal survives 94 layers
            state[key] = noise * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            state[key] = 1.0 + 0.1 * noise.abs()
        else:
            state[key] = 0.05 * noise
    torch.save(state, path)
    return state


def test_the_layout_has_the_ports_keys_and_shapes():
    state = FIDInception().state_dict()
    weights = [k for k in state if not k.endswith("num_batches_tracked")]
    assert len(weights) == 94 * 5 + 2  # 94 conv + batch-norm units and the 1008-way fc
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
    assert state["fc.weight"].shape == (CLASSES, 2048)
    assert not any(k.startswith("AuxLogits") for k in state)


def test_loads_a_file_in_the_layout_and_refuses_others(tmp_path):
    state = published(tmp_path / "pt_inception.pth")
    model = load_inception(tmp_path / "pt_inception.pth")
    assert torch.equal(model.Mixed_5b.branch1x1.conv.weight, state["Mixed_5b.branch1x1.conv.weight"])
    with torch.no_grad():
        pool, logits = model(torch.rand(2, 3, 64, 48) * 2 - 1)
    assert pool.shape == (2, 2048) and logits.shape == (2, CLASSES) and torch.isfinite(logits).all()
    torch.save({**state, "AuxLogits.fc.weight": torch.zeros(1000, 768)}, tmp_path / "aux.pth")
    with pytest.raises(WeightLayoutError, match="AuxLogits"):
        load_inception(tmp_path / "aux.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_inception(tmp_path / "absent.pth")
