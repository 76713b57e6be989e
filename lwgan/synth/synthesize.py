"""`synthesize`: the embedded default data set, written in iPER's layout with per-frame ground truth.

Layout under ``out_dir`` (subjects 001.., clothes 1.., actions 1 = A-pose turn, 2 = varied motion)::

    images/<subject>/<cloth>/<action>/NNNN.jpg   RGB frames, 4-digit numbers from 0000 (as iPER)
    masks/<subject>/<cloth>/<action>/NNNN.png    person mask, uint8 0/255, the rasterised silhouette
    gt/<subject>_<cloth>_<action>.npz            ground truth of the video (see `GT_FIELDS`)
    train.txt, val.txt                           one video a line ("001/1/2"), split by subject
    manifest.json                                options, counts, videos, content hashes
    preview.png                                  a contact sheet to look at
    .synth/<subject>_<cloth>_<action>.json       done marker of a finished video (for resuming)

Every video is rendered into a temporary folder and moved into place (masks, then ground truth, then the
image folder, then the marker), so an image folder, once visible, is complete with its ground truth. A
rerun reuses every video whose marker carries the same video key (generator version, body model, seed,
frame count, image size, JPEG quality and the video's indices), so a larger `subjects` or `clothes`
renders only what is new. Outputs are byte-identical for the same options, whatever the worker count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import multiprocessing
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch

from lwgan.body.model import BodyModel
from lwgan.config import Params
from lwgan.io import atomic_path, remove_temporaries, write_json, write_npz
from lwgan.progress import ProgressLog
from lwgan.synth.appearance import LOOSE, PHOTO, make_outfit, make_subject, stream
from lwgan.synth.loose import LooseChoice
from lwgan.synth.photos import PHOTOS, photo_background
from lwgan.synth.render import AMBIENT_MAX, AMBIENT_MIN, SUPERSAMPLE, VideoRenderer, VideoSpec, VideoTruth
from lwgan.synth.sheet import truth_sheet

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when a change alters any output byte: finished videos are then redone
MARKERS = ".synth"
PARTIAL = ".partial"
GT_FIELDS = {
    "betas": "(S,) float32 shape coefficients",
    "pose": "(N, 72) float32 axis-angle per joint, joint 0 the global orientation facing the camera",
    "cam": "(N, 3) float32 weak perspective (s, tx, ty): NDC = s * (X + t) of the posed body",
    "keypoints": "(N, 17, 3) float32 COCO-17 pixel u (column), v (row), centres at integers; visibility 1/0",
    "keypoint_names": "(17,) str",
    "joints3d": "(N, 24, 3) float32 posed joints in camera axes, metres, no translation",
    "euler": "(N, 24, 3) float32 the motion's joint angles in degrees (joint 0: body tilt)",
    "yaw": "(N,) float32 degrees of turn about the vertical axis (0 faces the camera)",
    "image_size": "int, images are image_size x image_size",
    "skin_tone": "(3,) uint8 RGB",
    "outfit": "str, a readable description; outfit_json: str, every outfit parameter",
    "info": "str, JSON: background kind, light, ambient, motion segments",
}


@dataclasses.dataclass(frozen=True)
class SynthOptions:
    """What to generate (params ``synth.*``).

    subjects: distinct people (body shape, skin tone, hair); clothes: outfits per subject;
    frames_per_action: frames of every video; image_size: square side in pixels; val_subjects: the LAST
    this many subjects form the validation split (iPER splits by subject); seed: everything follows from
    it; workers: processes rendering videos in parallel (output does not depend on it); jpeg_quality:
    of the frames; loose: the share of outfits with a skirt, which does not follow the legs, and with it
    long-haired subjects' hair hangs free of the head (`lwgan.synth.loose`); 0 keeps everything on the body
    surface, byte for byte the set as it was before loose pieces existed; photos: the share of videos in
    front of a real photograph (`lwgan.synth.photos`) instead of a procedural background, drawn per video
    from a stream of its own, so that every other video is byte for byte what it is at 0; ambient_max:
    the top of the range each video draws its ambient light from (`AMBIENT_MIN` to this; the share of the
    light that reaches a surface turned away from the light source, 1 = flat light), at its default
    `AMBIENT_MAX` the set as it was before the option existed.
    """

    subjects: int = 16
    clothes: int = 2
    frames_per_action: int = 20
    image_size: int = 256
    val_subjects: int = 2
    seed: int = 0
    workers: int = 1
    jpeg_quality: int = 95
    loose: float = 0.5
    photos: float = 0.0
    ambient_max: float = AMBIENT_MAX

    def __post_init__(self) -> None:
        for name, (low, high) in {"loose": (0, 1), "photos": (0, 1), "ambient_max": (AMBIENT_MIN, 1)}.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ValueError(f"synth.{name} must be a number in [{low}, {high}], got {value!r}")
        ranges = {
            "subjects": (1, 999), "clothes": (1, 99), "frames_per_action": (2, 9999),
            "image_size": (16, 4096), "seed": (0, 2**63 - 1), "workers": (1, 256), "jpeg_quality": (1, 100),
            "val_subjects": None,
        }  # fmt: skip
        for name, bounds in ranges.items():
            low, high = bounds if bounds is not None else (0, self.subjects - 1)  # keep a training subject
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"synth.{name} must be an integer in [{low}, {high}], got {value!r}")

    @property
    def frames(self) -> int:
        """Total frames of the data set."""
        return self.subjects * self.clothes * 2 * self.frames_per_action

    def specs(self) -> list[VideoSpec]:
        """Every video in order: subjects, then clothes, then actions."""
        return [
            VideoSpec(s, c, a, self.frames_per_action, self.image_size, self.seed)
            for s in range(self.subjects)
            for c in range(self.clothes)
            for a in (1, 2)
        ]

    def is_val(self, spec: VideoSpec) -> bool:
        return spec.subject >= self.subjects - self.val_subjects


@dataclasses.dataclass(frozen=True)
class SynthReport:
    """What `synthesize` did: videos and frames in the set, how many were rendered now and how many
    reused, wall time, bytes on disk of images + masks + ground truth, and the data set's content hash."""

    out_dir: Path
    videos: int
    frames: int
    rendered_videos: int
    reused_videos: int
    rendered_frames: int
    seconds: float
    bytes: int
    content_hash: str

    @property
    def frames_per_s(self) -> float:
        return self.rendered_frames / self.seconds if self.seconds > 0 else 0.0


