"""The user's own files: a photo, a video (a file FFmpeg decodes, or a folder of numbered images) and the
outputs, with errors that name the file and say what to do."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import cv2
import numpy as np

from lwgan.data.errors import DataError
from lwgan.data.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FramePlan, VideoEntry, open_source

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0  # for frame folders, which carry no rate


class InputError(ValueError):
    """An input file that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class Clip:
    """Decoded frames of one input: (N, H, W, 3) uint8 RGB, the frame numbers kept, frames per second."""

    path: Path
    frames: np.ndarray
    numbers: tuple[int, ...]
    fps: float


def read_image(path: str | Path) -> Clip:
    """One photo as a one-frame clip."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"image {path} does not exist")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read {path} as an image: it is damaged or not in a format OpenCV reads "
                         f"({', '.join(IMAGE_EXTENSIONS)})")
    return Clip(path, image[None, ..., ::-1].copy(), (0,), DEFAULT_FPS)


def read_video(path: str | Path, step: int = 1, max_frames: int = 0) -> Clip:
    """A video file or a folder of numbered images; every `step`-th frame, at most `max_frames` (0 = all).
    Unreadable frames of a folder are skipped with a warning; a clip with no readable frame is an error."""
    path = Path(path)
    if step < 1 or max_frames < 0:
        raise ValueError(f"step must be >= 1 and max_frames >= 0, got {step} and {max_frames}")
    if not path.exists():
        raise InputError(f"video {path} does not exist")
    kind = "frames" if path.is_dir() else "file"
    try:
        source = open_source(VideoEntry(path.name, "val", path, kind))
        frames, numbers = [], []
        for frame in source.frames(FramePlan(step, max_frames)):
            if frame.image is None:
                log.warning("frame %d of %s is skipped: %s", frame.number, path, frame.problem)
                continue
            if frames and frame.image.shape != frames[0].shape:
                raise InputError(f"frame {frame.number} of {path} is {frame.image.shape[:2]}, but its first "
                                 f"frame is {frames[0].shape[:2]}: all frames of a video must be one size")
            frames.append(frame.image[..., ::-1])
            numbers.append(frame.number)
        fps = source.fps
    except DataError as err:
        raise InputError(str(err)) from err
    if not frames:
        what = "no image files" if kind == "frames" else "no frame that could be decoded"
        raise InputError(f"video {path} has {what} ({', '.join(VIDEO_EXTENSIONS[:4])}, ... or a folder "
                         "of numbered images)")
    return Clip(path, np.stack(frames), tuple(numbers), (fps or DEFAULT_FPS) / step)


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
