"""joblib's logger module (Logger, PrintTime, the time formatters), kept for joblib code."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import joblib.logger
import pytest

import joblite
from joblite import logger


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


def test_logger_module_is_public_like_joblibs() -> None:
    # scikit-learn does `from joblib import logger`; with joblite in its place
    # both spellings must give the module, holding the same classes as the top level.
    assert joblite.logger is logger
    assert logger.Logger is joblite.Logger
    assert logger.PrintTime is joblite.PrintTime
    assert "logger" in dir(joblite)


def test_import_joblite_does_not_load_the_logger_module() -> None:
    script = "import sys, joblite; print('joblite.logger' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("seconds", "long", "short"),
    [
        (0, "0.0s, 0.0min", "   0.0s"),
        (1.25, "1.2s, 0.0min", "   1.2s"),
        (42, "42.0s, 0.7min", "  42.0s"),
        (60, "60.0s, 1.0min", "  60.0s"),
        (60.0001, "60.0s, 1.0min", " 1.0min"),
        (599.9, "599.9s, 10.0min", "10.0min"),
        (36000, "36000.0s, 600.0min", "600.0min"),
    ],
)
def test_time_formats_match_joblib(seconds: float, long: str, short: str) -> None:
    assert logger.format_time(seconds) == long
    assert logger.short_format_time(seconds) == short
    if not sys.platform.startswith("win"):  # joblib takes 0.1 s off on Windows
        assert joblib.logger.format_time(seconds) == long
        assert joblib.logger.short_format_time(seconds) == short
