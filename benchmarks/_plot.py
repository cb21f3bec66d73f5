"""SVG charts of a run: one per area, speed-up over joblib with the limit marked.

>>> from benchmarks._results import load_results
>>> plot_results(load_results("docs/img/bench/results.json"), "docs/img/bench")  # doctest: +SKIP
[PosixPath('docs/img/bench/hashing.svg'), ...]

Needs matplotlib (the ``bench`` extra). The SVGs are reproducible: a fixed
``svg.hashsalt`` and no date in the metadata, so drawing the same results twice
writes the same bytes and a rerun does not churn the files in git.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks._harness import Row
from benchmarks._results import Results, replace_atomically

SVG_STYLE = {
    "svg.hashsalt": "joblite-benchmarks",  # fixed ids: same results, same bytes
    "svg.fonttype": "none",  # real text: case names stay searchable and selectable
    "font.size": 9,
}
BAR_COLOR = "#3b75af"
LIMIT_COLOR = "#222222"
TARGET_COLOR = "#d1495b"


def plot_results(results: Results, directory: str | Path) -> list[Path]:
    """Write ``<area>.svg`` into ``directory`` for every area in ``results``; return the paths."""
    import matplotlib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    areas = list(dict.fromkeys(row.area for row in results.rows))
    written = []
    with matplotlib.rc_context(SVG_STYLE):
        for area in areas:
            rows = [row for row in results.rows if row.area == area]
            path = directory / f"{area}.svg"
            _save(_figure(area, rows, results.caption()), path)
            written.append(path)
    return written


def _figure(area: str, rows: list[Row], caption: str) -> Any:
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    height = 1.9 + 0.42 * len(rows)
    figure = Figure(figsize=(12, height))
    axes = figure.add_axes((0.4, 1.05 / height, 0.58, 1 - 1.75 / height))
    positions = list(range(len(rows)))[::-1]  # the first row at the top
    speedups = [_finite(row.speedup) for row in rows]
    axes.barh(positions, speedups, height=0.6, color=BAR_COLOR)
    for position, row, speedup in zip(positions, rows, speedups, strict=True):
        text = f" {row.speedup:.3g}×"
        if row.vs_limit is not None:
            text += f", vs limit {row.vs_limit:.2f}"
        marks = [speedup, row.target or 0]
        if row.limit_speedup is not None:
            marks.append(_finite(row.limit_speedup))
            axes.plot([marks[-1]], [position], "|", ms=16, mew=2.5, c=LIMIT_COLOR)
        if row.target is not None:
            axes.plot([row.target], [position + 0.38], "v", ms=5, c=TARGET_COLOR)
        axes.text(max(marks) * 1.04, position, text, va="center", fontsize=8)
    axes.axvline(1.0, color="#888888", lw=0.8, ls="--")
    axes.set_yticks(positions, [row.label for row in rows])
    axes.set_xscale("log")
    axes.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    axes.xaxis.set_minor_formatter(NullFormatter())
    values = speedups + [_finite(r.limit_speedup or 1) for r in rows]
    values += [r.target or 1 for r in rows]
    axes.set_xlim(min(0.5, min(values) / 1.5), max(values) * 8)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.set_xlabel("speed-up over joblib = joblib's time / joblite's (log scale; 1× = as fast)")
    axes.set_title(f"{area}: joblite vs joblib", loc="left", fontweight="bold", pad=18)
    axes.legend(
        handles=[
            Patch(color=BAR_COLOR, label="joblite's speed-up"),
            Line2D(
                [],
                [],
                ls="",
                marker="|",
                ms=10,
                mew=2.5,
                c=LIMIT_COLOR,
                label="physical limit (the speed-up at the limit)",
            ),
            Line2D([], [], ls="", marker="v", ms=5, c=TARGET_COLOR, label="target"),
        ],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=3,
        fontsize=7.5,
        frameon=False,
    )
    figure.text(0.01, 0.2 / height, caption, fontsize=7.5, color="#444444")
    return figure


def _finite(value: float) -> float:
    """A bar length for log axes: an infinite ratio (a 0 s time) is drawn at 1e6."""
    return value if math.isfinite(value) and value > 0 else 1e6


def _save(figure: Any, path: Path) -> None:
    # No date in the metadata: a rerun on the same results writes the same bytes.
    replace_atomically(
        path, lambda partial: figure.savefig(partial, format="svg", metadata={"Date": None})
    )
