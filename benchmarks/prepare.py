"""Prepare-stage speed and memory, and random access from the frames cache against seeking in the source mp4.

Input: toy videos (a blob walking over a noisy textured background, mp4v) generated into a temporary folder
at `--input-size`² (default 1024², iPER's frame size). One compute thread everywhere (cv2.setNumThreads(1),
one FFmpeg decode thread): the pipeline scales out with processes.

Measured:
  prepare_frames_per_s      decode (twice: box pass + crop pass) + crop + resize + encode + write, one
                            process, on the longest video
  prepare_peak_rss_mb       peak RSS of one prepare process (a child; RUSAGE_CHILDREN) over all lengths;
                            prepare_peak_rss_mb_by_frames gives each length's own peak: flat = streaming
  cache_read_frames_per_s   random frames from frames.h5 via FramesCache (OS page cache warm)
  mp4_read_frames_per_s     the same frames decoded from the source mp4 by seeking an open capture
  cache_speedup             the ratio of the two (target >= 10)
  cache_bytes_per_frame     shard bytes per cached frame (default codec)
  codecs                    read speed and bytes per frame for each codec, on the same frames
  frames_file_links_ms / frames_file_copy_ms   building frames.h5 from the shards as external links vs
                            copying the shards' data into one file

The last line of stdout is one JSON object.

    python benchmarks/prepare.py [--quick] [--input-size 1024] [--lengths 300 3000] [--reads 500]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the toy videos the tests make

from _toy import ToyVideo, write_video_file  # noqa: E402

from lwgan.data.cache import FramesCache  # noqa: E402
from lwgan.data.prepare import PrepareOptions, prepare  # noqa: E402
from lwgan.data.shard import write_frames_file  # noqa: E402

IMAGE_SIZE = 256


def make_video(path: Path, frames: int, size: int, seed: int) -> Path:
    video = ToyVideo(frames=frames, height=size, width=size, seed=seed, blob_size=(0.18, 0.6),
                     travel=(0.3, 0.7), noise=4.0)
    write_video_file(video, path)
    return path


def child(video_dir: str, out_dir: str, codec: str) -> None:
    """Prepare one folder in this process and print frames, seconds and this process's peak RSS."""
    cv2.setNumThreads(1)
    options = PrepareOptions(source="folder", root=Path(video_dir), image_size=IMAGE_SIZE, codec=codec,
                             val_fraction=0.0)
    start = time.perf_counter()
    report = prepare(options, Path(out_dir))
    seconds = time.perf_counter() - start
    report.raise_for_failures()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"frames": report.num_frames, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}))


def run_child(video_dir: Path, out_dir: Path, codec: str = "jpeg") -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", str(video_dir), str(out_dir), codec],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"prepare child failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def open_capture(path: Path) -> cv2.VideoCapture:
    return cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])


def read_cache(frames_h5: Path, picks: list[tuple[str, int]]) -> float:
    cache = FramesCache(frames_h5)
    cache.frame(picks[0][0], 0)  # open the file (a training worker opens it once)
    start = time.perf_counter()
    for video, i in picks:
        cache.frame(video, i)
    return len(picks) / (time.perf_counter() - start)


def read_mp4(sources: dict[str, Path], frames_h5: Path, picks: list[tuple[str, int]]) -> float:
    cache = FramesCache(frames_h5)
    numbers = {v: cache.frame_index(v) for v in cache.videos}
    captures = {v: open_capture(p) for v, p in sources.items()}
    start = time.perf_counter()
    for video, i in picks:
        capture = captures[video]
        capture.set(cv2.CAP_PROP_POS_FRAMES, int(numbers[video][i]))
        ok, _ = capture.read()
        if not ok:
            raise SystemExit(f"cannot decode frame {numbers[video][i]} of {sources[video]}")
    seconds = time.perf_counter() - start
    for capture in captures.values():
        capture.release()
    return len(picks) / seconds


