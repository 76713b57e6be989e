"""The fit stage's work: for every video of the frames cache, 2D keypoints (detector, ground truth or
imported files) -> batched body fit -> one SMPL shard, plus quality numbers and overlay pictures.

`FitWorker` holds the body model, the frames cache and the keypoint source, built once per worker
process; `run(batch)` fits a group of videos together (`batches`: short videos share one optimisation,
`lwgan.body.fitting.fit_videos`) and writes each video's shard atomically (temp file + rename), so an
interrupted run leaves only whole shards and a rerun redoes only what is missing or stale (the shard's key
hashes the frames shard, the body model, the fit options and the keypoint source). `lwgan.parallel` runs
the workers on Ray or in-process. `review` then judges every video from its shard
(`lwgan.body.fit_quality`: per-video figures and an ok / poor / failed status), names the poor and failed
ones in the log, draws their overlays and assembles the stage's metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import logging
import resource
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from lwgan import keep
from lwgan.body.cameras import facing_camera_orient, fit_weak_perspective, weak_perspective_project
from lwgan.body.detect import (
    DetectionBatch,
    GroundTruthKeypoints,
    detect_video,
    follow_apart,
    most_consistent,
)
from lwgan.body.fit_quality import (
    OK,
    STATUSES,
    Thresholds,
    VideoReport,
    check_failures,
    judge,
    measure_video,
    raised,
    summarise,
)
from lwgan.body.fitting import (
    IMPLAUSIBLE_SCALE,
    NO_PERSON,
    FitOptions,
    FitResult,
    check_inputs,
    fit_video,
    fit_videos,
    fitted_joints,
)
from lwgan.body.model import BodyModel
from lwgan.body.pose_metrics import mpjpe, pa_mpjpe
from lwgan.body.sequence import project_video
from lwgan.config import FitParams, Params
from lwgan.data.cache import FramesCache
from lwgan.data.h5util import (
    content_key,
    file_digest,
    remove_stale,
    shard_is_current,
    shard_path,
    write_index,
)
from lwgan.data.smpl_cache import INDEX_FILE, KIND, SCHEMA_VERSION, SmplCache, write_smpl_shard
from lwgan.geometry import ndc_to_pixel
from lwgan.io import write_json
from lwgan.parallel import JobFailure, PoolOptions, one_thread, run_jobs
from lwgan.progress import ProgressLog
from lwgan.render.raster import RasterSettings, rasterize
from lwgan.render.shade import overlay, shade, to_uint8

log = logging.getLogger(__name__)


# How detector keypoints are made, in the fit's key: changing it refits detected videos (2: the most
# consistent of the candidate detections over time, `lwgan.body.detect.most_consistent`; 3: a run of
# frames whose left and right the detector turned around is turned back whatever its length). TRACKED: a
# video where prepare followed no person is detected in video mode (`FitWorker.keypoints`); APART: one
# where it followed a person, kept apart from the people near them (`lwgan.body.detect.follow_apart`).
DETECTION = "detection=3"
TRACKED = "tracked=1"
APART = "apart=1"
DETECT_SIZE_HINT = "set fit.detect_size=0 to detect on the cached frames instead"


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Everything a fit worker needs besides the video: paths and options (picklable, hashable)."""

    frames_path: Path
    body_path: Path
    out_dir: Path
    keypoints: str  # detector | ground_truth | openpose | coco
    keypoints_root: Path | None
    options: FitOptions
    overlays_per_video: int = 3
    # also detect on the source squares at this side (`lwgan.data.recut`); 0: on the cached frames only.
    # The default is the fit.detect_size param's.
    detect_size: int = FitParams.detect_size


