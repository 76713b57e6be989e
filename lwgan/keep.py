"""Finished work that DVC's checkout cannot remove: a keep folder beside each resumable output.

`dvc exp run` begins by checking every stage output out to its version in `dvc.lock`, by force: inside a
`persist: true` output folder, whatever a killed or failed run wrote since (the checkpoint of a run that
stopped at step 9,000, the shards of the videos already fitted) is replaced by the locked version or
deleted before the stage starts again, so a rerun would begin from nothing. The stages therefore also
file each unit of resumable work, under the key that produced it, in a keep folder that no stage
declares and DVC never touches:

    <output's parent>/.lwgan-keep/<output's name>/<unit's path inside the output>.<key>

(`models/checkpoint.pt` of run key K -> `.lwgan-keep/models/checkpoint.pt.K`). The kept file is a hard
link to the unit (no second copy of the bytes; a copy where the file system has no hard links), written
atomically, so it outlives the unit's removal or replacement. A stage that finds a unit missing or made
under another key takes the kept one back (`take_back`) before deciding what to redo, and drops what it
kept (`release_output`) once the stage has succeeded and DVC is about to store its output.
"""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lwgan.io import atomic_path, remove_temporaries

log = logging.getLogger(__name__)

KEEP_DIR = ".lwgan-keep"
T = TypeVar("T")


def _folder(output: Path) -> Path:
    """The keep folder of the (resolved) output folder `output`."""
    return output.parent / KEEP_DIR / output.name


def kept_path(output: str | Path, unit: str | Path, key: str) -> Path:
    """Where the unit `unit` (a file inside the output folder `output`) made under `key` is kept."""
    output = Path(output).resolve()
    inside = Path(unit).resolve().relative_to(output)  # ValueError for a unit outside the output
    return _folder(output) / inside.parent / f"{inside.name}.{key}"


def _link(source: Path, target: Path) -> None:
    """`target` becomes a hard link to (else a copy of) `source`, atomically."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # no hard links here (another file system, a FAT volume): a copy
            shutil.copy2(source, tmp)


def clean(output: str | Path) -> None:
    """Remove the temporary files a writer killed while keeping left in the keep folder of `output`
    (call it before the stage's writers start, never beside them)."""
    remove_temporaries(_folder(Path(output).resolve()))


def keep(output: str | Path, unit: str | Path, key: str) -> Path:
    """File the finished unit `unit` (made under `key`) in the keep folder of `output`; returns where."""
    target = kept_path(output, unit, key)
    _link(Path(unit), target)
    return target


def take_back(output: str | Path, unit: str | Path, key: str) -> bool:
    """Put the kept unit of `key` at `unit` (replacing what is there) when one is kept; True if so."""
    source = kept_path(output, unit, key)
    if not source.is_file():
        return False
    _link(source, Path(unit))
    log.info("took back %s from %s (DVC's checkout had replaced or removed it)", unit, source)
    return True


def current_or_taken_back(output: str | Path, unit: str | Path, key: str, check: Callable[[], T]) -> T:
    """`check()` of the unit; where that fails (falsy) and a unit made under `key` is kept, the kept one
    taken back (DVC's checkout removed or replaced it) and checked again."""
    found = check()
    if not found and take_back(output, unit, key):
        found = check()
    return found


def release_output(output: str | Path) -> int:
    """Drop every kept unit of `output` that is the file the output now holds (the same link, or the same
    bytes where it was copied): call it once the stage has succeeded, when DVC is about to store the
    output. What else is kept is other runs' unfinished work and stays. Returns how many were dropped."""
    output = Path(output).resolve()
    folder = _folder(output)
    dropped = 0
    for kept in sorted(folder.rglob("*")) if folder.is_dir() else []:
        unit = output / kept.relative_to(folder).parent / kept.name.rsplit(".", 1)[0]
        if kept.is_file() and unit.is_file() and (os.path.samefile(kept, unit)
                                                   or filecmp.cmp(kept, unit, shallow=False)):
            kept.unlink()
            dropped += 1
    return dropped
