"""Files written in format version 1 keep loading, to the same value, forever."""

from __future__ import annotations

import importlib.util
import json
import pathlib
from types import ModuleType
from typing import Any

import pytest

from joblite.persistence import dump, inspect, load

from .helpers import assert_same

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def _make_golden() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_GOLDEN = _make_golden()


@pytest.mark.parametrize("name", sorted(MAKE_GOLDEN.GOLDEN))
@pytest.mark.parametrize("mmap_mode", [None, "r"])
def test_golden_file_loads_to_the_expected_value(name: str, mmap_mode: str | None) -> None:
    loaded = load(DATA / name, mmap_mode=mmap_mode, allowed=[])  # builtins + numpy only
    assert_same(loaded, MAKE_GOLDEN.expected_value())


@pytest.mark.parametrize("name", sorted(MAKE_GOLDEN.GOLDEN))
def test_golden_manifest_is_unchanged(name: str) -> None:
    expected: dict[str, Any] = json.loads((DATA / f"{name}.manifest.json").read_text())
    assert inspect(DATA / name) == expected
    assert expected["format_version"] == 1


@pytest.mark.parametrize("name", sorted(MAKE_GOLDEN.GOLDEN))
def test_writing_the_golden_value_reproduces_the_file(name: str, tmp_path: pathlib.Path) -> None:
    # The writer's fast paths must not drift from format version 1, byte for byte.
    path = tmp_path / name
    dump(MAKE_GOLDEN.expected_value(), path, compress=MAKE_GOLDEN.GOLDEN[name])
    assert path.read_bytes() == (DATA / name).read_bytes()