def settings_from_params(fit: FitParams, frames_path: Path, body_path: Path, out_dir: Path) -> FitSettings:
    """The `FitSettings` of the ``fit`` params section (paths resolved). Its verdict thresholds are left
    out (`Thresholds.from_params`): they judge a fit, they do not change it. `fit.world_weight: auto`
    resolves by what the frames cache holds (`FramesCache.data_kind`): the footage weight on footage with
    the detector's keypoints, 0 on lwgan's synthetic set, with keypoints from files (no 3D estimate) and,
    with a warning, where the cache's source folder is no longer found."""
    footage = False
    if fit.world_weight == "auto" and fit.keypoints == "detector":
        with FramesCache(frames_path) as frames:
            kind, root = frames.data_kind(), frames.attrs.get("root")
        if kind == "unknown":
            log.warning("fit.world_weight auto: the source folder of %s (%s) is not found, so whether it is "
                        "footage is not known; the world term stays off (set fit.world_weight to a number "
                        "to choose)", frames_path, root)
        footage = kind == "footage"
    return FitSettings(
        frames_path=frames_path.resolve(), body_path=body_path.resolve(), out_dir=out_dir.resolve(),
        keypoints=fit.keypoints,
        keypoints_root=Path(fit.keypoints_root).expanduser().resolve() if fit.keypoints_root else None,
        options=FitOptions.from_params(fit, footage=footage),
        overlays_per_video=fit.overlays_per_video,
        detect_size=fit.detect_size,
    )


@dataclasses.dataclass(frozen=True)
class FitJob:
    video_id: str
    key: str  # what the shard must carry to be current
    frames: int = 0  # in the video (for progress lines)


@dataclasses.dataclass(frozen=True)
class FitBatch:
    """Videos one worker fits together (`lwgan.body.fitting.fit_videos`): short ones share one problem."""

    jobs: tuple[FitJob, ...]

    @property
    def frames(self) -> int:
        return sum(job.frames for job in self.jobs)


class FitFailed(RuntimeError):
    """A video's fit failed (`FitWorker.run` of a single `FitJob`)."""


def _failure(job: FitJob, err: Exception) -> JobFailure:
    """A video's failure inside a group, reported with the group's result (`fit_all` logs it)."""
    return JobFailure(job.video_id, f"{type(err).__name__}: {err}")


