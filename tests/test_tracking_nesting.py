"""Stage runs nested under one pipeline run, against a real MLflow SQLite store and real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lwgan import dvc_process, tracking

ROOT = Path(__file__).resolve().parents[1]

STAGE_SCRIPT = """\
import sys
from pathlib import Path

from lwgan import dvc_process, tracking

stage = Path(__file__).stem
with tracking.StageRun(stage, params={"x": 1}, experiment="unit") as run:
    run.log_metrics({"value": 1.0})
    if stage == "broken":
        raise SystemExit("broken on purpose")
"""

# A stand-in for DVC: a script named `dvc` (the kernel shows it as `python .../dvc repro`, as it shows the
# real console script) that runs each argument as a stage command through a shell, as `dvc repro` does;
# arguments joined by `&` start together.
FAKE_DVC = """\
#!{python}
import subprocess
import sys

failed = 0
for step in sys.argv[2:]:
    procs = [subprocess.Popen(["/bin/sh", "-c", cmd]) for cmd in step.split("&")]
    failed += sum(p.wait() != 0 for p in procs)
sys.exit(failed)
"""


def _clean_env(monkeypatch) -> None:
    for name in ("LWGAN_RUN_GROUP", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_ROOT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    _clean_env(monkeypatch)
    return uri


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A DVC-shaped folder (``.dvc/``, ``stages/<name>.py``) and a fake ``dvc`` in ``bin/``."""
    proj = tmp_path / "proj"
    (proj / ".dvc").mkdir(parents=True)
    (proj / "stages").mkdir()
    for name in ("body", "fit", "train", "broken"):
        (proj / "stages" / f"{name}.py").write_text(STAGE_SCRIPT)
    (proj / "bin").mkdir()
    dvc = proj / "bin" / "dvc"
    dvc.write_text(FAKE_DVC.format(python=sys.executable))
    dvc.chmod(0o755)
    monkeypatch.chdir(proj)
    return proj


def _fake_repro(project: Path, *steps: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "LWGAN_"))}
    env["PYTHONPATH"] = str(ROOT)
    cmds = ["&".join(f"{sys.executable} stages/{s}.py --metrics metrics/{s}.json" for s in step.split("&"))
            for step in steps]
    return subprocess.run([str(project / "bin" / "dvc"), "repro", *cmds], cwd=project, env=env,
                          timeout=300).returncode


@pytest.mark.parametrize("argv, expected", [
    (["/venv/bin/dvc", "repro"], True),
    (["dvc", "exp", "exec-run", "--infofile", "x.run"], True),
    (["/usr/bin/python3.11", "/venv/bin/dvc", "exp", "run", "-n", "a"], True),
    (["python", "-m", "dvc", "repro"], True),
    (["python3", "-u", "-m", "dvc", "repro"], True),
    (["python", "stages/fit.py", "--metrics", "metrics/dvc"], False),
    (["/bin/sh", "-c", "dvc repro"], False),
    (["python", "-m", "pytest", "dvc"], False),
    (["dvcx"], False),
    ([], False),
])
def test_is_dvc_command(argv, expected):
    assert dvc_process.is_dvc_command(argv) is expected


