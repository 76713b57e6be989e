"""What a prepare run did: prepared videos, failures and ignored files with reasons, counts and timing."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from lwgan.data.errors import DataError
from lwgan.data.video import VideoEntry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """A file (or list line) that was not used, and why. video_id is None when it is not a video."""

    path: str
    reason: str
    video_id: str | None = None


@dataclass(frozen=True)
class Discovery:
    """Videos found under a data root, plus what could not be used (failed) or was left out (ignored)."""

    entries: tuple[VideoEntry, ...]
    failed: tuple[Problem, ...] = ()
    ignored: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class VideoResult:
    """One prepared video. crop_box is (x0, y0, side) in source pixels; dropped lists frames left out."""

    video_id: str
    split: str
    source_path: str
    num_frames: int
    fps: float
    source_size: tuple[int, int]
    crop_box: tuple[int, int, int]
    box_method: str
    reused: bool
    seconds: float
    dropped: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    """Progress of a prepare run, passed to the `progress` callback.

    frames_total is estimated from file counts and video headers before decoding; eta_s is None until a
    rate is known.
    """

    videos_done: int
    videos_total: int
    frames_done: int
    frames_total: int
    elapsed_s: float
    eta_s: float | None
    video_id: str


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class PrepareReport:
    """The outcome of `lwgan.data.prepare`.

    failed: videos that should have been prepared and were not (unreadable, empty, listed but missing),
    counted by `failed_fraction`. ignored: files left out on purpose (not in a split list, not a video
    file); they are not failures.
    """

    videos: tuple[VideoResult, ...]
    failed: tuple[Problem, ...]
    ignored: tuple[Problem, ...]
    seconds: float
    max_failure_fraction: float
    removed_shards: tuple[str, ...] = field(default=())

    @property
    def num_frames(self) -> int:
        return sum(v.num_frames for v in self.videos)

    @property
    def num_reused(self) -> int:
        return sum(v.reused for v in self.videos)

    @property
    def prepared_ids(self) -> tuple[str, ...]:
        """Ids of the videos prepared (decoded and written) in this run, not reused."""
        return tuple(v.video_id for v in self.videos if not v.reused)

    @property
    def dropped_frames(self) -> tuple[Problem, ...]:
        return tuple(p for v in self.videos for p in v.dropped)

    @property
    def failed_fraction(self) -> float:
        """Failed videos over all videos that should have been prepared (0.0 when there were none)."""
        total = len(self.videos) + len(self.failed)
        return len(self.failed) / total if total else 0.0

    @property
    def frames_per_s(self) -> float:
        """Frames decoded, cropped and written in this run (reused videos excluded) per second of the
        run's wall time."""
        done = sum(v.num_frames for v in self.videos if not v.reused)
        return done / self.seconds if self.seconds > 0 else 0.0

    def raise_for_failures(self) -> None:
        """Raise `TooManyFailures` when more than `max_failure_fraction` of the videos failed, or when no
        video at all was prepared. Call it after the outputs are written (prepare writes them first)."""
        if self.videos and self.failed_fraction <= self.max_failure_fraction:
            return
        raise TooManyFailures(self)

    def metrics(self) -> dict[str, Any]:
        """Flat numbers for a metrics file."""
        return {
            "videos": len(self.videos), "videos_reused": self.num_reused, "videos_failed": len(self.failed),
            "files_ignored": len(self.ignored), "frames": self.num_frames,
            "frames_dropped": len(self.dropped_frames), "failed_fraction": self.failed_fraction,
            "seconds": self.seconds, "frames_per_s": self.frames_per_s,
            "train_videos": sum(v.split == "train" for v in self.videos),
            "val_videos": sum(v.split == "val" for v in self.videos),
        }

    def to_dict(self, run_state: bool = True) -> dict[str, Any]:
        """Everything, or with `run_state` False only what the data determines: without wall-clock
        times, which videos this run reused and which old shards it removed (`RUN_STATE`), so that the
        same data gives the same bytes however often it was prepared (the form written to report.json)."""
        out = {"metrics": self.metrics(), "max_failure_fraction": self.max_failure_fraction,
               "videos": [asdict(v) for v in self.videos], "failed": [asdict(p) for p in self.failed],
               "ignored": [asdict(p) for p in self.ignored], "removed_shards": list(self.removed_shards)}
        if not run_state:
            for record in (out, out["metrics"], *out["videos"]):
                for key in RUN_STATE:
                    record.pop(key, None)
        return out


# Keys of `PrepareReport.to_dict` (at any level) that describe a run rather than the data: they go to the
# metrics file and the tracked run, never into the cache that DVC hashes.
RUN_STATE = ("seconds", "frames_per_s", "reused", "videos_reused", "removed_shards")


def _allowing(report: PrepareReport) -> float:
    """The smallest round share (to 0.05) that lets this many failures pass."""
    return min(1.0, math.ceil(report.failed_fraction * 20 - 1e-9) / 20)


class TooManyFailures(DataError):
    """More videos failed than `max_failure_fraction` allows. The report is attached; every output of the
    run (shards, frames.h5, index.json, report.json) has been written before this is raised."""

    def __init__(self, report: PrepareReport) -> None:
        self.report = report
        lines = [f"  {p.path}: {p.reason}" for p in report.failed[:20]]
        more = len(report.failed) - len(lines)
        if more > 0:
            lines.append(f"  ... and {more} more (see report.json)")
        if not report.videos:
            head = f"no video could be prepared ({len(report.failed)} failed); fix or remove these inputs"
        else:
            head = (f"{len(report.failed)} of {len(report.videos) + len(report.failed)} videos failed "
                    f"({report.failed_fraction:.1%}), more than data.max_failure_fraction = "
                    f"{report.max_failure_fraction:.1%}; fix or remove these inputs, or allow them with "
                    f"`dvc exp run -S data.max_failure_fraction={_allowing(report):g}`")
        super().__init__(head + ":\n" + "\n".join(lines))