def batches(jobs: list[FitJob], options: FitOptions, workers: int) -> list[FitBatch]:
    """`jobs` in groups to fit together. A video longer than `FitOptions.chunk_size` frames is fitted
    alone (chunk by chunk), first; the others in consecutive groups of at most chunk_size frames, as few
    as that allows but at least one per worker, filled to about the same number of frames (so that the
    workers finish together)."""
    alone = [FitBatch((job,)) for job in jobs if job.frames > options.chunk_size]
    short = [job for job in jobs if job.frames <= options.chunk_size]
    total = sum(job.frames for job in short)
    workers = max(workers, 1)
    count = -(-max(-(-total // options.chunk_size), workers) // workers) * workers  # a multiple of them
    target = -(-total // max(count, 1))
    groups: list[list[FitJob]] = []
    frames = options.chunk_size
    for job in short:
        if frames >= target or frames + job.frames > options.chunk_size:
            groups.append([])
            frames = 0
        groups[-1].append(job)
        frames += job.frames
    return alone + [FitBatch(tuple(group)) for group in groups]


def _keyed_options(options: FitOptions) -> dict[str, Any]:
    """The fit options as a shard's key holds them: the world term's weight only when it is on, so that
    the shards fitted before it existed keep their keys."""
    keyed = dataclasses.asdict(options)
    if not keyed["world_weight"]:
        del keyed["world_weight"]
    return keyed


def job_key(settings: FitSettings, video_attrs: dict[str, Any], body_digest: str,
            detect_side: int = 0, tracked: bool = False) -> str:
    """Hash of everything that determines a video's fit. tracked: the detector runs in video mode (no
    followed person). detect_side: the side of the frames the detector runs on when they are not the
    cached ones (`detection_side`); it is left out when 0, so that the keys of
    videos detected on their cached frames do not depend on fit.detect_size."""
    return content_key(KIND, SCHEMA_VERSION, video_attrs.get("options_hash"),
                       video_attrs.get("source_fingerprint"), body_digest, settings.keypoints,
                       str(settings.keypoints_root or ""), _keyed_options(settings.options),
                       *([DETECTION] if settings.keypoints == "detector" else []),
                       *([f"detect_side={detect_side}"] if detect_side else []),
                       *([TRACKED] if tracked and settings.keypoints == "detector" else []),
                       *([APART] if not tracked and settings.keypoints == "detector" else []))


def detection_side(settings: FitSettings, cache: FramesCache, video: str) -> int:
    """The side of the source squares the detector runs on for `video` (0: the cached frames)."""
    if settings.keypoints != "detector":
        return 0
    from lwgan.data.recut import detection_side as side

    return side(cache, video, settings.detect_size)


def plan_jobs(settings: FitSettings) -> tuple[list[FitJob], list[str]]:
    """(jobs to run, ids of videos whose shard is already current)."""
    cache = FramesCache(settings.frames_path)
    digest = file_digest(settings.body_path)
    jobs, current = [], []
    for video in cache.videos:
        attrs = {k: str(v) for k, v in cache.group(video).attrs.items()}
        key = job_key(settings, attrs, digest, detection_side(settings, cache, video),
                      tracked=cache.person_boxes(video) is None)
        shard = shard_path(settings.out_dir, video)
        if keep.current_or_taken_back(settings.out_dir, shard, key,
                                      functools.partial(shard_is_current, shard, KIND, SCHEMA_VERSION, key)):
            current.append(video)
        else:
            jobs.append(FitJob(video, key, cache.num_frames(video)))
    cache.close()
    return jobs, current


class FitWorker:
    """Fits whole videos; built once per worker process (models, caches, detector)."""

    def __init__(self, settings: FitSettings) -> None:
        one_thread()
        self.settings = settings
        self.body = BodyModel.from_file(settings.body_path)
        self.cache = FramesCache(settings.frames_path)
        self.image_size = int(self.cache.attrs["image_size"])
        self._people = self._tracker = None
        self._ground_truth = None
        if settings.keypoints == "detector":
            from lwgan.body.detect import MediaPipeDetector, MediaPipePeople

            # the person prepare followed, kept apart from the people near them (`follow_apart`)
            self._people = MediaPipePeople()
            # video mode: the videos where prepare followed no one (`_detect`)
            self._tracker = MediaPipeDetector(static_image_mode=False, smooth=False)
        self._warm_up()

    def _warm_up(self) -> None:
        """Run a two-frame fit once, so that one-off costs (kinematic caches, first allocations) are paid
        while the worker is built rather than inside its first video (measured: 2.5 s vs 1 s per video)."""
        pose = torch.zeros(2, 3 * self.body.num_joints)
        pose[:, :3] = facing_camera_orient(0.0, 2)
        with torch.no_grad():
            points = self.body(torch.zeros(2, self.body.num_betas), pose).keypoints  # (2, K, 3)
        cam = fit_weak_perspective(points, fill=0.6)
        size = self.image_size
        pixels = ndc_to_pixel(weak_perspective_project(points, cam)[..., :2], size, size)  # (2, K, 2)
        keypoints = torch.cat((pixels, torch.ones_like(pixels[..., :1])), dim=-1)  # (2, K, 3)
        fit_video(keypoints, self.image_size, self.body,
                  dataclasses.replace(self.settings.options, camera_iterations=1, pose_iterations=1))

    # -- keypoints ---------------------------------------------------------------------------------------
    def keypoints(self, video: str) -> DetectionBatch:
        kind = self.settings.keypoints
        if kind == "ground_truth":
            if self._ground_truth is None:
                root = self.settings.keypoints_root or _synthetic_root(self.cache, video)
                self._ground_truth = GroundTruthKeypoints(root)
            return self._ground_truth.for_cache(self.cache, video)
        if kind == "detector":
            followed = self.cache.person_boxes(video)  # the person prepare followed, where it did
            cached = (self.cache.frame(video, i) for i in range(self.cache.num_frames(video)))
            candidates = [self._detect(cached, followed)]
            side = detection_side(self.settings, self.cache, video)
            if side:  # first choice: the source squares at more pixels, mapped into the cached frames
                from lwgan.data.recut import recut

                scaled = None if followed is None else (followed + 0.5) * (side / self.image_size) - 0.5
                frames = recut(self.cache, video, side, hint=DETECT_SIZE_HINT)
                candidates.insert(0, self._detect(frames, scaled).rescaled(self.image_size))
            return most_consistent(candidates)
        from lwgan.body.keypoint_io import read_track

        track = read_track(kind, self.settings.keypoints_root or Path("."), video)
        keypoints = track.to_cache(self.cache.frame_index(video), self.cache.crop_boxes(video),
                                   self.image_size)
        found = (keypoints[..., 2] > 0).any(axis=1)
        return DetectionBatch(keypoints, found, keypoints[..., 2].mean(axis=1), None,
                              (self.image_size, self.image_size))

    def _detect(self, frames: Iterable[np.ndarray], followed: np.ndarray | None) -> DetectionBatch:
        """The detector over `frames`, kept to the person prepare followed (their boxes in these frames'
        pixels) where it followed one, apart from everyone near them (`follow_apart`). Where prepare
        followed no one (the synthetic set, a crop around one person), in video mode: MediaPipe follows its
        person from frame to frame and runs its person detector only when it has lost them. Measured on the
        default set against frame-by-frame detection: a person found on every frame (0.979 before),
        PA-MPJPE 45.2 mm instead of 46.4, and 23 ms per frame instead of 31."""
        if followed is not None:
            return follow_apart(frames, self._people, followed)
        return detect_video(frames, self._tracker)

    # -- videos ----------------------------------------------------------------------------------------
    def run(self, job: FitJob | FitBatch) -> dict[str, Any]:
        """Fit one video (a `FitJob`: its result, or the error it failed with) or several together (a
        `FitBatch`: ``{"results": [...], "failures": [JobFailure, ...]}``, a video that fails costing only
        itself)."""
        if isinstance(job, FitBatch):
            return self.run_batch(job)
        out = self.run_batch(FitBatch((job,)))
        if out["failures"]:
            raise FitFailed(out["failures"][0].reason)
        return out["results"][0]

    def run_batch(self, batch: FitBatch) -> dict[str, Any]:
        """Keypoints of each video, one fit of them all (`fit_videos`), then each video's numbers, shard
        and overlays. Each result has the video's seconds: its keypoints (detection) and writing its
        own, the fit's shared out by frames, and their sum."""
        failures: list[JobFailure] = []
        inputs: list[tuple[FitJob, DetectionBatch, torch.Tensor, torch.Tensor | None]] = []
        seconds: dict[str, dict[str, float]] = {}
        for job in batch.jobs:
            start = time.perf_counter()
            try:
                detections = self.keypoints(job.video_id)
                keypoints = torch.from_numpy(np.asarray(detections.keypoints, np.float32))
                masks = None if detections.packed_masks is None else torch.from_numpy(detections.masks())
                check_inputs(keypoints, self.image_size, self.body, masks, None)
            except Exception as err:  # one video's bad input fails that video only
                failures.append(_failure(job, err))
                continue
            inputs.append((job, detections, keypoints, masks))
            seconds[job.video_id] = {"keypoint_seconds": time.perf_counter() - start}
        start = time.perf_counter()
        world = [None if d.world is None else torch.from_numpy(d.world) for _, d, *_ in inputs]
        fits = fit_videos([keypoints for _, _, keypoints, _ in inputs], self.image_size, self.body,
                          self.settings.options, masks=[masks for *_, masks in inputs], world=world)
        per_frame = (time.perf_counter() - start) / max(sum(len(k) for _, _, k, _ in inputs), 1)
        results = []
        for (job, detections, keypoints, masks), result in zip(inputs, fits, strict=True):
            start = time.perf_counter()
            try:
                self._write(job, detections, keypoints, masks, result)
            except Exception as err:
                failures.append(_failure(job, err))
                continue
            split = seconds[job.video_id]
            split.update(fit_seconds=per_frame * len(keypoints), write_seconds=time.perf_counter() - start)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            results.append({"video": job.video_id, "frames": len(keypoints), "seconds": sum(split.values()),
                            **split, "peak_rss_mb": rss})
        return {"results": results, "failures": failures}

    def _write(self, job: FitJob, detections: DetectionBatch, keypoints: torch.Tensor,
               masks: torch.Tensor | None, result: FitResult) -> None:
        """The video's quality numbers, shard (written atomically) and overlays."""
        video, n = job.video_id, len(keypoints)
        quality: dict[str, np.ndarray] = {"found": np.asarray(detections.found, np.float32)}
        if masks is not None:
            quality["silhouette_iou"] = self._silhouette_iou(result, masks.numpy())
        truth = self._truth(video)
        if truth is not None:
            joints = fitted_joints(self.body, result)  # (N, J, 3) metres
            gt = torch.from_numpy(truth[self.cache.frame_index(video)]).float()
            quality["mpjpe_mm"] = (1000 * mpjpe(joints, gt)).numpy()
            quality["pa_mpjpe_mm"] = (1000 * pa_mpjpe(joints, gt)).numpy()
        shard = write_smpl_shard(
            shard_path(self.settings.out_dir, video), video, job.key,
            {"betas": result.betas.numpy(), "pose": result.pose.numpy(), "cam": result.cam.numpy(),
             "keypoints": keypoints.numpy(), "status": result.status.numpy().astype(np.uint8),
             "reprojection_px": result.reprojection_px.numpy(), "frame": np.arange(n)},
            {"split": self.cache.info(video).split, "keypoint_source": self.settings.keypoints,
             "image_size": self.image_size},
            quality,
        )
        keep.keep(self.settings.out_dir, shard, job.key)  # outlives DVC's checkout (lwgan.keep)
        self._overlays(video, result, keypoints)

    def _truth(self, video: str) -> np.ndarray | None:
        """Ground-truth 3D joints (frames of the source, J, 3) of a synthetic video, when it has them."""
        if self.settings.keypoints == "detector" or self.settings.keypoints == "ground_truth":
            return synthetic_joints(self.cache, video)
        return None

    def _project(self, result, frames: np.ndarray) -> torch.Tensor:
        """(len(frames), V, 3) projected vertices of the fitted body at the given frames."""
        return project_video(self.body, result.betas.numpy(), result.pose.numpy()[frames],
                             result.cam.numpy()[frames])

    def _silhouette_iou(self, result, masks: np.ndarray, chunk: int = 32) -> np.ndarray:
        """(N,) IoU of the fitted silhouette with the person mask, `chunk` frames at a time so that memory
        does not grow with the video's length; NaN where both are empty."""
        settings = RasterSettings(self.image_size, self.image_size)
        out = []
        for start in range(0, len(masks), chunk):
            frames = np.arange(start, min(start + chunk, len(masks)))
            fitted = rasterize(self._project(result, frames), self.body.faces, settings).silhouette.numpy()
            union = (fitted | masks[frames]).sum(axis=(1, 2))
            inter = (fitted & masks[frames]).sum(axis=(1, 2))
            out.append(np.where(union > 0, inter / np.maximum(union, 1), np.nan))
        return np.concatenate(out)

    def _overlays(self, video: str, result, keypoints: torch.Tensor) -> None:
        """`FitSettings.overlays_per_video` frames with the fitted mesh, replacing an earlier fit's."""
        folder = self.settings.out_dir / "overlays"
        for old in overlay_files(folder, video).values():
            old.unlink()
        fit = {"betas": result.betas.numpy(), "pose": result.pose.numpy(), "cam": result.cam.numpy(),
               "status": result.status.numpy(), "keypoints": keypoints.numpy()}
        draw_overlays(self.body, self.cache, video, fit,
                      overlay_frames(len(keypoints), self.settings.overlays_per_video), folder)


def overlay_frames(frames: int, count: int) -> list[int]:
    """`count` frames evenly spaced over a video of `frames` frames, first and last included."""
    if count <= 0 or frames <= 0:
        return []
    return [int(i) for i in np.unique(np.linspace(0, frames - 1, count).round().astype(int))]


def overlay_files(folder: Path, video: str) -> dict[int, Path]:
    """frame -> overlay picture of `video` in `folder` (``<video>_<frame:05d>.png``)."""
    return {int(path.name[-9:-4]): path for path in folder.glob(f"{glob.escape(video)}_{'[0-9]' * 5}.png")}


def draw_overlays(body: BodyModel, cache: FramesCache, video: str, fit: Mapping[str, np.ndarray],
                  frames: list[int], folder: Path) -> None:
    """Draw `frames` of `video` with the fitted mesh blended over them and the keypoints it was fitted to
    (red), into ``folder/<video>_<frame:05d>.png``. fit: betas, pose, cam, status and keypoints (N, K, 3)
    as an SMPL shard stores them."""
    if not frames:
        return
    folder.mkdir(parents=True, exist_ok=True)
    picks = np.asarray(frames)
    size = int(cache.attrs["image_size"])
    verts = project_video(body, fit["betas"], fit["pose"][picks], fit["cam"][picks])  # (P, V, 3)
    frags = rasterize(verts, body.faces, RasterSettings(size, size))
    meshes = to_uint8(shade(frags, verts, body.faces))  # (P, H, W, 3)
    for k, i in enumerate(picks):
        frame = cache.frame(video, int(i))
        tinted = (meshes[k].astype(np.float32) * np.array([0.6, 0.8, 1.0])).astype(np.uint8)
        image = overlay(frame, tinted, frags.silhouette[k].numpy(), alpha=0.55)
        for u, v, c in fit["keypoints"][i]:
            if c > 0:
                cv2.circle(image, (int(round(u)), int(round(v))), 2, (255, 60, 60), -1, cv2.LINE_AA)
        flags = int(fit["status"][i])
        label = f"{video} #{int(i)}" + (" no person" if flags & NO_PERSON else "") + (
            " size implausible, interpolated" if flags & IMPLAUSIBLE_SCALE else "")
        cv2.putText(image, label, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imwrite(str(folder / f"{video}_{int(i):05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def synthetic_joints(cache: FramesCache, video: str) -> np.ndarray | None:
    """Ground-truth 3D joints (frames of the source, J, 3) of a cached synthetic video, metres, camera axes;
    None for a video without them."""
    path = _synthetic_root(cache, video, required=False)
    if path is None or not (path / "gt" / f"{video}.npz").is_file():
        return None
    with np.load(path / "gt" / f"{video}.npz") as data:
        return np.asarray(data["joints3d"], np.float32) if "joints3d" in data.files else None


def _synthetic_root(cache: FramesCache, video: str, required: bool = True) -> Path | None:
    """The synthetic data set a cached video came from (…/images/<s>/<c>/<a> -> …)."""
    source = Path(cache.info(video).source_path)
    root = source.parents[3] if len(source.parents) > 3 else None
    if root is None or not (root / "gt").is_dir():
        if required:
            raise FileNotFoundError(f"video {video!r} ({source}) has no ground truth beside it; "
                                    "fit.keypoints=ground_truth works only on the synthetic set")
        return None
    return root


@dataclasses.dataclass(frozen=True)
class FitRun:
    """What `fit_all` did: per-video results of this run, failures, and videos whose shard was reused."""

    results: list[dict[str, Any]]
    failures: list[JobFailure]
    reused: list[str]

    @property
    def videos(self) -> int:
        return len(self.results) + len(self.failures) + len(self.reused)


def fit_all(settings: FitSettings, pool: PoolOptions, progress: Callable[..., None] | None = None) -> FitRun:
    """Fit every video of the frames cache that has no current shard, on `pool`, then link the shards of
    every fitted video from ``smpl.h5``. `progress` (a `lwgan.progress.ProgressLog`) is called with the
    frames done and to do as each group of videos (`batches`) finishes, and the videos done as its extra
    text."""
    keep.clean(settings.out_dir)
    jobs, current = plan_jobs(settings)
    remove_stale(settings.out_dir, keep=[job.video_id for job in jobs] + current)
    log.info("%d videos to fit, %d already fitted", len(jobs), len(current))
    done: list[dict[str, Any]] = []
    total_frames, done_frames = sum(job.frames for job in jobs), 0

    failures: list[JobFailure] = []

    def on_result(batch: FitBatch, out: dict[str, Any]) -> None:
        nonlocal done_frames
        done.extend(out["results"])
        failures.extend(out["failures"])
        done_frames += batch.frames
        if progress is not None:
            progress(done_frames, total_frames, extra=f"{len(done)}/{len(jobs)} videos")

    groups = batches(jobs, settings.options, pool.num_workers if pool.use_ray else 1)
    _, lost = run_jobs(FitWorker, (settings,), groups, pool, key=lambda batch: batch.jobs[0].video_id,
                       on_result=on_result)
    by_key = {batch.jobs[0].video_id: batch for batch in groups}
    for failure in lost:  # the whole group: its worker died or the group's fit raised
        failures.extend(JobFailure(job.video_id, failure.reason) for job in by_key[failure.key].jobs)
    for failure in failures:
        log.warning("video %s failed: %s", failure.key, failure.reason)
    failed = {failure.key for failure in failures}
    fitted = [job.video_id for job in jobs if job.video_id not in failed] + current
    write_index(settings.out_dir / INDEX_FILE, KIND, SCHEMA_VERSION, fitted,
                {"keypoint_source": settings.keypoints})
    return FitRun(done, failures, current)


FLAGGED_OVERLAYS = 3  # pictures of a poor or failed video at the least, whatever fit.overlays_per_video says


@dataclasses.dataclass(frozen=True)
class FitReport:
    """The verdict on a fit: `metrics` is ``metrics/fit.json`` (`fit_quality.summarise` plus what this run
    did), `videos` the report of every video."""

    metrics: dict[str, Any]
    videos: dict[str, VideoReport]

    def write_videos(self, path: Path) -> Path:
        """The per-video table of `metrics` as JSON (what the tracked run keeps as an artifact)."""
        return write_json(path, self.metrics["videos"])

    @property
    def scalars(self) -> dict[str, float]:
        """The numbers of `metrics` without the per-video table (what the tracked run gets as metrics)."""
        return {k: v for k, v in self.metrics.items()
                if isinstance(v, int | float) and not isinstance(v, bool)}


def review(settings: FitSettings, thresholds: Thresholds, done: FitRun) -> FitReport:
    """Judge every video of the SMPL cache (and every video whose fit raised), log a WARNING line for each
    poor or failed one, and make sure the overlays folder holds `FitSettings.overlays_per_video` pictures of
    every video plus, for a poor or failed one, at least `FLAGGED_OVERLAYS` and its worst frame. Reads only
    the shards, so a change of `thresholds` re-judges without refitting."""
    cache = SmplCache(settings.out_dir / INDEX_FILE)
    body = BodyModel.from_file(settings.body_path)
    threshold = settings.options.confidence_threshold
    videos: dict[str, VideoReport] = {}
    extra: dict[str, list[int]] = {}
    for video in cache.videos:
        figures = measure_video(body, cache.params(video), cache.quality(video),
                                int(cache.info(video)["image_size"]), threshold)
        videos[video] = report = judge(figures, thresholds)
        if report.status != OK:
            worst = [] if figures.worst_frame is None else [figures.worst_frame]
            extra[video] = overlay_frames(cache.num_frames(video),
                                          max(settings.overlays_per_video, FLAGGED_OVERLAYS)) + worst
    for failure in done.failures:
        videos[failure.key] = raised(failure.reason)
    for video in sorted(videos):
        if videos[video].status != OK:
            log.warning("video %s is %s", video, videos[video].describe())
    _sync_overlays(settings, cache, body, extra)
    metrics = summarise(cache, videos, seconds=sum(r["seconds"] for r in done.results),
                        frames_run=sum(r["frames"] for r in done.results))
    metrics.update(videos_fitted_now=len(done.results), videos_reused=len(done.reused))
    counts = ", ".join(f"{metrics[f'videos_{status}']} {status}" for status in STATUSES)
    log.info("%d videos judged: %s", len(videos), counts)
    return FitReport(metrics, videos)


def _sync_overlays(settings: FitSettings, cache: SmplCache, body: BodyModel,
                   extra: dict[str, list[int]]) -> None:
    """Overlays of every fitted video: its `overlay_frames` plus `extra` frames; pictures of other frames
    (an earlier verdict's, an earlier overlays_per_video's) are removed, missing ones drawn."""
    folder = settings.out_dir / "overlays"
    frames: FramesCache | None = None
    for video in cache.videos:
        wanted = set(overlay_frames(cache.num_frames(video), settings.overlays_per_video))
        wanted.update(extra.get(video, ()))
        have = overlay_files(folder, video)
        for frame, path in have.items():
            if frame not in wanted:
                path.unlink()
        missing = sorted(wanted - set(have))
        if missing:
            frames = frames or FramesCache(settings.frames_path)
            draw_overlays(body, frames, video, cache.params(video), missing, folder)
    if frames is not None:
        frames.close()


def run(params: Params, frames_path: Path, body_path: Path, out_dir: Path) -> tuple[FitSettings, FitReport]:
    """The fit stage: every video not fitted yet, on Ray workers as params ``ray.*`` say, with progress
    lines in frames (rate, ETA), then the verdict on every video (`review`)."""
    settings = settings_from_params(params.fit, frames_path, body_path, out_dir)
    pool = PoolOptions(num_workers=params.ray.workers, address=params.ray.address or None,
                       use_ray=params.ray.enabled)
    done = fit_all(settings, pool, progress=ProgressLog("fit", "frames", every_s=0.0))
    return settings, review(settings, Thresholds.from_params(params.fit), done)


def release_kept(settings: FitSettings) -> None:
    """Drop the kept copies (`lwgan.keep`) of the shards the SMPL cache now holds: call it once the stage
    has succeeded, when DVC is about to store the output."""
    keep.release_output(settings.out_dir)


def fail_past_threshold(settings: FitSettings, report: FitReport, fit: FitParams) -> None:
    """FitQualityError naming the failed videos when more than ``fit.max_failure_fraction`` of them failed."""
    check_failures(report.videos, fit.max_failure_fraction, str(settings.out_dir / "overlays"))