def body_hash(body: BodyModel) -> str:
    """sha256 of the body model's arrays that shape the pictures and the ground truth."""
    digest = hashlib.sha256()
    for name, tensor in sorted(body.state_dict().items()):
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def video_key(spec: VideoSpec, options: SynthOptions, body_digest: str) -> str:
    """sha256 naming everything that determines one video's bytes."""
    fields = {"version": GENERATOR_VERSION, "body": body_digest, "quality": options.jpeg_quality,
              **dataclasses.asdict(spec)}
    if options.loose > 0:  # absent at 0, so that the set without loose pieces keeps its keys
        fields["loose"] = options.loose
    if photo_stream(spec, options) is not None:  # only these videos change with synth.photos
        fields["photo"] = [(p.name, p.sha256) for p in PHOTOS]
    if options.ambient_max != AMBIENT_MAX:  # absent at the default, so that the set keeps its keys
        fields["ambient_max"] = options.ambient_max
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _truth_arrays(truth: VideoTruth, spec: VideoSpec, body: BodyModel, skin: tuple[int, int, int]) -> dict:
    extras = dict(truth.extras)
    return {
        "betas": truth.betas,
        "pose": truth.pose,
        "cam": truth.cam,
        "keypoints": truth.keypoints,
        "keypoint_names": np.asarray(body.keypoint_names),
        "joints3d": truth.joints3d,
        "euler": truth.euler,
        "yaw": truth.yaw,
        "image_size": np.asarray(spec.image_size, dtype=np.int64),
        "skin_tone": np.asarray(skin, dtype=np.uint8),
        "outfit": np.asarray(extras.pop("outfit")),
        "outfit_json": np.asarray(extras.pop("outfit_json")),
        "info": np.asarray(json.dumps(extras, sort_keys=True)),
    }


def photo_stream(spec: VideoSpec, options: SynthOptions) -> np.random.Generator | None:
    """The video's own random stream for a photo background, past the draw that gave it one (a share
    `options.photos` of the videos; the crop is drawn from what follows), or None: a procedural one."""
    if options.photos <= 0:
        return None
    rng = stream(spec.seed, PHOTO, spec.subject, spec.cloth, spec.action)
    return rng if rng.random() < options.photos else None


