"""``Parallel(verbose=...)``: joblib's progress lines where joblib writes them.

With no logging set up for ``joblite.parallel`` the lines are printed as
joblib prints them (stderr below verbose 50, stdout from 50); when logging
shows INFO records of that logger, they go there instead.
"""

from __future__ import annotations

import logging
import re

import pytest

from joblite.parallel import Parallel, delayed

from ._tasks import square

ELAPSED = r"\| elapsed: +\d+\.\ds"


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


@pytest.mark.parametrize(("verbose", "stream"), [(10, "err"), (50, "out")])
def test_verbose_prints_joblibs_lines_on_its_stream(
    capsys: pytest.CaptureFixture[str], verbose: int, stream: str
) -> None:
    Parallel(n_jobs=2, backend="threading", verbose=verbose)(delayed(square)(i) for i in range(20))
    captured = capsys.readouterr()
    lines = _lines(captured.err if stream == "err" else captured.out)
    assert _lines(captured.out if stream == "err" else captured.err) == []
    assert (
        lines[0]
        == "[Parallel(n_jobs=2)]: Using backend ThreadingBackend with 2 concurrent workers."
    )
    assert re.fullmatch(
        rf"\[Parallel\(n_jobs=2\)\]: Done  20 out of  20 {ELAPSED} finished", lines[-1]
    )
    for line in lines[1:-1]:  # a generator input: counts until its end is known
        assert re.fullmatch(
            rf"\[Parallel\(n_jobs=2\)\]: Done +\d+ (tasks +|out of  20 ){ELAPSED}", line
        )


def test_verbose_inline_loop_reports_like_joblibs(capsys: pytest.CaptureFixture[str]) -> None:
    # n_jobs=1 is joblib's plain loop: no backend line; at verbose=10 the
    # lines thin out (tasks 1 and 4 of 5), then the finished line.
    Parallel(n_jobs=1, verbose=10)([delayed(square)(i) for i in range(5)])
    lines = _lines(capsys.readouterr().err)
    assert [re.sub(ELAPSED, "|", line) for line in lines] == [
        "[Parallel(n_jobs=1)]: Done 1 out of 5 |",
        "[Parallel(n_jobs=1)]: Done 4 out of 5 |",
        "[Parallel(n_jobs=1)]: Done 5 out of 5 | finished",
    ]


def test_verbose_goes_to_logging_when_logging_shows_it(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="joblite.parallel"):
        Parallel(n_jobs=2, backend="threading", verbose=10)([delayed(square)(i) for i in range(8)])
    assert capsys.readouterr() == ("", "")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].endswith("Using backend ThreadingBackend with 2 concurrent workers.")
    assert re.fullmatch(
        rf"\[Parallel\(n_jobs=2\)\]: Done 8 out of 8 {ELAPSED} finished", messages[-1]
    )
