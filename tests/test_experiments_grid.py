"""End to end: a two-variant grid of the paper's experiments at tiny scale in a copy of this repository as a
fresh git repo: `lwgan experiments queue` -> `dvc exp run --run-all` -> `lwgan report`, and the report's
numbers checked against the MLflow store and DVC's metrics of each experiment."""

from __future__ import annotations

import copy
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from test_pipeline import BIN, TINY, _env, _merge, _run, copy_repo, experiments_train_metrics

from lwgan import tracking
from lwgan.experiments import variants

pytestmark = pytest.mark.slow

# The whole tiny schedule (2 + 1 epochs of 4 steps) rather than TINY's 3 steps, so that E3's shorter decay
# (0.6 of the decay epochs) and its curves have something to show.
GRID = _merge(copy.deepcopy(TINY), {"train": {"max_steps": 0, "workers": 0, "checkpoint_every": 100,
                                             "sample_every": 100}})


def _lwgan(args: list[str], repo, env) -> str:
    return _run([sys.executable, "-m", "lwgan.cli", *args], repo, env)


def _close(a: float, b: float) -> bool:
    return bool(np.isclose(a, b, rtol=1e-9, atol=1e-12))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("grid") / "repo", GRID, "grid")
    env = _env(repo)
    # The data stages once, in the workspace: every experiment of the grid checks them out of the cache.
    _run([str(BIN / "dvc"), "repro", "correspond"], repo, env)
    _run(["git", "add", "dvc.lock"], repo, env)
    _run(["git", "commit", "-qm", "data stages"], repo, env)
    queued = _lwgan(["experiments", "queue", "baseline", "E3", "--scale", "default"], repo, env)
    _run([str(BIN / "dvc"), "exp", "run", "--run-all", "-j", "1"], repo, env)
    reported = _lwgan(["report", "--out", "reports"], repo, env)
    return repo, env, queued, reported


