"""The evaluate stage's work on real tiny caches and a briefly trained checkpoint: metrics for LWGAN and
the naive reference, the grid and one video per validation video, a checkpoint that does not match, and
the metric networks: empty weights params = not computed, a missing or corrupt file = an error naming the
param, and the default params' real networks from `make weights` (data/weights) with their hashes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from _small import build_caches, train_tiny

from lwgan import config, weights
from lwgan.evaluate.evaluate import (
    DISTRIBUTION_NOTE,
    EvalSettings,
    PairRunner,
    _effnet_distances,
    evaluate,
    naive_reference,
    tracking_records,
)
from lwgan.metrics.distribution import kernel_inception_distance
from lwgan.metrics.image import masked_l1
from lwgan.metrics.lpips import load_lpips
from lwgan.nets import Generator, NetOptions
from lwgan.nets.build import CheckpointError, load_generator
from lwgan.nets.masks import BACKGROUND_CHANNEL, BACKGROUND_ERODE, scaled_kernel
from lwgan.train import checkpoint
from lwgan.train.objective import Batch, generate
from lwgan.train.pairs import PairDataset, PairOptions
from lwgan.warp.flow import flow_valid

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "data" / "weights"
NO_NETS = {"lpips_backbone": "", "lpips_linear": "", "feature_weights": "", "inception_weights": ""}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    caches = build_caches(root / "data", 64, frames_per_action=5)
    return caches, train_tiny(caches, root / "models"), root


def test_self_imitation_metrics_grid_and_videos(trained):
    caches, ckpt, root = trained
    out = root / "eval"
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt, out,
                                    max_frames=3, batch_size=2, **NO_NETS))
    assert metrics["videos"] == 2 and metrics["pairs"] == 6  # two validation videos, 3 targets each
    # a model trained on the synthetic set scored on it: "auto" keeps the learned background
    assert metrics["background"] == "learned"
    for method in ("lwgan", "naive"):
        scores = metrics["self_imitation"][method]
        assert -1 <= scores["ssim"] <= 1 and scores["psnr"] > 0 and 0 <= scores["masked_l1"] <= 1
    # empty weights params: not computed, with the reason, and nothing substituted
    assert metrics["not_computed"] == {
        "lpips": "evaluate.lpips_backbone is empty", "fd_effnet_lite0": "evaluate.feature_weights is empty",
        "kid_effnet_lite0": "evaluate.feature_weights is empty", "fid": "evaluate.inception_weights is empty",
        "inception_score": "evaluate.inception_weights is empty"}
    assert metrics["cross_imitation"] == {} and "lpips" not in metrics["self_imitation"]["lwgan"]
    assert metrics["feature_nets"]["effnet"] == {"param": "evaluate.feature_weights",
                                                 "network": "EfficientNet-Lite0 (ImageNet)",
                                                 "not_computed": "evaluate.feature_weights is empty"}
    assert cv2.imread(str(out / "grid.png")).shape[1] == 4 * 128
    for video in metrics["per_video"]:
        capture = cv2.VideoCapture(str(out / "videos" / f"{video}.mp4"))
        assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
        assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (128, 32)
    # Cross-imitation: each validation video's source driven by the other one's motion, 3 frames each.
    assert metrics["cross_imitation_pairs"] == 6 and (out / "cross_grid.png").is_file()
    crossed = sorted(p.name for p in (out / "videos").glob("cross_*.mp4"))
    assert crossed == ["cross_002_1_1_by_002_1_2.mp4", "cross_002_1_2_by_002_1_1.mp4"]


def test_a_visible_faces_model_is_given_its_own_flow_and_the_warp_stays_the_plain_one(trained, tmp_path):
    """A model trained with `train.visible_faces` is scored on pairs warped only through the faces the
    source shows, as it was trained; the naive reference stays the plain warp, so its figures are the
    same whichever model is scored."""
    caches, ckpt, root = trained
    visible_ckpt = train_tiny(caches, tmp_path / "visible", visible_faces=True)
    run = PairRunner(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, visible_ckpt,
                               tmp_path / "eval", batch_size=3, **NO_NETS))
    video = run.data.videos[0]
    source = int(run.data.sources[0][0])
    rows = [int(r) for r in run.data.targets[run.data.targets[:, 0] == 0, 1] if r != source][:3]
    batch, outputs = next(iter(run(video, source, np.asarray(rows))))
    options = PairOptions(image_size=run.data.options.image_size, split="val", augment=False)
    plain = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, options)
    visible = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body,
                          dataclasses.replace(options, visible_faces=True))
    plain_flow = torch.stack([plain.pair(video, source, r)["flow"] for r in rows])
    visible_flow = torch.stack([visible.pair(video, source, r)["flow"] for r in rows])
    assert (flow_valid(plain_flow) & ~flow_valid(visible_flow)).any()  # faces the source hides
    torch.testing.assert_close(batch.flow, plain_flow)
    torch.testing.assert_close(outputs["naive"], naive_reference(batch))
    generator, train = load_generator(visible_ckpt, torch.device("cpu"))
    assert train.visible_faces
    with torch.no_grad():
        expected = generate(generator, dataclasses.replace(batch, flow=visible_flow),
                            scaled_kernel(BACKGROUND_ERODE, train.image_size)).tgt
    torch.testing.assert_close(outputs["lwgan"], expected)
    # the flows the runner hands out beside its batches are the ones it gave G
    _, again, flows = next(iter(run.batches(video, source, np.asarray(rows))))
    torch.testing.assert_close(flows, visible_flow)
    torch.testing.assert_close(again["lwgan"], expected)


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
    with pytest.raises(CheckpointError, match="bad.pt"):
        evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, bad, tmp_path / "eval"))


def test_a_checkpoint_from_before_the_residual_heads_loads_with_the_original_heads(tmp_path):
    torch.manual_seed(0)
    direct = Generator(NetOptions(base_width=4, res_blocks=1, image_size=32, d_layers=2))
    train = {k: v for k, v in config.to_dict(config.TrainParams(image_size=32, base_width=4, res_blocks=1,
                                                                d_layers=2)).items()
             if k not in ("color_head", "bg_head")}  # what such a checkpoint's config holds
    path = checkpoint.save(tmp_path / "old.pt",
                           {"generator": direct.state_dict(), "config": {"train": train}})
    loaded, params = load_generator(path, torch.device("cpu"))
    assert (params.color_head, params.bg_head) == ("direct", "direct")
    assert loaded.opts.color_head == "direct" and isinstance(loaded.tsf.attention_head[-1], torch.nn.Sigmoid)


def old_residual_checkpoint(tmp_path, missing: str, **trained_with) -> tuple[Generator, config.TrainParams]:
    """A residual-head checkpoint made before the train param `missing` existed (its config lacks the
    key), with the networks built as `trained_with` says, loaded back."""
    torch.manual_seed(0)
    opts = NetOptions(base_width=4, res_blocks=1, image_size=32, d_layers=2, color_head="residual",
                      bg_head="residual", **trained_with)
    train = {k: v for k, v in config.to_dict(config.TrainParams(image_size=32, base_width=4, res_blocks=1,
                                                                d_layers=2)).items()
             if k != missing}  # what such a checkpoint's config holds
    path = checkpoint.save(tmp_path / "old.pt",
                           {"generator": Generator(opts).state_dict(), "config": {"train": train}})
    return load_generator(path, torch.device("cpu"))


def test_a_checkpoint_from_before_the_attention_prior_loads_with_the_prior_it_was_trained_with(tmp_path):
    loaded, params = old_residual_checkpoint(tmp_path, "attention_prior", attention_prior=4.0)
    assert params.attention_prior == 4.0 and loaded.tsf.attention_prior == 4.0


def test_a_checkpoint_from_before_bg_fill_loads_with_the_pull_push_base_it_was_trained_with(tmp_path):
    loaded, params = old_residual_checkpoint(tmp_path, "bg_fill", bg_fill="pull_push")
    assert params.bg_fill == "pull_push" and loaded.opts.bg_fill == "pull_push"
    assert config.TrainParams().bg_fill == "harmonic"  # what a new run trains with


def test_lpips_is_reported_when_its_published_weights_are_given(trained, tmp_path):
    from test_lpips import published

    caches, ckpt, _ = trained
    published("alex", tmp_path)
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt,
                                    tmp_path / "e", max_frames=1,
                                    **{**NO_NETS, "lpips_backbone": str(tmp_path / "alex_backbone.pth"),
                                       "lpips_linear": str(tmp_path / "alex_lin.pth")}))
    assert "lpips" not in metrics["not_computed"]
    assert all(metrics["self_imitation"][m]["lpips"] > 0 for m in ("lwgan", "naive"))
    # a file outside a fetched folder (no manifest): its sha256 computed, not looked up
    record = metrics["feature_nets"]["lpips_linear"]
    assert record["sha256"] == weights.sha256_file(tmp_path / "alex_lin.pth")


def test_fid_and_inception_score_when_the_inception_weights_are_given(trained, tmp_path):
    from test_inception import published

    caches, ckpt, _ = trained
    published(tmp_path / "inception.pth")
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt,
                                    tmp_path / "e", max_frames=2,
                                    **{**NO_NETS, "inception_weights": str(tmp_path / "inception.pth")}))
    assert "fid" not in metrics["not_computed"] and "inception_score" not in metrics["not_computed"]
    for method in ("lwgan", "naive"):
        scores = metrics["cross_imitation"][method]
        assert scores["fid"] > 0 and scores["inception_score"] >= 1.0


def test_a_weights_file_that_is_missing_is_an_error_naming_the_param(trained, tmp_path):
    caches, ckpt, _ = trained
    settings = EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt, tmp_path / "e",
                            **{**NO_NETS, "feature_weights": str(tmp_path / "efficientnet_lite0.pth")})
    with pytest.raises(weights.WeightsError, match=r"evaluate\.feature_weights.*efficientnet_lite0") as err:
        evaluate(settings)
    assert "make weights" in str(err.value)  # the file `make weights` writes under that name
    assert not (tmp_path / "e" / "grid.png").exists()  # stopped before any pair was evaluated


def test_a_fetched_file_whose_hash_differs_from_the_manifest_is_an_error(trained, tmp_path):
    from test_lpips import published

    caches, ckpt, _ = trained
    published("alex", tmp_path)
    manifest = {"files": {"alex_lin.pth": {"sha256": "0" * 64}}}  # as if fetched, then replaced
    (tmp_path / weights.MANIFEST_FILE).write_text(json.dumps(manifest))
    settings = EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt, tmp_path / "e",
                            **{**NO_NETS, "lpips_backbone": str(tmp_path / "alex_backbone.pth"),
                               "lpips_linear": str(tmp_path / "alex_lin.pth")})
    with pytest.raises(weights.WeightsError, match=r"evaluate\.lpips_linear.*sha256"):
        evaluate(settings)


@pytest.fixture(scope="module")
def fetched() -> Path:
    needed = ("alexnet.pth", "lpips_alex.pth", "efficientnet_lite0.pth")
    missing = [name for name in needed if not (WEIGHTS / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {WEIGHTS}: run `make weights` (lwgan weights fetch) to "
                    "test the default metric networks")
    return WEIGHTS


def test_the_default_settings_compute_lpips_fd_and_kid_with_the_fetched_networks(trained, fetched, tmp_path,
                                                                                 monkeypatch):
    caches, ckpt, _ = trained
    monkeypatch.chdir(ROOT)  # params.yaml's weights paths are relative to the project root, as in DVC
    metrics = evaluate(EvalSettings(caches.frames, caches.maps, caches.smpl, caches.body, ckpt,
                                    tmp_path / "e", max_frames=2, batch_size=2))
    assert set(metrics["not_computed"]) == {"fid", "inception_score"}  # no Inception weights by default
    for method in ("lwgan", "naive"):
        assert 0 < metrics["self_imitation"][method]["lpips"] < 1.5
        cross = metrics["cross_imitation"][method]
        # real = the self-imitation targets (2 videos x 2); fake = each video driven by the other's 2 frames
        assert (cross["n_real"], cross["n_fake"]) == (4, 4)
        assert cross["fd_effnet_lite0"] > 0 and np.isfinite(cross["kid_effnet_lite0"])
        assert cross["kid_effnet_lite0_std"] == pytest.approx(0.0, abs=1e-9)  # every subset is all 4 rows
    assert metrics["cross_imitation_note"] == DISTRIBUTION_NOTE and "KID" in DISTRIBUTION_NOTE
    for role, name in (("lpips_backbone", "alexnet.pth"), ("lpips_linear", "lpips_alex.pth"),
                       ("effnet", "efficientnet_lite0.pth")):
        record = metrics["feature_nets"][role]
        assert Path(record["path"]).resolve() == (fetched / name).resolve()
        assert record["sha256"] == weights.sha256_file(fetched / name)  # the file's own hash
    assert metrics["feature_nets"]["inception"]["not_computed"] == "evaluate.inception_weights is empty"


def test_lpips_of_the_fetched_alexnet_is_zero_for_identical_images(trained, fetched):
    caches = trained[0]
    lpips = load_lpips("alex", fetched / "alexnet.pth", fetched / "lpips_alex.pth")
    data = PairDataset(caches.frames, caches.maps, caches.smpl, caches.body, PairOptions(64, split="val"))
    video = data.videos[0]
    rows = data.targets[data.targets[:, 0] == 0, 1]
    items = torch.utils.data.default_collate([data.pair(video, int(rows[0]), int(r)) for r in rows[:2]])
    batch = Batch.from_items(items, torch.device("cpu"))
    with torch.no_grad():
        same = lpips(batch.tgt_img, batch.tgt_img)
        other = lpips(batch.tgt_img, batch.src_img)
    assert same.abs().max().item() < 1e-6
    assert other[1].item() > 1e-3  # a different frame of the video


def test_effnet_distances_against_the_formulas():
    from test_kid import slow_mmd2

    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 6))
    shift = np.array([0.5, -1.0, 0.0, 2.0, 0.25, 0.0])
    fake = {"real": [torch.from_numpy(real[:5]), torch.from_numpy(real[5:])],
            "lwgan": [torch.from_numpy(real)], "naive": [torch.from_numpy(real + shift)]}
    out = _effnet_distances(fake)
    # the set against itself: 0; against itself shifted: |shift|^2 (the covariances are equal)
    assert out["lwgan"]["fd_effnet_lite0"] == pytest.approx(0.0, abs=1e-9)
    assert out["naive"]["fd_effnet_lite0"] == pytest.approx(float(shift @ shift), rel=1e-9)
    # n = 12 < 1000: every KID subset holds all rows, so KID is the pairwise unbiased MMD^2 itself
    assert out["naive"]["kid_effnet_lite0"] == pytest.approx(slow_mmd2(real, real + shift), rel=1e-9)
    assert (out["naive"]["n_real"], out["naive"]["n_fake"]) == (12, 12)
    big = {"real": [torch.from_numpy(rng.normal(size=(1100, 2)))], "lwgan": [torch.from_numpy(real[:, :2])],
           "naive": [torch.from_numpy(rng.normal(size=(1200, 2)))]}
    out = _effnet_distances(big)
    assert out["naive"]["kid_effnet_lite0"] == kernel_inception_distance(
        big["real"][0].numpy(), big["naive"][0].numpy(), subsets=100, subset_size=1000, seed=0)[0]
    assert (out["lwgan"]["n_real"], out["lwgan"]["n_fake"]) == (1100, 12)


def test_tracking_records_name_each_network_and_its_hash():
    nets = {"effnet": {"param": "evaluate.feature_weights", "network": "EfficientNet-Lite0 (ImageNet)",
                       "path": "data/weights/efficientnet_lite0.pth", "sha256": "ab" * 32},
            "inception": {"param": "evaluate.inception_weights", "network": "FID Inception",
                          "not_computed": "evaluate.inception_weights is empty"}}
    params, tags = tracking_records(nets)
    assert params == {"feature_net.effnet.path": "data/weights/efficientnet_lite0.pth",
                      "feature_net.effnet.sha256": "ab" * 32,
                      "feature_net.inception.not_computed": "evaluate.inception_weights is empty"}
    assert tags["lwgan.feature_net.effnet"] == ("EfficientNet-Lite0 (ImageNet): "
                                                "data/weights/efficientnet_lite0.pth (sha256 abababababab)")
    assert "not computed" in tags["lwgan.feature_net.inception"]
