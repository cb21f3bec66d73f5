"""Run the benchmark suite, save its results and draw them.

python -m benchmarks                            run every area, print the table
python -m benchmarks --only hashing,memory      run some areas
python -m benchmarks --quick                    small sizes, few rounds: a smoke test
python -m benchmarks --save results.json        run, and save the results as JSON
python -m benchmarks --plot DIR                 run, save DIR/results.json, draw DIR/<area>.svg
python -m benchmarks --plot DIR --from FILE     draw the charts of a saved run (no run)
python -m benchmarks --from FILE --markdown     print a saved run as a markdown table
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py` as well as `python -m benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._harness import HEADER, TABLE_HEADER, Report, Row
from benchmarks._results import (
    Results,
    ResultsFileError,
    caption,
    closing_table,
    load_average,
    load_results,
    machine_info,
    markdown_table,
)

AREAS = ["hashing", "persistence", "parallel", "memory", "scaling"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default=",".join(AREAS),
        help=f"comma-separated areas (default: {','.join(AREAS)})",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few rounds: a smoke test"
    )
    parser.add_argument("--save", metavar="FILE", help="write the results as JSON to FILE")
    parser.add_argument(
        "--plot",
        metavar="DIR",
        help="draw one SVG chart per area into DIR (needs matplotlib: the bench extra); "
        "after a run, the results are saved to DIR/results.json too",
    )
    parser.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="use the results saved in FILE instead of running the benchmarks",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the results as a markdown table too"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    areas = [a.strip() for a in args.only.split(",") if a.strip()]
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        parser.error(f"--only: unknown area(s) {unknown}; choose from {AREAS}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before a run that could take minutes)
        except ImportError:
            parser.error('--plot needs matplotlib: pip install -e ".[bench]"')
    if args.source:
        if args.quick or args.save:
            parser.error("--from reads a saved run: --quick and --save apply to a new run")
        try:
            results = load_results(args.source)
        except ResultsFileError as error:
            parser.error(str(error))
        results.rows = [row for row in results.rows if row.area in areas]
        print(TABLE_HEADER + "\n" + closing_table(results.rows))
        print(f"measured on: {caption(results.machine)}")
    else:
        results = run(areas, quick=args.quick)
        saves = [Path(args.save)] if args.save else []
        saves += [Path(args.plot) / "results.json"] if args.plot else []
        for path in saves:
            results.save(path)
            print(f"results saved to {path}")
    if args.markdown:
        print(markdown_table(results.rows))
    if args.plot:
        from benchmarks._plot import plot_results

        for path in plot_results(results, args.plot):
            print(f"chart written to {path}")
    return 0


def run(areas: list[str], *, quick: bool = False) -> Results:
    """Run the ``areas``' benchmarks, printing each row as it is measured."""
    machine = machine_info(quick=quick)
    print(f"machine: {caption(machine)}")
    for where, description in machine["file_systems"].items():
        print(f"  [{where}] {description}")
    print(HEADER + "\n")
    rows: list[Row] = []
    machine["seconds_per_area"] = {}
    for area in areas:
        module = importlib.import_module(f"benchmarks.bench_{area}")
        report = Report(area, quick=quick)
        print(f"[{area}]\n{TABLE_HEADER}", flush=True)
        start = time.perf_counter()
        module.run(report)
        seconds = time.perf_counter() - start
        machine["seconds_per_area"][area] = round(seconds, 1)
        print(f"  ({seconds:.0f} s)\n", flush=True)
        rows.extend(report.rows)
    machine["load_average_at_end"] = load_average()
    print("All rows, with both ratios:\n" + TABLE_HEADER)
    print(closing_table(rows))
    return Results(machine, rows)


if __name__ == "__main__":
    raise SystemExit(main())
