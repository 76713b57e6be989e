"""2D keypoints from files made by other tools, and the mapping of source-frame keypoints into cache frames.

Every track here is COCO-17 (`lwgan.body.extras.COCO_KEYPOINT_NAMES` order) with the rows
``(u, v, confidence)``: u the column, v the row, in pixels of the ORIGINAL video frame with pixel centres
at integers (pixel (row i, column j) covers [j - 0.5, j + 0.5) x [i - 0.5, i + 0.5)), confidence in [0, 1]
and 0 for a keypoint that is missing (its u, v are then 0 and mean nothing).

Readers
    `read_openpose`  a folder of OpenPose JSON files, one per frame (``--write_json``), BODY_25 or COCO-18
                     ``pose_keypoints_2d``; the frame number is the number before ``_keypoints.json``
                     (``video_000000000012_keypoints.json`` -> 12), else the position in sorted order.
    `read_coco`      a COCO keypoint file: a dict with ``annotations`` (ground truth; ``v`` is the 0/1/2
                     label flag and any labelled keypoint gets confidence 1) or a bare list of results
                     (``keypoints`` with scores as the third value). ``image_id`` is the frame number, or
                     the number in the image's ``file_name`` when ``frame_from="file_name"``.
    `read_track`     a video's file(s) under a keypoints root: ``<root>/<video_id>/*.json`` (OpenPose) or
                     ``<root>/<video_id>.json`` (COCO).
Both readers pick one person per frame: the highest mean keypoint confidence (``pick="confidence"``; for
COCO results with a ``score``, that score) or the largest keypoint box (``pick="area"``). OpenPose and
COCO write pixel indices (centres at integers), which is the convention above, so no half-pixel shift is
made.

Cache frames
    The prepare stage cuts a square ``crop_box = (x0, y0, side)`` (source pixels; columns [x0, x0 + side))
    from every frame and resizes it to ``image_size`` (S) pixels, so a source point maps to
        u' = (u - x0 + 0.5) * S / side - 0.5,    v' = (v - y0 + 0.5) * S / side - 0.5
    (pixel edges map to pixel edges; `source_to_cache`). `KeypointTrack.to_cache` also selects the cached
    frames by their original frame numbers (``FramesCache.frame_index``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lwgan.body.extras import COCO_KEYPOINT_NAMES
from lwgan.data.errors import DataError

log = logging.getLogger(__name__)

K = len(COCO_KEYPOINT_NAMES)
Pick = Literal["confidence", "area"]

# OpenPose layouts -> COCO-17: entry k is the OpenPose index of COCO keypoint k (nose, left eye, right
# eye, left ear, right ear, left/right shoulder, elbow, wrist, hip, knee, ankle).
OPENPOSE_TO_COCO17: dict[str, tuple[int, ...]] = {
    "BODY_25": (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),
    "COCO_18": (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),
}
OPENPOSE_SIZES = {25: "BODY_25", 18: "COCO_18"}
_FRAME_NUMBER = re.compile(r"(\d+)(?:_keypoints)?$")


@dataclass(frozen=True)
class KeypointTrack:
    """Keypoints of one video by original frame number.

    keypoints: (N, 17, 3) float32 u, v, confidence in source pixels (see the module docstring).
    frame_numbers: (N,) int64 original frame numbers, strictly increasing.
    source: where the track was read from (for messages).
    """

    keypoints: np.ndarray
    frame_numbers: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        name = self.source or "a keypoint track"
        if self.keypoints.ndim != 3 or self.keypoints.shape[1:] != (K, 3):
            raise ValueError(f"keypoints of {name} must be (N, {K}, 3), got {self.keypoints.shape}")
        if self.frame_numbers.shape != (self.keypoints.shape[0],):
            raise ValueError(f"frame_numbers of {name} must be ({self.keypoints.shape[0]},), "
                             f"got {self.frame_numbers.shape}")
        if np.any(np.diff(self.frame_numbers) <= 0):
            raise ValueError(f"frame_numbers of {name} must be strictly increasing")

    def select(self, frame_index: np.ndarray) -> np.ndarray:
        """(len(frame_index), 17, 3) keypoints of the given original frame numbers; a frame the track does
        not have gets confidence 0 (and is logged)."""
        frame_index = np.asarray(frame_index, dtype=np.int64)
        out = np.zeros((len(frame_index), K, 3), np.float32)
        # a sentinel row past the end makes every lookup valid; frames not in the track point at it
        numbers = np.append(self.frame_numbers, np.iinfo(np.int64).max)
        pos = np.searchsorted(numbers, frame_index)  # (len(frame_index),) in [0, N]
        have = numbers[pos] == frame_index
        out[have] = self.keypoints[pos[have]]
        if not have.all():
            log.warning("%s has no keypoints for %d of %d frames (first missing: frame %d); they get "
                        "confidence 0", self.source or "a keypoint track", int((~have).sum()),
                        len(frame_index), int(frame_index[~have][0]))
        return out

    def to_cache(self, frame_index: np.ndarray, crop_box: Sequence[int], image_size: int) -> np.ndarray:
        """(len(frame_index), 17, 3) keypoints in cache-frame pixels: `select` then `source_to_cache`."""
        return source_to_cache(self.select(frame_index), crop_box, image_size)


def source_to_cache(keypoints: np.ndarray, crop_box: Sequence[int], image_size: int) -> np.ndarray:
    """Map (..., 3) u, v, confidence from source pixels into the (image_size)² cache frame of a square crop.

    crop_box: (x0, y0, side) in source pixels, as ``VideoInfo.crop_box``, or (N, 3), one per frame of
    (N, K, 3) keypoints (`lwgan.data.FramesCache.crop_boxes`). A keypoint that lands outside the cache
    frame (the crop cut it off) keeps its mapped position but gets confidence 0, since the frame does not
    show it. Returns float32, same shape.
    """
    x0, y0, side = _crop_columns(crop_box, np.ndim(keypoints))
    if np.any(np.asarray(side) <= 0):
        raise ValueError(f"crop_box side must be positive, got {crop_box}")
    scale = image_size / side
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] - x0 + 0.5) * scale - 0.5
    out[..., 1] = (out[..., 1] - y0 + 0.5) * scale - 0.5
    inside = ((out[..., 0] >= -0.5) & (out[..., 0] < image_size - 0.5)
              & (out[..., 1] >= -0.5) & (out[..., 1] < image_size - 0.5))
    out[..., 2] = np.where(inside, out[..., 2], 0.0)
    return out


def _crop_columns(crop_box: Sequence[int] | np.ndarray, ndim: int) -> tuple[Any, Any, Any]:
    """x0, y0, side of a (3,) crop box as Python scalars, of (N, 3) boxes as float32 arrays shaped
    (N, 1, ...) to broadcast over keypoint arrays of `ndim` dimensions whose first axis is the frame.
    float32 (integers, exact) keeps the arithmetic of the two the same to the bit: NumPy computes with a
    Python scalar in the array's float32, and a float32 quotient is the double one rounded."""
    boxes = np.asarray(crop_box, dtype=np.float64)
    if boxes.ndim == 1:
        return float(boxes[0]), float(boxes[1]), float(boxes[2])
    shape = (boxes.shape[0],) + (1,) * (ndim - 2)
    columns = boxes.astype(np.float32)
    return columns[:, 0].reshape(shape), columns[:, 1].reshape(shape), columns[:, 2].reshape(shape)


