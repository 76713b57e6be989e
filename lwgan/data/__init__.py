"""Data preparation: read raw videos (iPER layout or a folder of videos), crop the person, cache frames.

Public API::

    prepare(PrepareOptions(...), out_dir, progress=None) -> PrepareReport
    FramesCache(path)            random access to prepared frames, safe in DataLoader workers
    contact_sheet(cache, path)   one labelled frame per video, as a PNG
"""

from lwgan.data.cache import SCHEMA_VERSION, FramesCache, VideoInfo
from lwgan.data.errors import DataError
from lwgan.data.prepare import INDEX_FILE, REPORT_FILE, PrepareOptions, discover, prepare
from lwgan.data.report import PrepareReport, Problem, Progress, TooManyFailures, VideoResult
from lwgan.data.shard import FRAMES_FILE
from lwgan.data.sheet import contact_sheet

__all__ = [
    "FRAMES_FILE",
    "INDEX_FILE",
    "REPORT_FILE",
    "SCHEMA_VERSION",
    "DataError",
    "FramesCache",
    "PrepareOptions",
    "PrepareReport",
    "Problem",
    "Progress",
    "TooManyFailures",
    "VideoInfo",
    "VideoResult",
    "contact_sheet",
    "discover",
    "prepare",
]