def test_queue_names_the_variants_and_refuses_a_taken_name(grid):
    repo, env, queued, _ = grid
    lines = [line for line in queued.splitlines() if line.startswith("dvc exp run")]
    copies = " ".join(variants.copy_paths())  # the pretrained networks, git-ignored, go with each run
    assert copies == "-C data/weights"
    assert lines == [f"dvc exp run --queue {copies} -n baseline -S tracking.variant=baseline",
                     f"dvc exp run --queue {copies} -n E3 -S tracking.variant=E3 -S train.spectral_norm=true "
                     "-S train.lr_g=0.0004 -S train.lr_d=0.0001 -S train.final_lr=0.00001 "
                     "-S train.epochs_decay=0.6 -S train.lambda_rec=15"]
    proc = subprocess.run([sys.executable, "-m", "lwgan.cli", "experiments", "queue", "E3"], cwd=repo,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and "E3 already exist" in proc.stderr and "--suffix" in proc.stderr


def test_every_run_of_the_grid_is_tagged_with_its_variant(grid):
    repo, *_ = grid
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    runs = tracking.search_runs(experiment="lwgan", tracking_uri=uri)
    tagged = [r for r in runs if tracking.TAG_VARIANT in r["tags"]]
    # the data stages ran once in the workspace, untagged; each variant trained and evaluated on its own
    assert sorted((r["tags"][tracking.TAG_VARIANT], r["tags"][tracking.TAG_STAGE]) for r in tagged) == [
        ("E3", "evaluate"), ("E3", "train"), ("baseline", "evaluate"), ("baseline", "train")]
    assert {r["tags"][tracking.TAG_STAGE] for r in runs if r not in tagged} == {
        "body", "synthesize", "prepare", "fit", "correspond"}
    for name in ("baseline", "E3"):
        mine = [r for r in tagged if r["tags"][tracking.TAG_VARIANT] == name]
        assert len({r["tags"][tracking.TAG_GROUP] for r in mine}) == 1
        assert {r["tags"][tracking.TAG_EXP] for r in mine} == {name}
    train = {r["tags"][tracking.TAG_VARIANT]: r for r in tagged if r["tags"][tracking.TAG_STAGE] == "train"}
    assert train["E3"]["params"]["train.spectral_norm"] == "True"
    assert train["E3"]["params"]["train.final_lr"] == "1e-05"  # DVC wrote 1e-05; the loader read a number
    assert train["E3"]["params"]["train.lambda_rec"] == "15.0"
    assert train["baseline"]["metrics"]["steps"] == 8 and train["E3"]["metrics"]["steps"] == 7
    assert train["baseline"]["tags"][tracking.TAG_DATA] == train["E3"]["tags"][tracking.TAG_DATA]


def test_report_numbers_are_the_tracked_ones(grid):
    repo, env, _, reported = grid
    out = repo / "reports"
    rows = {r["variant"]: r for r in csv.DictReader((out / "table1.csv").open())}
    assert list(rows) == ["baseline", "E3"], reported
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    runs = {r["run_id"]: r for r in tracking.search_runs(experiment="lwgan", tracking_uri=uri)}
    # DVC's record of each experiment's metrics: the same final losses as the table
    shown = json.loads(_run([str(BIN / "dvc"), "exp", "show", "--json"], repo, env))
    dvc_metrics = experiments_train_metrics(shown)
    base = runs[rows["baseline"]["train_run"]]
    for name, r in rows.items():
        train, evaluate = runs[r["train_run"]], runs[r["evaluate_run"]]
        assert evaluate["tags"][tracking.TAG_GROUP] == train["tags"][tracking.TAG_GROUP]
        for loss in ("L_face", "L_tsf", "L_rec"):
            tracked = train["metrics"][f"loss.{loss}"]
            assert _close(float(r[loss]), tracked)
            assert _close(float(r[loss]), dvc_metrics[name]["loss"][loss])
            expected = 100.0 * (tracked - base["metrics"][f"loss.{loss}"]) / base["metrics"][f"loss.{loss}"]
            assert _close(float(r[f"dL_{loss}"]), expected)
        for metric in ("ssim", "psnr", "masked_l1", "lpips"):  # LPIPS from `make weights`' AlexNet
            assert _close(float(r[metric]), evaluate["metrics"][f"self_imitation.lwgan.{metric}"])
        assert r["fid"] == ""  # no Inception weights by default: not computed, not guessed
        # stability from the tracked per-step curve, recomputed here with numpy's own line fit
        history = tracking.metric_history(train["run_id"], "loss/L_rec", uri)
        steps, values = (np.array(v, dtype=float) for v in zip(*history, strict=True))
        assert len(steps) == train["metrics"]["steps"]  # log_every 1: one row per step
        keep = steps > steps[-1] * (2.0 / 3.0)
        fit = np.polyval(np.polyfit(steps[keep], values[keep], 1), steps[keep])
        assert _close(float(r["osc_L_rec"]), float(np.sqrt(np.mean((values[keep] - fit) ** 2))))
        real = np.array([v for _, v in tracking.metric_history(train["run_id"], "d/real", uri)])
        assert _close(float(r["d_real_q4"]), float(real[steps > 0.75 * steps[-1]].mean()))
        assert r["d_state"] in ("saturated", "flat", "balanced")
    assert float(rows["baseline"]["dL_L_rec"]) == 0.0
    assert rows["E3"]["spectral_norm"] == "true" and float(rows["E3"]["lambda_rec"]) == 15.0
    assert float(rows["E3"]["paper_dL_L_rec"]) == 32.28
    page = (out / "report.md").read_text()
    assert "| baseline |" in page and "| E3 |" in page and "Not run yet:" in page
    for curve in ("L_face", "L_tsf", "L_rec", "G", "D", "d_real", "d_fake"):
        assert (out / f"curves_{curve}.png").stat().st_size > 10_000
        assert f"(curves_{curve}.png)" in page
