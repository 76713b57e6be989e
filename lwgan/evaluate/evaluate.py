"""The evaluate stage's work: self-imitation on the validation videos, for the trained LWGAN and for a naive
reference, with pictures and videos a person can look at.

Self-imitation (the paper's protocol): in every validation video the first usable frame is the source and
every other usable frame (at most `max_frames` of them, spread evenly) the target; the output is compared
with the real target frame by SSIM, PSNR (whole image), LPIPS v0.1 (`lwgan.metrics.lpips`) and L1 on the
target's body (its rendered silhouette). The naive reference needs no network: the source texture warped
by T onto the target body, over the source's background with the body inpainted (OpenCV's Telea method),
so every LWGAN number has a baseline beside it.

Cross-imitation has no ground truth: each method's outputs are compared as a set with the real validation
frames (the self-imitation targets) by the Fréchet distance and the KID of EfficientNet-Lite0's pooled
ImageNet features (`fd_effnet_lite0`, `kid_effnet_lite0`; not FID: another network, so not comparable
with published FIDs), and, when the FID Inception network is given, by FID and the Inception Score
(`lwgan.metrics.inception`). One pass of each network over each batch gathers the features.

One rule for every network's weights param (`lpips_backbone`, `lpips_linear`, `feature_weights`,
`inception_weights`): empty means "not computed", said with the reason in `not_computed`; a file that is
missing or not the recorded one (`lwgan.weights.verified_path`) is a `WeightsError` naming the param and
`make weights`, never a silent skip and never a substitute. `feature_nets` records which file (path and
sha256) each metric used.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lwgan import config, weights
from lwgan.io import write_png, write_video
from lwgan.metrics.distribution import (
    feature_statistics,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)
from lwgan.metrics.efficientnet import EfficientNetLite0, load_efficientnet_lite0
from lwgan.metrics.image import masked_l1, psnr, ssim
from lwgan.metrics.inception import FIDInception, load_inception
from lwgan.metrics.lpips import LPIPS, load_lpips
from lwgan.nets.build import generator_from_state, read_checkpoint, trained_on
from lwgan.nets.masks import BACKGROUND_CHANNEL, BACKGROUND_ERODE, dilate, scaled_kernel
from lwgan.nets.options import resolve_background
from lwgan.progress import ProgressLog
from lwgan.render.shade import to_uint8
from lwgan.train.distributed import from_environment, pick_device
from lwgan.train.objective import Batch, generate
from lwgan.train.pairs import PairDataset, PairOptions, subject_of
from lwgan.warp.flow import flow_valid, warp

log = logging.getLogger(__name__)

METHODS = ("lwgan", "naive")
COLUMNS = ("source", "driving", "naive reference", "LWGAN")  # self-imitation: driving = ground truth
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0  # Bińkowski et al.'s subsets of (at most) 1000
DISTRIBUTION_NOTE = (
    "fd_effnet_lite0 / kid_effnet_lite0: Frechet distance and KID of EfficientNet-Lite0 (ImageNet) pooled "
    "features (1280) of each method's cross-imitation outputs against the real validation frames; not FID "
    "(another network), so not comparable with published FIDs. At small sample counts (n_real, n_fake) "
    "prefer KID: it is unbiased, while the Frechet distance is biased upwards when n is small against the "
    "1280 feature dimensions")
# the metrics of each distribution network, reported or not computed together
DISTRIBUTION_METRICS = {"effnet": ("fd_effnet_lite0", "kid_effnet_lite0"),
                        "inception": ("fid", "inception_score")}
_BACKBONE_NAMES = {"alex": "AlexNet", "vgg": "VGG16"}  # lpips_net -> the torchvision network
_DEFAULTS = config.EvaluateParams()  # params.yaml's defaults: the files `make weights` writes


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Inputs (caches, body model, checkpoint) and outputs (folder of pictures and videos)."""

    frames: Path
    maps: Path
    smpl: Path
    body: Path
    checkpoint: Path
    out_dir: Path
    max_frames: int = 0
    batch_size: int = 8
    device: str = "cpu"
    fps: float = 15.0
    lpips_net: str = _DEFAULTS.lpips_net
    lpips_backbone: str = _DEFAULTS.lpips_backbone  # weights params: "" = not computed (module docstring)
    lpips_linear: str = _DEFAULTS.lpips_linear
    feature_weights: str = _DEFAULTS.feature_weights
    inception_weights: str = _DEFAULTS.inception_weights
    cross_imitation: bool = True  # False: self-imitation only (no cross pairs, no distribution metrics)
    split: str = "val"  # "dev": the training person `dev_subject` held out of a development run instead
    dev_subject: str = ""
    background: str = "auto"  # learned | fill (the background stream's base alone) | auto: resolve_background


