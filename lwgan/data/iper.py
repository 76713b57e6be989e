"""Discovery of a data set in the iPER layout (the real iPER, or the synthetic set written like it).

Accepted under the root::

    images/<subject>/<cloth>/<action>/NNNN.jpg   frame folders (any image extension), and/or
    <subject>_<cloth>_<action>.mp4               the video release (anywhere under the root except
                                                 images/ and masks/)
    masks/<subject>/<cloth>/<action>/NNNN.png    optional ground-truth person masks, by frame number
    train.txt, val.txt                           the split: one video per line, as 001/1/1, 001_1_1 or
                                                 001/1/1.mp4 (a leading folder such as images/ is allowed);
                                                 empty lines and lines starting with "#" are skipped

The video id is ``<subject>_<cloth>_<action>`` ("001_1_1"). When a video exists both as a frame folder
and as an mp4 the frame folder is used. Policy for mismatches between the lists and the disk:

- listed but on disk in neither form: a failure (counts towards max_failure_fraction);
- listed in both train.txt and val.txt: a failure (the split is ambiguous);
- on disk but in neither list: ignored with a warning (the lists define the protocol);
- neither list exists: every video is split automatically by `val_fraction` (`auto_split`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lwgan.data.errors import DataError
from lwgan.data.folder import Split, auto_split
from lwgan.data.report import Discovery, Problem
from lwgan.data.video import IMAGE_EXTENSIONS, VideoEntry

log = logging.getLogger(__name__)

LIST_FILES: dict[Split, str] = {"train": "train.txt", "val": "val.txt"}
MP4_NAME = re.compile(r"^([^_/\\]+)_([^_/\\]+)_([^_/\\]+)\.mp4$", re.IGNORECASE)


def parse_list_line(line: str) -> str | None:
    """The video id a split-list line names ("001/1/1", "001_1_1", "images/001/1/1.mp4" -> "001_1_1"),
    or None when the line does not name one."""
    text = line.strip().replace("\\", "/").strip("/")
    if text.lower().endswith(".mp4"):
        text = text[:-4]
    parts = [p for p in re.split(r"[/_]", text) if p]
    if len(parts) < 3 or not all(re.fullmatch(r"[A-Za-z0-9-]+", p) for p in parts[-3:]):
        return None
    return "_".join(parts[-3:])


def read_lists(root: Path) -> tuple[dict[str, Split], list[Problem], bool]:
    """(id -> split from train.txt/val.txt, problems, whether any list exists)."""
    split: dict[str, Split] = {}
    where: dict[str, str] = {}
    problems: list[Problem] = []
    found = False
    for name, filename in LIST_FILES.items():
        path = root / filename
        if not path.is_file():
            continue
        found = True
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            video_id = parse_list_line(line)
            place = f"{path}:{lineno}"
            if video_id is None:
                problems.append(Problem(place, f"line {line.strip()!r} does not name a video; write it as "
                                        "<subject>/<cloth>/<action>, e.g. 001/1/1"))
            elif video_id in split and split[video_id] != name:
                problems.append(Problem(place, f"video {video_id} is listed in both train.txt "
                                        f"({where[video_id]}) and val.txt; keep it in one list", video_id))
                split.pop(video_id)
            elif video_id not in split:
                split[video_id], where[video_id] = name, place
    return split, problems, found


def _frame_folders(images: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    if not images.is_dir():
        return found
    for action in sorted(images.glob("*/*/*")):
        if action.is_dir() and not any(p.startswith(".") for p in action.relative_to(images).parts):
            subject, cloth = action.parent.parent.name, action.parent.name
            found[f"{subject}_{cloth}_{action.name}"] = action
    return found


def _mp4_files(root: Path, exclude: Path | None) -> dict[str, Path]:
    skip = [root / "images", root / "masks"] + ([exclude.resolve()] if exclude is not None else [])
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.[mM][pP]4")):
        match = MP4_NAME.match(path.name)
        if not match or not path.is_file() or path.name.startswith("."):
            continue
        if any(path.resolve().is_relative_to(s.resolve()) for s in skip):
            continue
        found.setdefault("_".join(match.groups()), path)
    return found


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def discover_iper(root: Path, val_fraction: float, exclude: Path | None = None) -> Discovery:
    """The videos of an iPER-layout root with their split (see the module docstring for the policy)."""
    folders = _frame_folders(root / "images")
    files = _mp4_files(root, exclude)
    split, failed, have_lists = read_lists(root)
    if not folders and not files and not split:
        raise DataError(f"no iPER videos under {root}: expected frame folders images/<subject>/<cloth>/"
                        "<action>/NNNN.jpg or <subject>_<cloth>_<action>.mp4 files with train.txt/val.txt; "
                        "for a folder of arbitrary videos use source 'folder'")
    ignored: list[Problem] = []
    on_disk: dict[str, tuple[Path, str, tuple[str, str, str]]] = {}
    for video_id, path in files.items():
        subject, cloth, action = video_id.split("_")  # mp4 name parts hold no "_"
        on_disk[video_id] = (path, "file", (subject, cloth, action))
    for video_id, path in folders.items():
        if video_id in files:
            if not _has_images(path):
                ignored.append(Problem(str(path), f"empty frame folder; {files[video_id]} is used instead",
                                       video_id))
                continue
            ignored.append(Problem(str(files[video_id]), f"the frame folder {path} of the same video is used "
                                   "instead", video_id))
        on_disk[video_id] = (path, "frames", (path.parent.parent.name, path.parent.name, path.name))
    if not have_lists:
        log.warning("no train.txt or val.txt in %s: splitting the %d videos automatically "
                    "(val_fraction %.2f)", root, len(on_disk), val_fraction)
        split = auto_split(on_disk, val_fraction)
    entries = []
    for video_id in sorted(split):
        if video_id not in on_disk:
            subject, cloth, action = video_id.split("_")
            failed.append(Problem(str(root / "images" / subject / cloth / action),
                                  f"listed in {LIST_FILES[split[video_id]]} but neither the frame folder "
                                  f"images/{subject}/{cloth}/{action}/ nor {video_id}.mp4 exists under "
                                  f"{root}; add it or remove it from the list", video_id))
            continue
        path, kind, (subject, cloth, action) = on_disk[video_id]
        masks = root / "masks" / subject / cloth / action
        entries.append(VideoEntry(video_id, split[video_id], path, kind,  # type: ignore[arg-type]
                                  masks if masks.is_dir() else None))
    unlisted = sorted(set(on_disk) - set(split))
    for video_id in unlisted:
        ignored.append(Problem(str(on_disk[video_id][0]), "not listed in train.txt or val.txt; add it to one "
                               "of them to prepare it", video_id))
    if unlisted:
        log.warning("%d videos under %s are in neither train.txt nor val.txt and are ignored, e.g. %s",
                    len(unlisted), root, unlisted[0])
    return Discovery(tuple(entries), tuple(failed), tuple(ignored))
