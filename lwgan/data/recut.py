"""The cached frames cut again from their source at a larger side, for a detector that needs more pixels.

The frames cache holds each frame at ``image_size`` (256 by default). A person there is about 150 px tall,
and MediaPipe's landmark model, which crops and upsamples them to its 256² input, then confuses front and
side views on some frames (shoulders and hips collapsed onto the body's middle line). On the same squares
cut from the source frame at 512 px it gets most of those right and errs on others, so the fit detects on
both and keeps per frame the detection that continues its neighbours (`lwgan.body.detect.most_consistent`;
measured on real footage: README "Fitting a body to every frame"). `recut` yields those squares: the
square prepare cut from each kept source frame, resized to `side` (cv2.INTER_AREA, the prepare stage's
padding), only after checking that the source is the one prepare read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from lwgan.data.crop import CropBox, apply_crop
from lwgan.data.errors import DataError
from lwgan.data.video import FramePlan, VideoEntry, open_source

if TYPE_CHECKING:
    from lwgan.data.cache import FramesCache

__all__ = ["detection_side", "recut"]


def detection_side(cache: FramesCache, video: str, wanted: int) -> int:
    """The side at which to detect on `video`: min(wanted, the smallest source square it was cut from) when
    that is larger than the cached frames, else 0 (detect on the cached frames: their source squares are
    no larger, as in the synthetic set, or `wanted` is 0)."""
    size = int(cache.attrs["image_size"])
    if wanted <= size:
        return 0
    side = min(int(wanted), int(cache.crop_boxes(video)[:, 2].min()))
    return side if side > size else 0


def recut(cache: FramesCache, video: str, side: int, hint: str = "") -> Iterator[np.ndarray]:
    """The frames of `video` in the cache's order, each (side, side, 3) uint8 RGB: the source square its
    cached frame was cut from, at `side` instead of the cache's image size.

    Raises DataError, naming the source and `hint` (what to set to do without it), when the source is gone,
    changed since prepare read it, or no longer gives every cached frame."""
    group = cache.group(video)
    attrs = group.attrs
    path = Path(str(attrs["source_path"]))
    what = f"the source of the cached video {video!r}, {path}"
    tail = f"; {hint}" if hint else ""
    if not path.exists():
        raise DataError(f"{what}, does not exist any more{tail}")
    options = json.loads(str(cache.attrs["options"]))
    entry = VideoEntry(video, str(attrs["split"]), path, str(attrs["source_kind"]))  # type: ignore[arg-type]
    source = open_source(entry)
    # The fingerprint's first part is the frames' (the rest, the prepare-time mask folder's, is not needed)
    if source.fingerprint().split("|")[0] != str(attrs["source_fingerprint"]).split("|")[0]:
        raise DataError(f"{what}, changed since the prepare stage read it (run prepare again){tail}")
    numbers = cache.frame_index(video)
    crops = cache.crop_boxes(video)
    pad = options.get("pad", "constant")
    plan = FramePlan(int(options.get("frame_step", 1)), int(options.get("max_frames_per_video", 0)))
    i = 0
    for frame in source.frames(plan):
        if i == len(numbers):
            break
        if frame.number != numbers[i]:  # a frame prepare left out
            continue
        if frame.image is None:
            raise DataError(f"{what}: frame {frame.number} is no longer readable ({frame.problem}){tail}")
        yield cv2.cvtColor(apply_crop(frame.image, CropBox(*(int(c) for c in crops[i])), side, pad),
                           cv2.COLOR_BGR2RGB)
        i += 1
    if i < len(numbers):
        raise DataError(f"{what} gave {i} of the {len(numbers)} cached frames{tail}")
