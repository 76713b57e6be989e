"""Scale-out over videos: the only module that imports ray.

`run_jobs` hands jobs (one video, or one chunk of a long video) to workers. A worker is an object built
once per process — it loads its models in ``__init__`` — with a ``run(job) -> result`` method. With Ray
(``use_ray=True``) every worker is an actor holding one CPU, at most one job is in flight per actor
(`ray.wait` bounds the queue), and each worker process computes on one thread. ``address`` joins an
existing cluster (``ray.address`` in params; unset = a local one sized to ``num_workers``). Without Ray
the same worker class runs in this process, which is what the tests compare against.

Workers write their outputs themselves, atomically; results sent back are small summaries. A job that
raises, or whose actor dies, becomes a `JobFailure` with the reason, and the rest continue.

Stopping the stage stops its workers. A catchable signal (SIGTERM, SIGINT, SIGHUP) unwinds the pool, which
kills its actors and shuts down the cluster it started. A stage killed outright (SIGKILL) cannot clean up:
every actor on the stage's machine watches the stage's process (`DriverWatch`) and, the moment it is gone,
refuses to replace any output (`lwgan.io.set_commit_guard`) and ends its process, so nothing is written
after the stage died; and a watcher process (`start_reaper`) kills every process of the local cluster,
including workers still starting up, as soon as the stage has ended. Temporary files a killed writer
leaves are removed by the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

ONE_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


class Worker(Protocol):
    def run(self, job: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class JobFailure:
    """A job that did not produce a result: its key and why."""

    key: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PoolOptions:
    """num_workers: worker processes (actors); address: Ray cluster address, None = start a local one;
    use_ray: False runs the worker in this process (same results, no parallelism)."""

    num_workers: int = 2
    address: str | None = None
    use_ray: bool = True


def one_thread() -> None:
    """Limit this process to one compute thread (call first thing in a worker)."""
    for key, value in ONE_THREAD_ENV.items():
        os.environ[key] = value
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def _process_start(pid: int) -> str | None:
    """An identity of the running process `pid` that a reused pid does not share (its start time in
    clock ticks, from /proc), "" where /proc is not available but the pid is alive, None when it is gone
    (a zombie, killed but not yet reaped by its parent, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except FileNotFoundError:
        return None
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return ""


class Orphaned(BaseException):
    """Raised in a worker whose stage has died, to refuse writing its output (a BaseException, so that no
    job-level ``except Exception`` turns it into a result)."""


@dataclasses.dataclass(frozen=True)
class DriverWatch:
    """The stage process (the Ray driver) as its workers see it: host, pid and start identity."""

    host: str
    pid: int
    started: str | None

    @classmethod
    def this_process(cls) -> DriverWatch:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()))

    def alive(self) -> bool:
        """True unless the driver is known to be gone (a worker on another machine cannot tell: True)."""
        if self.host != socket.gethostname():
            return True
        return _process_start(self.pid) == self.started

    def guard(self) -> None:
        """The commit guard of a worker: refuse to replace an output once the driver is gone."""
        if not self.alive():
            raise Orphaned(f"the stage process {self.pid} has ended; output not written")

    def start(self, poll_s: float = 0.2) -> None:
        """In a worker process: guard every output, and end the process soon after the driver is gone."""
        from lwgan import io

        io.set_commit_guard(self.guard)
        if self.host != socket.gethostname():
            return

        def watch() -> None:
            while self.alive():
                time.sleep(poll_s)
            os._exit(1)

        threading.Thread(target=watch, name="lwgan-driver-watch", daemon=True).start()


class _Guarded:
    """A worker inside a Ray actor that ends with its driver (`DriverWatch`)."""

    def __init__(self, driver: DriverWatch, worker_cls: type, *worker_args: Any) -> None:
        driver.start()
        self.worker = worker_cls(*worker_args)

    def run(self, job: Any) -> Any:
        return self.worker.run(job)


_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


_stop_signal: int | None = None  # the stop signal this process received, if any


def _exit_on_signal(signum: int, _frame: Any) -> None:
    global _stop_signal
    _stop_signal = signum
    raise SystemExit(128 + signum)


def _unwind_on_stop_signals() -> None:
    """Make SIGTERM and SIGHUP unwind this process like Ctrl-C does (so pools close and kill their actors;
    Ray's own handlers would exit through its native crash handler), when this is the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _STOP_SIGNALS:
        signal.signal(signum, _exit_on_signal)


REAPER_ENV = "LWGAN_REAP_TOKEN"


def carrying(token: str, name: str = REAPER_ENV) -> list[int]:
    """Pids of this user's processes whose environment holds ``name=token`` (read from /proc)."""
    needle = f"{name}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if needle in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:  # gone, or another user's
                pass
    return found


def reap(pid: int, started: str | None, token: str, poll_s: float = 0.1) -> list[int]:
    """Wait until process `pid` (started at `started`, see `_process_start`) has ended, then kill every
    process carrying `token` in its environment; returns the pids killed."""
    while _process_start(pid) == started:
        time.sleep(poll_s)
    killed: list[int] = []
    for _ in range(3):  # a process caught while starting another one: look again
        for other in carrying(token):
            if other != os.getpid():
                with contextlib.suppress(OSError):
                    os.kill(other, signal.SIGKILL)
                    killed.append(other)
        time.sleep(poll_s)
    return killed


