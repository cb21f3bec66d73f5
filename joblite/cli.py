"""The ``python -m joblite`` command line.

Example::

    python -m joblite demo
    python -m joblite inspect model.jl
    python -m joblite run script_written_for_joblib.py --its-own-args
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def _run_demo(args: argparse.Namespace) -> int:
    from joblite._demo import run_demo

    run_demo(steps=args.steps, size=args.size)
    return 0


def _run_inspect(args: argparse.Namespace) -> int:
    from joblite.exceptions import InvalidFileError
    from joblite.persistence import format_manifest, inspect

    try:
        manifest = inspect(args.file)
    except (InvalidFileError, OSError) as error:
        print(f"joblite inspect: {error}", file=sys.stderr)
        return 1
    print(json.dumps(manifest, indent=2) if args.json else format_manifest(manifest))
    return 0


def _run_script(args: argparse.Namespace) -> int:
    from joblite.compat import run_path

    run_path(args.script, args.args)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m joblite",
        description="joblite: Parallel, Memory and dump/load, a faster drop-in for joblib.",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log joblite's diagnostics to stderr"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo", help="run a small real workload through every module, with timings"
    )
    demo.add_argument(
        "--steps",
        default=None,
        help="comma-separated subset of steps to run (default: all)",
    )
    demo.add_argument(
        "--size",
        choices=["full", "small"],
        default="full",
        help="data size: full shows the speed, small runs in seconds (default: full)",
    )
    demo.set_defaults(handler=_run_demo)

    inspect = commands.add_parser(
        "inspect",
        help="show a joblite file's manifest without unpickling it (safe on untrusted files)",
    )
    inspect.add_argument("file", metavar="FILE")
    inspect.add_argument("--json", action="store_true", help="print the raw manifest as JSON")
    inspect.set_defaults(handler=_run_inspect)

    run = commands.add_parser(
        "run", help="run a script written for joblib on joblite (import joblib gives joblite)"
    )
    run.add_argument("script", metavar="SCRIPT")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    run.set_defaults(handler=_run_script)

    from joblite.memory._cli import add_parser as add_cache_parser

    add_cache_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result: int = args.handler(args)
    return result
