"""The DVC process a stage runs under: found by walking up the process tree in Linux's ``/proc`` to the
nearest ``dvc`` command, so that the stage processes of one ``dvc repro`` / ``dvc exp run`` can tell they
belong together (`lwgan.tracking` nests their MLflow runs under one pipeline run by its `DvcProcess.key`).
Elsewhere, or when ``/proc`` cannot be read, none is found."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import socket
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def dvc_experiment_name() -> str:
    """The DVC experiment this process runs in (DVC sets ``DVC_EXP_NAME``), or ``workspace``."""
    return os.environ.get("DVC_EXP_NAME") or "workspace"


@dataclasses.dataclass(frozen=True)
class DvcProcess:
    """A running ``dvc`` command. pid: its process id; start_ms: when it started, ms since the epoch;
    argv: its command line as the kernel holds it."""

    pid: int
    start_ms: int
    argv: tuple[str, ...]

    @property
    def key(self) -> str:
        """Unique among all processes of all machines sharing a store: a pid is reused, not with the same
        start time on the same host."""
        return clean_key(f"dvc-{socket.gethostname()}-{self.pid}-{self.start_ms}")

    @property
    def command(self) -> str:
        """The DVC command line from ``dvc`` on (``dvc exp run -n x``), whichever way DVC was started."""
        words = list(self.argv)
        for i, word in enumerate(words):
            if Path(word).name == "dvc":
                return shlex.join(["dvc", *words[i + 1 :]])
        return shlex.join(words)


def is_dvc_command(argv: Sequence[str]) -> bool:
    """Whether a command line runs DVC: ``dvc ...`` (argv[0] named dvc), ``python .../bin/dvc ...`` (how the
    kernel shows a script started by its shebang) or ``python -m dvc ...``."""
    if not argv:
        return False
    if Path(argv[0]).name == "dvc":
        return True
    if not Path(argv[0]).name.startswith("python"):
        return False
    for i, word in enumerate(argv[1:], start=1):
        if word == "-m":
            return argv[i + 1 : i + 2] == ["dvc"]
        if not word.startswith("-"):
            return Path(word).name == "dvc"
    return False


def _proc_stat(pid: int, proc: Path) -> tuple[int, int]:
    """(parent pid, start time in clock ticks after boot) of `pid` from ``/proc/<pid>/stat``."""
    text = (proc / str(pid) / "stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces; field 3 on
    return int(fields[1]), int(fields[19])  # fields 4 (ppid) and 22 (starttime), counted from 1 (proc(5))


def dvc_ancestor(pid: int | None = None, proc: str | Path = "/proc") -> DvcProcess | None:
    """The nearest ancestor process of `pid` (default: this process) that is a ``dvc`` command
    (`is_dvc_command`), or None (none, or no Linux ``/proc`` to read it from)."""
    proc = Path(proc)
    try:
        btime = next(int(line.split()[1]) for line in (proc / "stat").read_text().splitlines()
                     if line.startswith("btime "))
        ticks = os.sysconf("SC_CLK_TCK")
        current = _proc_stat(os.getpid() if pid is None else pid, proc)[0]
        for _ in range(256):  # no process tree is this deep: a guard against a cycle
            if current <= 0:
                return None
            argv = (proc / str(current) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
            parent, start = _proc_stat(current, proc)
            words = tuple(os.fsdecode(w) for w in argv if w)
            if is_dvc_command(words):
                return DvcProcess(current, (btime * ticks + start) * 1000 // ticks, words)
            current = parent
    except (OSError, ValueError, IndexError, StopIteration) as err:  # a process that ended, no /proc
        log.debug("could not inspect the parent processes: %s", err)
    return None


def clean_key(key: str) -> str:
    # The key goes into a search filter between single quotes: keep it to characters that need no escaping.
    return re.sub(r"[^A-Za-z0-9_.:@/+-]", "_", key)[:200]
