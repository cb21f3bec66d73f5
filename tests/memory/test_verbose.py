"""Memory's ``verbose=`` lines: joblib's texts, where joblib writes them, unless logging shows them.

The expected shapes are those joblib 1.6 prints (its ``format_call``,
``_print_duration`` and ``load_item``): stdout for the call and load lines,
stderr (a logging WARNING with no handler) for clearing.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from joblite.memory import Memory

RULE = "_" * 80
TIME = r"\d+\.\ds, \d+\.\dmin"


def add(x: int, y: int = 2) -> int:
    return x + y


def duration_pattern(context: str = "") -> str:
    return rf"_+add {context}- {TIME}"


def out_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out.splitlines()


def check_duration_line(line: str, context: str = "") -> None:
    assert re.fullmatch(duration_pattern(context), line)
    assert len(line) == 80


@pytest.mark.parametrize("verbose", [0, 11])
def test_verbose_0_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verbose: int
) -> None:
    f = Memory(tmp_path, verbose=verbose).cache(add)
    f(1)
    f(1)
    f.call(1)
    f.call_and_shelve(1).get()
    f.clear()
    printed = capsys.readouterr()
    # Every one of those calls says something at verbose=11 (compare).
    assert (printed.out == "") is (verbose == 0)


def test_verbose_1_prints_computations_not_hits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mem = Memory(tmp_path, verbose=1)
    f = mem.cache(add)
    assert f(1, y=3) == 4
    lines = out_lines(capsys)
    assert lines[:3] == [RULE, f"[Memory] Calling {__name__}.add...", "add(1, y=3)"]
    check_duration_line(lines[3])
    assert len(lines) == 4
    assert f(1, y=3) == 4
    assert out_lines(capsys) == []


SCRIPT = """
import sys
from joblite import Memory

def add(x, y=2):
    return x + y

mem = Memory(sys.argv[1], verbose=1)
f = mem.cache(add)
f(1)
f(1)
print("cleared", flush=True)
f.clear()
mem.clear()
"""


def test_clearing_is_reported_on_stderr_without_logging_set_up(tmp_path: Path) -> None:
    # In a fresh interpreter: pytest's root handlers would take the WARNINGs here.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[:3] == [RULE, "[Memory] Calling __main__.add...", "add(1)"]
    assert re.fullmatch(duration_pattern(), lines[3])
    assert lines[4:] == ["cleared"]
    location = tmp_path / "joblib"
    assert re.fullmatch(
        r"\[MemorizedFunc\(func=<function add at 0x\w+>, location=(.+)\)\]: "
        r"Clearing function cache identified by __main__.add\n"
        r"\[Memory\(location=(.+)\)\]: Flushing completely the cache\n",
        done.stderr,
    )
    assert done.stderr.count(str(location)) == 2


def test_verbose_2_and_5_report_hits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = Memory(tmp_path, verbose=2).cache(add)
    f(1)
    capsys.readouterr()
    f(1)
    assert [re.sub(TIME, "T", line) for line in out_lines(capsys)] == [
        "[Memory]T    : Loading add..."  # the time since the Memory was made, 16 wide
    ]
    g = Memory(tmp_path, verbose=5).cache(add)
    g(1)
    lines = out_lines(capsys)
    assert re.fullmatch(rf"\[Memory\]{TIME} *: Loading add\.\.\.", lines[0])
    check_duration_line(lines[1], "cache loaded ")
    assert len(lines) == 2


def test_verbose_5_reports_shelved_loads_with_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = Memory(tmp_path, verbose=5).cache(add)
    result = f.call_and_shelve(1)
    capsys.readouterr()
    result.get()
    (line,) = out_lines(capsys)
    assert re.fullmatch(rf"\[Memory\]{TIME} *: Loading add\(x=1, y=2\)\.\.\.", line)


def test_verbose_above_10_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    f = Memory(tmp_path, verbose=11).cache(add)
    with caplog.at_level(logging.WARNING, logger="joblite.memory"):
        f(1)
    assert re.fullmatch(
        rf"\[{re.escape(repr(f))}\]: Computing func add, argument hash \w+ in location .+",
        caplog.records[0].getMessage(),
    )
    lines = out_lines(capsys)
    assert lines[:3] == [RULE, f"[Memory] Calling {__name__}.add...", "add(1)"]
    assert lines[3].startswith(f"Persisting in {tmp_path / 'joblib'}")
    check_duration_line(lines[4])
    f(1)
    lines = out_lines(capsys)
    assert re.fullmatch(
        rf"\[Memory\]{TIME} *: Loading add from {re.escape(str(tmp_path))}.+", lines[0]
    )


@pytest.fixture
def joblite_handler() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler, joblite_logger = Collect(), logging.getLogger("joblite")
    joblite_logger.addHandler(handler)
    joblite_logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        joblite_logger.removeHandler(handler)
        joblite_logger.setLevel(logging.NOTSET)


def test_a_joblite_handler_gets_the_lines_instead_of_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], joblite_handler: list[logging.LogRecord]
) -> None:
    f = Memory(tmp_path, verbose=1).cache(add)
    f(1)
    assert capsys.readouterr() == ("", "")
    messages = [r.getMessage() for r in joblite_handler]
    assert messages[0] == f"{RULE}\n[Memory] Calling {__name__}.add...\nadd(1)"
    assert all(r.levelno == logging.INFO for r in joblite_handler)
    f.clear()
    assert capsys.readouterr() == ("", "")
    assert joblite_handler[-1].levelno == logging.WARNING


def test_root_logging_at_info_shows_the_lines_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # As after logging.basicConfig(level=logging.INFO): a root handler and
    # INFO enabled. pytest's own root handlers at the default WARNING level
    # (the other tests) do not count: the lines are printed there.
    f = Memory(tmp_path, verbose=1).cache(add)
    with caplog.at_level(logging.INFO):
        f(1)
    assert capsys.readouterr() == ("", "")
    assert "[Memory] Calling" in caplog.text


def test_emit_goes_to_the_stream_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    from joblite._core.messages import emit, shown_by_logging

    logger = logging.getLogger("joblite.test_emit")
    assert not shown_by_logging(logger, logging.INFO)
    emit(logger, "[Parallel(n_jobs=2)]: Done   1 out of   1", stream="stderr")
    emit(logger, "line one\nline two")
    assert capsys.readouterr() == (
        "line one\nline two\n",
        "[Parallel(n_jobs=2)]: Done   1 out of   1\n",
    )


def test_shown_by_logging_follows_levels_and_propagation() -> None:
    from joblite._core.messages import shown_by_logging

    parent, child = (
        logging.getLogger("joblite.test_shown"),
        logging.getLogger("joblite.test_shown.c"),
    )
    handler = logging.NullHandler()
    handler.setLevel(logging.WARNING)
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    parent.propagate = False  # leave pytest's root handlers out
    try:
        assert not shown_by_logging(child, logging.INFO)  # the handler drops INFO
        assert shown_by_logging(child, logging.WARNING)
        child.propagate = False
        assert not shown_by_logging(child, logging.WARNING)
    finally:
        child.propagate = parent.propagate = True
        parent.removeHandler(handler)
        parent.setLevel(logging.NOTSET)
