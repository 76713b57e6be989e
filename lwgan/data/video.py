"""Streaming frame sources: a folder of numbered images or a video file that OpenCV/FFmpeg can decode.

Both yield frames one at a time in source order, so memory does not grow with the length of a video.
Frames are BGR uint8 (H, W, 3) here, OpenCV's native order; `lwgan.data.cache` stores RGB.

Frame numbers
    A video file's frames are numbered by decode position (0, 1, ...). A frame folder's frames are numbered
    by their file name when every name is a number (``0000.jpg`` -> 0), else by position in sorted order.
    `FramePlan` selects frames by these numbers, and the cache stores them as the original frame indices.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from lwgan.data.errors import DataError
from lwgan.data.h5util import file_digest

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                    ".3gp", ".ts", ".mts", ".m2ts", ".ogv")


@dataclass(frozen=True)
class VideoEntry:
    """One video to prepare.

    path is a frame folder (kind "frames") or a video file (kind "file"); mask_dir, when set, holds
    ground-truth person masks named by frame number (``NNNN.png``, any zero padding).
    """

    video_id: str
    split: Literal["train", "val"]
    path: Path
    kind: Literal["frames", "file"]
    mask_dir: Path | None = None


@dataclass(frozen=True)
class FramePlan:
    """Which frame numbers to keep: every `step`-th, at most `max_frames` of them (0 = all)."""

    step: int = 1
    max_frames: int = 0

    def keeps(self, number: int) -> bool:
        return number % self.step == 0 and not self.past_end(number)

    def past_end(self, number: int) -> bool:
        """True once `number` is beyond the last frame the plan can keep (decoding may stop)."""
        return self.max_frames > 0 and number >= self.step * self.max_frames

    def count(self, total: int) -> int:
        """Frames kept from a video of `total` frames numbered 0..total-1."""
        kept = (total + self.step - 1) // self.step
        return min(kept, self.max_frames) if self.max_frames > 0 else kept


@dataclass(frozen=True)
class Frame:
    """One frame of a source: image (h, w, 3) uint8 BGR, or None with `problem` saying why it is unusable.

    size is the frame's (H, W) in the source when `image` was downscaled (`FrameSource.sample`).
    """

    number: int
    path: Path
    image: np.ndarray | None
    problem: str | None = None
    size: tuple[int, int] | None = None

    @property
    def source_size(self) -> tuple[int, int] | None:
        """(H, W) of the frame in the source; None for an unreadable frame."""
        if self.size is not None:
            return self.size
        return None if self.image is None else (self.image.shape[0], self.image.shape[1])

    def shrunk(self, max_side: int) -> Frame:
        """This frame with its image downscaled (cv2.INTER_AREA) by the smallest integer factor that brings
        its longer side to at most `max_side` (an integer factor takes OpenCV's fast area path)."""
        if self.image is None or max(self.image.shape[:2]) <= max_side:
            return self
        h, w = self.image.shape[:2]
        factor = -(-max(h, w) // max_side)  # ceil
        small = cv2.resize(self.image, (max(1, w // factor), max(1, h // factor)),
                           interpolation=cv2.INTER_AREA)
        return Frame(self.number, self.path, small, self.problem, (h, w))


def numbered(files: list[Path]) -> list[tuple[int, Path]]:
    """Number image files by their stem when every stem is an integer, else by sorted position."""
    if files and all(f.stem.isdigit() for f in files):
        return sorted((int(f.stem), f) for f in files)
    return list(enumerate(sorted(files)))


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder` (hidden files excluded)."""
    return [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            and not p.name.startswith(".")]


def _listing_digest(paths: list[Path]) -> str:
    """"files:total bytes:digest of names and contents" of `paths`: contents, not modification times, so a
    copy or a fresh clone of the same files has the same fingerprint (and the caches the same bytes)."""
    digest = hashlib.sha1()
    total = 0
    for path in sorted(paths):
        size = path.stat().st_size
        total += size
        digest.update(f"{path.name}:{size}:{file_digest(path)}\n".encode())
    return f"{len(paths)}:{total}:{digest.hexdigest()[:16]}"


class FrameSource:
    """Streaming access to one video's frames. Construct with `open_source`."""

    def __init__(self, entry: VideoEntry) -> None:
        self.entry = entry
        self.path = entry.path
        self._masks: dict[int, Path] | None = None

    @property
    def fps(self) -> float:
        """Frames per second; 0.0 when the source does not say (frame folders)."""
        raise NotImplementedError

    def estimated_frames(self) -> int:
        """Frame count before decoding (a video header can be wrong; decoding decides)."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the source (or its masks) changes: names, sizes and contents (a video is read
        once for it, about a second per GB); a copy with other modification times keeps it."""
        raise NotImplementedError

    def frames(self, plan: FramePlan) -> Iterator[Frame]:
        """Decode the frames `plan` keeps, in order, one at a time."""
        raise NotImplementedError

    def sample(self, plan: FramePlan, count: int, max_side: int) -> list[Frame]:
        """Up to `count` readable frames spread evenly over the frames `plan` keeps, downscaled to at most
        `max_side` (`Frame.shrunk`) as they are read, so the sample's memory does not depend on the input
        resolution beyond one frame."""
        raise NotImplementedError

    def masks(self) -> dict[int, Path]:
        """Ground-truth mask files by frame number (empty without a mask folder)."""
        if self._masks is None:
            self._masks = {}
            mask_dir = self.entry.mask_dir
            if mask_dir is not None and mask_dir.is_dir():
                files = list_images(mask_dir)
                if all(f.stem.isdigit() for f in files):
                    self._masks = {int(f.stem): f for f in files}
                else:
                    log.warning("mask folder %s has files not named by frame number (NNNN.png); it is "
                                "ignored", mask_dir)
        return self._masks

    def _mask_digest(self) -> str:
        masks = list(self.masks().values())
        return "no-masks" if not masks else "masks:" + _listing_digest(masks)


class FolderSource(FrameSource):
    """A folder of numbered image files, one per frame (iPER's ``images/<sub>/<cloth>/<action>/``)."""

    def __init__(self, entry: VideoEntry) -> None:
        super().__init__(entry)
        self._files = numbered(list_images(entry.path))

    @property
    def fps(self) -> float:
        return 0.0

    def estimated_frames(self) -> int:
        return len(self._files)

    def fingerprint(self) -> str:
        files = [path for _, path in self._files]
        return "frames:" + _listing_digest(files) + "|" + self._mask_digest()

    def frames(self, plan: FramePlan) -> Iterator[Frame]:
        for number, path in self._files:
            if plan.past_end(number):
                return
            if plan.keeps(number):
                yield _read_image(number, path)

    def sample(self, plan: FramePlan, count: int, max_side: int) -> list[Frame]:
        kept = [(n, p) for n, p in self._files if plan.keeps(n)]
        if len(kept) > count:
            picks = np.linspace(0, len(kept) - 1, count).round().astype(int)
            kept = [kept[i] for i in sorted(set(picks.tolist()))]
        frames = (_read_image(n, p) for n, p in kept)
        return [f.shrunk(max_side) for f in frames if f.image is not None]


class FileSource(FrameSource):
    """A video file decoded with OpenCV's FFmpeg backend."""

    def __init__(self, entry: VideoEntry) -> None:
        super().__init__(entry)
        self._header: tuple[float, int] | None = None

    def _read_header(self) -> tuple[float, int]:
        if self._header is None:
            capture = self._open()
            try:
                fps, count = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
            finally:
                capture.release()
            self._header = (float(fps) if np.isfinite(fps) and fps > 0 else 0.0,
                            int(count) if np.isfinite(count) and count > 0 else 0)
        return self._header

    @property
    def fps(self) -> float:
        return self._read_header()[0]

    def estimated_frames(self) -> int:
        return self._read_header()[1]

    def fingerprint(self) -> str:
        return f"file:{self.path.stat().st_size}:{file_digest(self.path)}|{self._mask_digest()}"

    def _open(self) -> cv2.VideoCapture:
        if not self.path.is_file():
            raise DataError(f"video file {self.path} does not exist")
        if self.path.stat().st_size == 0:
            raise DataError(f"video file {self.path} is empty (0 bytes); re-copy or remove it")
        capture = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not capture.isOpened():
            capture.release()
            raise DataError(f"cannot open {self.path} as a video: it is corrupt, truncated or not a video "
                            "that FFmpeg can decode; re-encode it (e.g. to H.264 mp4) or remove it")
        return capture

    def _decode(self, plan: FramePlan) -> Iterator[tuple[int, np.ndarray]]:
        """(number, BGR image) of every frame `plan` keeps; grab() skips the others without converting."""
        capture = self._open()
        try:
            number = 0
            while not plan.past_end(number):
                if not capture.grab():
                    break
                if plan.keeps(number):
                    ok, image = capture.retrieve()
                    if not ok or image is None:
                        break
                    yield number, _as_bgr(image)
                number += 1
        finally:
            capture.release()

    def frames(self, plan: FramePlan) -> Iterator[Frame]:
        for number, image in self._decode(plan):
            yield Frame(number, self.path, image)

    def sample(self, plan: FramePlan, count: int, max_side: int) -> list[Frame]:
        # The frame count of a header can be wrong, so sample without it: keep every `stride`-th kept
        # frame and, whenever the buffer is full, drop every other one and double the stride. The buffer
        # never holds more than `count` frames, however long the video; frames not kept are only grabbed
        # (decoded, not converted to BGR).
        stride, seen, kept = 1, 0, []
        capture = self._open()
        try:
            number = 0
            while not plan.past_end(number) and capture.grab():
                if plan.keeps(number):
                    if seen % stride == 0:
                        ok, image = capture.retrieve()
                        if not ok or image is None:
                            break
                        kept.append(Frame(number, self.path, _as_bgr(image)).shrunk(max_side))
                        if len(kept) > count:
                            kept, stride = kept[::2], stride * 2
                    seen += 1
                number += 1
        finally:
            capture.release()
        return kept


def open_source(entry: VideoEntry) -> FrameSource:
    """The frame source of `entry` (a `FolderSource` or `FileSource`)."""
    return FolderSource(entry) if entry.kind == "frames" else FileSource(entry)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _read_image(number: int, path: Path) -> Frame:
    try:
        if os.path.getsize(path) == 0:
            return Frame(number, path, None, "empty file (0 bytes)")
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    except (OSError, cv2.error) as err:
        return Frame(number, path, None, f"cannot be read: {err}")
    if image is None:
        return Frame(number, path, None, "cannot be decoded as an image (corrupt or truncated)")
    return Frame(number, path, _as_bgr(image))
