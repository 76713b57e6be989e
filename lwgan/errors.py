"""Expected errors and the one path by which every entry point reports them.

A `UserError` is a problem a user caused and can fix: a params value out of range, a file of the wrong
kind, a damaged cache, a foreign checkpoint, a pickle that would run code. Its message names the input (the
file, key or value) and says what is wrong with it. Every error class of the package that describes such a
problem derives from it (`lwgan.config.ConfigError`, `lwgan.data.errors.DataError`, ...).

Every entry point, the stage scripts and the ``lwgan`` command alike, runs through `run`: a `UserError` (or
an operating-system error naming a path, such as a missing input file) becomes one line
``error: <message>`` on stderr and exit status 2, without a traceback. ``--debug`` anywhere on the command
line, or ``LWGAN_DEBUG=1`` in the environment, shows the traceback instead. Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2
DEBUG_FLAG = "--debug"
DEBUG_ENV = "LWGAN_DEBUG"


class UserError(Exception):
    """Input or state that cannot be used as it is; the message names it and what to do."""


def _debug_requested(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def describe(err: BaseException) -> str | None:
    """The one-line message for an expected error, or None for one that is a bug."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError) \
            and err.filename is not None:
        return f"{err.filename}: {err.strerror}"
    return None


def run(main: Callable[[], int | None], argv: list[str] | None = None) -> int:
    """Call `main` and return its exit status (None counts as 0), reporting an expected error as one
    line on stderr with status 2. `argv` is the command line `main` parses (default ``sys.argv``); the
    ``--debug`` flag is taken out of it before `main` sees it."""
    args = sys.argv if argv is None else argv
    debug = _debug_requested(args)
    while DEBUG_FLAG in args:
        args.remove(DEBUG_FLAG)
    try:
        status = main()
    except Exception as err:
        message = None if debug else describe(err)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    return int(status or 0)


def exit_with(main: Callable[[], int | None]) -> None:
    """``sys.exit(run(main))``: the last line of every entry-point script."""
    sys.exit(run(main))
