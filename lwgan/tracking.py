"""Experiment tracking: the only module that imports mlflow.

One pipeline invocation (``dvc repro``, ``dvc exp run``) is one top-level MLflow run, the *pipeline run*; each
stage it executes is one run nested under it (MLflow's ``mlflow.parentRunId``). A stage that DVC finds up to
date does not run and has no run. A stage run carries
    params     the flattened params sections the stage reads (``train.lr_g`` ...), sent in batches;
    tags       ``lwgan.stage``, ``lwgan.git_commit``, ``lwgan.dvc_exp`` (the DVC experiment name, or
               ``workspace`` for a plain ``dvc repro``), ``lwgan.run_group`` (shared by the pipeline run
               and every stage run of it: ``tags.`lwgan.run_group` = '...'`` selects them together) and the
               command line (``lwgan.command``); its source (``mlflow.source.name``) is the stage script,
               ``stages/fit.py``; runs of one of the paper's experiments also carry ``lwgan.variant``
               (`lwgan.experiments`);
    metrics    every value with its step;
    artifacts  pictures and small files a stage wants a person to see.
The pipeline run holds no params or metrics: it carries ``lwgan.pipeline_key`` (which only pipeline runs
have), ``lwgan.run_group``, ``lwgan.git_commit``, ``lwgan.dvc_exp``, ``lwgan.dvc_baseline_rev`` (``dvc exp
run``), ``lwgan.stages`` (the stages that ran, in order, updated as each ends) and the DVC command as its
source. `search_runs` gives stage runs unless asked for pipeline runs.

Which pipeline run a stage belongs to. The stages are separate processes, children of one DVC process: the
nearest ancestor process that is a ``dvc`` command (`lwgan.dvc_process`; elsewhere than Linux none is found)
names the pipeline run by its host, pid and start time, which together are unique (`pipeline_key`). For a
queued experiment that is its ``dvc exp exec-run`` process, so every experiment of ``dvc exp run --run-all``
is a pipeline run of its own.
``LWGAN_RUN_GROUP`` overrides it, so that stages run by hand can share a pipeline run; a stage run by hand
without it is a top-level run of its own. The first stage of an invocation creates the pipeline run, under a
lock file so that processes racing to create it make one (`_store_lock`); the others find it by its
``lwgan.pipeline_key`` tag.

The pipeline run's status. MLflow has no hook for the end of a DVC pipeline, so the pipeline run follows its
stages: a stage that starts marks it RUNNING, a stage that ends marks it FINISHED, or FAILED when the stage
failed. DVC runs the stages of one invocation one after another and stops at the first failure, so once the
invocation is over the pipeline run is FINISHED when every stage succeeded and FAILED when one failed
(RUNNING only when a stage was killed before it could report).

The experiment (``tracking.experiment``, default ``lwgan``) carries a description (``mlflow.note.content``,
`EXPERIMENT_NOTE`), written when it has none.

The store defaults to an SQLite file at the project root (``mlflow.db``; artifacts beside it in
``mlartifacts/``). ``MLFLOW_TRACKING_URI`` overrides it. Queued DVC experiments run in temporary copies under
``<root>/.dvc/tmp/exps/``; they are tracked into the root's store, not into the throw-away copy.

The run is created lazily on the first call that needs it, and nothing is sent when tracking is disabled
or on a non-zero DDP rank, so library code can call the tracker unconditionally.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from lwgan.dvc_process import DvcProcess, clean_key, dvc_ancestor, dvc_experiment_name

log = logging.getLogger(__name__)

TAG_STAGE = "lwgan.stage"
TAG_COMMIT = "lwgan.git_commit"
TAG_EXP = "lwgan.dvc_exp"
TAG_GROUP = "lwgan.run_group"
TAG_VARIANT = "lwgan.variant"  # the paper's experiment (params tracking.variant), when the run is one
TAG_DATA = "lwgan.data_key"  # train runs: hash of the correspondence shards' producing keys
TAG_COMMAND = "lwgan.command"  # stage runs: the command line that ran the stage
TAG_PIPELINE = "lwgan.pipeline_key"  # pipeline runs only: the key the stages find them by
TAG_STAGES = "lwgan.stages"  # pipeline runs: "body, synthesize, fit (failed)"
TAG_BASELINE = "lwgan.dvc_baseline_rev"  # pipeline runs of a DVC experiment: the commit it is based on
# MLflow's own tags (mlflow.utils.mlflow_tags), spelled out so that importing this module needs no mlflow.
MLFLOW_PARENT = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_NOTE = "mlflow.note.content"  # an experiment's or a run's description in the UI
_MAX_PARAM_LEN = 6000  # MLflow's limit on a param value
_MAX_TAG_LEN = 8000  # ... and on a tag value
GROUP_ENV = "LWGAN_RUN_GROUP"

EXPERIMENT_NOTE = """\
Runs of **lwgan**, the Liquid Warping GAN as a DVC pipeline.

