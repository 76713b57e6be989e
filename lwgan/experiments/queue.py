"""The grid of the paper's experiments as queued DVC experiments.

`lwgan experiments queue [NAMES...] --scale default|paper` puts one ``dvc exp run --queue -n NAME -S ...``
per variant into DVC's queue (every variant when no names are given); ``dvc exp run --run-all`` then runs
them, each in a temporary copy of the project, all tracking into the project's MLflow store. The data stages
are unchanged by every variant, so an experiment whose data outputs are in the DVC cache (after one
``dvc repro``) runs only the train and evaluate stages; each variant sets ``tracking.variant``, a param of
both, so the baseline trains in its own experiment too.

Every variant's params are validated (`lwgan.config`) before anything is queued, and a name that already
names an experiment of the current commit is refused up front (DVC would refuse it only when the
experiment is collected, after training).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lwgan import config
from lwgan.errors import UserError
from lwgan.experiments import variants


class QueueError(UserError, RuntimeError):
    """Something that stops the grid from being queued; the message names the variant, key or command."""


def base_params(params_file: str | Path, scale_name: str) -> dict[str, Any]:
    """The workspace's params with the scale applied, flattened (``{"train.lambda_rec": 10.0, ...}``)."""
    try:
        params = config.load(params_file, overrides=variants.scale(scale_name))
    except config.ConfigError as err:
        raise QueueError(f"scale {scale_name}: {err}") from None
    return config.flatten(config.to_dict(params))


def commands(names: Sequence[str], scale_name: str, params_file: str | Path, queue: bool = True,
             suffix: str = "") -> list[list[str]]:
    """One ``dvc exp run`` argument list per variant (all when `names` is empty), each checked against the
    params schema with its overrides applied."""
    base = base_params(params_file, scale_name)
    out = []
    for name in names or variants.VARIANT_NAMES:
        variant = variants.get(name)
        overrides = variants.set_params(variant, scale_name, base)
        try:
            config.load(params_file, overrides=overrides)
        except config.ConfigError as err:
            raise QueueError(f"variant {name} at scale {scale_name}: {err}") from None
        out.append(variants.dvc_command(variant, scale_name, base, queue=queue, suffix=suffix))
    return out


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise QueueError(f"git {' '.join(args)} failed in {root}: {proc.stderr.strip()} (DVC experiments "
                         "need a git repository with at least one commit)")
    return proc.stdout


def existing_names(root: Path) -> set[str]:
    """Names of the DVC experiments based on the current commit (refs/exps/<sha[:2]>/<sha[2:]>/<name>)."""
    sha = _git(root, "rev-parse", "HEAD").strip()
    refs = _git(root, "for-each-ref", "--format=%(refname)", f"refs/exps/{sha[:2]}/{sha[2:]}/")
    return {line.rsplit("/", 1)[-1] for line in refs.splitlines() if line}


def queue(names: Sequence[str], scale_name: str, root: str | Path = ".",
          params_file: str | Path | None = None, suffix: str = "", dry_run: bool = False,
          on_queued: Callable[[list[str]], None] | None = None) -> list[list[str]]:
    """Queue the variants in `names` (all when empty) at `scale_name`; returns the commands, calling
    `on_queued` with each once DVC took it. With `dry_run` nothing is queued. Runs DVC in `root` with this
    interpreter (``python -m dvc``)."""
    root = Path(root)
    cmds = commands(names, scale_name, params_file or root / "params.yaml", queue=True, suffix=suffix)
    if dry_run:
        return cmds
    taken = existing_names(root) & {cmd[cmd.index("-n") + 1] for cmd in cmds}
    if taken:
        names = " ".join(sorted(taken))
        raise QueueError(f"experiment(s) {names} already exist for this commit: remove them (dvc exp remove "
                         f"{names}) or queue under new names (--suffix)")
    for cmd in cmds:
        proc = subprocess.run([sys.executable, "-m", "dvc", *cmd[1:]], cwd=root, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise QueueError(f"{' '.join(cmd)} failed ({proc.returncode}): "
                             f"{proc.stderr.strip() or proc.stdout.strip()}")
        if on_queued is not None:
            on_queued(cmd)
    return cmds
