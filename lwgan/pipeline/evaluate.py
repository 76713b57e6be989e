"""The evaluate stage's work: self-imitation on the validation videos, for the trained LWGAN and for a naive
reference, with pictures and videos a person can look at.

Self-imitation (the paper's protocol): in every validation video the first usable frame is the source and
every other usable frame (at most `max_frames` of them, spread evenly) the target; the output is compared
with the real target frame by SSIM, PSNR (whole image) and L1 on the target's body (its rendered
silhouette). The naive reference needs no network: the source texture warped by T onto the target body,
over the source's background with the body inpainted (OpenCV's Telea method), so every LWGAN number has a
baseline beside it.

Cross-imitation has no ground truth: its outputs are compared as a set with the real validation frames by
FID, and scored alone by the Inception Score, both from the FID Inception network (`lwgan.metrics.inception`).
LPIPS (`lwgan.metrics.lpips`) and the Inception metrics are computed when their published weights are given
(`lpips_backbone` + `lpips_linear`, `inception_weights`); otherwise they are reported as not computed, with
the reason, never estimated or substituted.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lwgan import config
from lwgan.data.pairs import PairDataset, PairOptions
from lwgan.io import write_png, write_video
from lwgan.metrics.distribution import feature_statistics, frechet_distance, inception_score
from lwgan.metrics.image import masked_l1, psnr, ssim
from lwgan.metrics.inception import FIDInception, load_inception
from lwgan.metrics.lpips import LPIPS, load_lpips
from lwgan.nets import Generator
from lwgan.nets.masks import BACKGROUND_CHANNEL, BACKGROUND_ERODE, dilate
from lwgan.progress import ProgressLog
from lwgan.train import checkpoint
from lwgan.train.loop import net_options
from lwgan.train.objective import Batch, generate, scaled_kernel
from lwgan.train.visuals import to_uint8
from lwgan.warp.flow import flow_valid, warp

log = logging.getLogger(__name__)

METHODS = ("lwgan", "naive")
COLUMNS = ("source", "driving", "naive reference", "LWGAN")  # self-imitation: driving = ground truth


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
    lpips_net: str = "alex"
    lpips_backbone: str = ""
    lpips_linear: str = ""
    inception_weights: str = ""


def load_generator(path: Path, device: torch.device) -> tuple[Generator, config.TrainParams]:
    """The trained G of a checkpoint, in eval mode, and the train params it was made with."""
    return generator_from_state(checkpoint.load(path), path, device)


def generator_from_state(state: Mapping[str, Any], path: Path, device: torch.device
                         ) -> tuple[Generator, config.TrainParams]:
    """`load_generator` for a checkpoint already read (`checkpoint.load`) from `path`."""
    weights, cfg = state["generator"], state["config"]
    try:
        tree = {"data": {"image_size": cfg["train"]["image_size"]}, "train": cfg["train"]}
        train = config.from_dict(tree).train
    except config.ConfigError as err:
        raise checkpoint.CheckpointError(f"checkpoint {path} holds a config this lwgan cannot read: "
                                         f"{err}") from err
    generator = Generator(net_options(train))
    try:
        generator.load_state_dict(weights)
    except RuntimeError as err:
        raise checkpoint.CheckpointError(f"checkpoint {path} does not match its own config: {err}") from err
    return generator.to(device).eval(), train


def naive_reference(batch: Batch) -> torch.Tensor:
    """The source warped by T on the target body, over the source's inpainted background: (B, 3, H, W)."""
    warped = warp(batch.src_img, batch.flow)  # (B, 3, H, W)
    valid = flow_valid(batch.flow)[:, None].to(warped.dtype)  # (B, 1, H, W)
    body = 1.0 - batch.src_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
    hole = dilate(body, scaled_kernel(BACKGROUND_ERODE, batch.src_img.shape[-1]))  # the body and a margin
    images, holes = to_uint8(batch.src_img), (hole[:, 0] > 0.5).cpu().numpy().astype(np.uint8)
    background = np.stack([cv2.inpaint(im, m, 3, cv2.INPAINT_TELEA)
                           for im, m in zip(images, holes, strict=True)])
    bg = torch.from_numpy(background).permute(0, 3, 1, 2).float().to(warped.device) / 127.5 - 1.0
    return valid * warped + (1.0 - valid) * bg


def _scores(fake: torch.Tensor, real: torch.Tensor, body: torch.Tensor,
            lpips: LPIPS | None) -> dict[str, np.ndarray]:
    scores = {"ssim": ssim(fake, real).cpu().numpy(), "psnr": psnr(fake, real).cpu().numpy(),
              "masked_l1": masked_l1(fake, real, body).cpu().numpy()}
    if lpips is not None:
        scores["lpips"] = lpips(fake.float(), real.float()).cpu().numpy()
    return scores


def _lpips(settings: EvalSettings, device: torch.device) -> tuple[LPIPS | None, str]:
    """The LPIPS network when its weights are given and can be had, else None and the reason."""
    if not (settings.lpips_backbone and settings.lpips_linear):
        return None, "no LPIPS weights were given (evaluate.lpips_backbone and evaluate.lpips_linear)"
    try:
        model = load_lpips(settings.lpips_net, settings.lpips_backbone, settings.lpips_linear)
    except FileNotFoundError as err:
        log.warning("LPIPS is not computed: %s", err)
        return None, str(err)
    return model.to(device), f"LPIPS v0.1 {settings.lpips_net} from {settings.lpips_backbone}"


def _inception(settings: EvalSettings, device: torch.device) -> tuple[FIDInception | None, str]:
    """The FID Inception network when its weights are given and can be had, else None and the reason."""
    if not settings.inception_weights:
        return None, "no Inception weights were given (evaluate.inception_weights)"
    try:
        model = load_inception(settings.inception_weights)
    except FileNotFoundError as err:
        log.warning("FID and IS are not computed: %s", err)
        return None, str(err)
    return model.to(device), f"FID Inception from {settings.inception_weights}"


