"""The fit stage's verdict on every video: figures checked against a computation of their own, a video
fitted to points on the background comes out "failed", is named, gets overlays and stops the stage while
the shards stay, and the verdict's thresholds never refit anything."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from lwgan import config, tracking
from lwgan.body import load_configured
from lwgan.body.detect import GroundTruthKeypoints
from lwgan.body.fit import FitJob, FitSettings, batches, fit_all, plan_jobs, review, settings_from_params
from lwgan.body.fit_quality import (
    FAILED,
    OK,
    POOR,
    FitQualityError,
    Thresholds,
    VideoFigures,
    VideoReport,
    body_size,
    check_failures,
    judge,
    raised,
)
from lwgan.body.fitting import NO_PERSON, NOT_CONVERGED, FitOptions
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.body.sequence import project_video
from lwgan.data.cache import FramesCache
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.shard import FRAMES_FILE
from lwgan.data.smpl_cache import SmplCache
from lwgan.parallel import PoolOptions
from lwgan.render.raster import RasterSettings, rasterize
from lwgan.synth.synthesize import SynthOptions, synthesize

ROOT = Path(__file__).resolve().parents[1]
SIDE = 64
OPTIONS = FitOptions(camera_iterations=20, pose_iterations=60)
BAD = "001_1_1"  # the video whose keypoints are moved onto the background
ROW = {"detection_rate", "fitted_rate", "reprojection_p50", "reprojection_p95", "silhouette_iou", "status"}


# -- the verdict on given figures (fast) -------------------------------------------------------------------


def test_body_size_is_the_longer_side_of_the_confident_keypoints_box():
    keypoints = np.zeros((3, 17, 3), np.float32)
    keypoints[0, :3] = [[10, 20, 1.0], [14, 80, 0.9], [50, 30, 0.05]]  # the third is below the threshold
    keypoints[1, :3] = [[10, 20, 1.0], [90, 30, 1.0], [20, 25, 1.0]]  # lying: 80 wide, 10 high
    keypoints[2, :1] = [[10, 20, 1.0]]  # one keypoint has no extent
    np.testing.assert_allclose(body_size(keypoints, 0.1), [60.0, 80.0, np.nan])


def figures(fitted=1.0, p95=0.01, iou=0.85) -> VideoFigures:
    return VideoFigures(detection_rate=1.0, fitted_rate=fitted, reprojection_p50=0.005, reprojection_p95=p95,
                        silhouette_iou=iou, worst_frame=0)


@pytest.mark.parametrize(("given", "status", "named"), [
    (figures(), OK, None),
    (figures(iou=None), OK, None),  # a keypoint source without masks is judged on the rest
    (figures(fitted=0.8), OK, None),  # on the threshold is not past it
    (figures(fitted=0.79), POOR, "fit.poor_fitted_rate"),
    (figures(p95=0.06), POOR, "fit.poor_reprojection"),
    (figures(iou=0.5), POOR, "fit.poor_iou"),
    (figures(fitted=0.4), FAILED, "fit.failed_fitted_rate"),
    (figures(p95=0.2), FAILED, "fit.failed_reprojection"),
    (figures(iou=0.2, p95=0.06), FAILED, "fit.failed_iou"),  # failed wins over poor
    (dataclasses.replace(figures(fitted=0.0), reprojection_p50=None, reprojection_p95=None), FAILED,
     "no frame with a fitted person"),
])
def test_judge_names_the_threshold_a_video_crossed(given, status, named):
    report = judge(given, Thresholds())
    assert report.status == status
    if named is None:
        assert report.reasons == ()
    else:
        assert any(named in reason for reason in report.reasons), report.reasons


def test_the_stage_fails_past_the_share_of_failed_videos_with_one_line():
    ok = VideoReport(figures(), OK)
    bad = judge(figures(p95=0.3), Thresholds())
    videos = {"a": ok, "b": bad, "c": ok, "d": raised("ValueError: broken frames\n  more lines")}
    check_failures(videos, 0.5, "overlays")  # 2 of 4 is not more than half
    with pytest.raises(FitQualityError) as info:
        check_failures(videos, 0.25, "out/overlays")
    message = str(info.value)
    assert "\n" not in message and "more lines" not in message
    assert message.startswith("2 of 4 videos failed, more than fit.max_failure_fraction = 0.25: b (")
    assert "d (its fit raised ValueError: broken frames)" in message and "out/overlays" in message
    assert "a (" not in message and "c (" not in message


def test_poor_thresholds_must_lie_on_the_good_side_of_the_failed_ones():
    with pytest.raises(config.ConfigError, match=r"fit.poor_reprojection: got 0.2, must be <= "
                                                 r"fit.failed_reprojection \(0.15\)"):
        config.from_dict({"fit": {"poor_reprojection": 0.2}})


# -- real caches, real fits ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny synthetic set (2 people x 2 actions x 6 frames), its frames cache, the body model and a copy
    of its ground truth where the keypoints of `BAD` lie in the empty band above the person's head."""
    root = tmp_path_factory.mktemp("fitstatus")
    # loose=0: a skirt hides the hips and knees of a side view, and at 64² with short fits such a frame
    # does not converge, which would make the ground-truth videos poor rather than ok
    synthesize(SynthOptions(subjects=2, clothes=1, frames_per_action=6, image_size=SIDE, val_subjects=1,
                            loose=0.0), BodyModel.default(), root / "synthetic")
    prepare(PrepareOptions(source="iper", root=root / "synthetic", image_size=SIDE, workers=1),
            root / "frames")
    save_body_model(load_configured("default"), root / "body.npz")
    bad = root / "background_keypoints"
    for part in ("gt", "masks"):
        shutil.copytree(root / "synthetic" / part, bad / part)
    x0, y0, side = FramesCache(root / "frames" / FRAMES_FILE).info(BAD).crop_box
    with np.load(bad / "gt" / f"{BAD}.npz") as data:
        arrays = dict(data)
    keypoints = arrays["keypoints"]  # (N, 17, 3) source pixels + visibility
    rng = np.random.default_rng(0)
    keypoints[..., 0] = rng.uniform(x0 + 1, x0 + side - 2, keypoints.shape[:2])
    keypoints[..., 1] = rng.uniform(y0 + 1, y0 + 0.15 * side, keypoints.shape[:2])
    keypoints[..., 2] = 1.0
    np.savez(bad / "gt" / f"{BAD}.npz", **arrays)
    return root


