"""The `lwgan experiments` and `lwgan report` commands (added to the `lwgan` command by `add_commands`).

    lwgan experiments list [--scale S]                  every variant: what it changes, its dvc command
    lwgan experiments queue [NAMES...] [--scale S]      queue the grid (or NAMES) with dvc exp run --queue
    lwgan report [--out reports]                        Table 1, stability tables and curves from MLflow
"""

from __future__ import annotations

import argparse

from lwgan import config
from lwgan.experiments import stability, variants


def _experiment_name(params_file: str) -> str:
    return config.load(params_file).tracking.experiment


def _list(args: argparse.Namespace) -> int:
    from lwgan.experiments.queue import commands

    cmds = commands([], args.scale, args.params, queue=False)
    width = max(map(len, variants.VARIANT_NAMES))
    for variant, cmd in zip(variants.VARIANTS.values(), cmds, strict=True):
        print(f"{variant.name:<{width}}  §{variant.section}: {variant.summary}")
        print(f"{'':<{width}}  {' '.join(cmd)}")
    return 0


def _queue(args: argparse.Namespace) -> int:
    from lwgan.experiments.queue import queue

    cmds = queue(args.names, args.scale, params_file=args.params, suffix=args.suffix,
                 dry_run=args.dry_run, on_queued=lambda cmd: print(" ".join(cmd), flush=True))
    if args.dry_run:
        print("\n".join(" ".join(cmd) for cmd in cmds))
    else:
        print(f"{len(cmds)} experiment(s) queued; run them with: dvc exp run --run-all (-j N runs N at once)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from lwgan.experiments.report import build

    experiment = args.experiment or _experiment_name(args.params)
    report = build(args.out, experiment=experiment, baseline_run=args.baseline_run, fraction=args.tail)
    names = ", ".join(r["variant"] for r in report.rows)
    print(f"{report.markdown}, {report.table} and {len(report.pictures)} curve overlays: {names}")
    for name, why in report.selection.passed_over.items():
        print(f"  passed over: {name}: {why}")
    return 0


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"got {text}, must be in (0, 1]")
    return value


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``experiments`` (list, queue) and ``report`` to the `lwgan` command's subparsers."""
    exp = sub.add_parser("experiments", help="the paper's experiments: list them, queue them as DVC "
                         "experiments")
    exp_sub = exp.add_subparsers(dest="action", required=True)
    scale = {"choices": tuple(variants.SCALES), "default": "default",
             "help": "default: params.yaml as it is; paper: the paper's 256^2 configuration"}
    listing = exp_sub.add_parser("list", help="every variant with what it changes and its dvc command")
    listing.add_argument("--scale", **scale)
    listing.add_argument("--params", default="params.yaml", help="the workspace's params file")
    listing.set_defaults(func=_list)
    queue = exp_sub.add_parser("queue", help="queue the grid (or NAMES) with dvc exp run --queue")
    queue.add_argument("names", nargs="*", metavar="NAME",
                       help=f"variants ({', '.join(variants.VARIANT_NAMES)}); default: all")
    queue.add_argument("--scale", **scale)
    queue.add_argument("--suffix", default="", help="appended to every experiment name (-SUFFIX)")
    queue.add_argument("--dry-run", action="store_true", help="print the commands, queue nothing")
    queue.add_argument("--params", default="params.yaml", help="the workspace's params file")
    queue.set_defaults(func=_queue)

    report = sub.add_parser("report", help="Table 1, stability measures and loss curves of the variants' "
                            "tracked runs")
    report.add_argument("--out", default="reports", help="output folder (default: reports)")
    report.add_argument("--baseline-run", default=None, help="MLflow run id of the baseline's train run "
                        "(default: the newest)")
    report.add_argument("--tail", type=_fraction, default=stability.TAIL_FRACTION,
                        help="share of each run's last steps the stability measures read (default: 1/3)")
    report.add_argument("--experiment", default=None, help="MLflow experiment (default: tracking.experiment)")
    report.add_argument("--params", default="params.yaml", help="params file naming the MLflow experiment")
    report.set_defaults(func=_report)
