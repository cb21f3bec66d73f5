"""The benchmark harness: its ratios, its saved results and its charts (no timing here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks._harness import Row
from benchmarks._results import (
    Results,
    ResultsFileError,
    load_results,
    machine_info,
    replace_atomically,
)
from benchmarks.run import main

FIXTURE = Path(__file__).parent / "data" / "benchmarks" / "results.json"


def test_speedup_and_limit_ratios() -> None:
    row = Row("persistence", "load", joblib_s=2.0, joblite_s=1.0, limit_s=0.8)
    assert row.speedup == 2.0  # joblib's time / joblite's
    assert row.vs_limit == pytest.approx(1.25)  # joblite's time / the limit's
    assert row.limit_speedup == pytest.approx(2.5)  # the speed-up at the limit
    assert Row("hashing", "hash", 1.0, 0.5).vs_limit is None


def test_targets_are_judged_on_both_ratios() -> None:
    row = Row("io", "load", 2.0, 1.0, limit_s=0.8, target=1.5, limit_target=1.15)
    assert row.misses == ["vs limit ≤1.15"]
    row.limit_s = 0.9  # vs limit 1.11: at the limit
    assert row.misses == []
    row.target = 3
    assert row.misses == ["speed-up ≥3×"]


def test_results_survive_a_json_round_trip(tmp_path: Path) -> None:
    rows = [
        Row("hashing", "hash an int", 5.5e-6, 4e-7, 3.7e-7, "pickle + xxh3", "", 8, None, "n"),
        Row("memory", "hit", 1e-3, 2e-4, where="tmpfs", limit_target=1.15),
    ]
    machine = machine_info()
    Results(machine, rows).save(tmp_path / "out" / "results.json")
    loaded = load_results(tmp_path / "out" / "results.json")
    assert loaded.rows == rows
    assert loaded.machine == machine
    assert {"cpu", "cores", "python", "numpy", "joblib", "joblite", "date"} <= set(machine)
    assert "disk" in machine["file_systems"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["results.json"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "is not a results file"),
        ('{"format": "joblite-benchmarks", "version": 99}', "format version 99"),
        (
            '{"format": "joblite-benchmarks", "version": 1, "machine": {}, '
            '"rows": [{"area": "a", "case": "c", "joblib_s": 1, "joblite_s": 1, "x": 1}]}',
            "unknown row field(s) ['x']",
        ),
    ],
)
def test_a_foreign_results_file_is_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(ResultsFileError, match=r"results\.json") as raised:
        load_results(path)
    assert message in str(raised.value)


def test_plot_from_saved_results_draws_one_svg_per_area(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--plot", str(tmp_path / "a"), "--from", str(FIXTURE)]) == 0
    charts = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert charts == ["hashing.svg", "persistence.svg"]
    hashing = (tmp_path / "a" / "hashing.svg").read_text()
    assert "hash an int" in hashing
    assert "hash a model-like dict" in hashing
    persistence = (tmp_path / "a" / "persistence.svg").read_text()
    assert "load 1 GiB float64, uncompressed (median) [tmpfs]" in persistence
    assert "vs limit 1.08" in persistence  # 0.41 s / 0.38 s
    for svg in (hashing, persistence):
        assert "Test CPU 9000, 2 cores" in svg  # the machine and the date, in the figure
        assert "2026-12-07 18:50 UTC" in svg
    assert "hash an int" in capsys.readouterr().out  # the table with both ratios


def test_redrawing_the_same_results_writes_the_same_bytes(tmp_path: Path) -> None:
    main(["--plot", str(tmp_path / "a"), "--from", str(FIXTURE), "--only", "hashing"])
    main(["--plot", str(tmp_path / "b"), "--from", str(FIXTURE), "--only", "hashing"])
    first = (tmp_path / "a" / "hashing.svg").read_bytes()
    assert first == (tmp_path / "b" / "hashing.svg").read_bytes()
    assert not (tmp_path / "a" / "persistence.svg").exists()


def test_markdown_table_has_both_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--from", str(FIXTURE), "--markdown", "--only", "persistence"])
    table = capsys.readouterr().out.split("| area |", 1)[1]
    assert "| 1.27× |" in table  # speed-up 0.52 / 0.41
    assert "| 1.08 |" in table  # vs limit 0.41 / 0.38
    assert "hash an int" not in table


def test_a_failed_save_keeps_the_old_results_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    Results({"cpu": "old"}, []).save(path)

    def half_written(partial: Path) -> None:
        partial.write_text('{"format": "joblite-bench')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, half_written)
    assert load_results(path).machine == {"cpu": "old"}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
