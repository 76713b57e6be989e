"""``lwgan ui``: the MLflow UI on the project's tracking store, stopped together with every process it
started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lwgan.tracking import default_tracking_uri

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