* A **top-level run** is one pipeline invocation (`dvc repro`, `dvc exp run`): named after the command and
  the commit, tagged `lwgan.pipeline_key`, `lwgan.git_commit`, `lwgan.dvc_exp` (the DVC experiment,
  `workspace` for `dvc repro`) and `lwgan.stages` (the stages that ran). It holds no metrics; its status
  follows its stages: FINISHED when the last stage succeeded, FAILED when one failed.
* The **runs nested under it** are its stages (tag `lwgan.stage`), each with the params it reads, its
  metrics (with their steps) and artifacts; the source is the stage script. A stage that DVC found up to date
  did not run and has no run. A stage run by hand outside DVC is a top-level run of its own.

The runs table shows each pipeline run with its stages folded under it. Comparing variants: search
``tags.`lwgan.stage` = 'train'`` (or `'evaluate'`) and compare those runs; their params differ by the keys set
with `dvc exp run -S key=value`, `lwgan.dvc_exp` names the DVC experiment and `lwgan.variant` the paper's
variant. `lwgan report` builds the paper's table from these runs and
`dvc exp show` lists the same experiments from DVC's side.
"""


def project_root(start: str | Path | None = None) -> Path:
    """The DVC project root, seen through queued-experiment temp copies (``.dvc/tmp/exps/...``)."""
    here = Path(start or os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 3):
        if parts[i : i + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:i])
    for candidate in (here, *here.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return here


def default_tracking_uri(root: str | Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<project root>/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{project_root(root) / 'mlflow.db'}"


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's hash, suffixed ``-dirty`` when tracked files differ; ``unknown`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def pipeline_key(ancestor: DvcProcess | None) -> str | None:
    """What the stage processes of one pipeline invocation share: ``LWGAN_RUN_GROUP`` when set, else the key
    of their nearest ``dvc`` ancestor (`dvc_ancestor`); None for a stage run by hand."""
    explicit = os.environ.get(GROUP_ENV)
    if explicit:
        return clean_key(explicit)
    return ancestor.key if ancestor is not None else None


def run_group() -> str:
    """An id shared by every stage process of one pipeline run: `pipeline_key`, or for a process started
    outside DVC (and without ``LWGAN_RUN_GROUP``) a group of its own."""
    return pipeline_key(dvc_ancestor()) or f"solo-{uuid.uuid4().hex[:12]}"


def source_name(argv0: str | None = None) -> str:
    """The script a process runs (``sys.argv[0]``), relative to the working directory (DVC runs a stage in
    the project root, or in a queued experiment's copy of it) or else to the project root."""
    script = Path(argv0 if argv0 is not None else sys.argv[0])
    for base in (Path.cwd(), project_root()):
        try:
            return script.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return str(script)


def _short(commit: str) -> str:
    return commit if commit == "unknown" else commit[:8] + ("-dirty" if commit.endswith("-dirty") else "")


def _source_tags(source: str, commit: str) -> dict[str, str]:
    tags = {MLFLOW_SOURCE_NAME: source, MLFLOW_SOURCE_TYPE: "LOCAL"}
    if commit != "unknown":
        tags[MLFLOW_GIT_COMMIT] = commit.removesuffix("-dirty")
    return tags


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock per store, held while a stage opens the store (the first process creates a new
    SQLite store's tables, and two at once fail), finds or creates its pipeline run, and updates it. The
    processes that race share one DVC ancestor or run queued experiments of one project, so they share a
    host: the lock file lives in its temp folder, not beside the store, which may be remote (and which, at the
    project root, git would see). Opened read-only, so a lock file another user created still locks. Best
    effort: without it, a rare race leaves two pipeline runs of one invocation, each stage under one."""
    digest = hashlib.sha1(tracking_uri.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"lwgan-mlflow-{digest}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as err:
        log.debug("no lock file %s: %s", path, err)
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


class StageRun:
    """One MLflow run for one stage execution; use as a context manager.

    >>> with StageRun("train", params=cfg_dict, experiment="lwgan") as run:
    ...     run.log_metrics({"loss/g": 1.0}, step=10)

    `enabled=False` (or a non-zero rank) turns every method into a no-op, so callers need no branches.
    """

    def __init__(
        self,
        stage: str,
        params: Mapping[str, Any] | None = None,
        experiment: str = "lwgan",
        enabled: bool = True,
        tracking_uri: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self.stage = stage
        self.experiment = experiment
        self.enabled = enabled and _is_rank_zero()
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self._params = dict(params or {})
        self._tags = dict(tags or {})
        self._client = None
        self._run_id: str | None = None
        self._parent_id: str | None = None
        self._pending_metrics: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        return self._run_id

    @property
    def parent_run_id(self) -> str | None:
        """The pipeline run this stage run is nested under; None for a stage run by hand."""
        return self._parent_id

    def _ensure(self):
        if self._client is not None or not self.enabled:
            return self._client
        from mlflow.tracking import MlflowClient

        commit = git_commit()
        ancestor = dvc_ancestor()
        key = pipeline_key(ancestor)
        with _store_lock(self.tracking_uri):  # the first access to a new SQLite store creates its tables
            client = MlflowClient(tracking_uri=self.tracking_uri)
            exp_id = _experiment_id(client, self.experiment, self.tracking_uri)
            if key is not None:
                variant = {k: v for k, v in self._tags.items() if k == TAG_VARIANT}
                self._parent_id = _open_pipeline_run(client, exp_id, key, commit, ancestor, variant)
        tags = {
            TAG_STAGE: self.stage,
            TAG_COMMIT: commit,
            TAG_EXP: dvc_experiment_name(),
            TAG_GROUP: key or f"solo-{uuid.uuid4().hex[:12]}",
            TAG_COMMAND: shlex.join(sys.argv)[:_MAX_TAG_LEN],
            MLFLOW_RUN_NAME: f"{self.stage}@{dvc_experiment_name()}",
            **_source_tags(source_name(), commit),
            **({MLFLOW_PARENT: self._parent_id} if self._parent_id else {}),
            **self._tags,
        }
        run = client.create_run(exp_id, tags=tags, run_name=tags[MLFLOW_RUN_NAME])
        self._client = client
        self._run_id = run.info.run_id
        self._send_params(dict(sorted(self._params.items())))
        return client

    def __enter__(self) -> StageRun:
        self._ensure()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def close(self, failed: bool = False) -> None:
        if self._client is None:
            return
        self.flush()
        self._client.set_terminated(self._run_id, status="FAILED" if failed else "FINISHED")
        if self._parent_id is not None:
            _close_pipeline_run(self._client, self._parent_id, self.stage, failed, self.tracking_uri)
        self._client = None

    # -- logging -----------------------------------------------------------------------------------------

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        client = self._ensure()
        if client is None:
            return
        from mlflow.entities import RunTag

        client.log_batch(self._run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._ensure() is not None:
            self._send_params(params)

    def _send_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:_MAX_PARAM_LEN]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self._client.log_batch(self._run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, flush: bool = True) -> None:
        """Log scalar metrics at `step`. Non-finite values are sent as they are (MLflow stores NaN)."""
        client = self._ensure()
        if client is None:
            return

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending_metrics.extend(
            Metric(_metric_key(k), float(v), now, int(step)) for k, v in metrics.items()
        )
        if flush or len(self._pending_metrics) >= 500:
            self.flush()

    def flush(self) -> None:
        if self._client is None or not self._pending_metrics:
            return
        for i in range(0, len(self._pending_metrics), 500):
            self._client.log_batch(self._run_id, metrics=self._pending_metrics[i : i + 500])
        self._pending_metrics = []

    def log_artifacts(self, paths: Iterable[str | Path], artifact_path: str | None = None) -> None:
        client = self._ensure()
        if client is None:
            return
        for path in paths:
            path = Path(path)
            if path.is_dir():
                client.log_artifacts(self._run_id, str(path), artifact_path)
            elif path.is_file():
                client.log_artifact(self._run_id, str(path), artifact_path)
            else:
                log.warning("artifact %s does not exist; not logged", path)


def _experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    """The id of experiment `name`, created when missing (artifacts beside an SQLite store), with
    `EXPERIMENT_NOTE` as its description when it has none (one written in the UI stays)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifact_location = None
        if tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
        try:
            return client.create_experiment(name, artifact_location=artifact_location,
                                            tags={MLFLOW_NOTE: EXPERIMENT_NOTE})
        except Exception:  # created concurrently by another stage process
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if MLFLOW_NOTE not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, MLFLOW_NOTE, EXPERIMENT_NOTE)
    return exp.experiment_id


def _open_pipeline_run(client: Any, exp_id: str, key: str, commit: str, ancestor: DvcProcess | None,
                       tags: Mapping[str, str]) -> str:
    """The id of the pipeline run of `key` (module docstring), marked RUNNING; created, with `tags`, by the
    first stage that asks. Call it holding `_store_lock`."""
    found = client.search_runs([exp_id], filter_string=f"tags.`{TAG_PIPELINE}` = '{key}'", max_results=1,
                               order_by=["attributes.start_time ASC"])
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    exp_name = os.environ.get("DVC_EXP_NAME")
    baseline = os.environ.get("DVC_EXP_BASELINE_REV")
    at = f"({_short(baseline or commit)})"
    if exp_name:
        name = f"dvc exp run {exp_name} {at}"
    elif ancestor is not None:
        name = f"{' '.join(ancestor.command.split()[:2])} {at}"  # dvc repro (1a2b3c4d)
    else:
        name = f"pipeline {key} {at}"
    source = ancestor.command if ancestor is not None else f"{GROUP_ENV}={key}"
    run_tags = {
        MLFLOW_RUN_NAME: name,
        TAG_PIPELINE: key,
        TAG_GROUP: key,
        TAG_COMMIT: commit,
        TAG_EXP: dvc_experiment_name(),
        **({TAG_BASELINE: baseline} if baseline else {}),
        **_source_tags(source[:_MAX_TAG_LEN], commit),
        MLFLOW_NOTE: f"One pipeline invocation (`{source[:200]}`); the runs nested under it are the "
                     "stages it ran. A stage that DVC found up to date did not run and has no run here.",
        **tags,
    }
    return client.create_run(exp_id, tags=run_tags, run_name=name).info.run_id


def _close_pipeline_run(client: Any, run_id: str, stage: str, failed: bool, tracking_uri: str) -> None:
    """A stage of pipeline run `run_id` ended: add it to ``lwgan.stages`` and mark the pipeline run FINISHED,
    or FAILED when the stage failed (the next stage of the invocation marks it RUNNING again)."""
    with _store_lock(tracking_uri):
        ran = client.get_run(run_id).data.tags.get(TAG_STAGES)
        entry = f"{stage} (failed)" if failed else stage
        client.set_tag(run_id, TAG_STAGES, f"{ran}, {entry}"[-_MAX_TAG_LEN:] if ran else entry)
        client.set_terminated(run_id, status="FAILED" if failed else "FINISHED")


def _metric_key(key: str) -> str:
    # MLflow allows alphanumerics, _ - . space : / ; keep keys readable and valid.
    return "".join(c if c.isalnum() or c in "_-. :/" else "_" for c in key)


def search_runs(
    filter_string: str = "",
    experiment: str = "lwgan",
    tracking_uri: str | None = None,
    kind: Literal["stage", "pipeline", "all"] = "stage",
) -> list[dict[str, Any]]:
    """Runs of `experiment` as plain dicts: ``{"run_id", "status", "start_time", "end_time", "tags",
    "params", "metrics"}`` (times in ms since the epoch; end_time None while running), newest first.
    `kind`: stage runs (tagged ``lwgan.stage``), pipeline runs (``lwgan.pipeline_key``) or every run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=50000)
    marker = {"stage": TAG_STAGE, "pipeline": TAG_PIPELINE, "all": None}[kind]
    return [
        {
            "run_id": r.info.run_id,
            "status": r.info.status,
            "start_time": r.info.start_time,
            "end_time": r.info.end_time,
            "tags": dict(r.data.tags),
            "params": dict(r.data.params),
            "metrics": dict(r.data.metrics),
        }
        for r in runs
        if marker is None or marker in r.data.tags
    ]


def metric_history(run_id: str, key: str, tracking_uri: str | None = None) -> list[tuple[int, float]]:
    """(step, value) pairs of one metric of one run, in step order."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def metric_histories(run_id: str, keys: Iterable[str],
                     tracking_uri: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """`metric_history` of several metrics of one run through one client; a key the run lacks maps to []."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    return {key: sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) for key in keys}


def artifact_dir(run_id: str, tracking_uri: str | None = None) -> Path:
    """The local folder of a run's artifacts (stores whose artifacts live on this file system)."""
    from urllib.parse import unquote, urlparse

    from mlflow.tracking import MlflowClient

    uri = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri()).get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme not in ("", "file"):
        raise ValueError(f"artifacts of run {run_id} are at {uri}, not on this file system")
    return Path(unquote(parsed.path))