def cache_to_source(keypoints: np.ndarray, crop_box: Sequence[int], image_size: int) -> np.ndarray:
    """Inverse of `source_to_cache` for the positions: (..., 3) cache pixels -> source pixels (float32);
    confidences are kept as they are. crop_box as in `source_to_cache`."""
    x0, y0, side = _crop_columns(crop_box, np.ndim(keypoints))
    scale = side / image_size
    out = np.array(keypoints, dtype=np.float32, copy=True)
    out[..., 0] = (out[..., 0] + 0.5) * scale - 0.5 + x0
    out[..., 1] = (out[..., 1] + 0.5) * scale - 0.5 + y0
    return out


def pick_person(people: np.ndarray, pick: Pick, scores: np.ndarray | None = None) -> int:
    """Index of the person to keep among (P, 17, 3) candidates.

    "confidence": the highest `scores` (when given) or mean keypoint confidence; "area": the largest box
    around the keypoints with confidence > 0. Ties go to the first.
    """
    if pick == "confidence":
        return int(np.argmax(scores if scores is not None else people[..., 2].mean(axis=1)))
    if pick != "area":
        raise ValueError(f"pick must be 'confidence' or 'area', got {pick!r}")
    areas = []
    for person in people:
        seen = person[person[:, 2] > 0, :2]
        areas.append(0.0 if len(seen) < 2 else float(np.prod(seen.max(axis=0) - seen.min(axis=0))))
    return int(np.argmax(areas))


