"""`lwgan ui` stops its MLflow server, workers included, on SIGTERM, SIGINT and SIGHUP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_ui_stops_its_server_and_workers_on_a_stop_signal(tmp_path, sig):
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    proc = subprocess.Popen([sys.executable, "-m", "lwgan.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not serving(port):
            assert proc.poll() is None, "lwgan ui exited before serving"
            time.sleep(0.2)
        assert serving(port), "the MLflow UI did not start"
        (server,) = children(proc.pid)
        assert os.getpgid(server) == server  # the server leads its own group, workers in it
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        deadline = time.time() + 10
        while time.time() < deadline and (group_alive(server) or serving(port)):
            time.sleep(0.1)
        assert not group_alive(server), "a server process outlived lwgan ui"
        assert not serving(port), f"port {port} is still served"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_port_that_is_taken_or_is_no_port_is_one_error_line(tmp_path):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")

    def ui(port: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lwgan.cli", "ui", "--port", str(port)], env=env,
                              capture_output=True, text=True, timeout=60)

    with socket.create_server(("127.0.0.1", 0)) as taken:  # another program listening there
        port = taken.getsockname()[1]
        done = ui(port)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: cannot serve on 127.0.0.1:{port} ")
    done = ui(99999)
    assert done.returncode == 2 and done.stderr.strip() == "error: --port 99999 is not a port (1-65535)"