def settings_for(root: Path, out: Path, keypoints_root: Path | None = None, overlays: int = 0) -> FitSettings:
    return FitSettings(frames_path=root / "frames" / FRAMES_FILE, body_path=root / "body.npz", out_dir=out,
                       keypoints="ground_truth", keypoints_root=keypoints_root, options=OPTIONS,
                       overlays_per_video=overlays)


def overlays_of(out: Path) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in sorted((out / "overlays").glob("*.png")):
        found.setdefault(path.name[:-10], []).append(int(path.name[-9:-4]))
    return found


@pytest.mark.slow
def test_per_video_figures_match_numpy_on_the_stored_fit(prepared, tmp_path):
    settings = settings_for(prepared, tmp_path / "smpl")
    # two videos of six frames per group (`batches`): a progress line per group
    settings = dataclasses.replace(settings, options=dataclasses.replace(settings.options, chunk_size=12))
    calls = []
    done = fit_all(settings, PoolOptions(use_ray=False),
                   progress=lambda done, total, extra="": calls.append((done, total, extra)))
    report = review(settings, Thresholds(), done)
    body = BodyModel.from_file(prepared / "body.npz")
    smpl = SmplCache(tmp_path / "smpl" / "smpl.h5")
    frames = FramesCache(prepared / "frames" / FRAMES_FILE)
    # progress is counted in frames (the rate and ETA of a progress line follow from it), videos beside
    total = sum(frames.num_frames(video) for video in frames.videos)
    assert [c[1] for c in calls] == [total] * 2
    assert [c[2] for c in calls] == ["2/4 videos", "4/4 videos"]
    assert [c[0] for c in calls] == sorted(c[0] for c in calls) and calls[-1][0] == total
    truth = GroundTruthKeypoints(prepared / "synthetic")
    table = report.metrics["videos"]
    assert sorted(table) == ["001_1_1", "001_1_2", "002_1_1", "002_1_2"]
    usable_frames = []
    for video, row in table.items():
        assert set(row) == ROW and row["status"] == OK, (video, row)
        fit = smpl.params(video)
        n = len(fit["pose"])
        with torch.no_grad():  # the stored body's keypoints, posed and projected here (HMR weak perspective)
            points = body(torch.from_numpy(fit["betas"])[None].expand(n, -1),
                          torch.from_numpy(fit["pose"])).keypoints.numpy()  # (N, K, 3)
        ndc = fit["cam"][:, None, :1] * (points[..., :2] + fit["cam"][:, None, 1:])  # (N, K, 2)
        pixels = (ndc + 1.0) * SIDE / 2 - 0.5  # pixel centres at integers
        keypoints = fit["keypoints"]
        confident = keypoints[..., 2] >= OPTIONS.confidence_threshold  # (N, K)
        distance = np.linalg.norm(pixels - keypoints[..., :2], axis=-1)  # (N, K)
        mean = (distance * confident).sum(axis=1) / confident.sum(axis=1)
        size = np.array([np.ptp(keypoints[i, confident[i], :2], axis=0).max() for i in range(n)])
        relative = mean / size
        found = (keypoints[..., 2] > 0).any(axis=1)  # ground truth: a person wherever a keypoint shows
        person = found & ((fit["status"] & NO_PERSON) == 0)
        usable = found & ((fit["status"] & (NO_PERSON | NOT_CONVERGED)) == 0)
        assert row["detection_rate"] == pytest.approx(found.mean())
        assert row["fitted_rate"] == pytest.approx(usable.mean())
        usable_frames.append(usable)
        p50, p95 = np.percentile(relative[person], [50, 95])
        assert row["reprojection_p50"] == pytest.approx(p50, rel=1e-4, abs=1e-6)
        assert row["reprojection_p95"] == pytest.approx(p95, rel=1e-4, abs=1e-6)
        silhouette = rasterize(project_video(body, fit["betas"], fit["pose"], fit["cam"]), body.faces,
                               RasterSettings(SIDE, SIDE)).silhouette.numpy()  # (N, H, W) bool
        masks = truth.for_cache(frames, video).masks()  # (N, H, W) bool
        iou = (silhouette & masks).sum(axis=(1, 2)) / (silhouette | masks).sum(axis=(1, 2))
        assert row["silhouette_iou"] == pytest.approx(np.median(iou[found]), abs=1e-6)
        assert 0 < p50 <= p95 < 0.05 and 0.6 < row["silhouette_iou"] < 1
    metrics = report.metrics
    assert (metrics["videos_ok"], metrics["videos_poor"], metrics["videos_failed"]) == (4, 0, 0)
    assert metrics["fitted_rate"] == pytest.approx(np.concatenate(usable_frames).mean())
    for key in ("frames", "detection_rate", "fitted_rate", "reprojection_px_mean", "reprojection_px_p95",
                "silhouette_iou_mean", "mpjpe_mm_mean", "pa_mpjpe_mm_mean"):
        assert key in metrics, key
    assert "videos" not in report.scalars and report.scalars["videos_ok"] == 4
    assert overlays_of(tmp_path / "smpl") == {}, "overlays_per_video = 0 and every video is ok"


