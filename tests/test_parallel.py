"""Real Ray actors against the in-process run of the same worker."""

from __future__ import annotations

import os
import sys
import time

import pytest
import torch

from lwgan.parallel import PoolOptions, one_thread, run_jobs

pytestmark = pytest.mark.slow


class AreaWorker:
    """Builds the body model once, then renders one pose per job and returns the silhouette area."""

    def __init__(self, size: int) -> None:
        one_thread()
        from lwgan.body.model import BodyModel

        self.model = BodyModel.default()
        self.size = size

    def run(self, job: int) -> dict:
        from lwgan.body.cameras import fit_weak_perspective, weak_perspective_project
        from lwgan.body.preview import preview_batch
        from lwgan.render.raster import RasterSettings, rasterize

        if job < 0:
            raise ValueError(f"job {job} is negative")
        _, poses, betas = preview_batch(self.model, job + 1)
        with torch.no_grad():
            verts = self.model(betas[-1:], poses[-1:]).vertices
        proj = weak_perspective_project(verts, fit_weak_perspective(verts, fill=0.6))
        area = int(rasterize(proj, self.model.faces, RasterSettings(self.size, self.size)).silhouette.sum())
        return {"job": job, "area": area, "pid": os.getpid(), "threads": torch.get_num_threads()}


@pytest.fixture(scope="module", autouse=True)
def pickle_this_module_by_value():
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_ray_workers_equal_the_in_process_run():
    jobs = [0, 1, 2, -1, 3, 4]
    seen = []
    local, local_fail = run_jobs(AreaWorker, (64,), jobs, PoolOptions(use_ray=False), key=str)
    remote, remote_fail = run_jobs(AreaWorker, (64,), jobs, PoolOptions(num_workers=2), key=str,
                                   on_result=lambda job, result: seen.append(job))
    by_job = {r["job"]: r["area"] for r in local}
    assert {r["job"]: r["area"] for r in remote} == by_job
    assert len(by_job) == 5 and len(set(by_job.values())) > 1
    assert [f.key for f in local_fail] == [f.key for f in remote_fail] == ["-1"]
    assert "ValueError: job -1 is negative" in remote_fail[0].reason
    assert sorted(seen) == [0, 1, 2, 3, 4]
    assert len({r["pid"] for r in remote}) == 2, "two actors, each built once"
    assert {r["pid"] for r in remote}.isdisjoint({os.getpid()})
    assert {r["threads"] for r in remote} == {1}


DRIVER = '''
import sys, time
from pathlib import Path
from lwgan.io import atomic_path
from lwgan.parallel import PoolOptions, run_jobs

class SlowWriter:
    def __init__(self, out):
        self.out = Path(out)

    def run(self, job):
        time.sleep(1.0)
        with atomic_path(self.out / f"{job:03d}.txt") as tmp:
            tmp.write_text(str(job))
        return job

run_jobs(SlowWriter, (sys.argv[1],), list(range(40)), PoolOptions(num_workers=2))
'''


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries `tag` (the driver and every Ray process it made)."""
    from lwgan.parallel import carrying

    return carrying(tag, "LWGAN_TEST_TAG")


def _start_driver(tmp_path, tag):
    import subprocess

    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "LWGAN_TEST_TAG": tag, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen([sys.executable, str(script), str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.txt")):
        assert proc.poll() is None and time.monotonic() < deadline, "the driver never wrote an output"
        time.sleep(0.05)
    return proc, out


def _gone_within(tag: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _tagged(tag):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc to find the processes")
@pytest.mark.parametrize("how", ["SIGKILL of the process group", "SIGTERM of the stage"])
def test_a_stopped_stage_takes_its_workers_with_it_and_nothing_is_written_after(tmp_path, how):
    import signal
    import uuid

    tag = f"lwgan-test-{uuid.uuid4().hex}"
    proc, out = _start_driver(tmp_path, tag)
    if how.startswith("SIGKILL"):
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    code = proc.wait(timeout=60)
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    try:
        assert _gone_within(tag, 5.0), f"processes still running 5 s after the stop: {_tagged(tag)}"
    finally:
        for pid in _tagged(tag):
            os.kill(pid, signal.SIGKILL)
    time.sleep(max(0.0, stopped_at + 2.5 - time.monotonic()))  # longer than a job takes
    after = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert after == written and len(written) < 40
    assert code == (-signal.SIGKILL if how.startswith("SIGKILL") else 128 + signal.SIGTERM)


def test_a_guard_refuses_the_replace_and_leftover_temporaries_are_removed(tmp_path):
    import socket
    import subprocess

    from lwgan import io
    from lwgan.parallel import DriverWatch, Orphaned, _process_start

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch = DriverWatch(socket.gethostname(), child.pid, _process_start(child.pid))
    assert watch.alive()
    child.kill()
    deadline = time.monotonic() + 10
    while watch.alive():  # killed, not yet reaped: a zombie is gone already
        assert time.monotonic() < deadline
        time.sleep(0.01)
    child.wait()
    assert not watch.alive()
    target = tmp_path / "out" / "shard.h5"
    io.set_commit_guard(watch.guard)
    try:
        with pytest.raises(Orphaned), io.atomic_path(target) as tmp:
            tmp.write_bytes(b"data")
    finally:
        io.set_commit_guard(None)
    assert not target.exists() and not list(target.parent.iterdir())  # nothing replaced, no temporary left
    # a writer killed outright leaves its temporary file; the next run removes it (and only it)
    (tmp_path / "out" / "samples").mkdir()
    left = [tmp_path / "out" / ".shard.k2j4.tmp.h5", tmp_path / "out" / "samples" / ".step.x1.tmp.png"]
    for path in left:
        path.write_bytes(b"half")
    kept = tmp_path / "out" / "samples" / "step_0000002.png"
    kept.write_bytes(b"png")
    assert sorted(io.remove_temporaries(tmp_path / "out")) == sorted(left)
    assert [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()] == [kept.name]