def _distribution(features: Mapping[str, list[torch.Tensor]], logits: Mapping[str, list[torch.Tensor]]
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


def _spread(rows: np.ndarray, count: int) -> np.ndarray:
    """At most `count` of `rows`, evenly spread (all of them for count 0)."""
    if count and len(rows) > count:
        return rows[np.linspace(0, len(rows) - 1, count).round().astype(int)]
    return rows


def _subject(video: str) -> str:
    """The person of a video id: iPER's <subject>_<cloth>_<action> (the whole id for other sources)."""
    return video.split("_")[0]


class _Runner:
    """G and the naive reference over chosen pairs, in batches: yields (batch, outputs) per batch."""

    def __init__(self, settings: EvalSettings) -> None:
        self.device = torch.device(settings.device)
        self.generator, train = load_generator(settings.checkpoint, self.device)
        self.bg_kernel = scaled_kernel(BACKGROUND_ERODE, train.image_size)
        self.data = PairDataset(settings.frames, settings.maps, settings.smpl, settings.body,
                                PairOptions(image_size=train.image_size, split="val", augment=False))
        self.batch_size = settings.batch_size

    def __call__(self, video: str, source: int, rows: np.ndarray, src_video: str | None = None):
        for start in range(0, len(rows), self.batch_size):
            items = [self.data.pair(video, source, int(r), src_video=src_video)
                     for r in rows[start:start + self.batch_size]]
            batch = Batch.from_items(torch.utils.data.default_collate(items), self.device)
            with torch.no_grad():
                outputs = {"lwgan": generate(self.generator, batch, self.bg_kernel).tgt,
                           "naive": naive_reference(batch)}
            yield batch, outputs


def _side_by_side(batch: Batch, outputs: Mapping[str, torch.Tensor]) -> list[np.ndarray]:
    """(H, 4W, 3) frames: source | driving | naive | LWGAN."""
    tiles = [to_uint8(t) for t in (batch.src_img, batch.tgt_img, outputs["naive"], outputs["lwgan"])]
    return [np.concatenate(row, axis=1) for row in zip(*tiles, strict=True)]


def evaluate(settings: EvalSettings) -> dict[str, Any]:
    """Self-imitation on every validation video (module docstring) with metrics, `grid.png` and one mp4
    per video; cross-imitation (each validation video's first frame driven by another person's video,
    or another video when there is one person) as `cross_grid.png` and mp4s. Returns the metrics."""
    run = _Runner(settings)
    data = run.data
    lpips, lpips_note = _lpips(settings, run.device)
    inception, inception_note = _inception(settings, run.device)
    features: dict[str, list[torch.Tensor]] = {"real": [], **{m: [] for m in METHODS}}
    logits: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}

    def describe(images: torch.Tensor, method: str) -> None:
        if inception is not None:
            with torch.no_grad():
                pool, scores = inception(images.float())
            features[method].append(pool.cpu().double())
            if method in logits:
                logits[method].append(scores.cpu().double())
    out_dir = Path(settings.out_dir)
    (out_dir / "videos").mkdir(parents=True, exist_ok=True)
    sources = {video: int(data.sources[v][0]) for v, video in enumerate(data.videos)}
    usable = {video: data.targets[data.targets[:, 0] == v, 1] for v, video in enumerate(data.videos)}
    totals: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in METHODS}
    per_video: dict[str, dict[str, dict[str, float]]] = {}
    grid_rows, cross_rows = [], []
    jobs = [(video, _spread(usable[video][usable[video] != sources[video]], settings.max_frames))
            for video in data.videos]
    progress = ProgressLog("evaluate", "pairs")
    done, total = 0, sum(len(rows) for _, rows in jobs)
    for video, rows in jobs:
        scores: dict[str, dict[str, list[np.ndarray]]] = {m: {} for m in METHODS}
        frames = []
        for batch, outputs in run(video, sources[video], rows):
            body = 1.0 - batch.tgt_cond[:, BACKGROUND_CHANNEL:BACKGROUND_CHANNEL + 1]
            for method, fake in outputs.items():
                for name, values in _scores(fake, batch.tgt_img, body, lpips).items():
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
    if len(data.videos) > 1:
        for i, video in enumerate(data.videos):
            others = data.videos[i + 1:] + data.videos[:i]
            driving = next((o for o in others if _subject(o) != _subject(video)), others[0])
            frames = []
            for batch, outputs in run(driving, sources[video], _spread(usable[driving], settings.max_frames),
                                      video):
                frames += _side_by_side(batch, outputs)
                for method in METHODS:
                    describe(outputs[method], method)
            write_video(out_dir / "videos" / f"cross_{video}_by_{driving}.mp4", frames, settings.fps)
            cross_rows.append(frames[len(frames) // 2])
            cross += len(frames)
        write_grid(out_dir / "cross_grid.png", cross_rows, COLUMNS)
    not_computed = {} if lpips else {"lpips": lpips_note}
    cross_metrics: dict[str, dict[str, float]] = {}
    if inception is None or cross < 2:
        not_computed.update(fid=inception_note if inception is None else "fewer than 2 cross-imitation pairs",
                            inception_score=inception_note)
    else:
        cross_metrics = _distribution(features, logits)
    return {"self_imitation": {m: _summary(totals[m]) for m in METHODS}, "pairs": total,
            "videos": len(per_video), "per_video": per_video, "cross_imitation_pairs": cross,
            "cross_imitation": cross_metrics, "lpips": lpips_note, "inception": inception_note,
            "not_computed": not_computed}


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
