"""Speed and accuracy of the 2D keypoint detector (`lwgan.body.detect.MediaPipeDetector`) on cache frames.

Renders a synthetic data set into a temporary folder, prepares it into a 256² frames cache and runs the
detector over every cached frame on one compute thread, then compares with the ground truth mapped into
the same frames (`GroundTruthKeypoints`). Measured:

  detect_ms_per_frame        per-image mode (static_image_mode=True, segmentation on), init excluded
  tracking_ms_per_frame      video mode (static_image_mode=False), reset per video
  init_s                     building one detector (once per worker process)
  detection_rate             share of frames with a person found (every frame shows one)
  keypoint_error_px          {mean, p95} distance to ground truth over all 17 keypoints of found frames,
                             in cache pixels; keypoint_error_visible_px: only keypoints the ground truth
                             marks visible; keypoint_error_by_name_px: mean per keypoint
  mask_iou                   {mean, p5, min} IoU of the segmentation against the rendered silhouette
  wrong_detection_rate       share of found frames whose mask IoU is below 0.5 (a wrong detection)
  mask_bytes_per_frame       a packed mask (np.packbits), uncompressed
Where mediapipe is not installed the JSON says so ("available": false) and nothing is measured.
The last line of stdout is one JSON object.

    python benchmarks/detect.py [--quick] [--frames-per-action N] [--subjects N]
"""

from __future__ import annotations

import os

os.environ.update({"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"})

import argparse  # noqa: E402  (the thread count must be set before the numeric libraries load)
import importlib.util  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lwgan.body.detect import GroundTruthKeypoints, MediaPipeDetector, detect_video  # noqa: E402
from lwgan.body.extras import COCO_KEYPOINT_NAMES  # noqa: E402
from lwgan.body.model import BodyModel  # noqa: E402
from lwgan.data.cache import FramesCache  # noqa: E402
from lwgan.data.prepare import PrepareOptions, prepare  # noqa: E402
from lwgan.synth.synthesize import SynthOptions, synthesize  # noqa: E402

IMAGE_SIZE = 256
WRONG_IOU = 0.5  # a found person whose mask overlaps the silhouette less than this is someone else


def _run_detector(cache: FramesCache, truth: GroundTruthKeypoints, static: bool) -> dict[str, object]:
    start = time.perf_counter()
    detector = MediaPipeDetector(static_image_mode=static)
    init_s = time.perf_counter() - start
    seconds, frames_done = 0.0, 0
    errors, visible_errors, per_name, ious, found = [], [], [], [], []
    with detector:
        for video in cache.videos:
            frames = cache.frames(video, range(cache.num_frames(video)))
            start = time.perf_counter()
            batch = detect_video(frames, detector)
            seconds += time.perf_counter() - start
            frames_done += len(frames)
            gt = truth.for_cache(cache, video)
            found.append(batch.found)
            both = batch.found & gt.found
            distance = np.linalg.norm(batch.keypoints[both, :, :2] - gt.keypoints[both, :, :2], axis=-1)
            errors.append(distance.ravel())
            per_name.append(distance)
            visible_errors.append(distance[gt.keypoints[both, :, 2] > 0])
            det_masks, gt_masks = batch.masks(), gt.masks()
            assert det_masks is not None and gt_masks is not None
            for i in np.flatnonzero(both):
                union = (det_masks[i] | gt_masks[i]).sum()
                ious.append(float((det_masks[i] & gt_masks[i]).sum() / max(union, 1)))
    error, visible, by_name = np.concatenate(errors), np.concatenate(visible_errors), np.concatenate(per_name)
    return {
        "init_s": init_s,
        "ms_per_frame": 1000.0 * seconds / frames_done,
        "frames": frames_done,
        "detection_rate": float(np.concatenate(found).mean()),
        "keypoint_error_px": {"mean": float(error.mean()), "p95": float(np.percentile(error, 95))},
        "keypoint_error_visible_px": {"mean": float(visible.mean()),
                                      "p95": float(np.percentile(visible, 95))},
        "keypoint_error_by_name_px": {name: round(float(by_name[:, k].mean()), 2)
                                      for k, name in enumerate(COCO_KEYPOINT_NAMES)},
        "mask_iou": {"mean": float(np.mean(ious)), "p5": float(np.percentile(ious, 5)),
                     "min": float(np.min(ious))},
        "wrong_detection_rate": float(np.mean(np.asarray(ious) < WRONG_IOU)),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 subjects, 1 outfit, 12 frames per video")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--frames-per-action", type=int, default=40)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if importlib.util.find_spec("mediapipe") is None:
        result: dict[str, object] = {"available": False, "reason": "mediapipe is not installed"}
        print(json.dumps(result))
        return result
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    if args.quick:
        options = SynthOptions(subjects=2, clothes=1, frames_per_action=12, image_size=IMAGE_SIZE,
                               val_subjects=1)
    else:
        options = SynthOptions(subjects=args.subjects, clothes=2, frames_per_action=args.frames_per_action,
                               image_size=IMAGE_SIZE, val_subjects=1)
    with tempfile.TemporaryDirectory(prefix="lwgan-detect-") as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "cache"
        synthesize(options, BodyModel.default(), raw)
        prepare(PrepareOptions(source="iper", root=raw, image_size=IMAGE_SIZE), out)
        cache, truth = FramesCache(out / "frames.h5"), GroundTruthKeypoints(raw)
        static = _run_detector(cache, truth, static=True)
        tracking = _run_detector(cache, truth, static=False)
        cache.close()
    result = {
        "available": True,
        "quick": args.quick,
        "image_size": IMAGE_SIZE,
        "frames": static["frames"],
        "detect_ms_per_frame": static["ms_per_frame"],
        "tracking_ms_per_frame": tracking["ms_per_frame"],
        "init_s": static["init_s"],
        "detection_rate": static["detection_rate"],
        "keypoint_error_px": static["keypoint_error_px"],
        "keypoint_error_visible_px": static["keypoint_error_visible_px"],
        "keypoint_error_by_name_px": static["keypoint_error_by_name_px"],
        "mask_iou": static["mask_iou"],
        "wrong_detection_rate": static["wrong_detection_rate"],
        "tracking": {k: tracking[k] for k in ("detection_rate", "keypoint_error_px", "mask_iou",
                                              "wrong_detection_rate")},
        "mask_bytes_per_frame": IMAGE_SIZE * ((IMAGE_SIZE + 7) // 8),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
