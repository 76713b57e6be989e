"""Discovery of a folder of user videos, and the automatic train/val split.

Every file under the root (recursively) whose extension is in `VIDEO_EXTENSIONS` is a video; other files
are listed in the report as ignored, hidden files and folders (names starting with ".") are skipped
silently. A video's id is its path relative to the root without the extension, with folder separators
written as "__" and characters other than letters, digits, ".", "_" and "-" replaced by "_"
("dance/take 1.mp4" -> "dance__take_1"); ids that collide get the extension appended.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from lwgan.data.report import Discovery, Problem
from lwgan.data.video import VIDEO_EXTENSIONS, VideoEntry

log = logging.getLogger(__name__)

Split = Literal["train", "val"]


def auto_split(video_ids: Iterable[str], val_fraction: float) -> dict[str, Split]:
    """Deterministic split by name: a video is "val" when the hash of its id, as a number in [0, 1), is
    below `val_fraction`.

    A video's split depends on its id alone, so adding or removing other videos never moves it. With at
    least two videos and val_fraction > 0, at least one video is "val" (the lowest hash) and at least one
    is "train" (the highest hash).
    """
    ids = sorted(set(video_ids))
    score = {v: int.from_bytes(hashlib.sha256(v.encode()).digest()[:8], "big") / 2.0**64 for v in ids}
    split: dict[str, Split] = {v: "val" if score[v] < val_fraction else "train" for v in ids}
    if len(ids) >= 2 and val_fraction > 0:
        ranked = sorted(ids, key=score.__getitem__)
        if "val" not in split.values():
            split[ranked[0]] = "val"
        if "train" not in split.values():
            split[ranked[-1]] = "train"
    return split


def video_id_for(relative: Path) -> str:
    """The id of the video at `relative` (a path relative to the data root)."""
    parts = [*relative.parent.parts, relative.stem]
    text = "__".join(re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in parts)
    return "_" + text[1:] if text.startswith(".") else text


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def discover_folder(root: Path, val_fraction: float, exclude: Path | None = None) -> Discovery:
    """Every video file under `root` with an automatic split; `exclude` (e.g. the output folder) is
    skipped."""
    videos: list[Path] = []
    ignored: list[Problem] = []
    exclude = exclude.resolve() if exclude is not None else None
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if _hidden(relative) or not path.is_file():
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude):
            continue
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            videos.append(path)
        else:
            ignored.append(Problem(str(path), "not a video file (extension not in "
                                   f"{', '.join(VIDEO_EXTENSIONS)}); rename it if it is one"))
    ids: dict[str, Path] = {}
    for path in videos:
        video_id = video_id_for(path.relative_to(root))
        if video_id in ids:
            video_id = f"{video_id}_{path.suffix.lower().lstrip('.')}"
        n = 2
        base = video_id
        while video_id in ids:
            video_id, n = f"{base}_{n}", n + 1
        ids[video_id] = path
    split = auto_split(ids, val_fraction)
    entries = tuple(VideoEntry(v, split[v], ids[v], "file") for v in sorted(ids))
    if ignored:
        log.warning("%d files under %s are not videos and are ignored (listed in the report), e.g. %s",
                    len(ignored), root, ignored[0].path)
    return Discovery(entries, (), tuple(ignored))