@pytest.mark.slow
def test_rejudging_reuses_every_shard_and_keeps_the_overlays_in_step(prepared, tmp_path):
    out = tmp_path / "smpl"
    settings = settings_for(prepared, out, prepared / "background_keypoints", overlays=1)
    report = review(settings, Thresholds(), fit_all(settings, PoolOptions(use_ray=False)))
    assert report.videos[BAD].status == FAILED
    assert {v: r.status for v, r in report.videos.items() if v != BAD} == dict.fromkeys(
        ["001_1_2", "002_1_1", "002_1_2"], OK)
    drawn = overlays_of(out)
    worst = report.videos[BAD].figures.worst_frame
    assert len(drawn[BAD]) >= 3 and worst in drawn[BAD]
    assert all(drawn[v] == [0] for v in drawn if v != BAD) and len(drawn) == 4
    kept = (out / "overlays" / f"{BAD}_00000.png").read_bytes()
    shards = {p.stem: p.stat().st_mtime_ns for p in (out / "videos").glob("*.h5")}
    lenient = Thresholds(failed_fitted_rate=0.0, poor_fitted_rate=0.0, failed_reprojection=1.0,
                         poor_reprojection=1.0, failed_iou=0.0, poor_iou=0.0)
    done = fit_all(settings, PoolOptions(use_ray=False))
    assert done.results == [] and sorted(done.reused) == sorted(shards), "nothing refitted"
    again = review(settings, lenient, done)
    assert all(r.status == OK for r in again.videos.values())
    assert again.metrics["videos"][BAD]["reprojection_p95"] == report.videos[BAD].figures.reprojection_p95
    assert overlays_of(out) == dict.fromkeys(drawn, [0]), "the failed video's extra pictures went with it"
    assert (out / "overlays" / f"{BAD}_00000.png").read_bytes() == kept
    assert {p.stem: p.stat().st_mtime_ns for p in (out / "videos").glob("*.h5")} == shards


