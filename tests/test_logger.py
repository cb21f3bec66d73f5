"""joblib's Logger and PrintTime, kept for code written against joblib."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

import joblite


def test_logger_logs_under_its_name(caplog: pytest.LogCaptureFixture) -> None:
    logger = joblite.Logger(depth=1, name="myapp")
    with caplog.at_level(logging.DEBUG, logger="myapp"):
        logger.warn("careful")
        logger.info("fyi")
        logger.debug("details")
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO", "DEBUG"]
    assert all(r.name == "myapp" for r in caplog.records)
    assert caplog.records[0].getMessage().endswith("]: careful")
    assert logger.format({"a": {"b": {"c": 1}}}) == "{'a': {...}}"


def test_print_time_writes_to_stream_and_logfile(tmp_path: Path) -> None:
    stream = io.StringIO()
    timer = joblite.PrintTime(logdir=tmp_path / "logs", stream=stream)
    first = timer("step one")
    total = timer("all", total=True)
    assert first.startswith("step one: ")
    assert first.endswith("min")
    assert total.startswith("all: ")
    assert stream.getvalue().splitlines() == [first, total]
    logged = (tmp_path / "logs" / "joblite.log").read_text().splitlines()
    assert logged[-2:] == [first, total]


def test_print_time_rejects_logfile_and_logdir(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="`logfile` or `logdir`"):
        joblite.PrintTime(logfile=tmp_path / "a.log", logdir=tmp_path)