def shard_bytes_per_frame(out_dir: Path) -> float:
    cache = FramesCache(out_dir / "frames.h5")
    frames = sum(cache.num_frames(v) for v in cache.videos)
    return sum(p.stat().st_size for p in (out_dir / "videos").glob("*.h5")) / frames


def combine_times(out_dir: Path, tmp: Path) -> tuple[float, float]:
    """(ms to write frames.h5 as links, ms to copy every shard's group into one file)."""
    cache = FramesCache(out_dir / "frames.h5")
    counts = {v: cache.num_frames(v) for v in cache.videos}
    start = time.perf_counter()
    write_frames_file(out_dir, counts, {})
    links_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    with h5py.File(tmp / "copied.h5", "w") as dst:
        for video in counts:
            with h5py.File(out_dir / "videos" / f"{video}.h5", "r") as src:
                src.copy(src[video], dst, name=video)
    copy_ms = (time.perf_counter() - start) * 1e3
    return links_ms, copy_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short videos, fewer reads (under a minute)")
    parser.add_argument("--input-size", type=int, default=1024, help="side of the generated input videos")
    parser.add_argument("--lengths", type=int, nargs="+", help="frames of each measured video")
    parser.add_argument("--reads", type=int, help="random frames read from cache and mp4")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    cv2.setNumThreads(1)
    lengths = sorted(args.lengths or ([60, 240] if args.quick else [300, 3000]))
    reads = args.reads or (200 if args.quick else 1000)
    rng = np.random.default_rng(args.seed)
    result: dict = {"quick": args.quick, "input_size": args.input_size, "image_size": IMAGE_SIZE,
                    "codec": "jpeg"}
    with tempfile.TemporaryDirectory(prefix="lwgan-bench-prepare-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        sources = {}
        for k, n in enumerate(lengths):
            sources[f"clip_{n}"] = make_video(tmp / f"in_{n}" / f"clip_{n}.mp4", n, args.input_size, k)
        result["generate_s"] = round(time.perf_counter() - start, 1)

        by_frames = {}
        for n in lengths:
            stats = run_child(tmp / f"in_{n}", tmp / f"out_{n}")
            by_frames[str(n)] = round(stats["peak_rss_mb"], 1)
            result["prepare_frames_per_s"] = round(stats["frames"] / stats["seconds"], 1)
        children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result["prepare_peak_rss_mb"] = round(children_kb / 1024, 1)
        result["prepare_peak_rss_mb_by_frames"] = by_frames

        # one cache holding every length, per codec, for the read measurements
        for n in lengths:
            (tmp / "all").mkdir(exist_ok=True)
            os.link(sources[f"clip_{n}"], tmp / "all" / sources[f"clip_{n}"].name)
        codecs = {}
        for codec in ("jpeg", "lzf"):
            run_child(tmp / "all", tmp / f"cache_{codec}", codec)
            codecs[codec] = {"bytes_per_frame": round(shard_bytes_per_frame(tmp / f"cache_{codec}"))}
        cache = FramesCache(tmp / "cache_jpeg" / "frames.h5")
        picks = [(v, int(rng.integers(cache.num_frames(v)))) for v in rng.choice(cache.videos, reads)]
        for codec in codecs:
            frames_h5 = tmp / f"cache_{codec}" / "frames.h5"
            codecs[codec]["read_frames_per_s"] = round(read_cache(frames_h5, picks))
        mp4 = read_mp4(sources, tmp / "cache_jpeg" / "frames.h5", picks)
        result["cache_read_frames_per_s"] = codecs["jpeg"]["read_frames_per_s"]
        result["mp4_read_frames_per_s"] = round(mp4, 1)
        result["cache_speedup"] = round(result["cache_read_frames_per_s"] / mp4, 1)
        result["cache_bytes_per_frame"] = codecs["jpeg"]["bytes_per_frame"]
        result["codecs"] = codecs
        links_ms, copy_ms = combine_times(tmp / "cache_lzf", tmp)
        result["frames_file_links_ms"] = round(links_ms, 2)
        result["frames_file_copy_ms"] = round(copy_ms, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
