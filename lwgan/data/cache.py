"""The frames cache: HDF5 schema and its reader.

Layout (schema version `SCHEMA_VERSION`)::

    frames.h5                       attrs: kind="lwgan.frames", schema_version, source, root, options (JSON),
                                           options_hash, image_size, codec, num_videos, num_frames
      /<video_id>                   an HDF5 ExternalLink to videos/<video_id>.h5:/<video_id>
    videos/<video_id>.h5            one shard per video, written to a temporary file and renamed
      attrs: kind="lwgan.frames.shard", schema_version
      /<video_id>                   group attrs: video_id, split ("train"/"val"), source ("iper"/"folder"),
                                    source_path, source_kind ("frames"/"file"), source_fingerprint,
                                    options_hash, fps (0.0 = unknown), source_size (H, W),
                                    crop_box (x0, y0, side) source pixels (the first frame's when the
                                    crop follows the person), person_box (x0, y0, x1, y1),
                                    box_method ("mask"/"detector"/"motion"/"centre"), box_note, num_frames,
                                    problems (JSON list of {"path", "reason"}: frames left out), notes
        frames                      codec "jpeg": (N,) variable-length uint8, one JPEG file per element
                                    codec "lzf":  (N, S, S, 3) uint8 RGB, lzf-compressed
                                    chunked one frame per chunk; attrs codec, image_size (S), quality
        frame_index                 (N,) int64 original frame numbers (see `lwgan.data.video`)
        crop_boxes                  (N, 3) int64 x0, y0, side of each frame's square, only when the crop
                                    follows the person (`lwgan.data.crop.follow_crops`); else every
                                    frame is cut at crop_box
        person_boxes                (N, 4) float32 x0, y0, x1, y1 source pixels: the followed person's
                                    body box in each frame (between the detector's keyframes: linear),
                                    only for box_method "detector"

Frames read back are (S, S, 3) uint8 RGB. Codec choice, measured with benchmarks/prepare.py on noisy
256² crops (one thread): JPEG q95 ~23 KB/frame and ~2,400 random reads/s; lzf ~182 KB/frame and ~4,000
reads/s; seeking the 1024² source mp4 ~50 frames/s. Both codecs clear the 10x target by far, so the default
is JPEG for its 8x smaller cache (iPER's 241,564 frames: ~5.6 GB instead of ~44 GB); lzf is there for
lossless frames.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np

from lwgan.data.crop import valid_mask
from lwgan.data.errors import DataError
from lwgan.data.h5util import LazyH5

SCHEMA_VERSION = 1
FRAMES_KIND = "lwgan.frames"
SHARD_KIND = "lwgan.frames.shard"
CODECS = ("jpeg", "lzf")


def decode_frame(stored: np.ndarray, codec: str) -> np.ndarray:
    """One stored frame -> (S, S, 3) uint8 RGB."""
    if codec == "jpeg":
        bgr = cv2.imdecode(stored, cv2.IMREAD_COLOR)
        if bgr is None:
            raise DataError("a JPEG frame in the cache cannot be decoded; the cache is damaged: "
                            "delete it and run prepare again")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return np.asarray(stored)


def is_synthetic_set(root: Path) -> bool:
    """Whether `root` is a data set made by lwgan's synthesize stage: its manifest.json names the
    generator version and the set's content hash (`lwgan.synth.synthesize`)."""
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {"generator_version", "content_hash"} <= manifest.keys()


@dataclass(frozen=True)
class VideoInfo:
    """What the cache records about one video (see the module docstring for each attribute)."""

    video_id: str
    split: str
    num_frames: int
    fps: float
    source: str
    source_path: str
    source_size: tuple[int, int]
    crop_box: tuple[int, int, int]
    box_method: str
    problems: tuple[dict[str, str], ...]

    @classmethod
    def from_attrs(cls, attrs: Any) -> VideoInfo:
        return cls(
            video_id=str(attrs["video_id"]),
            split=str(attrs["split"]),
            num_frames=int(attrs["num_frames"]),
            fps=float(attrs["fps"]),
            source=str(attrs["source"]),
            source_path=str(attrs["source_path"]),
            source_size=(int(attrs["source_size"][0]), int(attrs["source_size"][1])),
            crop_box=(int(attrs["crop_box"][0]), int(attrs["crop_box"][1]), int(attrs["crop_box"][2])),
            box_method=str(attrs["box_method"]),
            problems=tuple(json.loads(str(attrs["problems"]))),
        )