def start_reaper() -> str | None:
    """Make sure that the processes this one starts from now on (a local Ray cluster: its raylet and
    workers) die with it, however it ends, SIGKILL included: they inherit a token in their environment,
    and a small watcher process in its own session kills every process carrying the token as soon as this
    one has ended. Returns the token (None where there is no /proc to find processes by)."""
    if not Path("/proc").is_dir():
        return None
    token = os.environ.get(REAPER_ENV, "")
    if token.startswith(f"{os.getpid()}-"):
        return token  # this process is already watched
    token = f"{os.getpid()}-{uuid.uuid4().hex}"
    os.environ[REAPER_ENV] = token
    env = {k: v for k, v in os.environ.items() if k != REAPER_ENV}
    subprocess.Popen([sys.executable, "-c", "import sys; from lwgan.parallel import reap; "
                      "reap(int(sys.argv[1]), sys.argv[2] or None, sys.argv[3])",
                      str(os.getpid()), _process_start(os.getpid()) or "", token],
                     env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, cwd=str(Path(__file__).resolve().parents[1]))
    return token


def start(options: PoolOptions) -> bool:
    """Start (or join) the Ray cluster `run_jobs` will use, so its start-up is paid once; returns whether
    this call started it (then call `stop`)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    import ray

    if ray.is_initialized():
        return False
    if not options.address:
        start_reaper()  # before ray.init, so that every process of the local cluster carries the token
    begin = time.perf_counter()
    ray.init(
        address=options.address or None,
        num_cpus=None if options.address else options.num_workers,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": dict(ONE_THREAD_ENV)},
    )
    _unwind_on_stop_signals()  # after ray.init, whose native handlers would end the process without unwinding
    log.info("ray: %s with %s CPUs (%.1f s to start)", options.address or "local cluster",
             ray.cluster_resources().get("CPU"), time.perf_counter() - begin)
    return True


def stop() -> None:
    import ray

    ray.shutdown()


def run_jobs(
    worker_cls: type,
    worker_args: tuple,
    jobs: Sequence[Any],
    options: PoolOptions,
    key: Callable[[Any], str] = str,
    on_result: Callable[[Any, Any], None] | None = None,
) -> tuple[list[Any], list[JobFailure]]:
    """Run every job on a worker; returns (results in completion order, failures).

    worker_cls(*worker_args) builds a worker; its ``run(job)`` returns a small, picklable result.
    on_result(job, result) is called in this process as each job finishes (progress, bookkeeping).
    """
    if not jobs:
        return [], []
    if not options.use_ray:
        return _run_local(worker_cls, worker_args, jobs, key, on_result)
    return _run_ray(worker_cls, worker_args, jobs, options, key, on_result)


def _run_local(worker_cls, worker_args, jobs, key, on_result):
    worker = worker_cls(*worker_args)
    results, failures = [], []
    for job in jobs:
        try:
            result = worker.run(job)
        except Exception as err:  # a failing job is recorded; the others go on
            log.warning("job %s failed: %s: %s", key(job), type(err).__name__, err)
            failures.append(JobFailure(key(job), f"{type(err).__name__}: {err}"))
            continue
        results.append(result)
        if on_result is not None:
            on_result(job, result)
    return results, failures


def _run_ray(worker_cls, worker_args, jobs, options, key, on_result):
    try:
        with RayPool(worker_cls, worker_args, options, size=min(options.num_workers, len(jobs))) as pool:
            return pool.map(jobs, key, on_result)
    except SystemExit:
        if _stop_signal is not None:  # Ray's wait turns the handler's exit into SystemExit(1): restore it
            raise SystemExit(128 + _stop_signal) from None
        raise


class RayPool:
    """Ray actors built once (``worker_cls(*worker_args)`` each, one CPU each) and reused by every `map`.

    `ready` waits until every actor has finished building its models, so that a caller can time work
    without start-up. A pool that started the Ray cluster shuts it down on `close`.
    """

    def __init__(self, worker_cls: type, worker_args: tuple, options: PoolOptions, size: int | None = None):
        self._started = start(options)
        import ray

        self._ray = ray
        self._remote_cls = ray.remote(num_cpus=1, max_restarts=0)(_Guarded)
        self._args = (DriverWatch.this_process(), worker_cls, *worker_args)
        self.actors = [self._remote_cls.remote(*self._args) for _ in range(size or options.num_workers)]

    def ready(self) -> None:
        self._ray.get([actor.__ray_ready__.remote() for actor in self.actors])

    def map(self, jobs: Sequence[Any], key: Callable[[Any], str] = str,
            on_result: Callable[[Any, Any], None] | None = None) -> tuple[list[Any], list[JobFailure]]:
        """Run `jobs` with at most one in flight per actor; (results in completion order, failures)."""
        ray = self._ray
        idle, pending = list(self.actors), {}
        results, failures = [], []
        queue = list(jobs)
        while queue or pending:
            while queue and idle:
                job = queue.pop(0)
                actor = idle.pop()
                pending[actor.run.remote(job)] = (actor, job)
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                actor, job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    failures.append(JobFailure(key(job), f"worker died: {err}"))
                    log.warning("job %s: its worker died; starting a new one", key(job))
                    self.actors.remove(actor)
                    replacement = self._remote_cls.remote(*self._args)
                    self.actors.append(replacement)
                    idle.append(replacement)
                    continue
                except ray.exceptions.RayTaskError as err:
                    cause = err.cause if getattr(err, "cause", None) is not None else err
                    failures.append(JobFailure(key(job), f"{type(cause).__name__}: {cause}"))
                    log.warning("job %s failed: %s", key(job), cause)
                    idle.append(actor)
                    continue
                idle.append(actor)
                results.append(result)
                if on_result is not None:
                    on_result(job, result)
        return results, failures

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
        if self._started:
            stop()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
