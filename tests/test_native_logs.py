"""Native log lines written to file descriptor 2 are dropped inside `quiet_native_logs`, every other line
comes out unchanged and in order, and ``LWGAN_NATIVE_LOGS=1`` shows them all; the MediaPipe detector
prints none of them by default, in a process of its own and in a Ray worker.

Each case runs in a fresh Python process: descriptor 2 is what is filtered, and MediaPipe logs its
one-time lines only in a process where it has not run yet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

GLOG = re.compile(r"^(\(.*pid=\d+.*\) )?[IWEF]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ", re.MULTILINE)
TFLITE_INFO = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."

NATIVE = [  # lines as MediaPipe, absl and TFLite write them
    b"W0000 00:00:1733412345.123456   12345 inference_feedback_manager.cc:114] Feedback manager requires a "
    b"model with a single signature inference. Disabling support for feedback tensors.\n",
    b"I0000 00:00:1733412345.223456   12346 gl_context.cc:357] GL version: 3.2 (OpenGL ES 3.2 Mesa)\n",
    b"E1205 10:11:12.345678    7 landmark_projection_calculator.cc:186] Using NORM_RECT without "
    b"IMAGE_DIMENSIONS is only supported for the square ROI.\n",
    (TFLITE_INFO + "\n").encode(),
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
]

SCENARIO = r'''
import logging, os, subprocess, sys, threading, time, traceback
from lwgan.native_logs import quiet_native_logs

NATIVE = {native!r}
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
before = os.fstat(2)
err_path = os.readlink("/proc/self/fd/2")
threads = threading.active_count()
with quiet_native_logs():
    os.write(2, NATIVE[0])
    logging.getLogger("lwgan.fit").warning("video 3 of 7 fitted")
    with quiet_native_logs():  # nested: the inner exit keeps the filter
        os.write(2, NATIVE[1][:9])  # a native line in two writes
        os.write(2, NATIVE[1][9:])
        print("print to stderr", file=sys.stderr)
    writer = threading.Thread(target=lambda: os.write(2, NATIVE[2] + b"from a thread\n"))
    writer.start()
    writer.join()
    os.write(2, b"".join(NATIVE[3:]))
    try:
        raise ValueError("a traceback")
    except ValueError:
        traceback.print_exc()
    sys.stderr.write("INFO:root:not TFLite\nI0000 is not a glog line\nW0000 00:00:1.0 1 f.cc:1] ")
    sys.stderr.write("dropped anyway\n")
    sys.stderr.write("progress 50%\r")  # no newline: still comes out before the region ends
    sys.stderr.flush()
    time.sleep(0.3)
    with open(err_path, "rb") as so_far:
        print("progress-shown", b"progress 50%\r" in so_far.read(), flush=True)
    pid = os.fork()
    if pid == 0:
        os.write(2, b"from a forked child\n")
        os._exit(0)
    os.waitpid(pid, 0)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3)"])  # holds the pipe
    start = time.perf_counter()
exit_s = time.perf_counter() - start
sys.stderr.write("after the region\n")
print("restored", os.fstat(2).st_ino == before.st_ino, threading.active_count() == threads,
      f"{{exit_s:.2f}}", flush=True)
sleeper.kill()
'''

OURS = ("WARNING lwgan.fit: video 3 of 7 fitted\nprint to stderr\nfrom a thread\nTraceback (most recent "
        "call last):\n")


def _run(script: str, verbose: bool, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `script` in a fresh Python with stderr to a file (as a Ray worker's is)."""
    path = tmp_path / "script.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if k != "LWGAN_NATIVE_LOGS"}
    if verbose:
        env["LWGAN_NATIVE_LOGS"] = "1"
    with open(tmp_path / "stderr.txt", "w+b") as err:
        done = subprocess.run([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=err, env=env,
                              cwd=Path(__file__).resolve().parents[1], timeout=timeout, text=True)
        err.seek(0)
        done.stderr = err.read().decode()
    return done


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the stderr file through /proc")
def test_native_lines_are_dropped_and_every_other_line_comes_out_in_order(tmp_path):
    done = _run(SCENARIO.format(native=NATIVE), verbose=False, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert not GLOG.search(err) and TFLITE_INFO not in err and "absl::InitializeLog" not in err
    assert "dropped anyway" not in err
    assert err.startswith(OURS)
    assert 'raise ValueError("a traceback")\nValueError: a traceback\n' in err
    tail = err[err.index("ValueError: a traceback\n") + len("ValueError: a traceback\n"):]
    assert tail.startswith("INFO:root:not TFLite\nI0000 is not a glog line\nprogress 50%\r")
    assert "from a forked child\n" in tail and tail.endswith("after the region\n")
    restored, same_fd, no_thread_left, exit_s = done.stdout.split()[-4:]
    assert restored == "restored" and same_fd == "True" and no_thread_left == "True"
    # A subprocess holding the pipe's write end does not keep the region from ending.
    assert float(exit_s) < 0.5
    assert "progress-shown True" in done.stdout  # a line without a newline is not held back


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads the stderr file through /proc")
def test_native_lines_are_shown_when_asked(tmp_path):
    done = _run(SCENARIO.format(native=NATIVE), verbose=True, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    for line in NATIVE:
        assert line.decode() in done.stderr
    assert len(GLOG.findall(done.stderr)) == 4  # three native lines and the one that ran into "dropped"
    assert done.stderr.startswith(NATIVE[0].decode() + "WARNING lwgan.fit: video 3 of 7 fitted\n")


DETECT = r'''
import logging, sys
import cv2, matplotlib.cbook
from lwgan.data.detector import MediaPipeDetector
from lwgan.native_logs import quiet_native_logs

path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
image = cv2.imread(str(path))[..., ::-1].copy()
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
with quiet_native_logs():
    detector = MediaPipeDetector(static_image_mode=False)
    found = [detector.detect(image).found for _ in range(2)]
    logging.getLogger("lwgan.fit").warning("our warning inside")
    print("our print inside", file=sys.stderr)
detector.reset()
found += [detector.detect(image).found for _ in range(2)]
detector.close()
print("found", *found)
'''


def _needs_mediapipe() -> None:
    pytest.importorskip("mediapipe")
    pytest.importorskip("matplotlib")


@pytest.mark.parametrize("verbose", [False, True], ids=["default", "LWGAN_NATIVE_LOGS=1"])
def test_the_detector_prints_no_native_line_unless_asked(tmp_path, verbose):
    _needs_mediapipe()
    done = _run(DETECT, verbose=verbose, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["found", "True", "True", "True", "True"]
    assert "WARNING lwgan.fit: our warning inside\nour print inside\n" in done.stderr
    if verbose:
        assert GLOG.search(done.stderr) and TFLITE_INFO in done.stderr
    else:
        assert not GLOG.search(done.stderr) and TFLITE_INFO not in done.stderr, done.stderr


RAY_DRIVER = r'''
import os, sys
import cv2, matplotlib.cbook
from lwgan.parallel import PoolOptions, run_jobs


class DetectWorker:
    def __init__(self):
        from lwgan.data.detector import MediaPipeDetector

        self.detector = MediaPipeDetector()

    def run(self, job):
        path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        image = cv2.imread(str(path))[..., ::-1].copy()
        print(f"worker line {job}", file=sys.stderr, flush=True)
        found = self.detector.detect(image).found
        return found, os.readlink("/proc/self/fd/2")  # Ray points the worker's stderr at a file


results, failures = run_jobs(DetectWorker, (), [0, 1], PoolOptions(num_workers=1))
print("found", *[found for found, _ in results], len(failures))
print("stderr", *sorted({err for _, err in results}))
'''


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds the worker's stderr file through /proc")
@pytest.mark.parametrize("verbose", [False, True], ids=["default", "LWGAN_NATIVE_LOGS=1"])
def test_a_ray_worker_prints_no_native_line_unless_asked(tmp_path, verbose, monkeypatch):
    """The fit stage's setting: the detector is built and run inside a Ray actor of a local cluster, whose
    environment comes from the driver's. The worker's own stderr file is read back, as Ray's streaming
    of it to the driver may lag behind the end of the run."""
    _needs_mediapipe()
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    done = _run(RAY_DRIVER, verbose=verbose, tmp_path=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-2].split() == ["found", "True", "True", "0"]
    files = lines[-1].split()[1:]
    assert len(files) == 1 and files[0].endswith(".err"), lines[-1]  # one actor
    worker_err = Path(files[0]).read_text(errors="replace")
    assert "worker line 0\n" in worker_err and "worker line 1\n" in worker_err
    if verbose:
        assert GLOG.search(worker_err) and TFLITE_INFO in worker_err
    else:
        assert not GLOG.search(worker_err) and TFLITE_INFO not in worker_err, worker_err
        assert not GLOG.search(done.stderr), done.stderr
