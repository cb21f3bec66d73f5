"""The ``python -m joblite`` command line.

Example::

    python -m joblite demo
    python -m joblite inspect model.jl
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence


def _run_demo(args: argparse.Namespace) -> int:
    from joblite._demo import run_demo

    run_demo(steps=args.steps)
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
    demo.set_defaults(handler=_run_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    result: int = args.handler(args)
    return result
