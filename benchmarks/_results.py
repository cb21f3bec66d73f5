"""A run's results as JSON: the rows and the machine they were measured on.

>>> results = Results(machine_info(quick=True), [Row("hashing", "hash an int", 2e-6, 1e-7)])
>>> load_results_text(results.to_json()).rows[0].speedup
20.0
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._harness import TMPFS, Row, format_row, format_seconds

FORMAT = "joblite-benchmarks"
VERSION = 1
_ROW_FIELDS = {f.name for f in dataclasses.fields(Row)}


class ResultsFileError(ValueError):
    """A results file that is not one ``python -m benchmarks`` wrote."""


@dataclass
class Results:
    machine: dict[str, Any]
    rows: list[Row]

    def to_json(self) -> str:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "machine": self.machine,
            "rows": [dataclasses.asdict(row) for row in self.rows],
        }
        return json.dumps(document, indent=1, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> None:
        """Write the JSON next to ``path`` first, then rename: never a half-written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda partial: partial.write_text(self.to_json(), "utf-8"))

    def caption(self) -> str:
        return caption(self.machine)


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """``write`` a temporary file beside ``path``, then rename it over ``path``.

    Readers see the old file or the whole new one; a failed write leaves no temporary.
    """
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_results(path: str | Path) -> Results:
    """Read a results file written by :meth:`Results.save`; raise ``ResultsFileError``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ResultsFileError(f"--from: cannot read {path}: {error.strerror}") from error
    return load_results_text(text, source=str(path))


def load_results_text(text: str, *, source: str = "results") -> Results:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ResultsFileError(f"{source} is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ResultsFileError(f"{source} is not a results file of python -m benchmarks")
    if document.get("version") != VERSION:
        raise ResultsFileError(
            f"{source} has results format version {document.get('version')!r}, "
            f"this code reads version {VERSION}"
        )
    machine, rows = document.get("machine"), document.get("rows")
    if not isinstance(machine, dict) or not isinstance(rows, list):
        raise ResultsFileError(f"{source} needs a 'machine' object and a 'rows' list")
    return Results(machine, [_row(item, source) for item in rows])


def _row(item: object, source: str) -> Row:
    if not isinstance(item, dict) or not {"area", "case", "joblib_s", "joblite_s"} <= set(item):
        raise ResultsFileError(f"{source}: a row needs area, case, joblib_s and joblite_s")
    unknown = set(item) - _ROW_FIELDS
    if unknown:
        raise ResultsFileError(f"{source}: unknown row field(s) {sorted(unknown)}")
    return Row(**item)


def machine_info(*, quick: bool = False) -> dict[str, Any]:
    """What the figures depend on: processor, versions, file systems, date, load."""
    import numpy

    import joblite

    try:
        import joblib

        joblib_version = joblib.__version__
    except ImportError:
        joblib_version = "not installed"
    file_systems = {"disk": _file_system(os.getcwd())}
    if os.path.isdir(TMPFS):
        file_systems["tmpfs"] = _file_system(TMPFS)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "joblib": joblib_version,
        "joblite": joblite.__version__,
        "file_systems": file_systems,
        "page_cache": "warm unless a row says cold",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average_at_start": load_average(),
        "quick": quick,
    }


def caption(machine: dict[str, Any]) -> str:
    """One line naming the machine and the date, for under a chart or a table."""
    date = str(machine.get("date", "?"))[:16].replace("T", " ")
    text = (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"Python {machine.get('python', '?')}, numpy {machine.get('numpy', '?')}, "
        f"joblib {machine.get('joblib', '?')}, joblite {machine.get('joblite', '?')}; "
        f"{date} UTC"
    )
    return text + (" (--quick: smoke-test sizes, not figures)" if machine.get("quick") else "")


def closing_table(rows: list[Row]) -> str:
    """Every row with both ratios, and which targets it misses."""
    lines = []
    for row in rows:
        lines.append(format_row(row))
        if row.misses:
            lines.append(f"      misses: {', '.join(row.misses)}")
    missed = sum(1 for row in rows if row.misses)
    lines.append(
        f"{len(rows)} cases: {len(rows) - missed} meet their targets or have none, "
        f"{missed} miss one"
    )
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    """The figures as a markdown table, for docs/performance.md."""
    lines = [
        "| area | case | where | joblib | joblite | speed-up | limit | vs limit | target |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for row in rows:
        limit = "" if row.limit_s is None else f"{row.limit}: {_short(row.limit_s)}"
        vs_limit = "" if row.vs_limit is None else f"{row.vs_limit:.2f}"
        verdict = row.targets + (" (misses)" if row.misses else " (meets)" if row.targets else "")
        lines.append(
            f"| {row.area} | {row.case} | {row.where} | {_short(row.joblib_s)} | "
            f"{_short(row.joblite_s)} | {row.speedup:.2f}× | {limit} | {vs_limit} | {verdict} |"
        )
    return "\n".join(lines)


def _short(seconds: float) -> str:
    return " ".join(format_seconds(seconds).split())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _file_system(path: str) -> str:
    """``"ext4 (/dev/vda) mounted at /"``: the mount holding ``path``, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                device, mount_point, fs_type = line.split()[:3]
                inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best[0]):
                    best = (mount_point, fs_type, device)
    except OSError:
        return f"unknown file system holding {path}"
    return f"{best[1]} ({best[2]}) mounted at {best[0]}, for {path}"


def load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
