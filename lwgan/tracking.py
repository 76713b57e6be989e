"""Experiment tracking: the only module that imports mlflow.

Each stage execution is one MLflow run. A run carries
    params     the flattened params sections the stage reads (``train.lr_g`` ...), sent in batches;
    tags       ``lwgan.stage``, ``lwgan.git_commit``, ``lwgan.dvc_exp`` (the DVC experiment name, or
               ``workspace`` for a plain ``dvc repro``) and ``lwgan.run_group``, shared by every stage of one
               ``dvc repro`` / ``dvc exp run`` so that a whole pipeline run can be selected together:
               ``mlflow.search_runs(filter_string="tags.`lwgan.run_group` = '...'")``; runs of one of the
               paper's experiments also carry ``lwgan.variant`` (`lwgan.experiments`);
    metrics    every value with its step;
    artifacts  pictures and small files a stage wants a person to see.

The store defaults to an SQLite file at the project root (``mlflow.db``; artifacts beside it in
``mlartifacts/``). ``MLFLOW_TRACKING_URI`` overrides it. Queued DVC experiments run in temporary copies under
``<root>/.dvc/tmp/exps/``; they are tracked into the root's store, not into the throw-away copy.

The run is created lazily on the first call that needs it, and nothing is sent when tracking is disabled
or on a non-zero DDP rank, so library code can call the tracker unconditionally.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TAG_STAGE = "lwgan.stage"
TAG_COMMIT = "lwgan.git_commit"
TAG_EXP = "lwgan.dvc_exp"
TAG_GROUP = "lwgan.run_group"
TAG_VARIANT = "lwgan.variant"  # the paper's experiment (params tracking.variant), when the run is one
TAG_DATA = "lwgan.data_key"  # train runs: hash of the correspondence shards' producing keys
_MAX_PARAM_LEN = 6000  # MLflow's limit on a param value


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


def dvc_experiment_name() -> str:
    """The DVC experiment this process runs in (DVC sets ``DVC_EXP_NAME``), or ``workspace``."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


def run_group() -> str:
    """An id shared by every stage process of one pipeline run.

    ``LWGAN_RUN_GROUP`` wins when set. Otherwise the nearest ancestor process that is DVC (every stage of
    one ``dvc repro``/``dvc exp run`` is its child) names the group by its pid and start time. A process
    started outside DVC gets a group of its own.
    """
    explicit = os.environ.get("LWGAN_RUN_GROUP")
    if explicit:
        return explicit
    try:
        import psutil

        proc = psutil.Process().parent()
        while proc is not None:
            cmd = " ".join(proc.cmdline()[:3])
            name = proc.name()
            if name == "dvc" or "/dvc " in f"{cmd} " or " -m dvc" in cmd or cmd.startswith("dvc "):
                return f"dvc-{proc.pid}-{int(proc.create_time() * 1000)}"
            proc = proc.parent()
    except Exception as err:  # psutil raises its own AccessDenied/NoSuchProcess; grouping is best effort
        log.debug("could not inspect parent processes: %s", err)
    return f"solo-{uuid.uuid4().hex[:12]}"


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
        self._pending_metrics: list[Any] = []

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def run_id(self) -> str | None:
        return self._run_id

    def _ensure(self):
        if self._client is not None or not self.enabled:
            return self._client
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            artifact_location = None
            if self.tracking_uri.startswith("sqlite:///"):
                db = Path(self.tracking_uri.removeprefix("sqlite:///"))
                artifact_location = (db.parent / "mlartifacts").resolve().as_uri()
            try:
                exp_id = client.create_experiment(self.experiment, artifact_location=artifact_location)
            except Exception:  # created concurrently by another stage process
                exp = client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise
                exp_id = exp.experiment_id
        else:
            exp_id = exp.experiment_id
        tags = {
            TAG_STAGE: self.stage,
            TAG_COMMIT: git_commit(),
            TAG_EXP: dvc_experiment_name(),
            TAG_GROUP: run_group(),
            "mlflow.runName": f"{self.stage}@{dvc_experiment_name()}",
            "mlflow.source.name": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv)),
            **self._tags,
        }
        run = client.create_run(exp_id, tags=tags, run_name=tags["mlflow.runName"])
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
        import time

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


def _metric_key(key: str) -> str:
    # MLflow allows alphanumerics, _ - . space : / ; keep keys readable and valid.
    return "".join(c if c.isalnum() or c in "_-. :/" else "_" for c in key)


def search_runs(
    filter_string: str = "",
    experiment: str = "lwgan",
    tracking_uri: str | None = None,
) -> list[dict[str, Any]]:
    """Runs of `experiment` as plain dicts: ``{"run_id", "status", "start_time", "end_time", "tags",
    "params", "metrics"}`` (times in ms since the epoch; end_time None while running), newest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], filter_string=filter_string, max_results=50000)
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


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class _Stop(Exception):
    """A stop signal arrived while the UI was serving."""


def _stop_group(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    """Stop the process group `proc` leads (the server and every worker it started): SIGTERM, then
    SIGKILL for whatever is left after `grace_s` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:  # workers can outlive their leader
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def serve_ui(host: str = "127.0.0.1", port: int = 5000, tracking_uri: str | None = None) -> int:
    """Run ``mlflow ui`` against the project's store until it exits or this process gets SIGTERM, SIGINT
    (Ctrl-C) or SIGHUP; the server runs in its own process group, which is stopped with it, workers
    included. Returns the server's exit code (0 when stopped by a signal)."""
    uri = tracking_uri or default_tracking_uri()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
           "--port", str(port)]
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        cmd += ["--default-artifact-root", (db.parent / "mlartifacts").resolve().as_uri()]
    print(f"MLflow UI on http://{host}:{port} (store: {uri}); Ctrl-C stops it", flush=True)

    def stop(signum: int, _frame: Any) -> None:
        raise _Stop(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    proc = None
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        return proc.wait()
    except _Stop:
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc is not None:
            _stop_group(proc)
