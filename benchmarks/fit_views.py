"""The fit from one camera against the two others: Pose2Sim's single-person take (`make footage`) was
filmed by calibrated cameras, three of which ship with it (portrait_cam01, portrait_cam02, back_cam03 of
`lwgan.footage`, with `lwgan.footage.CALIBRATION`). The fit stage fits each clip alone, as it fits any
video; the 3D keypoints triangulated from the OTHER two cameras' detections (`lwgan.body.multiview`)
share no input with that fit, and are the reference it is measured against.

    python benchmarks/fit_views.py [--quick] [--workspace DIR] [--out DIR] [--set fit.KEY=VALUE ...]
                                   [--world-weight W]

The fits are the real-people workspace's (`benchmarks/real_people.py`'s DIR, default
benchmarks/out/real_people; made there, by the pipeline's own stages, when missing). For each camera, on
the frames where the reference has all twelve limb keypoints (shoulders, elbows, wrists, hips, knees,
ankles; the face's points are left out, the body model's and the detector's are not the same points):
- `pa_mpjpe_mm`: mean per-keypoint error after a similarity (Procrustes) alignment, mm: the pose alone;
- `camera_frame_mm`: after a scale and a translation only, in that camera's axes: the pose and its
  turn against the camera, which the renderer draws (a body facing the wrong way is an error here and
  none after Procrustes);
- the same for two bodies that are not fitted to the frame, as floors: `rest_pose` (the fit's turn
  and shape, arms and legs at rest) and `mean_pose` (the clip's mean limb pose in every frame);
- `reference_reprojection_px`: the two-camera reference projected into this camera against this
  camera's detections (median over confident keypoints; the detector's own scatter and the reference's
  error together), beside the three-camera triangulation's own median;
- `reference_spread_mm`: the two-camera references of two cameras against each other (each pair shares
  one camera), PA-MPJPE: how far the reference itself can be trusted.
Each camera's figures are medians over frames, with the 90th percentile. --quick: every 4th frame.
With `--set fit.KEY=VALUE` (repeatable; the fit section of params.yaml) the three clips are fitted again
from the keypoints the fit stage found (the detection is unchanged) with those options, and so are the
default pipeline's synthetic videos (`dvc repro fit`, when there), whose PA-MPJPE and MPJPE against their
ground-truth joints are reported beside the fit stage's (`synthetic`): a change that only helps one of
the two is no improvement.
The fit stage fits these clips with the world term (`fit.world_weight: auto` is `WORLD_WEIGHT_FOOTAGE` on
footage): the bones' directions in MediaPipe Pose's metric 3D estimate pull the fitted bones', which the
2D keypoints leave free in depth. With `--world-weight W` the three clips are fitted again at weight W
(0: without the term), the estimate made by the same full landmark model, tracking the man through each
clip's frames (`Detection.world`; made once and kept in DIR/world_landmarks/). The synthetic videos have
no such estimate, so their refit measures only the other options.
Writes OUT/views.jpg (default benchmarks/out/fit_views): for frames across the take, each fit drawn on
its own frame (green) and, moved into the world by the scale and translation above, on the next
camera's frame (green) beside the reference (red). The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import real_people  # noqa: E402  (benchmarks/real_people.py: its workspace and clip names)

from lwgan import config, footage  # noqa: E402
from lwgan.apps.media import read_video  # noqa: E402
from lwgan.body.detect import MediaPipeDetector, detect_video  # noqa: E402
from lwgan.body.fit import settings_from_params, synthetic_joints  # noqa: E402
from lwgan.body.fitting import NO_PERSON, FitOptions, fit_videos  # noqa: E402
from lwgan.body.keypoint_io import cache_to_source  # noqa: E402
from lwgan.body.model import BodyModel  # noqa: E402
from lwgan.body.multiview import (  # noqa: E402
    align_scale_shift,
    frame_errors,
    read_qualisys,
    reprojection_px,
    triangulate,
)
from lwgan.body.pose_metrics import mpjpe, pa_mpjpe  # noqa: E402
from lwgan.body.sequence import pose_body  # noqa: E402
from lwgan.data.cache import FramesCache  # noqa: E402
from lwgan.data.smpl_cache import SmplCache  # noqa: E402

LIMBS = tuple(range(5, 17))  # COCO-17: shoulders, elbows, wrists, hips, knees, ankles
BONES = [(a, b) for a, b in ((5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (11, 12), (5, 11), (6, 12), (11, 13),
                             (13, 15), (12, 14), (14, 16))]
MIN_CONFIDENCE = 0.5
MIN_LIMBS = 8  # a frame is measured where the reference has at least this many of the twelve


def takes(workspace: Path) -> dict[str, dict]:
    """camera -> the fit of its clip: source-pixel keypoints, betas, pose, status and source frame numbers
    (the cameras' frames are simultaneous, so a frame number is a moment of the take)."""
    frames = FramesCache(workspace / "data" / "cache" / "frames" / "frames.h5")
    smpl = SmplCache(workspace / "data" / "cache" / "smpl" / "smpl.h5")
    out = {}
    for clip, camera in footage.CALIBRATED.items():
        video = real_people.NAMES[clip]
        fit = smpl.params(video)
        rows = np.asarray(fit["frame"], int)  # the shard's rows of the frames cache
        size = side(frames, video)
        keypoints = cache_to_source(fit["keypoints"], frames.crop_boxes(video)[rows], size)
        out[camera] = {"clip": clip, "video": video, "keypoints": keypoints, "betas": fit["betas"],
                       "pose": fit["pose"], "status": fit["status"],
                       "frame": frames.frame_index(video)[rows].astype(int),  # source frame numbers
                       "fitted_on": fit["keypoints"], "side": size}  # what the fit stage fitted
    return out


def world_landmarks(workspace: Path, fits: dict[str, dict]) -> dict[str, np.ndarray]:
    """camera -> (N, 17, 4) MediaPipe Pose's world landmarks (`Detection.world`; NaN where it found nobody)
    at the frames of its fit, from the clip's frames read in order with the person tracked; each clip's are
    made once and kept in WORKSPACE/world_landmarks/CLIP.npy."""
    folder = workspace / "world_landmarks"
    folder.mkdir(exist_ok=True)
    out = {}
    for camera, fit in fits.items():
        path = folder / f"{fit['clip']}.npy"
        if not path.is_file():
            with MediaPipeDetector(segmentation=False, static_image_mode=False) as detector:
                found = detect_video(read_video(footage.available(fit["clip"])).frames(), detector)
            world = found.world  # NaN where it found nobody; None where it never did
            partial = path.with_suffix(".partial.npy")
            np.save(partial, np.full((len(found), 17, 4), np.nan, np.float32) if world is None else world)
            partial.replace(path)
        world = np.load(path)
        if fit["frame"].max() >= len(world):
            sys.exit(f"error: {path} holds {len(world)} frames, the fit reaches frame {fit['frame'].max()}: "
                     "delete it to make it again")
        out[camera] = world[fit["frame"]]
    return out


def refit(fits: dict[str, dict], body: BodyModel, options: FitOptions,
          world: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """The clips fitted again from the keypoints the fit stage found (its shards' cache pixels), with
    `world` (camera -> world landmarks at the fit's frames) for the world term."""
    keypoints = [torch.from_numpy(f["fitted_on"]) for f in fits.values()]
    estimates = None if world is None else [torch.from_numpy(world[c]) for c in fits]
    results = fit_videos(keypoints, next(iter(fits.values()))["side"], body, options, world=estimates)
    return {c: {**f, "pose": r.pose.numpy(), "betas": r.betas.numpy(), "status": r.status.numpy()}
            for (c, f), r in zip(fits.items(), results, strict=True)}


def synthetic(options: FitOptions | None) -> dict | None:
    """PA-MPJPE and MPJPE (mm, means over frames) of the default pipeline's synthetic videos against their
    ground truth: as the fit stage stored them, and fitted again with `options` from the same keypoints."""
    caches = ROOT / "data" / "cache"
    if not (caches / "smpl" / "smpl.h5").is_file() or not (ROOT / "data" / "body" / "body.npz").is_file():
        return None
    smpl, frames = SmplCache(caches / "smpl" / "smpl.h5"), FramesCache(caches / "frames" / "frames.h5")
    body = BodyModel.from_file(ROOT / "data" / "body" / "body.npz")
    truth = {v: synthetic_joints(frames, v) for v in smpl.videos}
    videos = [v for v, joints in truth.items() if joints is not None]
    if not videos:
        return None
    truths = [torch.from_numpy(truth[v][frames.frame_index(v)]) for v in videos]
    stored = [smpl.params(v) for v in videos]
    fitted = {"stored": [pose_body(body, p["betas"], p["pose"]).joints for p in stored]}
    if options is not None:
        keypoints = [torch.from_numpy(p["keypoints"]) for p in stored]
        fitted["refitted"] = [pose_body(body, r.betas.numpy(), r.pose.numpy()).joints
                              for r in fit_videos(keypoints, side(frames, videos[0]), body, options)]
    out: dict = {"videos": len(videos), "frames": int(sum(len(t) for t in truths))}
    for label, joints in fitted.items():
        pairs = list(zip(joints, truths, strict=True))
        out[label] = {name: round(float(torch.cat([1000 * metric(j, t) for j, t in pairs]).mean()), 2)
                      for name, metric in (("pa_mpjpe_mm", pa_mpjpe), ("mpjpe_mm", mpjpe))}
    return out


def side(frames: FramesCache, video: str) -> int:
    """The side of a video's cached frames, where its keypoints are."""
    return int(frames.group(video)["frames"].attrs["image_size"])


def in_common(fits: dict[str, dict]) -> np.ndarray:
    """The frame numbers every camera's fit has."""
    common = None
    for fit in fits.values():
        common = set(fit["frame"].tolist()) if common is None else common & set(fit["frame"].tolist())
    return np.array(sorted(common or ()), int)


def at(fit: dict, key: str, frames: np.ndarray) -> np.ndarray:
    where = {int(n): i for i, n in enumerate(fit["frame"])}
    return fit[key][[where[int(n)] for n in frames]]


def summary(values: np.ndarray) -> dict[str, float]:
    return {"median": round(float(np.median(values)), 1), "p90": round(float(np.percentile(values, 90)), 1),
            "mean": round(float(np.mean(values)), 1)}


def measure(cameras: dict, fits: dict[str, dict], body: BodyModel, frames: np.ndarray) -> dict:
    names = list(fits)
    keypoints = {c: at(fits[c], "keypoints", frames) for c in names}  # (N, 17, 3) source pixels
    everyone = triangulate([cameras[c] for c in names], np.stack([keypoints[c] for c in names]),
                           MIN_CONFIDENCE)
    result: dict = {"frames_in_common": len(frames), "cameras": {}}
    result["three_camera_reprojection_px"] = {
        c: round(reprojection_px(cameras[c], everyone, keypoints[c], MIN_CONFIDENCE), 2) for c in names}
    references = {}
    for c in names:
        others = [o for o in names if o != c]
        references[c] = triangulate([cameras[o] for o in others], np.stack([keypoints[o] for o in others]),
                                    MIN_CONFIDENCE, min_views=2)  # (N, 17, 3) world mm
    result["reference_spread_mm"] = {}
    for i, a in enumerate(names):  # two-camera references against each other: the reference's own error
        for b in names[i + 1:]:
            ra, rb = references[a][:, LIMBS], references[b][:, LIMBS]
            both = np.isfinite(ra).all(axis=-1) & np.isfinite(rb).all(axis=-1)
            kept = both.sum(axis=1) >= MIN_LIMBS
            pa, _ = frame_errors(ra[kept], np.where(both[kept][..., None], rb[kept], np.nan))
            result["reference_spread_mm"][f"{a}|{b}"] = summary(pa)
    for c in names:
        reference = references[c]
        status = at(fits[c], "status", frames)
        found = np.isfinite(reference[:, LIMBS]).all(axis=-1)  # (N, 12)
        usable = (found.sum(axis=1) >= MIN_LIMBS) & ((status & NO_PERSON) == 0)
        ref = cameras[c].to_camera(reference[usable][:, LIMBS])  # (M, 12, 3) this camera's axes, mm
        pose = at(fits[c], "pose", frames)[usable]
        betas = fits[c]["betas"]
        rest = np.zeros_like(pose)
        rest[:, :3] = pose[:, :3]
        mean = np.repeat(pose.mean(axis=0, keepdims=True), len(pose), axis=0)
        mean[:, :3] = pose[:, :3]
        figures = {}
        for label, p in (("fit", pose), ("rest_pose", rest), ("mean_pose", mean)):
            pred = pose_body(body, betas, p).keypoints.numpy().astype(np.float64)[:, LIMBS]
            pa, cam_frame = frame_errors(pred, ref)
            figures[label] = {"pa_mpjpe_mm": summary(pa), "camera_frame_mm": summary(cam_frame)}
        result["cameras"][c] = {
            "clip": fits[c]["clip"], "frames": int(usable.sum()),
            **figures["fit"], "rest_pose": figures["rest_pose"], "mean_pose": figures["mean_pose"],
            "reference_reprojection_px": round(
                reprojection_px(cameras[c], reference, keypoints[c], MIN_CONFIDENCE), 2)}
    return result


def draw(image: np.ndarray, points: np.ndarray, colour: tuple[int, int, int]) -> None:
    for a, b in BONES:
        pa, pb = points[a], points[b]
        if np.isfinite(pa).all() and np.isfinite(pb).all():
            cv2.line(image, tuple(int(round(v)) for v in pa), tuple(int(round(v)) for v in pb), colour, 6,
                     cv2.LINE_AA)


def read_frame(path: Path, number: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, number)
    ok, image = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f"cannot read frame {number} of {path}")
    return image


def picture(cameras: dict, fits: dict[str, dict], body: BodyModel, frames: np.ndarray, out: Path) -> Path:
    """views.jpg (module docstring): a row per camera's fit, for three frames: its own view, the next
    camera's view."""
    names = list(fits)
    clips = {c: footage.available(fits[c]["clip"]) for c in names}
    picks = frames[[len(frames) // 5, len(frames) // 2, 4 * len(frames) // 5]]
    rows = []
    for i, c in enumerate(names):
        other = names[(i + 1) % len(names)]
        rest = [o for o in names if o != c]
        keypoints = {o: at(fits[o], "keypoints", picks) for o in names}
        reference = triangulate([cameras[o] for o in rest], np.stack([keypoints[o] for o in rest]),
                                MIN_CONFIDENCE)
        pred = pose_body(body, fits[c]["betas"], at(fits[c], "pose", picks)).keypoints.numpy().astype(float)
        ref_c = cameras[c].to_camera(reference)
        limbs = list(LIMBS)
        moved = np.full_like(pred, np.nan)
        ok = np.isfinite(ref_c[:, limbs]).all(axis=-1).sum(axis=1) >= MIN_LIMBS
        on_limbs = np.full_like(ref_c, np.nan)
        on_limbs[:, limbs] = ref_c[:, limbs]  # aligned on the limbs, as measured; the face's points follow
        moved[ok] = align_scale_shift(pred[ok], on_limbs[ok])
        tiles = []
        for k, number in enumerate(picks):
            own = read_frame(clips[c], int(number))
            draw(own, cameras[c].project(cameras[c].to_world(moved[k])), (0, 220, 0))
            seen = read_frame(clips[other], int(number))
            draw(seen, cameras[other].project(reference[k]), (0, 0, 230))
            draw(seen, cameras[other].project(cameras[c].to_world(moved[k])), (0, 220, 0))
            for image, label in ((own, f"{c} fit, frame {number}"), (seen, f"seen by {other}")):
                cv2.putText(image, label, (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 4)
            tiles += [cv2.resize(own, (272, 480), interpolation=cv2.INTER_AREA),
                      cv2.resize(seen, (272, 480), interpolation=cv2.INTER_AREA)]
        rows.append(np.concatenate(tiles, axis=1))
    out.mkdir(parents=True, exist_ok=True)
    path = out / "views.jpg"
    cv2.imwrite(str(path), np.concatenate(rows, axis=0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every 4th frame")
    ap.add_argument("--workspace", type=Path, default=ROOT / "benchmarks" / "out" / "real_people")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "fit_views")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="fit.KEY=VALUE")
    ap.add_argument("--world-weight", type=float, default=None,
                    help="refit the clips with MediaPipe's world landmarks at this weight, 0 for none "
                         "(module docstring)")
    args = ap.parse_args()
    overrides = config.parse_assignments(args.overrides)
    bad = [key for key in overrides if not key.startswith("fit.")]
    if bad:
        sys.exit(f"error: --set {bad[0]}: only the fit section's options change a fit")
    calibration = footage.calibration()
    if calibration is None or any(footage.available(clip) is None for clip in footage.CALIBRATED):
        sys.exit(f"error: the calibrated clips or their calibration are missing: run {footage.FETCH_COMMAND}")
    real_people.build(args.workspace.resolve())
    cameras = read_qualisys(calibration)
    fits = takes(args.workspace)
    body = BodyModel.from_file(args.workspace / "data" / "body" / "body.npz")
    options = None
    data = args.workspace / "data"  # the weight the fit stage resolved for these clips
    weight = settings_from_params(config.load(args.workspace / "params.yaml").fit,
                                  data / "cache" / "frames" / "frames.h5", data / "body" / "body.npz",
                                  data / "cache" / "smpl").options.world_weight
    if overrides or args.world_weight is not None:
        options = FitOptions.from_params(config.load(ROOT / "params.yaml", overrides).fit,
                                         footage=True)
        if args.world_weight is not None:
            options = dataclasses.replace(options, world_weight=args.world_weight)
        weight = options.world_weight
        fits = refit(fits, body, options, world_landmarks(args.workspace, fits) if weight > 0 else None)
    frames = in_common(fits)
    if args.quick:
        frames = frames[::4]
    result = {"options": {k: v for k, v in overrides.items()}, "world_weight": weight,
              **measure(cameras, fits, body, frames)}
    result["synthetic"] = synthetic(options)
    result["picture"] = str(picture(cameras, fits, body, frames, args.out))
    for c, r in result["cameras"].items():
        fit, rest, mean = r, r["rest_pose"], r["mean_pose"]
        print(f"{c} ({r['clip']}, {r['frames']} frames), medians in mm, PA-MPJPE / camera frame: fit "
              f"{fit['pa_mpjpe_mm']['median']} / {fit['camera_frame_mm']['median']}, rest pose "
              f"{rest['pa_mpjpe_mm']['median']} / {rest['camera_frame_mm']['median']}, mean pose "
              f"{mean['pa_mpjpe_mm']['median']} / {mean['camera_frame_mm']['median']}; the reference "
              f"{r['reference_reprojection_px']} px off this camera's detections", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
