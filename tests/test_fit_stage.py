"""The fit stage's work on a tiny synthetic set: Ray equals the in-process run, a killed run resumes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from lwgan.body.fit import FitSettings, FitWorker, fit_all, plan_jobs, release_kept
from lwgan.body.fitting import FitOptions
from lwgan.body.model import BodyModel
from lwgan.body.model_io import save_body_model
from lwgan.data.prepare import PrepareOptions, prepare
from lwgan.data.shard import FRAMES_FILE
from lwgan.data.smpl_cache import ARRAYS, SmplCache
from lwgan.parallel import PoolOptions, run_jobs
from lwgan.synth.synthesize import SynthOptions, synthesize

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
FAST = FitOptions(camera_iterations=5, pose_iterations=10)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitdata")
    body = BodyModel.default()
    synthesize(SynthOptions(subjects=2, clothes=1, frames_per_action=6, image_size=64, val_subjects=1),
               body, root / "synthetic")
    prepare(PrepareOptions(source="iper", root=root / "synthetic", image_size=64, workers=1), root / "frames")
    body_path = root / "body.npz"
    from lwgan.body import load_configured

    save_body_model(load_configured("default"), body_path)
    return root, body_path


def settings_for(root: Path, body_path: Path, out: str) -> FitSettings:
    return FitSettings(frames_path=root / "frames" / FRAMES_FILE, body_path=body_path, out_dir=root / out,
                       keypoints="ground_truth", keypoints_root=None, options=FAST, overlays_per_video=1)


def read_all(out_dir: Path) -> dict[str, dict[str, np.ndarray]]:
    return {p.stem: SmplCache(p).params(p.stem) for p in sorted((out_dir / "videos").glob("*.h5"))}


def test_ray_run_on_two_workers_equals_the_in_process_run(prepared):
    root, body_path = prepared
    local, remote = settings_for(root, body_path, "local"), settings_for(root, body_path, "ray")
    jobs, current = plan_jobs(local)
    assert len(jobs) == 4 and current == []
    _, failures = run_jobs(FitWorker, (local,), jobs, PoolOptions(use_ray=False), key=lambda j: j.video_id)
    assert failures == []
    _, failures = run_jobs(FitWorker, (remote,), plan_jobs(remote)[0], PoolOptions(num_workers=2),
                           key=lambda j: j.video_id)
    assert failures == []
    a, b = read_all(root / "local"), read_all(root / "ray")
    assert sorted(a) == sorted(b) == ["001_1_1", "001_1_2", "002_1_1", "002_1_2"]
    for video in a:
        for name in ARRAYS:
            np.testing.assert_array_equal(a[video][name], b[video][name], err_msg=f"{video}/{name}")
    assert plan_jobs(local) == ([], sorted(a)), "finished shards are current on a rerun"
    # Same data, same bytes (no wall-clock values, no HDF5 timestamps), so DVC sees no change on a re-fit.
    for video in a:
        shard = Path("videos") / f"{video}.h5"
        assert (root / "local" / shard).read_bytes() == (root / "ray" / shard).read_bytes(), video


def test_a_refit_replaces_the_videos_old_overlays_and_keeps_the_others(prepared, tmp_path):
    root, body_path = prepared
    settings = dataclasses.replace(settings_for(root, body_path, "overlays"), out_dir=tmp_path)
    (tmp_path / "overlays").mkdir()
    for name in ("001_1_1_00099.png", "001_1_10_00001.png", "001_1_1_notes.png"):
        (tmp_path / "overlays" / name).write_bytes(b"an earlier picture")
    job = next(j for j in plan_jobs(settings)[0] if j.video_id == "001_1_1")
    _, failures = run_jobs(FitWorker, (settings,), [job], PoolOptions(use_ray=False),
                           key=lambda j: j.video_id)
    assert failures == []
    names = sorted(p.name for p in (tmp_path / "overlays").iterdir())
    assert names == ["001_1_10_00001.png", "001_1_1_00000.png", "001_1_1_notes.png"]


def test_shards_dvc_checkout_removed_are_taken_back_from_the_keep_folder(prepared, tmp_path):
    # A run killed after one video, then `dvc exp run`'s forced checkout of the output folder (here: the
    # folder removed, as when the locked version has no shards): the finished video is not fitted again.
    root, body_path = prepared
    settings = dataclasses.replace(settings_for(root, body_path, "keep"), out_dir=tmp_path / "smpl",
                                   overlays_per_video=0)
    job = next(j for j in plan_jobs(settings)[0] if j.video_id == "001_1_2")
    _, failures = run_jobs(FitWorker, (settings,), [job], PoolOptions(use_ray=False),
                           key=lambda j: j.video_id)
    assert failures == []
    first = (tmp_path / "smpl" / "videos" / "001_1_2.h5").read_bytes()
    kept = tmp_path / ".lwgan-keep" / "smpl" / "videos" / f"001_1_2.h5.{job.key}"
    assert kept.read_bytes() == first
    shutil.rmtree(tmp_path / "smpl")
    run = fit_all(settings, PoolOptions(use_ray=False))
    assert run.reused == ["001_1_2"] and sorted(r["video"] for r in run.results) == [
        "001_1_1", "002_1_1", "002_1_2"]
    assert (tmp_path / "smpl" / "videos" / "001_1_2.h5").read_bytes() == first
    assert sorted(SmplCache(tmp_path / "smpl" / "smpl.h5").videos) == ["001_1_1", "001_1_2", "002_1_1",
                                                                        "002_1_2"]
    kept_folder = tmp_path / ".lwgan-keep" / "smpl" / "videos"
    assert len(list(kept_folder.iterdir())) == 4  # until the stage has succeeded
    release_kept(settings)
    assert not list(kept_folder.iterdir())


def shards(out: Path) -> dict[str, int]:
    """Finished shards (not the hidden temporary files being written) and their modification times."""
    return {p.stem: p.stat().st_mtime_ns for p in (out / "videos").glob("*.h5") if not p.name.startswith(".")}


def test_killed_fit_stage_resumes_with_only_the_missing_videos(prepared, tmp_path):
    root, body_path = prepared
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["fit"].update(keypoints="ground_truth", pose_iterations=60, camera_iterations=20,
                         overlays_per_video=0, chunk_frames=6)  # a group per video (`batches`)
    params["ray"].update(enabled=False)
    params["tracking"]["enabled"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "smpl"
    cmd = [sys.executable, str(ROOT / "stages" / "fit.py"), "--params", str(tmp_path / "params.yaml"),
           "--frames", str(root / "frames" / FRAMES_FILE), "--body", str(body_path), "--out-dir", str(out),
           "--metrics", str(tmp_path / "fit.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not shards(out):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = shards(out)
    assert 1 <= len(first) < 4, "killed after the first video, before the last"
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"{4 - len(first)} videos to fit, {len(first)} already fitted" in done.stderr
    after = shards(out)
    assert len(after) == 4 and all(after[v] == first[v] for v in first), "finished shards were kept"
    assert not list((out / "videos").glob(".*")), "no temporary files left"
    clean = tmp_path / "clean"
    clean_cmd = [*cmd[:-4], "--out-dir", str(clean), "--metrics", str(tmp_path / "clean.json")]
    subprocess.run(clean_cmd, check=True, capture_output=True)
    resumed, fresh = read_all(out), read_all(clean)
    for video in fresh:
        for name in ARRAYS:
            np.testing.assert_array_equal(resumed[video][name], fresh[video][name], err_msg=f"{video}/{name}")


COCO_TO_BODY25 = {0: 0, 1: 16, 2: 15, 3: 18, 4: 17, 5: 5, 6: 2, 7: 6, 8: 3, 9: 7, 10: 4, 11: 12, 12: 9,
                  13: 13,
                  14: 10, 15: 14, 16: 11}


def test_imported_openpose_keypoints_fit_like_the_same_keypoints_from_ground_truth(prepared):
    root, body_path = prepared
    import json

    folder = root / "openpose"
    for gt in sorted((root / "synthetic" / "gt").glob("*.npz")):
        keypoints = np.load(gt)["keypoints"]  # (N, 17, 3) source pixels + visibility
        (folder / gt.stem).mkdir(parents=True)
        for frame, points in enumerate(keypoints):
            body25 = np.zeros((25, 3))
            for coco, index in COCO_TO_BODY25.items():
                body25[index] = points[coco]
            person = {"pose_keypoints_2d": [float(v) for v in body25.reshape(-1)]}
            (folder / gt.stem / f"{frame:012d}_keypoints.json").write_text(json.dumps({"people": [person]}))
    truth = settings_for(root, body_path, "truth")
    imported = dataclasses.replace(settings_for(root, body_path, "imported"), keypoints="openpose",
                                   keypoints_root=folder)
    for settings in (truth, imported):
        _, failures = run_jobs(FitWorker, (settings,), plan_jobs(settings)[0], PoolOptions(use_ray=False),
                               key=lambda j: j.video_id)
        assert failures == []
    a, b = read_all(root / "truth"), read_all(root / "imported")
    for video in a:
        # OpenPose writes (0, 0, 0) for what it did not see: positions matter only where confident.
        seen = a[video]["keypoints"][..., 2] > 0
        np.testing.assert_array_equal(seen, b[video]["keypoints"][..., 2] > 0)
        np.testing.assert_allclose(a[video]["keypoints"][seen], b[video]["keypoints"][seen], atol=1e-4)
        np.testing.assert_allclose(a[video]["pose"], b[video]["pose"], atol=1e-3)
