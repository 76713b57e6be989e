"""Tracking against a real MLflow SQLite store."""

from __future__ import annotations

import os

import pytest

from lwgan import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LWGAN_RUN_GROUP", "group-42")
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    return uri


def test_stage_run_logs_params_tags_and_stepped_metrics(store, tmp_path):
    picture = tmp_path / "grid.png"
    picture.write_bytes(b"\x89PNG fake bytes are fine for an artifact")
    params = {f"train.p{i}": i for i in range(250)}  # more than one batch
    with tracking.StageRun("train", params=params, experiment="unit") as run:
        for step in range(3):
            run.log_metrics({"loss/g": 1.0 / (step + 1), "lr g": 2e-4}, step=step)
        run.log_artifacts([picture], "samples")
        run_id = run.run_id
    runs = tracking.search_runs(experiment="unit")
    assert [r["run_id"] for r in runs] == [run_id]
    (found,) = runs
    assert found["status"] == "FINISHED"
    assert found["tags"][tracking.TAG_STAGE] == "train"
    assert found["tags"][tracking.TAG_EXP] == "exp-a"
    assert found["tags"][tracking.TAG_GROUP] == "group-42"
    assert found["tags"][tracking.TAG_COMMIT]
    assert len(found["params"]) == 250 and found["params"]["train.p7"] == "7"
    assert tracking.metric_history(run_id, "loss/g") == [(0, 1.0), (1, 0.5), (2, 1.0 / 3)]
    assert found["metrics"]["lr g"] == pytest.approx(2e-4)
    selected = tracking.search_runs("tags.`lwgan.run_group` = 'group-42'", experiment="unit")
    assert len(selected) == 1


def test_failed_block_marks_run_failed(store):
    with pytest.raises(RuntimeError):
        with tracking.StageRun("fit", experiment="unit") as run:
            run.log_metrics({"x": 1.0})
            raise RuntimeError("boom")
    (found,) = tracking.search_runs(experiment="unit")
    assert found["status"] == "FAILED"


def test_disabled_and_nonzero_rank_send_nothing(store, monkeypatch):
    with tracking.StageRun("a", experiment="unit", enabled=False) as run:
        run.log_metrics({"x": 1.0})
    monkeypatch.setenv("RANK", "1")
    with tracking.StageRun("b", experiment="unit") as run:
        run.log_metrics({"x": 1.0})
        assert run.run_id is None
    assert tracking.search_runs(experiment="unit") == []


def test_project_root_sees_through_queued_experiment_copies(tmp_path):
    (tmp_path / ".dvc").mkdir()
    queued = tmp_path / ".dvc" / "tmp" / "exps" / "tmpabc123" / "stages"
    queued.mkdir(parents=True)
    assert tracking.project_root(queued) == tmp_path
    sub = tmp_path / "data" / "x"
    sub.mkdir(parents=True)
    assert tracking.project_root(sub) == tmp_path


def test_default_uri_is_sqlite_at_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    (tmp_path / ".dvc").mkdir()
    assert tracking.default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert tracking.default_tracking_uri(tmp_path) == "sqlite:////elsewhere.db"


def test_run_group_outside_dvc_is_unique(monkeypatch):
    monkeypatch.delenv("LWGAN_RUN_GROUP", raising=False)
    if "dvc" in os.environ.get("_", ""):
        pytest.skip("running under dvc")
    a, b = tracking.run_group(), tracking.run_group()
    assert a.startswith("solo-") and a != b
