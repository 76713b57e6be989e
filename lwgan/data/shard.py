"""Writing the frames cache: one shard per video (atomic), shard validation, and the combined file.

A shard is complete or absent: it is written to a temporary file beside its final name and renamed when
done, so a run killed at any point leaves only whole shards (and temporary files that the next run
removes). A shard is reused only when its schema version, the hash of the options that produced it, the
fingerprint of its source (sizes and modification times) and its split all match.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from lwgan.data.cache import FRAMES_KIND, SCHEMA_VERSION, SHARD_KIND
from lwgan.data.crop import CropBox, PersonBox
from lwgan.data.h5util import write_index

log = logging.getLogger(__name__)

FRAMES_FILE = "frames.h5"


@dataclass(frozen=True)
class ShardKey:
    """What a shard must match to be reused."""

    options_hash: str
    source_fingerprint: str
    split: str
    source_path: str


@dataclass(frozen=True)
class ShardMeta:
    """Per-video attributes written into the shard's group (see `lwgan.data.cache`)."""

    video_id: str
    split: str
    source: str
    source_path: str
    source_kind: str
    source_fingerprint: str
    options_hash: str
    fps: float
    source_size: tuple[int, int]
    crop: CropBox
    box: PersonBox
    notes: tuple[str, ...] = ()
    crop_boxes: np.ndarray | None = None  # (N, 3) per frame when the crop follows the person
    person_boxes: np.ndarray | None = None  # (N, 4) the followed person's box per frame (detector)


class ShardWriter:
    """Appends frames to a new shard; `finish` writes the attributes and leaves the file ready to rename.

    Frames arrive as (S, S, 3) uint8 BGR; they are stored as JPEG (BGR in, RGB out on decode) or as raw
    RGB with lzf compression.
    """

    def __init__(self, path: Path, video_id: str, image_size: int, codec: str, jpeg_quality: int) -> None:
        self.codec, self.quality, self.size = codec, jpeg_quality, image_size
        self.file = h5py.File(path, "w")
        self.file.attrs.update(kind=SHARD_KIND, schema_version=SCHEMA_VERSION)
        self.group = self.file.create_group(video_id)
        if codec == "jpeg":
            self.frames = self.group.create_dataset(
                "frames", shape=(0,), maxshape=(None,), chunks=(1,), dtype=h5py.vlen_dtype(np.uint8))
            self.frames.attrs["quality"] = jpeg_quality
        else:
            shape = (image_size, image_size, 3)
            self.frames = self.group.create_dataset(
                "frames", shape=(0, *shape), maxshape=(None, *shape), chunks=(1, *shape), dtype=np.uint8,
                compression="lzf")
        self.frames.attrs.update(codec=codec, image_size=image_size)
        self.numbers: list[int] = []

    def append(self, number: int, image_bgr: np.ndarray) -> None:
        n = len(self.numbers)
        self.frames.resize(n + 1, axis=0)
        if self.codec == "jpeg":
            ok, buf = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                raise RuntimeError("JPEG encoding of a cropped frame failed")
            self.frames[n] = buf.reshape(-1)
        else:
            self.frames[n] = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        self.numbers.append(number)

    def finish(self, meta: ShardMeta, problems: list[dict[str, str]]) -> None:
        self.group.create_dataset("frame_index", data=np.asarray(self.numbers, dtype=np.int64))
        if meta.crop_boxes is not None:
            self.group.create_dataset("crop_boxes", data=np.asarray(meta.crop_boxes, dtype=np.int64))
        if meta.person_boxes is not None:
            self.group.create_dataset("person_boxes", data=np.asarray(meta.person_boxes, dtype=np.float32))
        box = meta.box
        self.group.attrs.update(
            video_id=meta.video_id, split=meta.split, source=meta.source, source_path=meta.source_path,
            source_kind=meta.source_kind, source_fingerprint=meta.source_fingerprint,
            options_hash=meta.options_hash, fps=meta.fps,
            source_size=np.asarray(meta.source_size, dtype=np.int64),
            crop_box=np.asarray(meta.crop.as_tuple(), dtype=np.int64),
            person_box=np.asarray([box.x0, box.y0, box.x1, box.y1], dtype=np.float64),
            box_method=box.method, box_note=box.note, num_frames=len(self.numbers),
            problems=json.dumps(problems), notes=json.dumps(list(meta.notes)))
        self.file.close()

    def abort(self) -> None:
        self.file.close()


def read_shard_attrs(path: Path, video_id: str, key: ShardKey) -> dict[str, Any] | None:
    """The group attributes of a valid, reusable shard; None (with the reason logged) otherwise."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            reason = _mismatch(f, video_id, key)
            if reason is None:
                attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v)
                         for k, v in f[video_id].attrs.items()}
                return attrs
    except (OSError, KeyError, ValueError) as err:
        reason = f"cannot be read ({err})"
    log.info("shard %s is redone: %s", path, reason)
    return None


def _mismatch(f: h5py.File, video_id: str, key: ShardKey) -> str | None:
    if f.attrs.get("schema_version") != SCHEMA_VERSION or f.attrs.get("kind") != SHARD_KIND:
        return f"schema version {f.attrs.get('schema_version')} is not {SCHEMA_VERSION}"
    if video_id not in f:
        return f"it has no group {video_id!r}"
    attrs = f[video_id].attrs
    for name, want in (("options_hash", key.options_hash), ("source_fingerprint", key.source_fingerprint),
                       ("split", key.split), ("source_path", key.source_path)):
        if attrs.get(name) != want:
            return f"{name} changed ({attrs.get(name)!r} -> {want!r})"
    group = f[video_id]
    n = int(attrs.get("num_frames", -1))
    if "frames" not in group or "frame_index" not in group or group["frames"].shape[0] != n \
            or group["frame_index"].shape[0] != n or n <= 0:
        return "its frame count does not match its attributes"
    return None


def write_frames_file(out_dir: Path, video_frames: Mapping[str, int], attrs: Mapping[str, Any]) -> Path:
    """Write ``out_dir/frames.h5`` (atomically): root `attrs` and one ExternalLink per video to its shard."""
    return write_index(out_dir / FRAMES_FILE, FRAMES_KIND, SCHEMA_VERSION, video_frames,
                       {"num_videos": len(video_frames), "num_frames": int(sum(video_frames.values())),
                        **attrs})