class FramesCache(LazyH5):
    """Random access to the frames of a prepared cache (``frames.h5``, or a single shard).

    The file is opened lazily on first use and reopened in a new process; pickling drops the handle, so
    an instance can be handed to DataLoader workers. Up to `max_open` videos keep an open dataset handle
    (each access through an external link would otherwise reopen the shard).
    """

    KIND = (FRAMES_KIND, SHARD_KIND)  # frames.h5 and single shards are both readable
    SCHEMA_VERSION = SCHEMA_VERSION
    WHAT = "frames cache"
    MAKE_HINT = "run the prepare stage"

    def __init__(self, path: str | Path, max_open: int = 64) -> None:
        super().__init__(path)
        self.max_open = max_open
        self._open_videos: OrderedDict[str, tuple[h5py.Dataset, str]] = OrderedDict()
        self._info: dict[str, VideoInfo] = {}

    def _fresh_handles(self) -> dict[str, Any]:
        return {"_open_videos": OrderedDict()}

    def info(self, video: str) -> VideoInfo:
        if video not in self._info:
            self._info[video] = VideoInfo.from_attrs(self.group(video).attrs)
        return self._info[video]

    def split(self, name: str) -> tuple[str, ...]:
        """Ids of the videos in split `name` ("train" or "val")."""
        return tuple(v for v in self.videos if self.info(v).split == name)

    def num_frames(self, video: str) -> int:
        return int(self._dataset(video)[0].shape[0])

    def frame_index(self, video: str) -> np.ndarray:
        """(N,) int64 original frame numbers of the cached frames of `video`."""
        return self.group(video)["frame_index"][()]

    def person_boxes(self, video: str) -> np.ndarray | None:
        """(N, 4) float32 (x0, y0, x1, y1) of the followed person in each cached frame, in that frame's
        pixels (mapped through its crop); None when the person was not found by the detector."""
        group = self.group(video)
        if "person_boxes" not in group:
            return None
        boxes = group["person_boxes"][()].astype(np.float64)
        crops = self.crop_boxes(video).astype(np.float64)
        scale = (float(group["frames"].attrs["image_size"]) / crops[:, 2])[:, None]
        origin = np.concatenate([crops[:, :2], crops[:, :2]], axis=1)
        return ((boxes - origin + 0.5) * scale - 0.5).astype(np.float32)

    def data_kind(self) -> str:
        """What the cached videos are: "synthetic" when they were prepared from lwgan's synthetic set (the
        cache's root holds that set's manifest.json), "footage" otherwise (iPER, a folder of videos),
        "unknown" when the root is no longer where it was. A relative root is looked up from the working
        directory and from the folders above the cache, where the stage that wrote it ran."""
        root = Path(str(self.attrs.get("root", "")))
        if not str(root) or str(root) == ".":
            return "unknown"
        places = [root] if root.is_absolute() else [Path.cwd() / root,
                                                    *(above / root for above in self.path.resolve().parents)]
        for place in places:
            if place.is_dir():
                return "synthetic" if is_synthetic_set(place) else "footage"
        return "unknown"

    def crop_boxes(self, video: str) -> np.ndarray:
        """(N, 3) int64 (x0, y0, side) in source pixels of the square each cached frame was cut from."""
        group = self.group(video)
        if "crop_boxes" in group:
            return group["crop_boxes"][()]
        return np.tile(np.asarray(self.info(video).crop_box, np.int64), (self.num_frames(video), 1))

    def is_padded(self, video: str) -> bool:
        """Whether some frame's square reached past the source frame (see `valid_masks`)."""
        return self._padding(video) is not None

    def valid_masks(self, video: str, indices: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """(n, S, S) bool for the cached frames at `indices`: True where the pixel shows the source, False
        on the padding of a square that reached past the source frame; None when no frame of the video
        is padded (the common case, and the cheap one)."""
        padding = self._padding(video)
        if padding is None:
            return None
        crops, source_size = padding
        size = int(self.group(video)["frames"].attrs["image_size"])
        return np.stack([valid_mask(tuple(crops[i]), source_size, size) for i in np.asarray(indices)])

    def _padding(self, video: str) -> tuple[np.ndarray, tuple[int, int]] | None:
        """(every frame's square, the source size) when some square reached past the source, else None."""
        crops = self.crop_boxes(video)
        height, width = self.info(video).source_size
        inside = ((crops[:, 0] >= 0) & (crops[:, 1] >= 0) & (crops[:, 0] + crops[:, 2] <= width)
                  & (crops[:, 1] + crops[:, 2] <= height))
        return None if inside.all() else (crops, (height, width))

    # -- frames -----------------------------------------------------------------------------------------
    def frame(self, video: str, i: int) -> np.ndarray:
        """Frame `i` (0-based position in the cache, negative counts from the end) as (S, S, 3) uint8 RGB."""
        dataset, codec = self._dataset(video)
        n = dataset.shape[0]
        if not -n <= i < n:
            raise IndexError(f"frame {i} of video {video!r} in {self.path} is out of range (it has {n})")
        return decode_frame(dataset[i], codec)

    def frames(self, video: str, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Frames at `indices` of `video` as (len(indices), S, S, 3) uint8 RGB."""
        return np.stack([self.frame(video, int(i)) for i in indices])

    def _dataset(self, video: str) -> tuple[h5py.Dataset, str]:
        if self._file is not None and self._pid != os.getpid():
            self._open_videos.clear()
        entry = self._open_videos.get(video)
        if entry is None:
            dataset = self.group(video)["frames"]
            entry = (dataset, str(dataset.attrs["codec"]))
            self._open_videos[video] = entry
            while len(self._open_videos) > self.max_open:
                self._open_videos.popitem(last=False)
        else:
            self._open_videos.move_to_end(video)
        return entry