@pytest.mark.slow
def test_verdict_thresholds_are_not_part_of_the_job_key(prepared, tmp_path):
    fit = config.load(ROOT / "params.yaml").fit
    changed = dataclasses.replace(fit, failed_fitted_rate=0.9, poor_fitted_rate=0.95,
                                  failed_reprojection=0.01, poor_reprojection=0.005, failed_iou=0.8,
                                  poor_iou=0.9, max_failure_fraction=0.0)
    refits = [dataclasses.replace(fit, pose_iterations=fit.pose_iterations + 1),
              dataclasses.replace(fit, pose_smooth_weight=3000.0),
              dataclasses.replace(fit, pose_prior_weight=4.0), dataclasses.replace(fit, world_weight=300.0)]
    paths = (prepared / "frames" / FRAMES_FILE, prepared / "body.npz", tmp_path / "smpl")

    def keys(params: config.FitParams) -> dict[str, str]:
        return {job.video_id: job.key for job in plan_jobs(settings_from_params(params, *paths))[0]}

    assert Thresholds.from_params(changed) != Thresholds.from_params(fit)
    assert settings_from_params(changed, *paths) == settings_from_params(fit, *paths)
    assert keys(changed) == keys(fit)
    assert len(keys(fit)) == 4
    for refit in refits:  # the fit params reach the options, and so every key
        assert all(keys(refit)[v] != keys(fit)[v] for v in keys(fit)), refit


@pytest.mark.slow
def test_world_weight_auto_is_off_on_the_synthetic_set_and_on_for_footage(prepared, tmp_path, caplog):
    """`fit.world_weight: auto` keeps the synthetic set's fits as they were (the same keys as 0) and fits
    footage with the term at 300 (the README's weight) where the detector gives its estimate; a cache
    whose source folder is gone keeps it off and says so."""
    fit = config.load(ROOT / "params.yaml").fit
    assert fit.world_weight == "auto"
    body, out = prepared / "body.npz", tmp_path / "smpl"

    def keys(params: config.FitParams, frames: Path) -> dict[str, str]:
        jobs = plan_jobs(settings_from_params(params, frames, body, out))[0]
        return {job.video_id: job.key for job in jobs}

    def at(weight: float) -> config.FitParams:
        return dataclasses.replace(fit, world_weight=weight)

    synthetic = prepared / "frames" / FRAMES_FILE
    assert keys(fit, synthetic) == keys(at(0.0), synthetic) != keys(at(300.0), synthetic)
    # copies of the cache whose source folder is a folder of footage (no synthetic-set manifest), or gone
    footage, gone = tmp_path / "footage" / FRAMES_FILE, tmp_path / "gone" / FRAMES_FILE
    (tmp_path / "videos").mkdir()
    for copy, root in ((footage, tmp_path / "videos"), (gone, tmp_path / "moved")):
        shutil.copytree(synthetic.parent, copy.parent)
        with h5py.File(copy, "r+") as handle:
            handle.attrs["root"] = str(root)
    assert keys(fit, footage) == keys(at(300.0), footage) != keys(at(0.0), footage)
    # keypoints from files carry no 3D estimate: footage fitted to them keeps the keys it had
    files = dataclasses.replace(fit, keypoints="ground_truth", keypoints_root=str(prepared / "synthetic"))
    assert keys(files, footage) == keys(dataclasses.replace(files, world_weight=0.0), footage)
    with caplog.at_level("WARNING", logger="lwgan.body.fit"):
        assert keys(fit, gone) == keys(at(0.0), gone)
    assert any("fit.world_weight auto" in r.getMessage() and str(gone) in r.getMessage()
               for r in caplog.records)


