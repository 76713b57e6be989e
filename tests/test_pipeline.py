"""End to end: a copy of this repository as a fresh git repo, a real `dvc repro` and a real `dvc exp run`,
checked through the MLflow store they wrote and through `dvc exp show`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lwgan import tracking, weights

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow

# Tiny params for the test pipeline: every stage as small as it can be while still doing its real work.
TINY = {
    "body": {"preview_size": 64, "preview_poses": 2},
    "synth": {"subjects": 2, "clothes": 1, "frames_per_action": 4, "image_size": 64, "val_subjects": 1,
              "workers": 1},
    "data": {"image_size": 48, "workers": 1},
    # Ground-truth keypoints: the detector is tested on its own; 48-pixel frames are too small for it.
    "fit": {"keypoints": "ground_truth", "pose_iterations": 15, "camera_iterations": 8,
            "overlays_per_video": 1},
    "ray": {"workers": 2},
    "train": {"image_size": 48, "base_width": 4, "res_blocks": 1, "d_layers": 2, "batch_size": 2,
              "workers": 1, "max_steps": 3, "checkpoint_every": 2, "sample_every": 2, "samples": 2},
    "evaluate": {"max_frames_per_video": 2, "batch_size": 2},
}


def _tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (ROOT / line).is_file()]


def _env(repo: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "LWGAN_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        RAY_AUTH_MODE="disabled",
        GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com",
        HOME=str(repo.parent),
        PYTHONPATH=str(repo),  # the stages import the copy's lwgan, whichever checkout is installed
    )
    return env


def _run(cmd: list[str], repo: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def _merge(tree: dict, patch: dict) -> dict:
    for key, value in patch.items():
        if isinstance(value, dict):
            _merge(tree.setdefault(key, {}), value)
        else:
            tree[key] = value
    return tree


def link_weights(repo: Path) -> None:
    """The pretrained networks of this checkout (`make weights`: data/weights/*.pth and the manifest, not
    the downloaded packages) in `repo`'s data/weights, hard-linked (copied across file systems): git ignores
    them and the stages read them as plain file deps."""
    source = ROOT / weights.WEIGHTS_DIR
    needed = [n.file for n in weights.NETWORKS.values()] + [weights.MANIFEST_FILE]
    missing = [name for name in needed if not (source / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} not in {source}: the pipeline needs the pretrained networks; run "
                    "`make weights`")
    dest = repo / weights.WEIGHTS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.glob("*.pth")) + [source / weights.MANIFEST_FILE]:
        try:
            os.link(file, dest / file.name)
        except OSError:
            shutil.copy2(file, dest / file.name)


def copy_repo(repo: Path, params: dict, message: str) -> Path:
    """This repository's files in `repo` as a fresh git repo of one commit, params.yaml merged with
    `params`, and the pretrained networks (`link_weights`) beside them, untracked as here."""
    for rel in _tracked_files():
        dest = repo / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    link_weights(repo)
    tree = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(_merge(tree, params), sort_keys=False))
    env = _env(repo)
    _run(["git", "init", "-q", "-b", "main"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", message], repo, env)
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return copy_repo(tmp_path_factory.mktemp("pipeline") / "repo", TINY, "test pipeline")


def test_repro_then_exp_run_are_tracked(repo):
    env = _env(repo)
    stages = list(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    _run([str(BIN / "dvc"), "repro"], repo, env)
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    assert (repo / "mlflow.db").is_file(), "the default store is an SQLite file at the project root"
    runs = tracking.search_runs(experiment="lwgan", tracking_uri=uri)
    assert sorted(r["tags"][tracking.TAG_STAGE] for r in runs) == sorted(stages)
    groups = {r["tags"][tracking.TAG_GROUP] for r in runs}
    assert len(groups) == 1 and next(iter(groups)).startswith("dvc-"), groups
    assert {r["tags"][tracking.TAG_EXP] for r in runs} == {"workspace"}
    head = _run(["git", "rev-parse", "HEAD"], repo, env).strip()
    assert all(r["tags"][tracking.TAG_COMMIT].startswith(head) for r in runs)
    assert all(r["status"] == "FINISHED" and r["metrics"] for r in runs)
    # One pipeline run for the invocation, every stage run nested under it, each from its stage script.
    (pipeline,) = tracking.search_runs(experiment="lwgan", tracking_uri=uri, kind="pipeline")
    assert {r["tags"][tracking.MLFLOW_PARENT] for r in runs} == {pipeline["run_id"]}
    assert pipeline["tags"][tracking.TAG_GROUP] in groups and pipeline["status"] == "FINISHED"
    assert sorted(pipeline["tags"][tracking.TAG_STAGES].split(", ")) == sorted(stages)
    assert pipeline["tags"][tracking.MLFLOW_RUN_NAME].startswith(f"dvc repro ({head[:8]}")
    assert all(r["tags"][tracking.MLFLOW_SOURCE_NAME] == f"stages/{r['tags'][tracking.TAG_STAGE]}.py"
               for r in runs)

    prepared = json.loads((repo / "metrics" / "prepare.json").read_text())
    assert prepared["videos"] == 4 and prepared["frames"] == 16 and prepared["train_videos"] == 2
    assert (repo / "data" / "cache" / "frames" / "frames.h5").is_file()
    assert (repo / "data" / "raw" / "synthetic" / "images" / "001" / "1" / "2" / "0003.jpg").is_file()
    fitted = json.loads((repo / "metrics" / "fit.json").read_text())
    assert len(fitted["videos"]) == 4 and fitted["frames"] == 16 and fitted["detection_rate"] == 1.0
    assert fitted["videos_ok"] + fitted["videos_poor"] == 4 and fitted["videos_failed"] == 0
    assert fitted["pa_mpjpe_mm_mean"] < 150  # a few iterations only; quality is measured in benchmarks
    maps = json.loads((repo / "metrics" / "correspond.json").read_text())
    assert maps["frames"] == 16 and maps["cache_kb_per_frame"] > 0
    overlays = [p.name for p in (repo / "data" / "cache" / "smpl" / "overlays").glob("*.png")]
    for video, row in fitted["videos"].items():  # one picture each, at least 3 of a poor video
        drawn = sum(name.startswith(f"{video}_") for name in overlays)
        assert drawn == 1 if row["status"] == "ok" else drawn >= 3, (video, row, drawn)
    trained = json.loads((repo / "metrics" / "train.json").read_text())
    assert trained["steps"] == 3 and trained["global_batch"] == 2
    terms = {"L_adv", "L_rec", "L_tsf", "L_face", "L_mask", "L_smooth", "L_D_real", "L_D_fake"}
    assert terms <= set(trained["loss"])
    assert (repo / "models" / "checkpoint.pt").is_file() and (repo / "models" / "loss_curves.png").is_file()
    assert len((repo / "plots" / "train" / "losses.csv").read_text().splitlines()) == 4  # header + 3 steps
    train_run = next(r for r in runs if r["tags"][tracking.TAG_STAGE] == "train")
    assert train_run["params"]["train.max_steps"] == "3" and "loss/L_rec" in train_run["metrics"]
    assert train_run["params"]["feature_net.vgg16.substitute"] == "False"  # data/weights/vgg16.pth
    evaluated = json.loads((repo / "metrics" / "eval.json").read_text())
    assert evaluated["videos"] == 2 and evaluated["pairs"] == 4
    assert set(evaluated["self_imitation"]) == {"lwgan", "naive"}
    assert all("lpips" in evaluated["self_imitation"][m] for m in ("lwgan", "naive"))
    assert set(evaluated["not_computed"]) == {"fid", "inception_score"}  # no Inception weights by default
    assert evaluated["cross_imitation"]["lwgan"]["n_fake"] == 4 and "kid_effnet_lite0" in (
        evaluated["cross_imitation"]["naive"])
    eval_run = next(r for r in runs if r["tags"][tracking.TAG_STAGE] == "evaluate")
    assert eval_run["params"]["feature_net.effnet.sha256"] == weights.sha256_file(
        ROOT / weights.WEIGHTS_DIR / "efficientnet_lite0.pth")
    assert "lwgan.feature_net.lpips_backbone" in eval_run["tags"]
    videos = sorted(p.name for p in (repo / "data" / "eval" / "videos").glob("*.mp4"))
    assert len(videos) == 4 and sum(name.startswith("cross_") for name in videos) == 2  # self and cross
    assert evaluated["cross_imitation_pairs"] == 4
    body_metrics = json.loads((repo / "metrics" / "body.json").read_text())
    body_run = next(r for r in runs if r["tags"][tracking.TAG_STAGE] == "body")
    assert body_run["params"]["body.preview_size"] == "64"
    assert body_run["metrics"]["vertices"] == body_metrics["vertices"]

    # A variant through DVC experiments: only the stage reading the changed key reruns (the resolved body
    # model it rewrites is byte-identical, so the stages after it are up to date).
    _run([str(BIN / "dvc"), "exp", "run", "-n", "tiny-preview", "-S", "body.preview_size=48"], repo, env)
    exp_runs = tracking.search_runs("tags.`lwgan.dvc_exp` = 'tiny-preview'", experiment="lwgan",
                                    tracking_uri=uri)
    assert [r["tags"][tracking.TAG_STAGE] for r in exp_runs] == ["body"]
    assert exp_runs[0]["params"]["body.preview_size"] == "48"
    assert exp_runs[0]["tags"][tracking.TAG_GROUP] not in groups
    exp_pipeline = tracking.search_runs("tags.`lwgan.dvc_exp` = 'tiny-preview'", experiment="lwgan",
                                        tracking_uri=uri, kind="pipeline")
    assert [r["run_id"] for r in exp_pipeline] == [exp_runs[0]["tags"][tracking.MLFLOW_PARENT]]
    assert exp_pipeline[0]["tags"][tracking.MLFLOW_RUN_NAME] == f"dvc exp run tiny-preview ({head[:8]})"
    assert exp_pipeline[0]["tags"][tracking.TAG_BASELINE] == head
    shown = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], repo, env))
    names = [exp.get("name") for entry in shown for exp in (entry.get("experiments") or [])]
    assert "tiny-preview" in names, shown

    # Same data, same bytes: forcing the data stages to run again changes nothing DVC hashes, so no stage
    # after them turns stale.
    _run([str(BIN / "dvc"), "repro", "--force", "--single-item", "prepare", "fit", "correspond"], repo, env)
    status = _run([str(BIN / "dvc"), "status"], repo, env)
    assert "up to date" in status, status


def test_an_experiment_killed_mid_training_resumes_when_run_again(repo):
    # `dvc exp run` checks every output out to its locked version, by force, before it runs: the
    # checkpoint a killed run left in models/ is replaced by the locked one. The run's keep folder
    # (lwgan.keep) outlives that, so running the same experiment again continues where it was killed.
    import signal
    import time

    from lwgan.train import checkpoint

    env = _env(repo)
    _run([str(BIN / "dvc"), "repro"], repo, env)
    locked = checkpoint.load(repo / "models" / "checkpoint.pt")
    cmd = [str(BIN / "dvc"), "exp", "run", "-S", "train.max_steps=60", "-S", "train.checkpoint_every=2",
           "-S", "train.pairs_per_epoch=80"]
    kept = repo / ".lwgan-keep" / "models"
    proc = subprocess.Popen(cmd, cwd=repo, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (kept.is_dir() and any(p.name.startswith("checkpoint.pt.") for p in kept.iterdir())):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint kept within 600 s"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # dvc, the stage and its loader worker, as a lost machine would
    proc.wait()
    (left,) = [p for p in kept.iterdir() if p.name.startswith("checkpoint.pt.")]
    killed_at = checkpoint.load(left)["step"]
    assert 2 <= killed_at < 60
    _run(cmd, repo, env)
    trained = json.loads((repo / "metrics" / "train.json").read_text())
    assert trained["resumed_from_step"] == killed_at and trained["steps"] == 60, trained
    done = checkpoint.load(repo / "models" / "checkpoint.pt")
    assert done["step"] == 60 and done["run_key"] != locked["run_key"]
    assert not any(p.name.startswith("checkpoint.pt.") for p in kept.iterdir())  # released once done


def experiments_train_metrics(shown: list) -> dict[str, dict]:
    """metrics/train.json of each named experiment in `dvc exp show --json`'s output, by name."""
    return {exp["name"]: exp["revs"][0]["data"]["metrics"]["metrics/train.json"]["data"]
            for entry in shown for exp in (entry.get("experiments") or []) if exp.get("name")}


def test_a_temporary_experiment_shorter_than_the_locked_run_trains_its_own_steps(repo):
    # `dvc exp run --temp` works in a copy of the repository without git-ignored files: the pretrained
    # networks come in with -C. It checks out the locked checkpoint, made by a longer run of the same key
    # (train.max_steps is not part of it): that one is set aside and the shorter run trains from scratch.
    from lwgan.train import checkpoint

    env = _env(repo)
    _run([str(BIN / "dvc"), "repro"], repo, env)
    locked = checkpoint.load(repo / "models" / "checkpoint.pt")["step"]
    short = max(1, min(2, locked - 1))
    before = (repo / "models" / "checkpoint.pt").read_bytes()
    _run([str(BIN / "dvc"), "exp", "run", "--temp", "-C", weights.WEIGHTS_DIR.as_posix(), "-n", "tiny-short",
          "-S", f"train.max_steps={short}"], repo, env)
    shown = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], repo, env))
    trained = experiments_train_metrics(shown)["tiny-short"]
    assert trained["steps"] == short and not trained.get("resumed_from_step"), trained
    assert (repo / "models" / "checkpoint.pt").read_bytes() == before  # the workspace is left as it was
