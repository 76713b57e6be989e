"""The user's own files: a photo, a video (a file FFmpeg decodes, or a folder of numbered images) and the
outputs, with errors that name the file and say what to do.

A `Footage` is opened and checked at once (a missing, unreadable or empty input fails before any work)
but decoded only when its frames are iterated, one at a time and anew on every pass, so memory does not
grow with the length or resolution of a video.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from lwgan.data.errors import DataError
from lwgan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FramePlan, VideoEntry, open_source
from lwgan.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # for photos and frame folders, which carry no rate


class InputError(UserError, ValueError):
    """An input file that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Footage:
    """A photo or a video; `frames()` decodes it. step / max_frames: every step-th frame, at most
    max_frames of them (0 = all)."""

    path: Path
    kind: Literal["image", "video"]
    step: int = 1
    max_frames: int = 0

    @property
    def fps(self) -> float:
        if self.kind == "image":
            return DEFAULT_FPS
        try:
            rate = self._source().fps
        except DataError:
            rate = 0.0
        return (rate or DEFAULT_FPS) / self.step

    def estimated_frames(self) -> int:
        """Frames `frames()` will give, from the video's header (0 when unknown)."""
        if self.kind == "image":
            return 1
        try:
            total = self._source().estimated_frames()
        except DataError:
            return 0
        return FramePlan(self.step, self.max_frames).count(total)

    def _source(self):
        kind = "frames" if self.path.is_dir() else "file"
        return open_source(VideoEntry(self.path.name, "val", self.path, kind))

    def frames(self) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames in order; unreadable frames of a folder are skipped with a warning,
        a frame of another size than the first is an InputError."""
        if self.kind == "image":
            image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"cannot read {self.path} as an image: it is damaged or not in a format "
                                 f"OpenCV reads ({', '.join(IMAGE_EXTENSIONS)})")
            yield np.ascontiguousarray(image[..., ::-1])
            return
        first: tuple[int, ...] | None = None
        try:
            for frame in self._source().frames(FramePlan(self.step, self.max_frames)):
                if frame.image is None:
                    log.warning("frame %d of %s is skipped: %s", frame.number, self.path, frame.problem)
                    continue
                if first is None:
                    first = frame.image.shape
                elif frame.image.shape != first:
                    raise InputError(f"frame {frame.number} of {self.path} is {frame.image.shape[:2]}, but "
                                     f"its first frame is {first[:2]}: all frames of a video must be one "
                                     "size")
                yield np.ascontiguousarray(frame.image[..., ::-1])
        except DataError as err:
            raise InputError(str(err)) from err


def read_image(path: str | Path) -> Footage:
    """A photo, checked to exist and decode."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    footage = Footage(path, "image")
    next(footage.frames())
    return footage


def read_video(path: str | Path, step: int = 1, max_frames: int = 0) -> Footage:
    """A video file or a folder of numbered images, checked to exist and to have a decodable frame."""
    path = Path(path)
    if step < 1 or max_frames < 0:
        raise ValueError(f"step must be >= 1 and max_frames >= 0, got {step} and {max_frames}")
    if not path.exists():
        raise InputError(f"video {path} does not exist")
    footage = Footage(path, "video", step, max_frames)
    if next(footage.frames(), None) is None:
        what = "no image files" if path.is_dir() else "no frame that could be decoded"
        raise InputError(f"video {path} has {what} ({', '.join(VIDEO_EXTENSIONS[:4])}, ... or a folder "
                         "of numbered images)")
    return footage


def check_output(path: str | Path, kind: str) -> Path:
    """Refuse an output name of the wrong kind ("video" or "image") before any work is done."""
    path = Path(path)
    allowed = (".mp4", ".avi") if kind == "video" else (".png", ".jpg", ".jpeg")
    if path.suffix.lower() not in allowed:
        raise InputError(f"the output {path} must end in {' or '.join(allowed)} (this command writes "
                         f"{'a video' if kind == 'video' else 'an image'})")
    if path.exists() and path.is_dir():
        raise InputError(f"the output {path} is a folder")
    return path
