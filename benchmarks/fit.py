"""Fit-stage speed and memory on the synthetic set: keypoints -> batched fit -> correspondence maps.

    python benchmarks/fit.py [--quick]

frames_per_s_per_core: end to end per frame on one worker, one thread: keypoints (the mediapipe detector
    when it is installed, else the ground truth: see "keypoints") + fit + correspondence maps at 256², as
    the fit stage counts it (its frames_per_s_per_worker): the worker's time on the videos, without its
    one-off start-up (models, detector graphs, a warm-up fit: worker_start_s, paid once per worker and
    stage run); frames_per_s_per_core_with_start includes it, on this small set.
ray_scaling_efficiency: (time with 1 Ray worker / time with 2) / 2 on the same videos, cluster and actor
    start-up excluded (paid once per stage run).
batched_vs_per_frame: fit time of frames one at a time over the batched fit of the same frames.
peak_rss_mb_per_worker (a Ray worker process) for videos of the default length and of a 4x longer one,
    fitted in chunks of the default length (FitOptions.chunk_size), so memory stays flat.
split_ms_per_frame: the workers' time per frame in keypoints (detection), the fit (short videos fitted
    together in groups, `lwgan.body.fitting.fit_videos`) and the rest (quality numbers, shard, overlays).
cache_kb_per_frame: correspondence cache bytes per frame at 256².
real_*: the same end-to-end figure on the real clips of `make footage` (`lwgan.footage`; skipped with a
    note when they are not fetched): each prepared as a folder video at 256² (the person found and
    followed, `data.person_box: detector`), `--real-frames` frames of each, then detect + fit + maps on one
    worker, one thread; `real_fit_ms_per_frame` per clip shows whether a hard clip costs more per frame
    (its detection and writing are its own; the fit of clips fitted together is shared out by frames).
The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import torch

from lwgan import footage, parallel
from lwgan.body import load_configured
from lwgan.body.fit import FitSettings, FitWorker, batches, fit_all, plan_jobs
from lwgan.body.fitting import FitOptions, fit_video
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.correspond.correspond import build_maps
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.shard import FRAMES_FILE
from lwgan.synth.synthesize import SynthOptions, synthesize


def make_set(root: Path, frames: int, subjects: int, body: BodyModel) -> Path:
    synthesize(SynthOptions(subjects=subjects, clothes=1, frames_per_action=frames, image_size=256,
                            val_subjects=1, workers=2), body, root / "synthetic")
    prepare(PrepareOptions(source="iper", root=root / "synthetic", image_size=256, workers=2),
            root / "frames")
    return root / "frames" / FRAMES_FILE


def real_clips(root: Path, frames: int) -> dict[str, object]:
    """Detect + fit + maps per frame on the real clips, one worker, one thread (module docstring)."""
    here = Path(__file__).resolve().parents[1]
    clips = {name: footage.available(name, here / footage.FOOTAGE_DIR) for name in footage.CLIPS}
    missing = [name for name, path in clips.items() if path is None]
    if missing:
        return {"real_note": f"not measured: {', '.join(missing)} not fetched ({footage.FETCH_COMMAND})"}
    videos = root / "videos"
    videos.mkdir(parents=True)
    for name, path in clips.items():
        (videos / f"{name}{path.suffix}").symlink_to(path)
    prepare(PrepareOptions(source="folder", root=videos, image_size=256, max_frames_per_video=frames,
                           val_fraction=0.0, workers=1), root / "frames")
    body_path = root / "body.npz"
    save_body_model(load_configured("default"), body_path)
    settings = FitSettings(root / "frames" / FRAMES_FILE, body_path, root / "smpl", "detector", None,
                           FitOptions(), 0)
    seconds, results = run(settings, parallel.PoolOptions(use_ray=False))
    n = sum(r["frames"] for r in results)
    start = time.perf_counter()
    build_maps(root / "smpl" / "smpl.h5", body_path, root / "maps", 256)
    maps_seconds = time.perf_counter() - start
    work = sum(r["seconds"] for r in results)
    return {"real_frames": n, "real_frames_per_s_per_core": round(n / (work + maps_seconds), 2),
            "real_frames_per_s_per_core_with_start": round(n / (seconds + maps_seconds), 2),
            "real_fit_ms_per_frame": {r["video"]: round(1000 * r["seconds"] / r["frames"], 1)
                                      for r in sorted(results, key=lambda r: r["video"])},
            "real_split_ms_per_frame": split(results)}


def split(results: list[dict]) -> dict[str, float]:
    """The fit workers' time per frame: keypoints (detection), the fit, and the rest (quality numbers,
    shard, overlays)."""
    n = sum(r["frames"] for r in results)
    return {part: round(1000 * sum(r[f"{part}_seconds"] for r in results) / n, 1)
            for part in ("keypoint", "fit", "write")}


def run(settings: FitSettings, options: parallel.PoolOptions) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    done = fit_all(settings, options)
    if done.failures:
        raise RuntimeError(f"fit failed: {done.failures}")
    return time.perf_counter() - start, done.results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short videos (< 2 minutes)")
    parser.add_argument("--keypoints", choices=("auto", "detector", "ground_truth"), default="auto",
                        help="auto: the detector when mediapipe is installed")
    parser.add_argument("--real-frames", type=int, default=0,
                        help="frames of each real clip (default: 20, or 10 with --quick); -1 skips them")
    args = parser.parse_args()
    frames = 30 if args.quick else 80
    keypoints = args.keypoints
    if keypoints == "auto":
        keypoints = "detector" if importlib.util.find_spec("mediapipe") is not None else "ground_truth"
    body = BodyModel.default()
    options = FitOptions()  # the fit stage's: short videos fitted together in groups of 256 frames
    out: dict[str, object] = {"keypoints": keypoints, "frames_per_video": frames}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        body_path = root / "body.npz"
        save_body_model(load_configured("default"), body_path)
        frames_path = make_set(root / "set", frames, 2, body)

        def settings(name: str, fit_options: FitOptions = options) -> FitSettings:
            return FitSettings(frames_path, body_path, root / name, keypoints, None, fit_options, 0)

        torch.set_num_threads(1)
        one_seconds, results = run(settings("one"), parallel.PoolOptions(use_ray=False))
        n = sum(r["frames"] for r in results)
        start = time.perf_counter()
        maps = build_maps(root / "one" / "smpl.h5", body_path, root / "maps", 256)
        maps_seconds = time.perf_counter() - start
        work = sum(r["seconds"] for r in results)  # the worker's time on the videos, start-up excluded
        out["frames_per_s_per_core"] = round(n / (work + maps_seconds), 2)
        out["frames_per_s_per_core_with_start"] = round(n / (one_seconds + maps_seconds), 2)
        out["worker_start_s"] = round(one_seconds - work, 2)
        out["fit_ms_per_frame"] = round(1000 * work / n, 1)
        out["split_ms_per_frame"] = split(results)
        out["correspond_ms_per_frame"] = round(1000 * maps_seconds / n, 2)
        out["cache_kb_per_frame"] = round(maps["cache_kb_per_frame"], 2)

        timings = {}
        for workers in (1, 2):
            options_w = parallel.PoolOptions(num_workers=workers)
            run_settings = settings(f"ray{workers}")
            with parallel.RayPool(FitWorker, (run_settings,), options_w) as pool:
                pool.ready()  # actors have built their models: time the work alone
                start = time.perf_counter()
                done, failures = pool.map(batches(plan_jobs(run_settings)[0], options, workers))
                timings[workers] = time.perf_counter() - start
            results = [r for group in done for r in group["results"]]
            failures += [f for group in done for f in group["failures"]]
            if workers == 1:  # a fresh worker process per measurement, as for the long video below
                out["peak_rss_mb_per_worker"] = round(max(r["peak_rss_mb"] for r in results), 1)
            if failures:
                raise RuntimeError(f"fit failed: {failures}")
        t1, t2 = timings[1], timings[2]
        out["ray_1_worker_s"], out["ray_2_workers_s"] = round(t1, 2), round(t2, 2)
        out["ray_scaling_efficiency"] = round(t1 / t2 / 2, 3)

        from lwgan.body.detect import GroundTruthKeypoints
        from lwgan.data.cache import FramesCache

        cache = FramesCache(frames_path)
        video = cache.videos[0]
        kp = torch.from_numpy(GroundTruthKeypoints(root / "set" / "synthetic").for_cache(cache, video,
                                                                                           masks=False).keypoints)
        count = min(len(kp), 12 if args.quick else 24)
        start = time.perf_counter()
        fit_video(kp[:count], 256, body, options)
        batched = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(count):
            fit_video(kp[i : i + 1], 256, body, options)
        single = time.perf_counter() - start
        out["batched_vs_per_frame"] = round(single / batched, 2)

        long_path = make_set(root / "long", frames * 4, 2, body)
        # chunks of the default video length, so that the 4x longer video runs in 4 chunks and shows
        # that memory does not grow with length
        long_settings = dataclasses.replace(settings("long", FitOptions(chunk_size=frames)),
                                            frames_path=long_path)
        _, long_results = run(long_settings, parallel.PoolOptions(num_workers=1))
        out["peak_rss_mb_long_video"] = round(max(r["peak_rss_mb"] for r in long_results), 1)
        out["long_video_frames"] = frames * 4

        real_frames = args.real_frames or (10 if args.quick else 20)
        if real_frames > 0 and keypoints == "detector":
            out.update(real_clips(root / "real", real_frames))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