def render_video(
    renderer: VideoRenderer, spec: VideoSpec, options: SynthOptions, out_dir: Path, key: str
) -> dict:
    """Render one video into a temporary folder, move it into place and write its marker; returns the
    marker's record (video id, frames, outfit, bytes, content hash)."""
    subject = make_subject(spec.seed, spec.subject, renderer.body.num_betas)
    outfit = make_outfit(spec.seed, spec.subject, spec.cloth)
    (out_dir / MARKERS / f"{spec.stem}.json").unlink(missing_ok=True)  # not done until written again
    work = out_dir / PARTIAL / spec.stem
    shutil.rmtree(work, ignore_errors=True)
    (work / "images").mkdir(parents=True)
    (work / "masks").mkdir()
    digest = hashlib.sha256()
    size = 0
    quality = [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality]

    def write_frame(index: int, image: np.ndarray, mask: np.ndarray) -> None:
        nonlocal size
        for folder, ext, picture, params in (("images", ".jpg", image[..., ::-1], quality),
                                             ("masks", ".png", mask, [])):
            ok, encoded = cv2.imencode(ext, picture, params)
            if not ok:
                raise RuntimeError(f"could not encode frame {index} of {spec.name} as {ext}")
            data = encoded.tobytes()
            (work / folder / f"{index:04d}{ext}").write_bytes(data)
            digest.update(f"{folder}/{index:04d}{ext}".encode())
            digest.update(data)
            size += len(data)

    loose = None
    if options.loose > 0:
        loose = LooseChoice.draw(stream(spec.seed, LOOSE, spec.subject, spec.cloth), options.loose,
                                 subject.long_hair)
    backdrop = None
    rng = photo_stream(spec, options)
    if rng is not None:
        big = spec.image_size * SUPERSAMPLE
        backdrop = photo_background(rng, big, big)
    truth = renderer.render(spec, subject, outfit, write_frame, loose, backdrop, options.ambient_max)
    gt_bytes = write_npz(work / "gt.npz", _truth_arrays(truth, spec, renderer.body, subject.skin))
    digest.update(b"gt.npz")
    digest.update(gt_bytes)
    size += len(gt_bytes)
    for folder in ("masks", "images"):
        target = out_dir / folder / spec.name
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if folder == "images":  # ground truth goes in before the image folder appears
            (out_dir / "gt").mkdir(exist_ok=True)
            (work / "gt.npz").replace(out_dir / "gt" / f"{spec.stem}.npz")
        (work / folder).replace(target)
    shutil.rmtree(work, ignore_errors=True)
    record = {
        "video": spec.name, "subject": spec.subject + 1, "cloth": spec.cloth + 1, "action": spec.action,
        "frames": spec.frames, "key": key, "outfit": truth.extras["outfit"],
        "background": truth.extras["background"], "skin_tone": list(subject.skin), "bytes": size,
        "content_hash": digest.hexdigest(),
    }  # fmt: skip
    if "photo" in truth.extras:
        record["photo"] = truth.extras["photo"]["photo"]
    write_json(out_dir / MARKERS / f"{spec.stem}.json", record)
    return record


def _finished(out_dir: Path, spec: VideoSpec, key: str) -> dict | None:
    """The marker record of a finished video with this key whose files are all present, else None."""
    marker = out_dir / MARKERS / f"{spec.stem}.json"
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if record.get("key") != key or not (out_dir / "gt" / f"{spec.stem}.npz").is_file():
        return None
    for folder, ext in (("images", "jpg"), ("masks", "png")):
        if len(list((out_dir / folder / spec.name).glob(f"*.{ext}"))) != spec.frames:
            return None
    return record


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch compute thread while rendering: results then do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


_WORKER: dict[str, object] = {}


def _init_worker(body: BodyModel) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER["renderer"] = VideoRenderer(body)


