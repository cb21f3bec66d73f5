"""A miss's journal line, formatted directly, is the one the JSON encoder writes.

Journals written before and after the direct formatting must read the same:
the line is compared byte for byte with ``json.dumps``' over many metadata
values, and floats must come back equal from the reader.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from joblite.memory import FileStore, Memory
from joblite.memory._journal import _store_line, append_store, read_journal

_TEXTS = ["", "1", "'a'", 'quote " and \\ backslash', "é ü 日本 😀", "\n\t\x00\x1f", "{'a': 1}"]
_FLOATS = [0.0, -0.0, 1e-06, 2.5e-07, 0.1, 1 / 3, 1765151234.123456, 1e300, 5e-324, 123456789.0]


def _dumped(args_hash: str, metadata: dict[str, Any]) -> bytes:
    return ("\n" + json.dumps({"k": args_hash, **metadata}) + "\n").encode()


def _metadata(duration: Any, start: Any, args: Any, func: Any) -> dict[str, Any]:
    return {"duration": duration, "time": start, "input_args": args, "func": func}


def test_store_lines_are_byte_identical_to_json_dumps() -> None:
    rng = random.Random(12)
    floats = _FLOATS + [rng.uniform(0, 2e9) for _ in range(200)]
    floats += [rng.expovariate(1e4) for _ in range(200)]
    for duration, start in itertools.product(floats[:40], floats[::7]):
        names = rng.sample(["x", "y", "données", 'a"b'], rng.randint(0, 3))
        args = {name: rng.choice(_TEXTS) for name in names}
        metadata = _metadata(duration, start, args, rng.choice(_TEXTS))
        assert _store_line("0123abcd", metadata) == _dumped("0123abcd", metadata)


@pytest.mark.parametrize(
    "metadata",
    [
        _metadata(math.nan, 1.0, {}, "f"),  # json writes NaN / Infinity
        _metadata(1.0, math.inf, {}, "f"),
        _metadata(True, 1.0, {}, "f"),  # a bool is not a float
        _metadata(1, 2, {"x": "1"}, "f"),  # ints
        _metadata(1.0, 2.0, {"x": 3}, "f"),  # a non-str repr
        _metadata(1.0, 2.0, {1: "3"}, "f"),  # a non-str name
        _metadata(1.0, 2.0, {"x": "1"}, None),
        _metadata(1.0, 2.0, ["x"], "f"),
        {"time": 2.0, "duration": 1.0, "input_args": {}, "func": "f"},  # another order
        {"duration": 1.0, "time": 2.0, "input_args": {}, "func": "f", "extra": [1, 2]},
        {"duration": 1.0},
        {},
    ],
)
def test_other_metadata_is_written_as_json_dumps_writes_it(metadata: dict[str, Any]) -> None:
    assert _store_line("k1", metadata) == _dumped("k1", metadata)


def test_old_and_new_lines_read_as_the_same_records(tmp_path: Path) -> None:
    old, new = FileStore(tmp_path / "old"), FileStore(tmp_path / "new")
    rng = random.Random(3)
    written = {}
    for i in range(50):
        metadata = _metadata(rng.expovariate(1e5), rng.uniform(1e9, 2e9), {"x": repr(i)}, "m.f")
        written[f"h{i}"] = metadata
        old.append("f/v/journal", _dumped(f"h{i}", metadata))  # as written before
        append_store(new, f"f/v/h{i}", metadata)
    old_records, _ = read_journal(old, "f/v")
    new_records, _ = read_journal(new, "f/v")
    assert old_records == new_records
    # Floats round-trip exactly: a validation callback compares "time".
    assert {k: r.metadata for k, r in new_records.items()} == written


def echo(x: int, s: str) -> int:
    return x


def test_a_miss_metadata_reads_back_exactly(tmp_path: Path) -> None:
    f = Memory(tmp_path, verbose=0).cache(echo)
    stored = f.call_and_shelve(1, 'é"\n').metadata  # what the miss wrote
    read = Memory(tmp_path, verbose=0).cache(echo).call_and_shelve(1, 'é"\n').metadata
    assert read == stored
    assert read["input_args"] == {"x": "1", "s": repr('é"\n')}
    assert type(read["time"]) is float
    assert type(read["duration"]) is float
