"""What every stage script shares: argument parsing, strict params, a tracked run, metrics files.

A stage script stays thin:

    args = stage.parse_args("body", __doc__, outputs={"out_dir": "folder for ...", "metrics": "..."})
    params = stage.load_params(args.params)
    with stage.tracked_run("body", params, sections=("seed", "body")) as run:
        metrics = lwgan_function(...)  # the stage's work, in the library
        stage.write_metrics(args.metrics, metrics, run)
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lwgan import config
from lwgan.io import write_json
from lwgan.tracking import TAG_DATA, TAG_VARIANT, StageRun


def parse_args(
    stage: str,
    description: str | None,
    inputs: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | None = None,
    argv: Sequence[str] | None = None,
) -> argparse.Namespace:
    """``--params`` plus one required ``--name`` option per input/output path (paths come from dvc.yaml).
    ``--debug`` (traceback of an expected error) is taken off the command line by `lwgan.errors.run`."""
    parser = argparse.ArgumentParser(prog=f"stages/{stage}.py", description=description)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    for name, help_text in {**(inputs or {}), **(outputs or {})}.items():
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, required=True, type=Path,
                            help=help_text)
    logging.basicConfig(level=logging.INFO, format=f"[{stage}] %(levelname)s %(message)s")
    return parser.parse_args(argv)


def load_params(path: str | Path) -> config.Params:
    """Strictly load params; a bad file raises `config.ConfigError` naming the key, which the script's
    `lwgan.errors.exit_with` reports (exit 2)."""
    return config.load(path)


def tracked_run(stage: str, params: config.Params, sections: Sequence[str]) -> StageRun:
    """The MLflow run of this stage execution, logging the flattened `sections` of `params`; tagged
    ``lwgan.variant`` when ``tracking.variant`` names one of the paper's experiments. Under ``dvc repro`` /
    ``dvc exp run`` it is nested under the run of that pipeline invocation (`lwgan.tracking`)."""
    tree = config.to_dict(params)
    logged = config.flatten({name: tree[name] for name in sections})
    tags = {TAG_VARIANT: params.tracking.variant} if params.tracking.variant else {}
    return StageRun(stage, params=logged, experiment=params.tracking.experiment,
                    enabled=params.tracking.enabled, tags=tags)


def record_training(run: StageRun, history: Sequence[Mapping[str, float]], resumed_from: int,
                    maps: Path) -> None:
    """What a train run carries for comparing runs (`lwgan report`) beyond its metrics: the data it trained
    on (tag ``lwgan.data_key``, `lwgan.train.checkpoint.data_key` of the correspondence cache `maps`) and,
    when it resumed a checkpoint at step `resumed_from` > 0, the tracked rows restored with it (`history`,
    ``{"step": s, name: value}``) at their steps, so that the run holds its checkpoint's whole curve."""
    from lwgan.train.checkpoint import data_key

    run.set_tags({TAG_DATA: data_key(maps)})
    for row in history:
        if row["step"] <= resumed_from:
            run.log_metrics({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]), flush=False)
    run.flush()


def write_metrics(path: Path, metrics: Mapping[str, Any], run: StageRun | None = None, step: int = 0) -> None:
    """Write the DVC metrics file (nested JSON) and log its numeric leaves to the run."""
    write_json(path, metrics)
    if run is not None:
        flat = config.flatten(metrics)
        run.log_metrics({k: v for k, v in flat.items() if isinstance(v, int | float) and
                         not isinstance(v, bool)}, step=step)


def is_main_process() -> bool:
    """False on the non-zero ranks of a torchrun job (they compute, rank 0 writes)."""
    return int(os.environ.get("RANK", "0")) == 0