# -- OpenPose ----------------------------------------------------------------------------------------------
def openpose_to_coco17(flat: Sequence[float], where: str) -> np.ndarray:
    """One OpenPose ``pose_keypoints_2d`` list (BODY_25: 75 numbers, COCO-18: 54) -> (17, 3) float32.

    where: names the file and person for the error message.
    """
    arr = np.asarray(flat, dtype=np.float64) if _is_number_list(flat) else None
    if arr is None or arr.size % 3 or arr.size // 3 not in OPENPOSE_SIZES:
        size = len(flat) if isinstance(flat, list) else type(flat).__name__
        raise DataError(f"{where}: pose_keypoints_2d must be a list of 75 (BODY_25) or 54 (COCO-18) numbers, "
                        f"got {size}; write the JSON with OpenPose's BODY_25 or COCO model")
    layout = OPENPOSE_SIZES[arr.size // 3]
    points = arr.reshape(-1, 3)[list(OPENPOSE_TO_COCO17[layout])]  # (17, 3)
    points[:, 2] = np.clip(points[:, 2], 0.0, 1.0)
    points[points[:, 2] <= 0] = 0.0
    return points.astype(np.float32)


def read_openpose_frame(path: Path, pick: Pick = "confidence") -> np.ndarray:
    """One OpenPose JSON file -> (17, 3) float32 of the picked person (all zeros when nobody is in it)."""
    data = _load_json(path)
    if not isinstance(data, dict) or "people" not in data:
        raise DataError(f"{path}: not an OpenPose keypoint file (no 'people' key at the top level)")
    people = data["people"]
    if not isinstance(people, list):
        raise DataError(f"{path}: 'people' must be a list, got {type(people).__name__}")
    candidates = []
    for i, person in enumerate(people):
        if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
            raise DataError(f"{path}: people[{i}] has no 'pose_keypoints_2d'; run OpenPose with body "
                            "keypoints enabled")
        candidates.append(openpose_to_coco17(person["pose_keypoints_2d"], f"{path}: people[{i}]"))
    if not candidates:
        return np.zeros((K, 3), np.float32)
    stack = np.stack(candidates)  # (P, 17, 3)
    return stack[pick_person(stack, pick)]


def read_openpose(source: str | Path | Sequence[str | Path], pick: Pick = "confidence") -> KeypointTrack:
    """A folder of OpenPose JSON files (``*.json``, one per frame) or a list of such files -> a track.

    Frame numbers come from the file names (see the module docstring); a frame with nobody in it gets
    confidence 0 everywhere.
    """
    if isinstance(source, str | Path):
        folder = Path(source)
        if not folder.is_dir():
            raise DataError(f"OpenPose keypoint folder {folder} does not exist or is not a folder")
        files = sorted(folder.glob("*.json"))
        if not files:
            raise DataError(f"OpenPose keypoint folder {folder} holds no .json files")
        name = str(folder)
    else:
        files = sorted(Path(f) for f in source)
        if not files:
            raise DataError("no OpenPose keypoint files were given")
        name = str(files[0].parent)
    numbers = _frame_numbers(files)
    order = np.argsort(numbers, kind="stable")
    keypoints = np.stack([read_openpose_frame(files[i], pick) for i in order])  # (N, 17, 3)
    return KeypointTrack(keypoints, np.asarray(numbers, np.int64)[order], name)


def _frame_numbers(files: list[Path]) -> list[int]:
    """Frame number per file from its name, or positions when any name carries none (or two share one)."""
    found = [_FRAME_NUMBER.search(f.stem) for f in files]
    numbers = [int(m.group(1)) for m in found if m is not None]
    if len(numbers) == len(files) and len(set(numbers)) == len(numbers):
        return numbers
    log.warning("the names of the keypoint files in %s do not all carry distinct frame numbers; frames "
                "are numbered by sorted file name instead", files[0].parent)
    return list(range(len(files)))


# -- COCO ------------------------------------------------------------------------------------------------
def read_coco(path: str | Path, pick: Pick = "confidence",
              frame_from: Literal["image_id", "file_name"] = "image_id") -> KeypointTrack:
    """A COCO keypoint JSON (``{"annotations": [...], "images": [...]}`` or a bare list of results) ->
    a track, one frame per image that has at least one annotation (see the module docstring)."""
    path = Path(path)
    data = _load_json(path)
    if isinstance(data, dict):
        if "annotations" not in data:
            raise DataError(f"{path}: a COCO keypoint file needs an 'annotations' list at the top level")
        annotations, images = data["annotations"], data.get("images")
        flags = True
    elif isinstance(data, list):
        annotations, images, flags = data, None, False
    else:
        raise DataError(f"{path}: expected a COCO dict with 'annotations' or a list of results, got "
                        f"{type(data).__name__}")
    if not isinstance(annotations, list):
        raise DataError(f"{path}: 'annotations' must be a list, got {type(annotations).__name__}")
    frame_of = _coco_frames(path, images) if frame_from == "file_name" else None
    people: dict[int, list[tuple[np.ndarray, float | None]]] = {}
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(f"{where} must be an object, got {type(ann).__name__}")
        for key in ("image_id", "keypoints"):
            if key not in ann:
                raise DataError(f"{where} has no '{key}'")
        flat = ann["keypoints"]
        if not _is_number_list(flat) or len(flat) != 3 * K:
            size = len(flat) if isinstance(flat, list) else type(flat).__name__
            raise DataError(f"{where}: 'keypoints' must be {3 * K} numbers (x, y, v for the 17 COCO "
                            f"keypoints), got {size}")
        image_id = ann["image_id"]
        if frame_of is not None:
            if image_id not in frame_of:
                raise DataError(f"{where}: image_id {image_id!r} is not in 'images'")
            frame = frame_of[image_id]
        elif isinstance(image_id, int) and not isinstance(image_id, bool) and image_id >= 0:
            frame = image_id
        else:
            raise DataError(f"{where}: image_id must be a frame number (an integer >= 0), got {image_id!r}; "
                            "use frame_from='file_name' to number frames by the images' file names")
        points = np.asarray(flat, np.float64).reshape(K, 3)
        points[:, 2] = (points[:, 2] > 0) if flags else np.clip(points[:, 2], 0.0, 1.0)
        points[points[:, 2] <= 0] = 0.0
        score = ann.get("score")
        people.setdefault(frame, []).append(
            (points.astype(np.float32), float(score) if isinstance(score, int | float) else None))
    if not people:
        raise DataError(f"{path} holds no keypoint annotations")
    frames = sorted(people)
    chosen = []
    for frame in frames:
        stack = np.stack([p for p, _ in people[frame]])  # (P, 17, 3)
        scores = [s for _, s in people[frame]]
        use_scores = np.asarray(scores, np.float64) if all(s is not None for s in scores) else None
        chosen.append(stack[pick_person(stack, pick, use_scores)])
    return KeypointTrack(np.stack(chosen), np.asarray(frames, np.int64), str(path))


def read_track(kind: Literal["openpose", "coco"], root: str | Path, video_id: str,
               pick: Pick = "confidence") -> KeypointTrack:
    """The keypoints of `video_id` under `root`: ``<root>/<video_id>/`` (OpenPose, one JSON per frame) or
    ``<root>/<video_id>.json`` (COCO)."""
    root = Path(root)
    if kind == "openpose":
        folder = root / video_id
        if not folder.is_dir():
            raise DataError(f"no OpenPose keypoints for video {video_id!r}: {folder} is not a folder (one "
                            "JSON file per frame is expected there)")
        return read_openpose(folder, pick)
    if kind == "coco":
        path = root / f"{video_id}.json"
        if not path.is_file():
            raise DataError(f"no COCO keypoints for video {video_id!r}: {path} does not exist")
        return read_coco(path, pick)
    raise ValueError(f"keypoint file kind must be 'openpose' or 'coco', got {kind!r}")


def _coco_frames(path: Path, images: Any) -> dict[Any, int]:
    """image id -> the frame number in the image's file name."""
    if not isinstance(images, list):
        raise DataError(f"{path}: frame_from='file_name' needs an 'images' list")
    out: dict[Any, int] = {}
    for i, image in enumerate(images):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise DataError(f"{path}: images[{i}] needs 'id' and 'file_name'")
        match = _FRAME_NUMBER.search(Path(str(image["file_name"])).stem)
        if match is None:
            raise DataError(f"{path}: images[{i}].file_name {image['file_name']!r} carries no frame number")
        out[image["id"]] = int(match.group(1))
    return out


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) and np.isfinite(x) for x in value)


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DataError(f"keypoint file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"keypoint file {path} is not valid JSON ({err})") from err
