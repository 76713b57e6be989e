"""Keep the log lines of native libraries (MediaPipe, TensorFlow Lite) out of the stage's output.

MediaPipe's calculators and the TensorFlow Lite runtime inside it log through absl/glog and TFLite's own
logger straight to file descriptor 2, from their own threads, so neither Python's logging nor
GLOG_minloglevel / TF_CPP_MIN_LOG_LEVEL reach them; the fit stage would print a few for every worker and
video, burying the progress lines. `quiet_native_logs` points descriptor 2 at a pipe for as long as it is
entered; a thread reads the pipe and forwards every line to the real stderr unchanged, except

    glog lines          ``W0000 00:00:1733.123456   12345 inference_feedback_manager.cc:114] ...``
    TFLite's INFO lines ``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.``
    absl's notice       ``WARNING: All log messages before absl::InitializeLog() is called are written ...``

so Python's own log lines, prints and tracebacks written meanwhile still come out, in order. Of a glog
entry whose message runs over several lines, only the first line is dropped.

``LWGAN_NATIVE_LOGS=1`` (or true/yes/on) in the environment turns the filter off and shows every native
line. Ray workers of a local cluster inherit the environment of the process that started the cluster.

Entering is cheap (a pipe, two ``dup2`` and a thread), process-wide and re-entrant: nested or concurrent
regions share one pipe, and descriptor 2 is restored when the last one leaves. A process forked inside a
region gets its descriptor 2 back. Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import sys
import threading
from collections.abc import Iterator

VERBOSE_ENV = "LWGAN_NATIVE_LOGS"
DROPPED = re.compile(
    rb"[IWEF]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] "  # glog/absl: severity, mmdd, time, thread, file:line]
    rb"|INFO: .*TensorFlow Lite"  # TFLite's logger: "INFO: Created TensorFlow Lite XNNPACK delegate ..."
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
)
_MAY_DROP = frozenset(b"IWEF")  # first bytes of the lines DROPPED matches; others are forwarded at once
_PIPE_SIZE = 1 << 20  # a native thread must not block on a full pipe while the reader waits for the GIL


def native_logs_shown() -> bool:
    """Whether ``LWGAN_NATIVE_LOGS`` asks for the native libraries' log lines."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class _Filter:
    """Descriptor 2 redirected into a pipe, and the thread that filters it into the saved descriptor."""

    def __init__(self) -> None:
        _flush_python_stderr()
        self.saved = os.dup(2)
        self.read_end, self.write_end = os.pipe()
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux
            with contextlib.suppress(OSError):  # capped by /proc/sys/fs/pipe-max-size
                fcntl.fcntl(self.write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._forward, name="native-log-filter", daemon=True)
        self.thread.start()
        os.dup2(self.write_end, 2)

    def close(self) -> None:
        _flush_python_stderr()
        os.dup2(self.saved, 2)
        os.close(self.write_end)
        self.closing.set()
        self.thread.join()
        os.close(self.read_end)
        os.close(self.saved)

    def _forward(self) -> None:
        line = b""  # the start of a line not yet decided
        passing = False  # the current line is being forwarded as it comes
        while True:
            # A process that inherited the write end (a subprocess started inside the region) would keep
            # the pipe open; once closing, stop as soon as nothing more is waiting.
            ready, _, _ = select.select([self.read_end], [], [], 0.1)
            if not ready:
                if self.closing.is_set():
                    break
                continue
            chunk = os.read(self.read_end, 65536)
            if not chunk:
                break
            out = []
            start = 0
            while start < len(chunk):
                end = chunk.find(b"\n", start) + 1 or len(chunk)  # through the next newline, or the rest
                piece, start = chunk[start:end], end
                complete = piece.endswith(b"\n")
                if passing:
                    out.append(piece)
                    passing = not complete
                    continue
                line += piece
                if complete:
                    if not DROPPED.match(line):
                        out.append(line)
                    line = b""
                elif line[0] not in _MAY_DROP:
                    out.append(line)  # a line no pattern can match (a "\r" progress line): no need to wait
                    line, passing = b"", True
            if out:
                _write_all(self.saved, b"".join(out))
        if line and not DROPPED.match(line):
            _write_all(self.saved, line)

    def restore_in_child(self) -> None:
        os.dup2(self.saved, 2)
        for fd in (self.read_end, self.write_end, self.saved):
            with contextlib.suppress(OSError):
                os.close(fd)


_lock = threading.Lock()
_active: _Filter | None = None
_depth = 0


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Drop the native libraries' log lines written to descriptor 2 while inside (see the module
    docstring); does nothing when ``LWGAN_NATIVE_LOGS`` asks for them."""
    global _active, _depth
    if native_logs_shown():
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                _active = _Filter()
            except OSError:  # no descriptor 2 to redirect (a daemon's stderr closed): nothing to filter
                _active = None
        _depth += 1
        mine = _active
    try:
        yield
    finally:
        with _lock:
            if _active is mine and _depth > 0:  # not reset by a fork inside the region
                _depth -= 1
                if _depth == 0 and mine is not None:
                    _active = None
                    mine.close()


def _after_fork_in_child() -> None:
    global _active, _depth, _lock
    if _active is not None:
        _active.restore_in_child()
    _active, _depth = None, 0
    _lock = threading.Lock()  # another thread of the parent may have held it at the fork


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_python_stderr() -> None:
    """Push what Python buffered for descriptor 2 through before it is switched."""
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # a closed stderr must not kill the filter thread
        while data:
            data = data[os.write(fd, data):]