def _worker_job(job: tuple[VideoSpec, SynthOptions, Path, str]) -> dict:
    spec, options, out_dir, key = job
    return render_video(_WORKER["renderer"], spec, options, out_dir, key)  # type: ignore[arg-type]


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete videos of an earlier run that are not part of this one, and unfinished temporary folders.

    Only paths of this layout are touched: images/*/*/*, masks/*/*/*, gt/*.npz, the markers and the
    temporary files of `lwgan.io.atomic_path`.
    """
    shutil.rmtree(out_dir / PARTIAL, ignore_errors=True)
    remove_temporaries(out_dir)
    names = {stem.replace("_", "/") for stem in keep}
    for folder in ("images", "masks"):
        for path in sorted((out_dir / folder).glob("*/*/*")):
            name = path.relative_to(out_dir / folder).as_posix()
            if path.is_dir() and name not in names:
                logger.info("removing %s/%s: not part of the requested data set", folder, name)
                shutil.rmtree(path)
                for parent in (path.parent, path.parent.parent):  # cloth and subject folders left empty
                    if not any(parent.iterdir()):
                        parent.rmdir()
    for folder, pattern in (("gt", "*.npz"), (MARKERS, "*.json")):
        for path in sorted((out_dir / folder).glob(pattern)):
            if path.stem not in keep:
                path.unlink()


def synthesize(
    options: SynthOptions,
    body: BodyModel,
    out_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Generate (or complete) the synthetic data set in `out_dir`; see the module docstring.

    progress: called with (frames done, frames in total) after every finished or reused video.
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = options.specs()
    digest = body_hash(body)
    keys = {spec.stem: video_key(spec, options, digest) for spec in specs}
    _remove_stale(out_dir, set(keys))
    records: dict[str, dict] = {}
    todo = []
    for spec in specs:
        found = _finished(out_dir, spec, keys[spec.stem])
        if found is None:
            todo.append(spec)
        else:
            records[spec.stem] = found
    done_frames = sum(r["frames"] for r in records.values())
    if progress is not None:
        progress(done_frames, options.frames)
    logger.info("synthesizing %d videos (%d reused) into %s", len(todo), len(records), out_dir)
    for record in _run(todo, options, body, out_dir, keys):
        records[record["video"].replace("/", "_")] = record
        done_frames += record["frames"]
        if progress is not None:
            progress(done_frames, options.frames)
    shutil.rmtree(out_dir / PARTIAL, ignore_errors=True)
    ordered = [records[spec.stem] for spec in specs]
    content = _write_index(options, specs, ordered, out_dir, {"source": str(body.source), "sha256": digest})
    with atomic_path(out_dir / "preview.png") as tmp:
        cv2.imwrite(str(tmp), truth_sheet(out_dir, ordered)[..., ::-1])
    return SynthReport(
        out_dir=out_dir,
        videos=len(specs),
        frames=options.frames,
        rendered_videos=len(todo),
        reused_videos=len(specs) - len(todo),
        rendered_frames=len(todo) * options.frames_per_action,
        seconds=time.perf_counter() - start,
        bytes=sum(r["bytes"] for r in ordered),
        content_hash=content,
    )


def _run(
    todo: list[VideoSpec], options: SynthOptions, body: BodyModel, out_dir: Path, keys: dict[str, str]
) -> Iterator[dict]:
    """Render the videos still to do, in order, in this process or in `options.workers` processes."""
    jobs = [(spec, options, out_dir, keys[spec.stem]) for spec in todo]
    if options.workers == 1 or len(jobs) <= 1:
        with _one_thread():
            renderer = VideoRenderer(body)
            for spec, _, _, key in jobs:
                yield render_video(renderer, spec, options, out_dir, key)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(min(options.workers, len(jobs)), initializer=_init_worker, initargs=(body,)) as pool:
        yield from pool.imap(_worker_job, jobs)


def _write_index(
    options: SynthOptions, specs: list[VideoSpec], records: list[dict], out_dir: Path, body_info: dict
) -> str:
    """Write train.txt, val.txt and manifest.json; return the data set's content hash."""
    splits = {"train": [], "val": []}
    for spec, record in zip(specs, records, strict=True):
        split = "val" if options.is_val(spec) else "train"
        record["split"] = split
        splits[split].append(spec.name)
    for split, names in splits.items():
        with atomic_path(out_dir / f"{split}.txt") as tmp:
            tmp.write_text("".join(f"{name}\n" for name in names))
    content = hashlib.sha256("".join(r["content_hash"] for r in records).encode()).hexdigest()
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "options": {k: v for k, v in dataclasses.asdict(options).items()
                    if k != "workers" and not (k in ("loose", "photos") and v == 0)
                    and not (k == "ambient_max" and v == AMBIENT_MAX)},  # as it was before the option
        "body_model": body_info,
        "layout": {"images": "images/<subject>/<cloth>/<action>/NNNN.jpg",
                   "masks": "masks/<subject>/<cloth>/<action>/NNNN.png",
                   "gt": "gt/<subject>_<cloth>_<action>.npz", "gt_fields": GT_FIELDS},
        "counts": {"subjects": options.subjects, "clothes": options.clothes, "videos": len(records),
                   "frames": options.frames, "train_videos": len(splits["train"]),
                   "val_videos": len(splits["val"])},
        "videos": [{k: v for k, v in r.items() if k != "key"} for r in records],
        "content_hash": content,
    }  # fmt: skip
    write_json(out_dir / "manifest.json", manifest)
    return content


def options_from_params(params: Params) -> SynthOptions:
    """The synthesize stage's options: params ``synth.*`` and the global seed."""
    synth = params.synth
    return SynthOptions(subjects=synth.subjects, clothes=synth.clothes,
                        frames_per_action=synth.frames_per_action, image_size=synth.image_size,
                        val_subjects=synth.val_subjects, seed=params.seed, workers=synth.workers,
                        loose=synth.loose, photos=synth.photos, ambient_max=synth.ambient_max)


def run(params: Params, body_path: Path, out_dir: Path) -> SynthReport:
    """The synthesize stage: the data set of `params` rendered with the body model at `body_path`, with
    progress lines (frames done, rate, ETA)."""
    return synthesize(options_from_params(params), BodyModel.from_file(body_path), out_dir,
                      progress=ProgressLog("synthesize", "frames"))
