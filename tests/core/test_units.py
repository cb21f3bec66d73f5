from __future__ import annotations

import pytest

from joblite._core.units import parse_bytes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (0, 0),
        (123, 123),
        ("1M", 1024**2),
        ("10m", 10 * 1024**2),
        ("1G", 1024**3),
        ("1.5k", 1536),
        ("512KiB", 512 * 1024),
        ("2 MB", 2 * 1024**2),
        ("77", 77),
    ],
)
def test_parse_bytes(value: object, expected: int | None) -> None:
    assert parse_bytes(value, name="max_nbytes") == expected


@pytest.mark.parametrize("bad", ["ten", "-1", "5X", "", "1.2.3M"])
def test_unreadable_sizes_raise_value_error_naming_the_argument(bad: str) -> None:
    with pytest.raises(ValueError, match="bytes_limit must look like"):
        parse_bytes(bad, name="bytes_limit")


def test_negative_and_wrong_types() -> None:
    with pytest.raises(ValueError, match="max_nbytes must be >= 0"):
        parse_bytes(-5, name="max_nbytes")
    for bad in (True, 1.5, [1]):
        with pytest.raises(TypeError, match="max_nbytes must be a number of bytes"):
            parse_bytes(bad, name="max_nbytes")
