"""``lwgan ui``: the MLflow UI on the project's tracking store, stopped together with every process it
started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from lwgan.errors import UserError
from lwgan.tracking import default_tracking_uri

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class UiError(UserError, RuntimeError):
    """The UI cannot serve where it was asked to."""


def check_free(host: str, port: int) -> None:
    """UiError naming `host`:`port` when a server cannot listen there (taken by another program, not a
    valid port, an address this machine does not have): checked before the server starts, whose own
    failure would be a traceback in its process."""
    if not 1 <= port <= 65535:
        raise UiError(f"--port {port} is not a port (1-65535)")
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise UiError(f"cannot serve on {host}:{port} ({err.strerror or err}): another program may be "
                      f"listening there; choose another --port") from err


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
    check_free(host, port)
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
