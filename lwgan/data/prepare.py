"""The prepare step: raw videos -> person-centred square frames in an HDF5 cache, an index and a split.

    options = PrepareOptions(source="iper", root=Path("data/raw/synthetic"))
    report = prepare(options, Path("data/cache/frames"))
    report.raise_for_failures()   # after everything is written

Outputs in `out_dir`:

    videos/<video_id>.h5   one shard per video (see `lwgan.data.cache` for the layout); kept between runs
    frames.h5              root attributes plus an ExternalLink per prepared video to its shard
    index.json             options, per-video split / frame count / crop / box method, and the split lists
    report.json            `PrepareReport.to_dict(run_state=False)`: what was prepared, failed and ignored,
                           and why (no timings: the same data gives the same bytes)

Each video is decoded twice, streaming: once to find the person box (masks; else the people seen by the
detector in `PEOPLE_KEYFRAMES` keyframes at the source resolution, followed through the video, one chosen:
`lwgan.data.people`; or a background model from at most `crop.MOTION_SAMPLES` frames), once to crop, resize
and write. A run that is interrupted (even by
kill -9) redoes only the videos whose shard is missing or no longer matches (see `lwgan.data.shard`).
Under DVC, declare `out_dir` with ``persist: true`` so that the shards survive to be reused; shards of
videos no longer selected are removed, so the folder always matches index.json.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from lwgan import keep
from lwgan.config import DataParams
from lwgan.data import crop as crop_mod
from lwgan.data import people
from lwgan.data.cache import CODECS, SCHEMA_VERSION, FramesCache
from lwgan.data.errors import DataError
from lwgan.data.folder import discover_folder
from lwgan.data.h5util import content_key, remove_stale, shard_path
from lwgan.data.iper import discover_iper
from lwgan.data.report import Discovery, PrepareReport, Problem, Progress, ProgressCallback, VideoResult
from lwgan.data.shard import (
    FRAMES_FILE,
    ShardKey,
    ShardMeta,
    ShardWriter,
    read_shard_attrs,
    write_frames_file,
)
from lwgan.data.sheet import contact_sheet
from lwgan.data.video import FramePlan, FrameSource, VideoEntry, open_source
from lwgan.io import atomic_path, write_json

log = logging.getLogger(__name__)

BOX_ALGORITHM = 2  # bump when the person-box or crop rules change: every shard is then redone
PROGRESS_EVERY_S = 5.0  # progress inside a long video, at most this often (single-process runs)
INDEX_FILE, REPORT_FILE = "index.json", "report.json"
PEOPLE_KEYFRAMES = 16  # keyframes searched for people per video (about 1 s each at 1080p on one core)
PEOPLE_MAX_SIDE = 1920  # keyframes larger than this are shrunk (by an integer factor) before the search
PERSON_RULES = ("largest", "central")  # or an index "0", "1", ...
FOLLOW_WHEN = 1.5  # crop "auto" follows the person when the fixed square would be this much larger


@dataclass(frozen=True)
class PrepareOptions:
    """How to prepare a data set.

    source: "iper" (the iPER layout, also the synthetic set; see `lwgan.data.iper`) or "folder" (any
        videos under `root`, recursively; see `lwgan.data.folder`).
    root: the data root; it must exist.
    image_size: side of the square output frames, pixels.
    frame_step: keep every n-th frame (frame numbers 0, n, 2n, ...).
    max_frames_per_video: keep at most this many frames per video after the step; 0 keeps all.
    val_fraction: share of videos put in "val" by the automatic split ("folder", or "iper" without lists).
    max_failure_fraction: `PrepareReport.raise_for_failures` raises past this share of failed videos.
    crop_margin: space added on each side of the person box, as a fraction of its longer side.
    pad: how the crop is filled where it leaves the frame: "constant" (black; the caches record the crop
        and the source size, so the padded part is known) or "edge" (repeat border pixels).
    person_box: how a video without masks finds its person: "detector" (the people of `PEOPLE_KEYFRAMES`
        keyframes found at the source resolution and followed, `lwgan.data.people`) or "motion" (foreground
        against a temporal median: a static camera and one moving person).
    person: which person a video is about when several are seen: "largest" (large and seen long),
        "central" (nearest the frame centre), or an index "0", "1", ... (in order of first appearance, left to
        right).
    crop: "fixed" (one square for the whole video), "follow" (a square of one size that moves with the
        person; detector boxes only: `crop.follow_crops`) or "auto" (follow when the fixed square would be
        more than `FOLLOW_WHEN` times the moving one's side, i.e. the person crosses the frame).
    min_person_share: a video whose person would be less tall than this share of the output frames'
        height is refused (a DataError naming it): detection and fitting need pixels.
    codec: "jpeg" (default; ~8x smaller) or "lzf" (lossless, ~1.6x faster random reads); see
        `lwgan.data.cache`.
    jpeg_quality: JPEG quality, 1-100.
    workers: videos prepared in parallel, one process each (1 = in this process).
    """

    source: Literal["iper", "folder"]
    root: Path
    image_size: int = 256
    frame_step: int = 1
    max_frames_per_video: int = 0
    val_fraction: float = 0.2
    max_failure_fraction: float = 0.1
    crop_margin: float = 0.15
    pad: crop_mod.PadMode = "constant"
    person_box: Literal["detector", "motion"] = "detector"
    person: str = "largest"
    crop: Literal["auto", "fixed", "follow"] = "auto"
    min_person_share: float = 0.35
    codec: Literal["jpeg", "lzf"] = "jpeg"
    jpeg_quality: int = 95
    workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        checks: list[tuple[str, bool, str]] = [
            ("source", self.source in ("iper", "folder"), "'iper' or 'folder'"),
            ("image_size", isinstance(self.image_size, int) and 16 <= self.image_size <= 4096,
             "an integer in [16, 4096]"),
            ("frame_step", isinstance(self.frame_step, int) and self.frame_step >= 1, "an integer >= 1"),
            ("max_frames_per_video", isinstance(self.max_frames_per_video, int)
             and self.max_frames_per_video >= 0, "an integer >= 0 (0 = all)"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            ("max_failure_fraction", 0.0 <= self.max_failure_fraction <= 1.0, "in [0, 1]"),
            ("crop_margin", 0.0 <= self.crop_margin <= 2.0, "in [0, 2]"),
            ("pad", self.pad in ("edge", "constant"), "'edge' or 'constant'"),
            ("person_box", self.person_box in ("detector", "motion"), "'detector' or 'motion'"),
            ("person", self.person in PERSON_RULES or self.person.isdigit(),
             "'largest', 'central' or an index '0', '1', ..."),
            ("crop", self.crop in ("auto", "fixed", "follow"), "'auto', 'fixed' or 'follow'"),
            ("min_person_share", 0.0 <= self.min_person_share <= 1.0, "in [0, 1]"),
            ("codec", self.codec in CODECS, " or ".join(repr(c) for c in CODECS)),
            ("jpeg_quality", isinstance(self.jpeg_quality, int) and 1 <= self.jpeg_quality <= 100,
             "an integer in [1, 100]"),
            ("workers", isinstance(self.workers, int) and self.workers >= 1, "an integer >= 1"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"prepare option {name} = {getattr(self, name)!r} is invalid: it must be "
                                 f"{allowed}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Path) else v)
                for f in dataclasses.fields(self)}

    def content_hash(self) -> str:
        """Hash of everything that changes a shard's frames (not the root, split or worker count)."""
        keys = ("image_size", "frame_step", "max_frames_per_video", "crop_margin", "pad", "codec",
                "jpeg_quality", "person_box", "person", "crop")
        content = {k: getattr(self, k) for k in keys}
        if self.codec != "jpeg":
            content.pop("jpeg_quality")
        content.update(schema=SCHEMA_VERSION, box_algorithm=BOX_ALGORITHM)
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def discover(options: PrepareOptions, exclude: Path | None = None) -> Discovery:
    """The videos `options` selects, with failed and ignored inputs. Raises DataError for a missing root."""
    root = options.root
    if not root.exists():
        raise DataError(f"data root {root} does not exist; check the data root setting (source "
                        f"{options.source!r}) or create it")
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder")
    if options.source == "iper":
        return discover_iper(root, options.val_fraction, exclude)
    found = discover_folder(root, options.val_fraction, exclude)
    if not found.entries:
        raise DataError(f"no video files under {root} (extensions such as .mp4, .avi, .mov, .mkv); "
                        "check the data root")
    return found


def _probe(source: FrameSource, plan: FramePlan, samples: list) -> tuple[int, int]:
    """(height, width) of the video: the most common size among `samples`, else of the first readable
    frame."""
    sizes = Counter(f.source_size for f in samples if f.source_size is not None)
    if sizes:
        return sizes.most_common(1)[0][0]
    for frame in source.frames(plan):
        if frame.image is not None:
            return frame.image.shape[:2]
    what = "no readable image files" if source.entry.kind == "frames" else "no decodable frames"
    raise DataError(f"{source.path} contains {what}; check or remove it")


def _person_box(source: FrameSource, plan: FramePlan, options: PrepareOptions
                ) -> tuple[crop_mod.PersonBox, tuple[int, int], people.Track | None]:
    """The person's box over the video, the frame size, and the detector's track of the person (None when
    the box came another way)."""
    is_folder = source.entry.kind == "frames"
    samples = source.sample(plan, crop_mod.MOTION_SAMPLES, crop_mod.MOTION_SIDE) if is_folder else []
    height, width = _probe(source, plan, samples)
    box, note, track = None, "", None
    masks = [p for n, p in sorted(source.masks().items()) if plan.keeps(n)]
    if masks:
        box = crop_mod.box_from_masks(masks, height, width)
        if box is None:
            note = "every mask is empty or unreadable"
            log.warning("%s: %s (%s); finding the person without them", source.entry.video_id, note,
                        source.entry.mask_dir)
    if box is None and options.person_box == "detector":
        box, found, track = _detected_box(source, plan, options.person, height, width)
        if box is None:
            note = (note + "; " if note else "") + found
            log.warning("%s: %s; finding the person from motion instead", source.entry.video_id, found)
    if box is None:
        if not is_folder:
            samples = source.sample(plan, crop_mod.MOTION_SAMPLES, crop_mod.MOTION_SIDE)
        box = crop_mod.box_from_motion(samples, height, width)
        if box is None:
            note = (note + "; " if note else "") + "no consistent moving foreground"
    if box is None:
        box = crop_mod.centre_box(height, width, note)
    return box, (height, width), track


def _detected_box(source: FrameSource, plan: FramePlan, rule: str, height: int, width: int
                  ) -> tuple[crop_mod.PersonBox | None, str, people.Track | None]:
    """The box, over the video, of the person `rule` chooses among those the detector finds in the
    keyframes (`lwgan.data.people`), and their track; (None, why, None) when nobody is found."""
    keyframes = [f for f in source.sample(plan, PEOPLE_KEYFRAMES, PEOPLE_MAX_SIDE)
                 if f.source_size == (height, width)]
    detect = people.mediapipe_detect_fn()
    seen = []
    for frame in keyframes:
        scale = width / frame.image.shape[1]
        found = people.find_people(cv2.cvtColor(frame.image, cv2.COLOR_BGR2RGB), detect, frame.number)
        seen.append([people.rescaled(s, scale) for s in found] if scale != 1.0 else found)
    tracks = people.follow(seen)
    chosen = people.choose(tracks, rule, (height, width))
    if chosen is None:
        what = "nobody" if not tracks else f"{len(tracks)} people but no person {rule}"
        return None, f"the detector found {what} in {len(keyframes)} keyframes", None
    others = len(tracks) - 1
    note = (f"followed the {rule} of {len(tracks)} people seen" if others and not rule.isdigit()
            else f"followed person {rule} of {len(tracks)} seen" if others else "")
    log.info("%s: person found in %d of %d keyframes%s", source.entry.video_id, len(chosen.sightings),
             len(keyframes), f"; {note}" if note else "")
    return crop_mod.PersonBox(*chosen.bounds(height, width), "detector", note), "", chosen


def prepare_video(entry: VideoEntry, options: PrepareOptions, fingerprint: str, out_dir: Path,
                  tick: Callable[[int], None] | None = None) -> VideoResult:
    """Prepare one video into its shard (atomically). Raises DataError when it yields no usable frame."""
    start = time.perf_counter()
    source = open_source(entry)
    plan = FramePlan(options.frame_step, options.max_frames_per_video)
    box, (height, width), track = _person_box(source, plan, options)
    crop = crop_mod.square_crop(box, height, width, options.crop_margin)
    follow, person_tall = None, box.y1 - box.y0
    if track is not None and options.crop != "fixed":
        key_numbers = np.array([s.frame for s in track.sightings])
        key_boxes = np.array([s.box for s in track.sightings])
        moving = crop_mod.follow_crops(key_numbers[:1], key_numbers, key_boxes, height, width,
                                       options.crop_margin)
        if options.crop == "follow" or crop.side > FOLLOW_WHEN * moving[0, 2]:
            follow = (key_numbers, key_boxes)
            person_tall = float((key_boxes[:, 3] - key_boxes[:, 1]).max())
            crop = crop_mod.CropBox(*(int(v) for v in moving[0]))
    if box.method != "centre":
        tall = person_tall * options.image_size / crop.side
        if tall < options.min_person_share * options.image_size:
            fix = ("data.crop=follow (a square that moves with the person)" if track is not None
                   and follow is None else "cutting the video into shorter clips")
            raise DataError(
                f"{entry.path}: the person ({box.method} box {box.x1 - box.x0:.0f}x"
                f"{box.y1 - box.y0:.0f} px of a {width}x{height} frame) would be {tall:.0f} px tall in the "
                f"{options.image_size}-px frames, under data.min_person_share = {options.min_person_share} "
                f"of them; the person is too small or crosses too much of the frame for one square: try "
                f"{fix}")
    dropped: list[Problem] = []
    notes: list[str] = []
    cut_boxes: list[tuple[int, int, int]] = []
    person_boxes: list[np.ndarray] = []  # the followed person's box in each frame (detector boxes only)
    with atomic_path(shard_path(out_dir, entry.video_id)) as tmp:
        writer = ShardWriter(tmp, entry.video_id, options.image_size, options.codec, options.jpeg_quality)
        try:
            last_tick = time.perf_counter()
            for frame in source.frames(plan):
                if frame.image is None:
                    dropped.append(Problem(str(frame.path), f"{frame.problem}; frame left out",
                                           entry.video_id))
                    continue
                if frame.image.shape[:2] != (height, width):
                    h, w = frame.image.shape[:2]
                    dropped.append(Problem(str(frame.path), f"frame is {w}x{h} but the video's frames are "
                                           f"{width}x{height}; frame left out", entry.video_id))
                    continue
                cut = crop
                if track is not None:
                    person_boxes.append(people.box_at(track, frame.number))
                if follow is not None:
                    cut = crop_mod.CropBox(*(int(v) for v in crop_mod.follow_crops(
                        np.array([frame.number]), *follow, height, width, options.crop_margin)[0]))
                    cut_boxes.append(cut.as_tuple())
                writer.append(frame.number, crop_mod.apply_crop(frame.image, cut, options.image_size,
                                                                options.pad))
                if tick is not None and time.perf_counter() - last_tick > PROGRESS_EVERY_S:
                    tick(len(writer.numbers))
                    last_tick = time.perf_counter()
            written = len(writer.numbers)
            if written == 0:
                example = f", e.g. {dropped[0].path}: {dropped[0].reason}" if dropped else ""
                raise DataError(f"{entry.path} has no usable frames ({len(dropped)} left out{example}); "
                                "check or remove it")
            announced = plan.count(source.estimated_frames())
            if entry.kind == "file" and written < announced:
                notes.append(f"decoded {written} of the {announced} frames its header announces; the file is "
                             "probably truncated")
                log.warning("%s: %s", entry.path, notes[-1])
            if box.note:
                notes.append(f"centred crop: {box.note}" if box.method == "centre" else box.note)
            if follow is not None:
                crop = crop_mod.CropBox(*cut_boxes[0])
                notes.append(f"the crop follows the person ({len(follow[0])} keyframes)")
            meta = ShardMeta(entry.video_id, entry.split, options.source, str(entry.path), entry.kind,
                             fingerprint, options.content_hash(), source.fps, (height, width), crop, box,
                             tuple(notes), np.array(cut_boxes, np.int64) if follow is not None else None,
                             np.array(person_boxes, np.float32) if track is not None else None)
            writer.finish(meta, [{"path": p.path, "reason": p.reason} for p in dropped])
        except BaseException:
            writer.abort()
            raise
    made_under = ShardKey(options.content_hash(), fingerprint, entry.split, str(entry.path))
    keep.keep(out_dir, shard_path(out_dir, entry.video_id), kept_key(made_under))  # lwgan.keep
    if dropped:
        log.warning("%s: %d frames left out, e.g. %s: %s", entry.video_id, len(dropped), dropped[0].path,
                    dropped[0].reason)
    return VideoResult(entry.video_id, entry.split, str(entry.path), written, source.fps, (height, width),
                       crop.as_tuple(), box.method, False, time.perf_counter() - start, tuple(dropped),
                       tuple(notes))


def kept_key(key: ShardKey) -> str:
    """The name a shard made under `key` is kept by (`lwgan.keep`)."""
    return content_key("prepare", *dataclasses.astuple(key))


def release_kept(out_dir: Path) -> None:
    """Drop the kept copies (`lwgan.keep`) of the shards the frames cache now holds: call it once the stage
    has succeeded, when DVC is about to store the output."""
    keep.release_output(out_dir)


def _reused(entry: VideoEntry, attrs: dict[str, Any]) -> VideoResult:
    dropped = tuple(Problem(p["path"], p["reason"], entry.video_id) for p in json.loads(attrs["problems"]))
    return VideoResult(entry.video_id, entry.split, str(entry.path), int(attrs["num_frames"]),
                       float(attrs["fps"]), tuple(int(x) for x in attrs["source_size"]),  # type: ignore
                       tuple(int(x) for x in attrs["crop_box"]), str(attrs["box_method"]),  # type: ignore
                       True, 0.0, dropped, tuple(json.loads(attrs["notes"])))


def _work(entry: VideoEntry, options: PrepareOptions, fingerprint: str, out_dir: Path,
          tick: Callable[[int], None] | None = None) -> VideoResult | Problem:
    """`prepare_video`, with every failure turned into a Problem (safe to return from a worker process)."""
    try:
        return prepare_video(entry, options, fingerprint, out_dir, tick)
    except DataError as err:
        return Problem(str(entry.path), str(err), entry.video_id)
    except Exception as err:  # one broken video must not stop the others; the report names it
        log.exception("unexpected error while preparing %s", entry.path)
        return Problem(str(entry.path), f"unexpected error {type(err).__name__}: {err}", entry.video_id)


def _init_worker() -> None:
    cv2.setNumThreads(1)


class _Tracker:
    """Frames done and ETA, reported through the callback and the log."""

    def __init__(self, callback: ProgressCallback | None, videos_total: int, frames_total: int,
                 frames_done: int, videos_done: int) -> None:
        self.callback, self.videos_total, self.frames_total = callback, videos_total, frames_total
        self.frames_done, self.videos_done = frames_done, videos_done
        self.processed, self.start = 0, time.perf_counter()

    def emit(self, video_id: str, partial: int = 0) -> None:
        elapsed = time.perf_counter() - self.start
        rate = (self.processed + partial) / elapsed if elapsed > 0 else 0.0
        remaining = max(self.frames_total - self.frames_done - partial, 0)
        eta = remaining / rate if rate > 0 else None
        event = Progress(self.videos_done, self.videos_total, self.frames_done + partial, self.frames_total,
                         elapsed, eta, video_id)
        eta_text = "?" if eta is None else f"{eta:.0f} s"
        log.info("%d/%d videos, %d/%d frames, %.1f frames/s, ETA %s (%s)", event.videos_done,
                 event.videos_total, event.frames_done, event.frames_total, rate, eta_text, video_id)
        if self.callback is not None:
            self.callback(event)

    def finished(self, video_id: str, estimate: int, frames: int) -> None:
        self.videos_done += 1
        self.frames_done += frames
        self.processed += frames
        self.frames_total += frames - estimate
        self.emit(video_id)


def prepare(options: PrepareOptions, out_dir: Path,
            progress: ProgressCallback | None = None) -> PrepareReport:
    """Prepare every video `options` selects into `out_dir` (see the module docstring) and return the
    report. Raises DataError at once for a missing data root or one without videos; problems with single
    videos are collected in the report instead. Call `report.raise_for_failures()` to fail past
    `options.max_failure_fraction`."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    found = discover(options, exclude=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep.clean(out_dir)
    remove_stale(out_dir, keep=[e.video_id for e in found.entries])
    key_hash = options.content_hash()
    results: list[VideoResult] = []
    failed = list(found.failed)
    todo: list[tuple[VideoEntry, str, int]] = []
    for entry in found.entries:
        try:
            source = open_source(entry)
            fingerprint, estimate = source.fingerprint(), source.estimated_frames()
        except (DataError, OSError) as err:
            failed.append(Problem(str(entry.path), str(err), entry.video_id))
            continue
        shard, key = shard_path(out_dir, entry.video_id), ShardKey(key_hash, fingerprint, entry.split,
                                                                   str(entry.path))
        attrs = keep.current_or_taken_back(out_dir, shard, kept_key(key),
                                           functools.partial(read_shard_attrs, shard, entry.video_id, key))
        if attrs is not None:
            results.append(_reused(entry, attrs))
        else:
            todo.append((entry, fingerprint, FramePlan(options.frame_step,
                                                       options.max_frames_per_video).count(estimate)))
    if results:
        log.info("reusing %d prepared videos from %s", len(results), out_dir)
    tracker = _Tracker(progress, len(results) + len(todo),
                       sum(r.num_frames for r in results) + sum(t[2] for t in todo),
                       sum(r.num_frames for r in results), len(results))

    def collect(entry: VideoEntry, estimate: int, outcome: VideoResult | Problem) -> None:
        if isinstance(outcome, Problem):
            failed.append(outcome)
            log.warning("skipped %s: %s", outcome.path, outcome.reason)
            tracker.finished(entry.video_id, estimate, 0)
        else:
            results.append(outcome)
            tracker.finished(entry.video_id, estimate, outcome.num_frames)

    if options.workers == 1 or len(todo) <= 1:
        for entry, fingerprint, estimate in todo:
            tick = lambda n, vid=entry.video_id: tracker.emit(vid, partial=n)  # noqa: E731
            collect(entry, estimate, _work(entry, options, fingerprint, out_dir, tick))
    else:
        todo.sort(key=lambda t: -t[2])  # longest first: the pool finishes together
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(options.workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(_work, e, options, fp, out_dir): (e, est) for e, fp, est in todo}
            for future in as_completed(futures):
                entry, estimate = futures[future]
                collect(entry, estimate, future.result())

    results.sort(key=lambda r: r.video_id)
    removed = remove_stale(out_dir, keep=[r.video_id for r in results])
    report = PrepareReport(tuple(results), tuple(failed), found.ignored, time.perf_counter() - start,
                           options.max_failure_fraction, tuple(str(p) for p in removed))
    _write_outputs(options, out_dir, report)
    return report


def _write_outputs(options: PrepareOptions, out_dir: Path, report: PrepareReport) -> None:
    attrs = {"source": options.source, "root": str(options.root), "options": json.dumps(options.to_dict()),
             "options_hash": options.content_hash(), "image_size": options.image_size, "codec": options.codec}
    write_frames_file(out_dir, {v.video_id: v.num_frames for v in report.videos}, attrs)
    index = {
        "schema_version": SCHEMA_VERSION, "source": options.source, "root": str(options.root),
        "options": options.to_dict(), "options_hash": options.content_hash(),
        "num_videos": len(report.videos), "num_frames": report.num_frames,
        "videos": {v.video_id: {"split": v.split, "num_frames": v.num_frames, "fps": v.fps,
                                "source_path": v.source_path, "source_size": list(v.source_size),
                                "crop_box": list(v.crop_box), "box_method": v.box_method,
                                "shard": shard_path(Path("."), v.video_id).as_posix()}
                   for v in report.videos},
        "splits": {s: [v.video_id for v in report.videos if v.split == s] for s in ("train", "val")},
    }
    write_json(out_dir / INDEX_FILE, index)
    write_json(out_dir / REPORT_FILE, report.to_dict(run_state=False))
    log.info("prepared %d videos (%d reused), %d frames; %d failed, %d ignored -> %s", len(report.videos),
             report.num_reused, report.num_frames, len(report.failed), len(report.ignored), out_dir)


CONTACT_SHEET_FILE = "contact_sheet.png"


def options_from_params(data: DataParams, synthetic_root: Path) -> PrepareOptions:
    """The prepare stage's options from params ``data.*``; the synthetic source reads `synthetic_root`."""
    root = synthetic_root if data.source == "synthetic" else Path(data.root).expanduser()
    return PrepareOptions(
        source="folder" if data.source == "folder" else "iper", root=root, image_size=data.image_size,
        frame_step=data.frame_step, max_frames_per_video=data.max_frames_per_video,
        val_fraction=data.val_fraction, max_failure_fraction=data.max_failure_fraction,
        crop_margin=data.crop_margin, codec=data.codec, jpeg_quality=data.jpeg_quality, workers=data.workers,
        person_box=data.person_box, person=data.person, crop=data.crop, pad=data.pad,  # type: ignore[arg-type]
        min_person_share=data.min_person_share,
    )


def run(options: PrepareOptions, out_dir: Path) -> PrepareReport:
    """The prepare stage: `prepare`, a WARNING line for every skipped video, and the contact sheet
    (`CONTACT_SHEET_FILE`, one labelled frame per video) beside the cache."""
    report = prepare(options, out_dir)  # logs frames done, rate and ETA as it goes
    for problem in report.failed:
        log.warning("skipped %s: %s", problem.path, problem.reason)
    contact_sheet(FramesCache(out_dir / FRAMES_FILE), out_dir / CONTACT_SHEET_FILE)
    return report
