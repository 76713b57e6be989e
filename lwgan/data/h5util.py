"""Small HDF5 helpers shared by the per-video caches (SMPL parameters, correspondence maps).

A cache is a folder with one shard per video, ``videos/<video_id>.h5``, written atomically, plus an index
file ``<name>.h5`` with root attributes and an ExternalLink per video. A shard's root attributes record
the cache kind, the schema version and the hash of everything that produced it (`key`), so a stale or
foreign shard is detected and redone instead of being silently reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py

from lwgan.data.errors import DataError
from lwgan.io import atomic_path, remove_temporaries

log = logging.getLogger(__name__)


def content_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts (options, fingerprints, schema numbers)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (first 32 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:32]


SHARD_DIR = "videos"


def shard_path(out_dir: Path, video_id: str) -> Path:
    return Path(out_dir) / SHARD_DIR / f"{video_id}.h5"


def shard_is_current(path: Path, kind: str, schema_version: int, key: str) -> bool:
    """True when `path` is a complete shard of this kind, schema and producing key."""
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            current = (attrs.get("kind") == kind and int(attrs.get("schema_version", -1)) == schema_version
                       and attrs.get("key") == key and bool(attrs.get("complete", False)))
    except OSError as err:  # truncated or not HDF5: redo it
        log.warning("%s is unreadable (%s); it will be redone", path, err)
        return False
    return current


def write_index(path: Path, kind: str, schema_version: int, videos: Iterable[str],
                attrs: Mapping[str, Any]) -> Path:
    """A cache's index file, atomically: root attributes plus an ExternalLink per video to its shard.

    Links are relative (``videos/<id>.h5``); HDF5 resolves them against the directory of the index file
    before the working directory, so the folder can be moved as a whole and read from anywhere.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as handle:
        handle.attrs.update(kind=kind, schema_version=schema_version)
        handle.attrs.update(dict(attrs))
        for video_id in sorted(videos):
            handle[video_id] = h5py.ExternalLink(f"{SHARD_DIR}/{video_id}.h5", f"/{video_id}")
    return Path(path)


def remove_stale(out_dir: Path, keep: Iterable[str]) -> list[Path]:
    """Remove temporary files left by a killed run anywhere under `out_dir` and shards of videos not in
    `keep`; return what was removed."""
    removed = remove_temporaries(out_dir)
    folder = Path(out_dir) / SHARD_DIR
    if not folder.is_dir():
        return removed
    keep_names = {f"{video_id}.h5" for video_id in keep}
    removed += [p for p in folder.glob("*.h5") if not p.name.startswith(".") and p.name not in keep_names]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


class LazyH5:
    """Base of the cache readers: the HDF5 file opens on first use and again in a new process, and
    pickling drops the handle, so a reader can be handed to DataLoader workers.

    Subclasses set `KIND` (what the file calls itself, or a tuple of the kinds it accepts),
    `SCHEMA_VERSION`, `WHAT` (for messages), `MAKE_HINT` (the stage that builds the file) and `ERROR` (the
    exception raised for a missing, damaged or outdated file), and may override `_fresh_handles` for
    handles derived from the file.
    """

    KIND: str | tuple[str, ...] = ""
    SCHEMA_VERSION = 1
    WHAT = "cache"
    MAKE_HINT = "run the pipeline"
    ERROR: type[Exception] = DataError

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise self.ERROR(f"{self.WHAT} {self.path} does not exist; {self.MAKE_HINT} first")
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def _fresh_handles(self) -> dict[str, Any]:
        """Attributes holding handles derived from the file, in their empty state (override)."""
        return {}

    def _reset(self) -> None:
        self.__dict__.update(self._fresh_handles())

    @property
    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._reset()
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as err:
                raise self.ERROR(f"cannot open {self.WHAT} {self.path} ({err}); it is damaged or not an HDF5 "
                              f"file: delete it and {self.MAKE_HINT} again") from err
            self._pid = os.getpid()
            kind, version = self._file.attrs.get("kind"), self._file.attrs.get("schema_version")
            kinds = (self.KIND,) if isinstance(self.KIND, str) else self.KIND
            if kind not in kinds:
                path = self.path
                self.close()
                what = f"a {kind!r} file" if kind is not None else "an HDF5 file that lwgan did not write"
                raise self.ERROR(f"{path} is not a {self.WHAT}: it is {what}; give the {self.WHAT} that "
                                 f"the stage writes ({self.MAKE_HINT})")
            if version != self.SCHEMA_VERSION:
                path = self.path
                self.close()
                raise self.ERROR(f"{path} is a {kind!r} file of schema version {version}; this lwgan reads "
                                 f"version {self.SCHEMA_VERSION}: {self.MAKE_HINT} again")
        return self._file

    def close(self) -> None:
        self._reset()
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_file=None, _pid=None, **self._fresh_handles())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    @property
    def attrs(self) -> dict[str, Any]:
        """The file's root attributes."""
        return {k: (v.item() if hasattr(v, "item") else v) for k, v in self.file.attrs.items()}

    @property
    def videos(self) -> tuple[str, ...]:
        """Video ids, sorted."""
        return tuple(sorted(self.file.keys()))

    def __len__(self) -> int:
        return len(self.file.keys())

    def group(self, video: str) -> h5py.Group:
        try:
            return self.file[video]
        except KeyError:
            if video in self.file.keys():  # listed, but its external link leads nowhere usable
                raise self.ERROR(f"the shard of video {video!r} linked from {self.path} is missing or "
                                 f"damaged; delete it and {self.MAKE_HINT} again") from None
            raise KeyError(f"video {video!r} is not in {self.WHAT} {self.path}") from None
        except OSError as err:  # an external link whose shard is missing or damaged
            raise self.ERROR(f"cannot open the shard of video {video!r} linked from {self.path} ({err}); "
                          f"{self.MAKE_HINT} again") from err