def test_dvc_ancestor_is_found_in_the_real_process_tree(tmp_path):
    """dvc (argv[0] named dvc) -> sh -c -> python: the grandchild finds the dvc process and its start."""
    probe = ("import json; from lwgan import dvc_process; a = dvc_process.dvc_ancestor(); "
             "print(json.dumps([a.pid, a.start_ms, a.key, a.command]))")
    driver = textwrap.dedent(f"""
        import os, subprocess, sys
        for _ in range(2):
            subprocess.run(["/bin/sh", "-c", {f"{sys.executable} -c {probe!r}"!r}], check=True)
        print(os.getpid())
    """)
    before = time.time() * 1000
    out = subprocess.run(["dvc", "-c", driver], executable=sys.executable, capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.splitlines()
    after = time.time() * 1000
    (pid, start_ms, key, command), second, driver_pid = json.loads(out[0]), json.loads(out[1]), int(out[2])
    assert pid == driver_pid and second == [pid, start_ms, key, command]
    assert before - 1500 <= start_ms <= after  # /proc's boot time has whole seconds
    assert key.startswith("dvc-") and key.endswith(f"-{pid}-{start_ms}")
    assert command.startswith("dvc -c ")
    assert dvc_process.dvc_ancestor() is None  # pytest runs outside DVC


@pytest.mark.slow  # four stage processes, each importing mlflow
def test_stages_of_one_invocation_share_one_pipeline_run(store, project):
    """Two stages racing to create the pipeline run (started together), then a third: one pipeline run, with
    every stage run nested under it; a second invocation is a second pipeline run."""
    assert _fake_repro(project, "body&fit", "train") == 0
    (pipeline,) = tracking.search_runs(experiment="unit", kind="pipeline")
    stages = tracking.search_runs(experiment="unit")
    assert sorted(r["tags"][tracking.TAG_STAGE] for r in stages) == ["body", "fit", "train"]
    assert {r["tags"][tracking.MLFLOW_PARENT] for r in stages} == {pipeline["run_id"]}
    assert {r["tags"][tracking.TAG_GROUP] for r in stages} == {pipeline["tags"][tracking.TAG_GROUP]}
    for run in stages:
        stage = run["tags"][tracking.TAG_STAGE]
        assert run["tags"][tracking.MLFLOW_SOURCE_NAME] == f"stages/{stage}.py"
        assert run["tags"][tracking.MLFLOW_SOURCE_TYPE] == "LOCAL"
        assert run["tags"][tracking.TAG_COMMAND].endswith(f"stages/{stage}.py --metrics metrics/{stage}.json")
        assert run["status"] == "FINISHED" and run["metrics"] == {"value": 1.0}
    tags = pipeline["tags"]
    assert pipeline["status"] == "FINISHED" and not pipeline["metrics"] and not pipeline["params"]
    assert tags[tracking.TAG_PIPELINE] == tags[tracking.TAG_GROUP]
    assert tags[tracking.TAG_GROUP].startswith("dvc-")
    assert tags[tracking.MLFLOW_RUN_NAME] == "dvc repro (unknown)"  # the folder is no git repository
    assert tags[tracking.MLFLOW_SOURCE_NAME].startswith("dvc repro ")
    assert tags[tracking.TAG_EXP] == "workspace"
    ran = tags[tracking.TAG_STAGES].split(", ")
    assert sorted(ran[:2]) == ["body", "fit"] and ran[2] == "train"
    assert stages[0]["start_time"] >= pipeline["start_time"]

    assert _fake_repro(project, "broken") != 0
    pipelines = tracking.search_runs(experiment="unit", kind="pipeline")
    assert len(pipelines) == 2 and pipelines[1]["run_id"] == pipeline["run_id"]  # newest first
    second = pipelines[0]
    assert second["status"] == "FAILED" and second["tags"][tracking.TAG_STAGES] == "broken (failed)"
    (child,) = tracking.search_runs(f"tags.`mlflow.parentRunId` = '{second['run_id']}'", experiment="unit")
    assert child["tags"][tracking.TAG_STAGE] == "broken" and child["status"] == "FAILED"
    assert len(tracking.search_runs(experiment="unit", kind="all")) == 6


def test_stage_run_by_hand_is_top_level(store, project, monkeypatch):
    monkeypatch.setattr(sys, "argv", [str(project / "stages" / "fit.py"), "--params", "params.yaml"])
    with tracking.StageRun("fit", experiment="unit") as run:
        run.log_metrics({"value": 2.0})
    assert run.parent_run_id is None
    (found,) = tracking.search_runs(experiment="unit", kind="all")
    assert found["run_id"] == run.run_id and tracking.MLFLOW_PARENT not in found["tags"]
    assert found["tags"][tracking.TAG_GROUP].startswith("solo-")
    assert found["tags"][tracking.MLFLOW_SOURCE_NAME] == "stages/fit.py"
    assert found["tags"][tracking.TAG_COMMAND].endswith("stages/fit.py --params params.yaml")


def test_run_group_names_a_pipeline_run_by_hand(store, project, monkeypatch):
    monkeypatch.setenv("LWGAN_RUN_GROUP", "by-hand 1")  # the space is not kept: the key goes into filters
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    for stage in ("body", "fit"):
        with tracking.StageRun(stage, experiment="unit", tags={tracking.TAG_VARIANT: "gp10"}) as run:
            run.log_metrics({"value": 3.0})
    (pipeline,) = tracking.search_runs(experiment="unit", kind="pipeline")
    assert pipeline["tags"][tracking.TAG_PIPELINE] == "by-hand_1"
    assert pipeline["tags"][tracking.MLFLOW_RUN_NAME] == "dvc exp run exp-a (unknown)"
    assert pipeline["tags"][tracking.TAG_VARIANT] == "gp10" and tracking.TAG_STAGE not in pipeline["tags"]
    assert pipeline["tags"][tracking.TAG_STAGES] == "body, fit" and pipeline["status"] == "FINISHED"
    stages = tracking.search_runs(experiment="unit")
    assert [r["tags"][tracking.TAG_STAGE] for r in stages] == ["fit", "body"]
    assert {r["tags"][tracking.MLFLOW_PARENT] for r in stages} == {pipeline["run_id"]}
    selected = tracking.search_runs("tags.`lwgan.run_group` = 'by-hand_1'", experiment="unit", kind="all")
    assert len(selected) == 3


def test_pipeline_run_status_follows_its_stages(store, project, monkeypatch):
    monkeypatch.setenv("LWGAN_RUN_GROUP", "reopen")

    def status() -> str:
        (pipeline,) = tracking.search_runs(experiment="unit", kind="pipeline")
        return pipeline["status"]

    with tracking.StageRun("body", experiment="unit") as run:
        run.log_metrics({"value": 1.0})
        assert status() == "RUNNING"
    assert status() == "FINISHED"
    with tracking.StageRun("fit", experiment="unit") as run:
        run.log_metrics({"value": 1.0})
        assert status() == "RUNNING"
    assert status() == "FINISHED"
    with pytest.raises(RuntimeError), tracking.StageRun("train", experiment="unit") as run:
        run.log_metrics({"value": 1.0})
        raise RuntimeError("diverged")
    assert status() == "FAILED"
    (pipeline,) = tracking.search_runs(experiment="unit", kind="pipeline")
    assert pipeline["tags"][tracking.TAG_STAGES] == "body, fit, train (failed)"


def test_experiment_carries_its_description(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    mine = client.create_experiment("mine", tags={tracking.MLFLOW_NOTE: "written in the UI"})
    client.create_experiment("bare")
    for name in ("unit", "mine", "bare"):
        with tracking.StageRun("body", experiment=name) as run:
            run.log_metrics({"value": 1.0})
    note = client.get_experiment_by_name("unit").tags[tracking.MLFLOW_NOTE]
    assert note == tracking.EXPERIMENT_NOTE and "nested" in note and "lwgan.stage" in note
    assert client.get_experiment_by_name("bare").tags[tracking.MLFLOW_NOTE] == tracking.EXPERIMENT_NOTE
    assert client.get_experiment(mine).tags[tracking.MLFLOW_NOTE] == "written in the UI"
