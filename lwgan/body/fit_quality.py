"""How good each video's fit is, and the verdict on it: "ok", "poor" or "failed".

The figures come from what the SMPL shard stores (the fitted parameters, the keypoints they were fitted
to, the status flags and the per-frame quality the fit measured), so that changing a threshold re-judges
the videos without refitting any: the thresholds are no part of a shard's key.

Per video (`VideoFigures`):

    detection_rate     frames where the keypoint source found a person / frames
    fitted_rate        frames whose fit is usable / frames: a person found, and the fit flagged none of
                       `NO_PERSON` (too few confident keypoints), `NOT_CONVERGED`, `IMPLAUSIBLE_SCALE`
    reprojection_p50,  median and 95th percentile over the frames with a person found and a body fitted
    reprojection_p95   to them (not filled from neighbours) of the relative reprojection error
                       (`relative_reprojection`): the mean distance between the stored mesh's projected
                       keypoints and the confident keypoints, divided by the
                       body's size in the frame (`body_size`: the longer side of the box around those
                       keypoints, the body's height when it stands); a share of the body, so one threshold
                       serves every image size and crop
    silhouette_iou     median over the frames with a person found of the IoU between the fitted mesh's
                       silhouette and the person mask (`FitWorker._silhouette_iou`); None without masks

The keypoint error is measured on the body posed again from the stored parameters, not taken from the
fit's own ``reprojection_px``: the stored parameters are what the later stages render, and the two can
differ (on the default set, by up to 24 pixels in frames whose global rotation lies a milliradian short
of pi, where the conversion of the fitted rotation to axis-angle loses precision).

`judge` turns the figures into a status with the ``fit.failed_*`` / ``fit.poor_*`` thresholds
(`Thresholds`); a video whose fit raised is "failed" without figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lwgan.body.fitting import IMPLAUSIBLE_SCALE, NO_PERSON, NOT_CONVERGED
from lwgan.body.model import BodyModel
from lwgan.body.pose_metrics import reprojection_error
from lwgan.body.sequence import project_keypoints
from lwgan.data.smpl_cache import SmplCache
from lwgan.errors import UserError
from lwgan.geometry import ndc_to_pixel

OK, POOR, FAILED = "ok", "poor", "failed"
STATUSES = (OK, POOR, FAILED)
UNUSABLE = NO_PERSON | NOT_CONVERGED | IMPLAUSIBLE_SCALE  # status flags of a frame whose fit is not usable
INTERPOLATED = NO_PERSON | IMPLAUSIBLE_SCALE  # the stored body is filled from neighbours, not fitted
_CHUNK = 256  # frames posed at once (bounds the memory of the posed meshes)


class FitQualityError(UserError):
    """More videos failed than ``fit.max_failure_fraction`` allows."""


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where a video turns "poor" and "failed" (the ``fit`` params of the same names). A video is failed
    when any figure is past its failed_* threshold, poor when any is past its poor_* threshold."""

    failed_fitted_rate: float = 0.5
    poor_fitted_rate: float = 0.8
    failed_reprojection: float = 0.15
    poor_reprojection: float = 0.05
    failed_iou: float = 0.3
    poor_iou: float = 0.6

    @classmethod
    def from_params(cls, fit: Any) -> Thresholds:
        """The thresholds of a `lwgan.config.FitParams`."""
        return cls(**{field.name: getattr(fit, field.name) for field in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class VideoFigures:
    """The quality figures of one video (module docstring); None where there is nothing to measure.
    worst_frame: the frame with the largest relative reprojection error (None without any)."""

    detection_rate: float | None
    fitted_rate: float | None
    reprojection_p50: float | None
    reprojection_p95: float | None
    silhouette_iou: float | None
    worst_frame: int | None


@dataclasses.dataclass(frozen=True)
class VideoReport:
    """A video's figures (None when its fit raised), its status and why it is not "ok"."""

    figures: VideoFigures | None
    status: str
    reasons: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The video's row of ``metrics/fit.json``."""
        names = ("detection_rate", "fitted_rate", "reprojection_p50", "reprojection_p95", "silhouette_iou")
        row: dict[str, Any] = {name: getattr(self.figures, name, None) for name in names}
        row["status"] = self.status
        return row

    def describe(self) -> str:
        """One line: the status, why, and the figures."""
        f = self.figures
        if f is None:
            return f"{self.status}: {'; '.join(self.reasons)}"

        def num(value: float | None, digits: int) -> str:
            return "n/a" if value is None else f"{value:.{digits}f}"

        return (f"{self.status}: {'; '.join(self.reasons)} (detection_rate {num(f.detection_rate, 2)}, "
                f"fitted_rate {num(f.fitted_rate, 2)}, reprojection p50 {num(f.reprojection_p50, 3)} / p95 "
                f"{num(f.reprojection_p95, 3)} of the body size, silhouette IoU {num(f.silhouette_iou, 2)})")


def body_size(keypoints: np.ndarray, threshold: float) -> np.ndarray:
    """(N,) float64 size of the body in each frame, pixels: the longer side of the box around the keypoints
    (N, K, 3: u, v, confidence) whose confidence is >= threshold (the body's height for an upright person,
    its length for a lying one). NaN where fewer than two such keypoints or a box of zero size."""
    uv = keypoints[..., :2].astype(np.float64)  # (N, K, 2)
    confident = (keypoints[..., 2] >= threshold) & np.isfinite(uv).all(axis=-1)  # (N, K)
    low = np.where(confident[..., None], uv, np.inf).min(axis=1)  # (N, 2)
    high = np.where(confident[..., None], uv, -np.inf).max(axis=1)  # (N, 2)
    with np.errstate(invalid="ignore"):
        size = (high - low).max(axis=1)  # (N,)
    return np.where((confident.sum(axis=1) >= 2) & (size > 0), size, np.nan)


def relative_reprojection(body: BodyModel, fit: Mapping[str, np.ndarray], image_size: int,
                          threshold: float) -> np.ndarray:
    """(N,) float64 per frame of a fit (the arrays of an SMPL shard: betas, pose, cam, keypoints): the mean
    distance in pixels between the stored body's projected keypoints and the keypoints it was fitted to
    whose confidence is >= threshold (the fit's own rule, `FitOptions.confidence_threshold`), divided by
    `body_size`. The body is posed from the stored parameters, so this measures the mesh the later stages
    render. NaN where nothing can be measured."""
    keypoints = np.asarray(fit["keypoints"], np.float32)  # (N, K, 3)
    finite = np.isfinite(keypoints[..., :2]).all(axis=-1)  # (N, K)
    confident = torch.from_numpy((keypoints[..., 2] >= threshold) & finite).float()  # (N, K)
    target = torch.from_numpy(np.nan_to_num(keypoints[..., :2]))  # (N, K, 2)
    error = np.full(len(keypoints), np.nan)
    for start in range(0, len(keypoints), _CHUNK):
        frames = slice(start, start + _CHUNK)
        ndc = project_keypoints(body, fit["betas"], fit["pose"][frames], fit["cam"][frames])[..., :2]
        pixels = ndc_to_pixel(ndc, image_size, image_size)  # (n, K, 2)
        error[frames] = reprojection_error(pixels, target[frames], confident[frames], threshold=0.0).numpy()
    return error / body_size(keypoints, threshold)


def measure_video(body: BodyModel, fit: Mapping[str, np.ndarray], quality: Mapping[str, np.ndarray],
                  image_size: int, threshold: float) -> VideoFigures:
    """The figures of one video from its shard: `fit` (`SmplCache.params`) and `quality`
    (`SmplCache.quality`); threshold: `FitOptions.confidence_threshold` of the fit."""
    status = np.asarray(fit["status"]).astype(np.int64)  # (N,)
    if not len(status):
        return VideoFigures(None, None, None, None, None, None)
    if "found" in quality:
        found = np.asarray(quality["found"]) > 0
    else:  # a source that records no detections: a frame with any confident keypoint has a person
        found = (np.asarray(fit["keypoints"])[..., 2] >= threshold).any(axis=1)
    fitted = found & ((status & INTERPOLATED) == 0)
    relative = relative_reprojection(body, fit, image_size, threshold)
    measured = fitted & np.isfinite(relative)
    p50 = p95 = worst = None
    if measured.any():
        p50, p95 = (float(v) for v in np.percentile(relative[measured], [50, 95]))
        worst = int(np.argmax(np.where(measured, relative, -np.inf)))
    iou = None
    if "silhouette_iou" in quality:
        values = np.asarray(quality["silhouette_iou"], np.float64)
        values = values[found & np.isfinite(values)]
        iou = float(np.median(values)) if len(values) else None
    usable = found & ((status & UNUSABLE) == 0)
    return VideoFigures(float(found.mean()), float(usable.mean()), p50, p95, iou, worst)


def judge(figures: VideoFigures, thresholds: Thresholds) -> VideoReport:
    """The status of a video from its figures: failed past any failed_* threshold, else poor past any
    poor_* threshold, else ok; the reasons name the figure, its value and the param it crossed."""
    t = thresholds
    checks = (  # figure, value, True when lower is worse, failed threshold, poor threshold
        ("fitted_rate", figures.fitted_rate, True, ("failed_fitted_rate", t.failed_fitted_rate),
         ("poor_fitted_rate", t.poor_fitted_rate)),
        ("reprojection_p95", figures.reprojection_p95, False, ("failed_reprojection", t.failed_reprojection),
         ("poor_reprojection", t.poor_reprojection)),
        ("silhouette_iou", figures.silhouette_iou, True, ("failed_iou", t.failed_iou),
         ("poor_iou", t.poor_iou)),
    )
    reasons: dict[str, list[str]] = {FAILED: [], POOR: []}
    if figures.reprojection_p95 is None:
        reasons[FAILED].append("no frame with a fitted person")
    for name, value, lower_is_worse, *levels in checks:
        if value is None:
            continue
        for status, (key, limit) in zip((FAILED, POOR), levels, strict=True):
            if (value < limit) if lower_is_worse else (value > limit):
                side = "<" if lower_is_worse else ">"
                reasons[status].append(f"{name} {value:.3g} {side} fit.{key} {limit}")
                break
    for status in (FAILED, POOR):
        if reasons[status]:
            return VideoReport(figures, status, tuple(reasons[status]))
    return VideoReport(figures, OK)


def raised(reason: str) -> VideoReport:
    """The report of a video whose fit raised (`reason`: the job's failure)."""
    first = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    return VideoReport(None, FAILED, (f"its fit raised {first}",))


def check_failures(videos: Mapping[str, VideoReport], max_failure_fraction: float, overlays: str) -> None:
    """Raise `FitQualityError` (one line naming the failed videos) when more than max_failure_fraction of
    `videos` failed; `overlays` says where their pictures are."""
    failed = sorted(video for video, report in videos.items() if report.status == FAILED)
    if not videos or len(failed) / len(videos) <= max_failure_fraction:
        return
    shown = 20
    names = ", ".join(f"{video} ({'; '.join(videos[video].reasons)})" for video in failed[:shown])
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    raise FitQualityError(
        f"{len(failed)} of {len(videos)} videos failed, more than fit.max_failure_fraction = "
        f"{max_failure_fraction}: {names}{more}. Their figures are under 'videos' in the fit metrics and "
        f"their fitted meshes in {overlays}; fix their input, or raise fit.max_failure_fraction to accept "
        "them")


def summarise(cache: SmplCache, videos: Mapping[str, VideoReport], seconds: float = 0.0,
              frames_run: int = 0) -> dict[str, Any]:
    """The stage's metrics: quality numbers over every fitted frame of every video in the SMPL cache, the
    per-video table `videos` (video id -> `VideoReport.as_dict`, the videos whose fit raised included) and
    the counts ``videos_ok``, ``videos_poor``, ``videos_failed``."""
    parts: dict[str, list[np.ndarray]] = {}
    for video in cache.videos:
        params = cache.params(video)
        quality = cache.quality(video)
        status = params["status"].astype(np.int64)
        fitted = (status & INTERPOLATED) == 0  # frames fitted to their own keypoints: the means are over them
        usable = (status & UNUSABLE) == 0
        if "found" in quality:
            usable &= quality["found"] > 0
        parts.setdefault("usable", []).append(usable)
        parts.setdefault("reprojection_px", []).append(params["reprojection_px"][fitted])
        for name, values in quality.items():
            parts.setdefault(name, []).append(values if name == "found" else values[fitted])
    values = {name: np.concatenate(chunks).astype(np.float64) for name, chunks in parts.items()}
    frames = len(values.get("usable", ()))
    metrics: dict[str, Any] = {"frames": frames}
    if frames:
        metrics["detection_rate"] = float(values["found"].mean()) if "found" in values else None
        metrics["fitted_rate"] = float(values["usable"].mean())  # as a video's fitted_rate
    reproj = values.get("reprojection_px", np.zeros(0))
    reproj = reproj[np.isfinite(reproj)]
    if len(reproj):
        metrics["reprojection_px_mean"] = float(reproj.mean())
        metrics["reprojection_px_p95"] = float(np.percentile(reproj, 95))
    for name in ("silhouette_iou", "mpjpe_mm", "pa_mpjpe_mm"):
        finite = values.get(name, np.zeros(0))
        finite = finite[np.isfinite(finite)]
        if len(finite):
            metrics[f"{name}_mean"] = float(finite.mean())
    if seconds > 0:
        metrics["frames_per_s_per_worker"] = float(frames_run / seconds)
    metrics["videos"] = {video: videos[video].as_dict() for video in sorted(videos)}
    for status in STATUSES:
        metrics[f"videos_{status}"] = sum(report.status == status for report in videos.values())
    return {k: v for k, v in metrics.items() if v is not None}