def naive_reference(batch: Batch) -> torch.Tensor:
    """The source warped by T on the target body, over the source's inpainted background: (B, 3, H, W)."""
    warped = warp(batch.src_img, batch.flow)  # (B, 3, H, W)
    valid = flow_valid(batch.flow)[:, None].to(warped.dtype)  # (B, 1, H, W)
    body = 1.0 - batch.src_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
    hole = dilate(body, scaled_kernel(BACKGROUND_ERODE, batch.src_img.shape[-1]))  # the body and a margin
    images = to_uint8(batch.src_img, low=-1.0, channels_first=True)
    holes = (hole[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
    background = np.stack([cv2.inpaint(im, m, 3, cv2.INPAINT_TELEA)
                           for im, m in zip(images, holes, strict=True)])
    bg = torch.from_numpy(background).permute(0, 3, 1, 2).float().to(warped.device) / 127.5 - 1.0
    return valid * warped + (1.0 - valid) * bg


@torch.no_grad()
def image_scores(fake: torch.Tensor, real: torch.Tensor, body: torch.Tensor, lpips: LPIPS | None,
                 valid: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Per-image SSIM, PSNR, body L1 (inside `body`) and LPIPS of (B, 3, H, W) images in [-1, 1]; pixels
    where `valid` is 0 (a crop's padding) left out."""
    scores = {"ssim": ssim(fake, real, valid).cpu().numpy(), "psnr": psnr(fake, real, valid).cpu().numpy(),
              "masked_l1": masked_l1(fake, real, body, valid).cpu().numpy()}
    if lpips is not None:
        scores["lpips"] = lpips(fake.float(), real.float(), valid).cpu().numpy()
    return scores


@dataclasses.dataclass(frozen=True)
class FeatureNets:
    """The metrics' networks of one evaluation, each None when its weights param is empty.

    lpips, effnet, inception: the loaded networks (on the evaluation's device).
    records:      role -> where its weights came from, for eval.json's `feature_nets` and the tracked run:
                  {"param", "network", "path", "sha256"}, or {"param", "network", "not_computed": reason}.
    """

    lpips: LPIPS | None
    effnet: EfficientNetLite0 | None
    inception: FIDInception | None
    records: dict[str, dict[str, str]]

    def reason(self, *roles: str) -> str:
        """Why the metric of these roles is not computed ("" when all their weights were given)."""
        return next((self.records[r]["not_computed"] for r in roles if "not_computed" in self.records[r]), "")


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _record(param: str, network: str, value: str) -> dict[str, str]:
    """Where a network's weights come from; a local file is checked here (`lwgan.weights.verified_path`:
    WeightsError naming `param` when it is missing or not the recorded file)."""
    if not value:
        return {"param": param, "network": network, "not_computed": f"{param} is empty"}
    if _is_url(value):  # fetched by the loader into torch.hub's cache; hashed after the load
        return {"param": param, "network": network, "path": value, "sha256": ""}
    path = weights.verified_path(param, value)
    return {"param": param, "network": network, "path": str(path), "sha256": weights.file_sha256(path)}


def _hash_url_download(record: dict[str, str]) -> None:
    """The sha256 of a URL's file, from torch.hub's cache, where `load_state_dict_from_url` keeps it."""
    if _is_url(record.get("path", "")):
        name = os.path.basename(urllib.parse.urlparse(record["path"]).path)
        cached = Path(torch.hub.get_dir()) / "checkpoints" / name
        record["sha256"] = (weights.sha256_file(cached) if cached.is_file()
                            else "unknown (not in torch.hub's cache)")


def _load(record: Mapping[str, str], loader: Callable[..., torch.nn.Module], *sources: str
          ) -> torch.nn.Module:
    """`loader(*sources)`; a file it cannot have (a URL that cannot be fetched) is a WeightsError naming the
    param."""
    try:
        return loader(*sources)
    except FileNotFoundError as err:
        raise weights.WeightsError(f"{record['param']}: {err}; check the URL, or run "
                                   f"`{weights.FETCH_COMMAND}` and give a local file") from err


def load_feature_nets(settings: EvalSettings, device: torch.device) -> FeatureNets:
    """LPIPS, EfficientNet-Lite0 and the FID Inception network from the settings' weights params (module
    docstring: empty = not computed, missing or corrupt = WeightsError), with their provenance."""
    records = {
        "lpips_backbone": _record("evaluate.lpips_backbone",
                                  f"{_BACKBONE_NAMES[settings.lpips_net]} (ImageNet; LPIPS v0.1 backbone)",
                                  settings.lpips_backbone),
        "lpips_linear": _record("evaluate.lpips_linear", f"LPIPS v0.1 {settings.lpips_net} linear layers",
                                settings.lpips_linear),
        "effnet": _record("evaluate.feature_weights", "EfficientNet-Lite0 (ImageNet)",
                          settings.feature_weights),
        "inception": _record("evaluate.inception_weights", "FID Inception (pt_inception-2015-12-05)",
                             settings.inception_weights),
    }
    lpips = effnet = inception = None
    if not any("not_computed" in records[r] for r in ("lpips_backbone", "lpips_linear")):
        lpips = _load(records["lpips_backbone"], load_lpips, settings.lpips_net,
                      records["lpips_backbone"]["path"], records["lpips_linear"]["path"]).to(device)
    if "not_computed" not in records["effnet"]:
        effnet = _load(records["effnet"], load_efficientnet_lite0, records["effnet"]["path"]).to(device)
    if "not_computed" not in records["inception"]:
        inception = _load(records["inception"], load_inception, records["inception"]["path"]).to(device)
    for record in records.values():
        _hash_url_download(record)
    for line in tracking_records(records)[1].values():
        log.info("%s", line)
    return FeatureNets(lpips, effnet, inception, records)


def tracking_records(feature_nets: Mapping[str, Mapping[str, str]]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of the tracked run for eval.json's `feature_nets`: params
    ``feature_net.<role>.path`` / ``.sha256`` (or ``.not_computed``), tags ``lwgan.feature_net.<role>``
    (one line each, as the train stage's)."""
    params, tags = {}, {}
    for role, record in feature_nets.items():
        if "not_computed" in record:
            params[f"feature_net.{role}.not_computed"] = record["not_computed"]
            tags[f"lwgan.feature_net.{role}"] = (f"{record['network']}: not computed "
                                                 f"({record['not_computed']})")
        else:
            params[f"feature_net.{role}.path"] = record["path"]
            params[f"feature_net.{role}.sha256"] = record["sha256"]
            tags[f"lwgan.feature_net.{role}"] = (f"{record['network']}: {record['path']} "
                                                 f"(sha256 {record['sha256'][:12]})")
    return params, tags


def _effnet_distances(features: Mapping[str, list[torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Fréchet distance and KID of every method's EfficientNet-Lite0 features against the real frames',
    with the sample counts (KID on subsets of min(1000, n) rows, n the smaller count)."""
    real = torch.cat(features["real"]).numpy()  # (N, 1280)
    real_stats = feature_statistics(real)
    out = {}
    for method in METHODS:
        fake = torch.cat(features[method]).numpy()  # (M, 1280)
        size = min(KID_SUBSET_SIZE, len(real), len(fake))
        kid, kid_std = kernel_inception_distance(real, fake, subsets=KID_SUBSETS, subset_size=size,
                                                 seed=KID_SEED)
        out[method] = {"fd_effnet_lite0": frechet_distance(*feature_statistics(fake), *real_stats),
                       "kid_effnet_lite0": kid, "kid_effnet_lite0_std": kid_std,
                       "n_real": len(real), "n_fake": len(fake)}
    return out


def _fid_is(features: Mapping[str, list[torch.Tensor]], logits: Mapping[str, list[torch.Tensor]]
            ) -> dict[str, dict[str, float]]:
    """FID of every method's cross-imitation outputs against the real frames, and their Inception Score."""
    real = feature_statistics(torch.cat(features["real"]).numpy())
    out = {}
    for method in METHODS:
        f = feature_statistics(torch.cat(features[method]).numpy())
        probs = torch.cat(logits[method]).softmax(dim=1).numpy()
        score, spread = inception_score(probs, splits=min(10, len(probs)))
        out[method] = {"fid": frechet_distance(*f, *real), "inception_score": score,
                       "inception_score_std": spread}
    return out


def _summary(values: Mapping[str, list[np.ndarray]]) -> dict[str, float]:
    return {name: float(np.mean(np.concatenate(parts))) for name, parts in values.items()}


def spread(rows: np.ndarray, count: int) -> np.ndarray:
    """At most `count` of `rows`, evenly spread (all of them for count 0)."""
    if count and len(rows) > count:
        return rows[np.linspace(0, len(rows) - 1, count).round().astype(int)]
    return rows


class PairRunner:
    """G and the naive reference over chosen pairs, in batches: yields (batch, outputs) per batch. G gets
    its pairs as it was trained (`train.visible_faces`: the flow only through faces the source shows); the
    naive reference is always the plain warp, through every face, so that its figures are the same
    whichever model is scored; the batch yielded is the plain one."""

    def __init__(self, settings: EvalSettings) -> None:
        self.device = torch.device(settings.device)
        state = read_checkpoint(settings.checkpoint)
        self.generator, train = generator_from_state(state, Path(settings.checkpoint), self.device)
        self.bg_kernel = scaled_kernel(BACKGROUND_ERODE, train.image_size)
        self.data = PairDataset(settings.frames, settings.maps, settings.smpl, settings.body,
                                PairOptions(image_size=train.image_size, split=settings.split,
                                            dev_subject=settings.dev_subject, augment=False))
        self.background = resolve_background(settings.background, trained_on(state),
                                             self.data.frames.data_kind(), self.generator.bg.residual)
        self.generator.use_background(self.background)
        self.visible_faces = train.visible_faces
        self.batch_size = settings.batch_size

    def __call__(self, video: str, source: int, rows: np.ndarray, src_video: str | None = None):
        for batch, outputs, _ in self.batches(video, source, rows, src_video):
            yield batch, outputs

    def batches(self, video: str, source: int, rows: np.ndarray, src_video: str | None = None,
                visible: bool = False):
        """As calling the runner, yielding (batch, outputs, visible flows): with `visible` (or for a model
        trained with `train.visible_faces`) the (B, H, W, 2) flows of the batch's pairs through the faces
        the source shows, read from the same records as the batch, on the runner's device; else None."""
        visible = visible or self.visible_faces
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            items = torch.utils.data.default_collate(
                [self.data.pair(video, source, int(r), src_video=src_video, visible_flow=visible)
                 for r in chunk])
            batch = Batch.from_items(items, self.device)
            flows = items["visible_flow"].to(self.device) if visible else None
            given = dataclasses.replace(batch, flow=flows) if self.visible_faces else batch
            with torch.no_grad():
                outputs = {"lwgan": generate(self.generator, given, self.bg_kernel).tgt,
                           "naive": naive_reference(batch)}
            yield batch, outputs, flows


def _side_by_side(batch: Batch, outputs: Mapping[str, torch.Tensor]) -> list[np.ndarray]:
    """(H, 4W, 3) frames: source | driving | naive | LWGAN."""
    tiles = [to_uint8(t, low=-1.0, channels_first=True)
             for t in (batch.src_img, batch.tgt_img, outputs["naive"], outputs["lwgan"])]
    return [np.concatenate(row, axis=1) for row in zip(*tiles, strict=True)]


def evaluate(settings: EvalSettings,
             on_batch: Callable[[Batch, Mapping[str, torch.Tensor]], None] | None = None) -> dict[str, Any]:
    """Self-imitation on every validation video (module docstring) with metrics, `grid.png` and one mp4
    per video; cross-imitation (each validation video's first frame driven by another person's video,
    or another video when there is one person) as `cross_grid.png` and mp4s, with their distribution
    metrics. Returns the metrics, `not_computed` (metric -> reason) and `feature_nets` (what each used).
    `on_batch(batch, outputs)` sees every self-imitation batch and its outputs by method, as scored.

    A weights param naming a missing or corrupt file raises `lwgan.weights.WeightsError` before any pair
    is evaluated."""
    run = PairRunner(settings)
    data = run.data
    nets = load_feature_nets(settings, run.device)
    lpips = nets.lpips
    # features[net]["real" | method]: (B, D) float64 per batch; logits[method]: Inception's (B, 1008)
    features = {net: {"real": [], **{m: [] for m in METHODS}} for net in ("effnet", "inception")}
    logits: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}

    def describe(images: torch.Tensor, group: str) -> None:
        """One pass of each distribution network over a batch of `group` ("real" or a method)."""
        with torch.no_grad():
            if nets.effnet is not None:
                features["effnet"][group].append(nets.effnet.features(images.float()).cpu().double())
            if nets.inception is not None:
                pool, scores = nets.inception(images.float())
                features["inception"][group].append(pool.cpu().double())
                if group in logits:
                    logits[group].append(scores.cpu().double())
    out_dir = Path(settings.out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    sources = {video: int(data.sources[v][0]) for v, video in enumerate(data.videos)}
    usable = {video: data.targets[data.targets[:, 0] == v, 1] for v, video in enumerate(data.videos)}
    totals: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in METHODS}
    per_video: dict[str, dict[str, dict[str, float]]] = {}
    grid_rows, cross_rows = [], []
    jobs = [(video, spread(usable[video][usable[video] != sources[video]], settings.max_frames))
            for video in data.videos]
    progress = ProgressLog("evaluate", "pairs")
    done, total = 0, sum(len(rows) for _, rows in jobs)
    for video, rows in jobs:
        scores: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in METHODS}
        frames = []
        for batch, outputs in run(video, sources[video], rows):
            if on_batch is not None:
                on_batch(batch, outputs)
            body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
            for method, fake in outputs.items():
                for name, values in image_scores(fake, batch.tgt_img, body, lpips, batch.tgt_valid).items():
                    scores[method].setdefault(name, []).append(values)
                    totals[method].setdefault(name, []).append(values)
            frames += _side_by_side(batch, outputs)
            describe(batch.tgt_img, "real")
            done += len(batch.flow)
            progress(done, total)
        if not frames:
            continue
        per_video[video] = {m: _summary(scores[m]) for m in METHODS}
        write_video(out_dir / "videos" / f"{video}.mp4", frames, settings.fps)
        grid_rows.append(frames[len(frames) // 2])
    if not grid_rows:
        raise ValueError(f"no validation pairs to evaluate in {settings.maps}: the validation split needs "
                         "videos with at least two usable frames")
    write_grid(out_dir / "grid.png", grid_rows, ("source", "driving = truth", *COLUMNS[2:]))
    cross = 0
    if len(data.videos) > 1 and settings.cross_imitation:
        for i, video in enumerate(data.videos):
            others = data.videos[i + 1:] + data.videos[:i]
            driving = next((o for o in others if subject_of(o) != subject_of(video)), others[0])
            frames = []
            for batch, outputs in run(driving, sources[video], spread(usable[driving], settings.max_frames),
                                      video):
                frames += _side_by_side(batch, outputs)
                for method in METHODS:
                    describe(outputs[method], method)
            write_video(out_dir / "videos" / f"cross_{video}_by_{driving}.mp4", frames, settings.fps)
            cross_rows.append(frames[len(frames) // 2])
            cross += len(frames)
        write_grid(out_dir / "cross_grid.png", cross_rows, COLUMNS)
    not_computed: dict[str, str] = {}
    cross_metrics: dict[str, dict[str, float]] = {}
    too_few = ("" if cross >= 2 else "fewer than 2 cross-imitation pairs" if settings.cross_imitation else
               "cross-imitation not asked for")
    if lpips is None:
        not_computed["lpips"] = nets.reason("lpips_backbone", "lpips_linear")
    for net, names in DISTRIBUTION_METRICS.items():
        reason = nets.reason(net) or too_few
        if reason:
            not_computed.update(dict.fromkeys(names, reason))
            continue
        computed = (_effnet_distances(features[net]) if net == "effnet" else
                    _fid_is(features[net], logits))
        for method, values in computed.items():
            cross_metrics.setdefault(method, {}).update(values)
    return {"self_imitation": {m: _summary(totals[m]) for m in METHODS}, "pairs": total,
            "videos": len(per_video), "per_video": per_video, "cross_imitation_pairs": cross,
            "cross_imitation": cross_metrics, "cross_imitation_note": DISTRIBUTION_NOTE,
            "not_computed": not_computed, "feature_nets": nets.records, "background": run.background}


def write_grid(path: Path, rows: list[np.ndarray], columns: tuple[str, ...]) -> None:
    """One row per video, one labelled column per tile, upscaled to at least 128 px per tile."""
    height = rows[0].shape[0]
    scale = max(1, -(-128 // height))
    big = [cv2.resize(r, (r.shape[1] * scale, height * scale), interpolation=cv2.INTER_NEAREST) for r in rows]
    tile = big[0].shape[1] // len(columns)
    label = np.full((20, big[0].shape[1], 3), 255, np.uint8)
    for c, name in enumerate(columns):
        cv2.putText(label, name, (c * tile + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
                    cv2.LINE_AA)
    write_png(path, np.concatenate([label, *big]))


def settings_from_params(p: config.EvaluateParams, frames: Path, maps: Path, smpl: Path, body: Path,
                         checkpoint: Path, out_dir: Path) -> EvalSettings:
    """The evaluate stage's settings from params ``evaluate.*``; `device` is resolved for this process (a
    torchrun rank gets its own GPU)."""
    return EvalSettings(frames=frames, maps=maps, smpl=smpl, body=body, checkpoint=checkpoint,
                        out_dir=out_dir,
                        max_frames=p.max_frames_per_video, batch_size=p.batch_size,
                        device=str(pick_device(p.device, from_environment())), fps=p.fps,
                        lpips_net=p.lpips_net, lpips_backbone=p.lpips_backbone, lpips_linear=p.lpips_linear,
                        feature_weights=p.feature_weights, inception_weights=p.inception_weights,
                        background=p.background)
