"""Atomic file output: every file another process or a later run reads is written to a temporary file in
the same folder and then `os.replace`d, so a reader sees the old file or the new one, never half of one.

A process may set a commit guard (`set_commit_guard`): it is called before every replace and may raise to
refuse it (a worker whose stage has died must not write; see `lwgan.parallel`)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

_commit_guard: Callable[[], None] | None = None


def set_commit_guard(guard: Callable[[], None] | None) -> None:
    """Call `guard` before every `atomic_path` replace in this process (None: no guard)."""
    global _commit_guard
    _commit_guard = guard


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path`, on error it is removed.

    The temporary name keeps the final suffix, so writers that infer the format from it (cv2.imwrite,
    np.savez) behave as they would on the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; outputs are data for every user
    try:
        yield tmp_path
        if _commit_guard is not None:
            _commit_guard()
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


TEMP_GLOB = ".*.tmp*"  # the names `atomic_path` gives its temporary files: .{stem}.{random}.tmp{suffix}


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that writers killed inside `atomic_path` left in `folder` and the folders
    below it (a run calls it before writing there again); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.rglob(TEMP_GLOB) if p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by its POSIX path relative to it."""
    folder = Path(folder)
    return {path.relative_to(folder).as_posix(): sha256_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def write_png(path: str | Path, image: Any) -> Path:
    """Write an (H, W, 3) uint8 RGB image as a PNG, atomically; OSError when OpenCV cannot."""
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write the image {path}")
    return Path(path)


def write_video(path: str | Path, frames: Sequence[Any], fps: float) -> Path:
    """Frames (H, W, 3) uint8 RGB, all the same size, as a video, atomically; OSError naming `path` when the
    encoder fails.

    .mp4 (and any other suffix but .avi): H.264 (libx264, yuv420p, BT.601 limited range) with the moov atom
    first (``+faststart``), so browsers and the MLflow UI play and stream it. yuv420p needs an even width and
    height: an odd one is padded by one pixel, a copy of the last column or row, so the video is then one
    pixel wider or taller than the frames and loses nothing of them. .avi: Motion JPEG (yuvj420p) at the
    frames' own size. The encoders ship inside the PyAV wheel; equal frames give equal bytes whatever the
    number of cores.
    """
    import av
    import numpy as np

    if not len(frames):
        raise ValueError(f"no frames to write to {path}")
    height, width = frames[0].shape[:2]
    mjpeg = Path(path).suffix.lower() == ".avi"
    # H.264 4:2:0 can only crop by whole chroma samples (2 pixels), so an odd size is padded, not cropped.
    pad = ((0, 0), (0, 0), (0, 0)) if mjpeg else ((0, height % 2), (0, width % 2), (0, 0))
    if not (math.isfinite(fps) and fps >= 0.001):
        raise ValueError(f"fps of {path} must be a number of at least 0.001, got {fps!r}")
    rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 2997/100; PyAV needs an exact rational
    with atomic_path(path) as tmp:
        try:
            with av.open(str(tmp), "w", format="avi" if mjpeg else "mp4",
                         options={} if mjpeg else {"movflags": "+faststart"}) as container:
                # x264's output depends on its thread count, which follows the machine's cores; and with
                # macroblock-tree rate control, equal frames gave different bytes from one write to the next
                # even on one thread (15 files in 30 writes; 1 in 30 without it). One thread and no mb-tree
                # make the bytes depend only on the frames, fps and library versions (DVC sees no change).
                options = {"threads": "1"} if mjpeg else {"threads": "1", "x264-params": "mbtree=0"}
                stream = container.add_stream("mjpeg" if mjpeg else "libx264", rate=rate, options=options)
                stream.width, stream.height = width + pad[1][1], height + pad[0][1]
                stream.pix_fmt = "yuvj420p" if mjpeg else "yuv420p"
                if not mjpeg:
                    # Tag what swscale's RGB -> YUV conversion does, so players need not guess the matrix.
                    stream.codec_context.colorspace = av.video.reformatter.Colorspace.ITU601
                    stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
                for i, frame in enumerate(frames):
                    frame = np.asarray(frame)
                    if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                        raise ValueError(f"frame {i} of {path} is {frame.shape} {frame.dtype}, but the video "
                                         f"needs ({height}, {width}, 3) uint8 RGB like its first frame")
                    image = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.pad(frame, pad, mode="edge")),
                                                       format="rgb24")
                    container.mux(stream.encode(image))
                container.mux(stream.encode(None))
        except av.FFmpegError as err:
            raise OSError(f"could not write the video {path}: {err}") from err
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")
    return Path(path)


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    """A deflate-compressed .npz (loads with `np.load`) whose bytes depend only on the arrays: np.savez
    stamps each member with the current time, so equal data would differ in bytes and DVC would see a
    change. Members carry a fixed timestamp instead."""
    import numpy as np

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w") as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
    return buffer.getvalue()


def write_npz(path: str | Path, arrays: dict[str, Any]) -> bytes:
    """Write `npz_bytes(arrays)` to `path` atomically; returns the bytes written."""
    data = npz_bytes(arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _jsonable(value: Any) -> Any:
    for attr in ("item", "tolist"):  # numpy / torch scalars and arrays
        if hasattr(value, attr):
            return getattr(value, attr)()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
