"""Speed and size of the synthetic data generator (`lwgan.synth.synthesize`).

Renders a data set into a temporary folder and reports frames per second, milliseconds per frame, bytes
on disk per frame (JPEG frame + PNG mask + ground truth) and the time of the default data set: measured
in the full run, estimated from the measured rate with --quick. Also times a rerun that reuses every
finished video. The last line of stdout is one JSON object.

    python benchmarks/synthesize.py [--quick] [--workers N] [--image-size S]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from lwgan.body.model import BodyModel
from lwgan.synth.synthesize import SynthOptions, synthesize


def _run(options: SynthOptions, body: BodyModel, out_dir: Path) -> dict[str, float]:
    start = time.perf_counter()
    report = synthesize(options, body, out_dir)
    seconds = time.perf_counter() - start
    rerun_start = time.perf_counter()
    rerun = synthesize(options, body, out_dir)
    if rerun.rendered_videos:
        raise RuntimeError(f"a rerun rendered {rerun.rendered_videos} videos again instead of reusing them")
    return {
        "seconds": seconds,
        "frames": report.frames,
        "frames_per_s": report.frames / seconds,
        "ms_per_frame": 1000.0 * seconds / report.frames,
        "bytes_per_frame": report.bytes / report.frames,
        "rerun_seconds": time.perf_counter() - rerun_start,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one subject, one outfit, 40 frames (< 60 s)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--image-size", type=int, default=SynthOptions.image_size)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    default = SynthOptions(image_size=args.image_size, workers=args.workers)
    if args.quick:
        options = dataclasses.replace(default, subjects=1, clothes=1, frames_per_action=40, val_subjects=0)
    else:
        options = default
    body = BodyModel.default()
    with tempfile.TemporaryDirectory(prefix="lwgan-synth-") as tmp:
        measured = _run(options, body, Path(tmp) / "synthetic")
    estimate = default.frames / measured["frames_per_s"]
    result: dict[str, object] = {
        "quick": args.quick,
        "workers": args.workers,
        "image_size": args.image_size,
        **measured,
        "default_set_frames": default.frames,
        "default_set_seconds": estimate if args.quick else measured["seconds"],
        "default_set_measured": not args.quick,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
