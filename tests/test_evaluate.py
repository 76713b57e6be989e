"""The evaluate stage's work on real tiny caches and a briefly trained checkpoint: metrics for LWGAN and
the naive reference, the grid and one video per validation video, and a checkpoint that does not match."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lwgan.data.pairs import PairDataset, PairOptions
from lwgan.metrics.image import masked_l1
from lwgan.nets.masks import BACKGROUND_CHANNEL
from lwgan.pipeline.evaluate import EvalSettings, evaluate, naive_reference
from lwgan.pipeline.small import build_caches, train_tiny
from lwgan.train import checkpoint
from lwgan.train.objective import Batch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    caches = build_caches(root / "data", 64, frames_per_action=5)
    return caches, train_tiny(caches, root / "models"), root


def test_self_imitation_metrics_grid_and_videos(trained):
    caches, ckpt, root = trained
    out = root / "eval"
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt, out,
                                    max_frames=3, batch_size=2))
    assert metrics["videos"] == 2 and metrics["pairs"] == 6  # two validation videos, 3 targets each
    for method in ("lwgan", "naive"):
        scores = metrics["self_imitation"][method]
        assert -1 <= scores["ssim"] <= 1 and scores["psnr"] > 0 and 0 <= scores["masked_l1"] <= 1
    assert "no Inception weights" in metrics["not_computed"]["fid"] and metrics["cross_imitation"] == {}
    assert "no LPIPS weights" in metrics["not_computed"]["lpips"]
    assert "lpips" not in metrics["self_imitation"]["lwgan"]
    assert cv2.imread(str(out / "grid.png")).shape[1] == 4 * 128
    for video in metrics["per_video"]:
        capture = cv2.VideoCapture(str(out / "videos" / f"{video}.mp4"))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (128, 32)
    # Cross-imitation: each validation video's source driven by the other one's motion, 3 frames each.
    assert metrics["cross_imitation_pairs"] == 6 and (out / "cross_grid.png").is_file()
    crossed = sorted(p.name for p in (out / "videos").glob("cross_*.mp4"))
    assert crossed == ["cross_002_1_1_by_002_1_2.mp4", "cross_002_1_2_by_002_1_1.mp4"]


def test_naive_reference_of_an_identity_pair_is_the_source_on_the_body(trained):
    caches = trained[0]
    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, PairOptions(64, split="val"))
    video, row = data.videos[0], int(data.sources[0][0])
    items = torch.utils.data.default_collate([data.pair(video, row, row)])
    batch = Batch.from_items(items, torch.device("cpu"))
    body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
    assert masked_l1(naive_reference(batch), batch.tgt_img, body).item() < 0.03
    assert np.isfinite(naive_reference(batch).numpy()).all()


def test_a_checkpoint_that_does_not_match_its_config_is_named(trained, tmp_path):
    caches, ckpt, _ = trained
    state = checkpoint.load(ckpt)
    state["config"]["train"]["base_width"] = 8
    kept = {k: v for k, v in state.items() if k not in ("format", "version")}
    bad = checkpoint.save(tmp_path / "bad.pt", kept)
    with pytest.raises(checkpoint.CheckpointError, match="bad.pt"):
        evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, bad, tmp_path / "eval"))


def test_lpips_is_reported_when_its_published_weights_are_given(trained, tmp_path):
    from test_lpips import published

    caches, ckpt, _ = trained
    published("alex", tmp_path)
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt,
                                    tmp_path / "e", max_frames=1,
                                    lpips_backbone=str(tmp_path / "alex_backbone.pth"),
                                    lpips_linear=str(tmp_path / "alex_lin.pth")))
    assert "lpips" not in metrics["not_computed"]
    assert all(metrics["self_imitation"][m]["lpips"] > 0 for m in ("lwgan", "naive"))


def test_fid_and_inception_score_when_the_inception_weights_are_given(trained, tmp_path):
    from test_inception import published

    caches, ckpt, _ = trained
    published(tmp_path / "inception.pth")
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt,
                                    tmp_path / "e", max_frames=2,
                                    inception_weights=str(tmp_path / "inception.pth")))
    assert "fid" not in metrics["not_computed"] and "inception_score" not in metrics["not_computed"]
    for method in ("lwgan", "naive"):
        scores = metrics["cross_imitation"][method]
        assert scores["fid"] > 0 and scores["inception_score"] >= 1.0