def run_stage(prepared: Path, tmp_path: Path, name: str, **fit: object) -> subprocess.CompletedProcess:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fit"].update(keypoints="ground_truth", keypoints_root=str(prepared / "background_keypoints"),
                         pose_iterations=OPTIONS.pose_iterations, camera_iterations=OPTIONS.camera_iterations,
                         overlays_per_video=0, **fit)
    params["ray"].update(enabled=False)
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    cmd = [sys.executable, str(ROOT / "stages" / "fit.py"), "--params", str(tmp_path / f"{name}.yaml"),
           "--frames", str(prepared / "frames" / FRAMES_FILE), "--body", str(prepared / "body.npz"),
           "--out-dir", str(tmp_path / "smpl"), "--metrics", str(tmp_path / f"{name}.json")]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "videos").glob("*.h5"))} | {
        "smpl.h5": (out / "smpl.h5").read_bytes()}


@pytest.mark.slow
def test_a_video_fitted_to_background_points_fails_and_stops_the_stage(prepared, tmp_path):
    out = tmp_path / "smpl"
    first = run_stage(prepared, tmp_path, "first", max_failure_fraction=0.1)
    assert first.returncode == 2, first.stderr
    assert "Traceback" not in first.stderr
    errors = [line for line in first.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors == first.stderr.strip().splitlines()[-1:]
    assert errors[0].startswith(
        f"error: 1 of 4 videos failed, more than fit.max_failure_fraction = 0.1: {BAD} (")
    assert "001_1_2" not in errors[0] and "002_1_1" not in errors[0]
    warnings = [line for line in first.stderr.splitlines() if " WARNING video " in line]
    assert len(warnings) == 1 and f"WARNING video {BAD} is failed: " in warnings[0]
    assert "fit.failed_reprojection" in warnings[0] and "fit.failed_iou" in warnings[0]

    metrics = json.loads((tmp_path / "first.json").read_text())
    assert (metrics["videos_ok"], metrics["videos_poor"], metrics["videos_failed"]) == (3, 0, 1)
    row = metrics["videos"][BAD]
    assert row["status"] == FAILED and set(row) == ROW
    assert row["reprojection_p95"] > 0.15 and row["silhouette_iou"] < 0.3 and row["fitted_rate"] < 0.5
    assert all(metrics["videos"][v]["status"] == OK for v in metrics["videos"] if v != BAD)
    drawn = overlays_of(out)
    assert list(drawn) == [BAD] and len(drawn[BAD]) >= 3, "overlays_per_video = 0: the failed video's only"

    (run,) = tracking.search_runs(experiment="lwgan", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run["status"] == "FAILED"
    assert run["metrics"]["videos_failed"] == 1 and run["metrics"]["videos_ok"] == 3
    assert not any(name.startswith("videos.") for name in run["metrics"]), "the table is an artifact"
    artifacts = tracking.artifact_dir(run["run_id"], tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert json.loads((artifacts / "fit_videos.json").read_text()) == metrics["videos"]
    assert sorted(p.name for p in (artifacts / "overlays").glob("*.png")) == sorted(
        p.name for p in (out / "overlays").glob("*.png"))

    computed = shard_bytes(out)
    assert len(computed) == 5 and list(SmplCache(out / "smpl.h5").videos) == sorted(metrics["videos"])
    second = run_stage(prepared, tmp_path, "second", max_failure_fraction=0.3, poor_reprojection=0.04)
    assert second.returncode == 0, second.stderr
    assert "0 videos to fit, 4 already fitted" in second.stderr
    assert shard_bytes(out) == computed, "the failed run's shards were kept and reused as they are"
    assert json.loads((tmp_path / "second.json").read_text())["videos"] == metrics["videos"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_videos_are_grouped_in_order_within_the_chunk_and_evenly_over_the_workers(workers):
    lengths = [20] * 64 + [300, 7, 250, 40, 40]
    jobs = [FitJob(f"v{i:03d}", "key", n) for i, n in enumerate(lengths)]
    groups = batches(jobs, FitOptions(), workers)
    assert groups[0].jobs == (jobs[64],)  # longer than a chunk: alone, first
    assert [job for group in groups[1:] for job in group.jobs] == jobs[:64] + jobs[65:]  # in order
    assert all(group.frames <= 256 for group in groups if len(group.jobs) > 1)
    short = [group for group in groups if all(job.frames == 20 for job in group.jobs)]
    assert len({group.frames for group in short}) <= 2 and min(group.frames for group in short) >= 160
    assert len(groups) - 1 >= workers
