"""The manifest of a joblite file: decoded and checked against its schema before use.

A crafted manifest must give :class:`~joblite.exceptions.CorruptFileError`,
never a ``RecursionError``, a numpy error or a crash in whoever reads it
(``inspect``, the command line), so every field the format defines is checked
for type and range here, once. Unknown extra keys are kept (a newer writer of
the same version may add some).

Example::

    >>> parse_manifest(b'{"codec": 5}', 0)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    joblite.exceptions.CorruptFileError: corrupt joblite file: malformed manifest ...
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from joblite._core._filters import FILTERS
from joblite._core._sections import Section
from joblite.exceptions import CorruptFileError

__all__ = ["Layout", "check_array_sizes", "parse_manifest", "parse_plain_manifest"]

_DECODER = json.JSONDecoder()
# Deeper than any manifest joblite writes (a structured dtype nests a few levels per
# nested field); checked before decoding, which would otherwise recurse unboundedly.
MAX_DEPTH = 32
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_MAX_SIZE = 1 << 62  # no section size or offset comes close; JSON allows any integer
_MAX_DIMENSIONS = 64  # numpy's own limit
_CHECKSUM = re.compile(r"[0-9a-f]{16}")


@dataclass
class Layout:
    """The parts of a manifest the reader relies on, checked once."""

    manifest: dict[str, Any]
    manifest_end: int  # bytes consumed by header + manifest
    codec: str | None
    chunk_size: int
    data_nbytes: int  # uncompressed files: bytes from the aligned data start to the end
    sections: list[Section]  # views unset; nbytes, offset, checksum, array info
    arrays_writable: bool = False  # ARRAYS_WRITABLE: array checksums not verified


def _too_deep(data: bytes) -> bool:
    # Fast path: a manifest without many brackets cannot nest deeply (Memory's
    # small entries have six); only then are strings stripped and depth counted.
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > MAX_DEPTH:
            return True
    return False


def parse_manifest(data: bytes, manifest_end: int) -> Layout:
    """Decode and validate a manifest; CorruptFileError says what is wrong."""
    if _too_deep(data):
        raise CorruptFileError(
            f"corrupt joblite file: malformed manifest (nested over {MAX_DEPTH} levels)"
        )
    try:
        manifest = _DECODER.decode(data.decode())
        return _layout(manifest, manifest_end)
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptFileError(f"corrupt joblite file: malformed manifest ({error})") from None


# The manifest _head.plain_small_file writes for a file holding only a pickle stream,
# byte for byte: a type name without escapes, integers as JSON writes them.
_PLAIN = re.compile(
    rb'\{"format_version":1,"object_type":"([^"\\\x00-\x1f]*)","protocol":(0|[1-9][0-9]{0,2}),'
    rb'"codec":null,"level":0,"chunk_size":null,"pickle":\{"nbytes":(0|[1-9][0-9]{0,18}),'
    rb'"offset":0,"checksum":"([0-9a-f]{16})"\},"arrays":\[\],"arrays_nbytes":0,'
    rb'"total_nbytes":(0|[1-9][0-9]{0,18}),"data_nbytes":(0|[1-9][0-9]{0,18})\}'
)


def parse_plain_manifest(data: bytes, manifest_end: int) -> Layout | None:
    """:func:`parse_manifest` of the one manifest shape small files without arrays have.

    The layout and manifest :func:`parse_manifest` would give, without the JSON
    decoder and schema walk (a third of a small load: 3 of 9 µs); None for any
    other manifest, or one that fails a check, which then takes the general path.
    """
    match = _PLAIN.fullmatch(data)
    if match is None:
        return None
    raw_type, protocol, nbytes, digest, total, data_nbytes = match.groups()
    try:
        object_type = raw_type.decode()
    except UnicodeDecodeError:
        return None  # not UTF-8: parse_manifest says so
    size = int(nbytes)
    end = int(data_nbytes)
    if int(total) != size or not size <= end <= _MAX_SIZE:
        return None
    manifest: dict[str, Any] = {
        "format_version": 1,
        "object_type": object_type,
        "protocol": int(protocol),
        "codec": None,
        "level": 0,
        "chunk_size": None,
        "pickle": {"nbytes": size, "offset": 0, "checksum": digest.decode()},
        "arrays": [],
        "arrays_nbytes": 0,
        "total_nbytes": size,
        "data_nbytes": end,
    }
    section = Section(None, None, size, 0, int(digest, 16))
    return Layout(manifest, manifest_end, None, 0, end, [section])


# JSON decodes to exact dicts, lists, strs, ints (never bools: those are their own
# type here), floats and None, so exact type tests suffice; they keep a Memory
# hit's check cheap (a two-array manifest: 1.4x its JSON decoding, 27 vs 19 µs on a
# busy 2-vCPU VM, against 2.6x with isinstance-based helpers).


def _object(value: object, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise TypeError(f"{what} must be an object, got {type(value).__name__}")
    return value


def _field(mapping: dict[str, Any], key: str, kind: type) -> Any:
    value = mapping[key]
    if type(value) is not kind:
        raise TypeError(f"{key!r} has the wrong type {type(value).__name__}")
    return value


def _size(mapping: dict[str, Any], key: str) -> int:
    value = mapping[key]
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise ValueError(f"{key!r} must be a size, got {value!r}")
    return value


def _check_dtype(description: object, depth: int = 0) -> None:
    """A dtype as the writer records it: numpy's ``dtype.str`` or a field list."""
    if isinstance(description, str):
        return
    if not isinstance(description, list) or depth > 8:
        raise TypeError("'dtype' must be a string or a list of fields")
    for field in description:
        if not isinstance(field, list) or not 2 <= len(field) <= 3:
            raise TypeError("a dtype field must be [name, format] or [name, format, shape]")
        name = field[0]
        if not isinstance(name, str) and not (
            isinstance(name, list) and len(name) == 2 and all(isinstance(n, str) for n in name)
        ):
            raise TypeError("a dtype field name must be a string or [title, name]")
        _check_dtype(field[1], depth + 1)
        if len(field) == 3:
            _check_shape(field[2])


def _check_shape(shape: object) -> list[int]:
    if not isinstance(shape, list) or len(shape) > _MAX_DIMENSIONS:
        raise TypeError(f"a shape must be a list of at most {_MAX_DIMENSIONS} sizes")
    for size in shape:
        if type(size) is not int or not 0 <= size <= _MAX_SIZE:
            raise ValueError(f"bad size {size!r} in a shape")
    return shape


def _section(entry: dict[str, Any], array: object, uncompressed: bool) -> Section:
    nbytes = _size(entry, "nbytes")
    offset = checksum = None
    if uncompressed:
        offset = _size(entry, "offset")
        digest = _field(entry, "checksum", str)
        if not _CHECKSUM.fullmatch(digest):
            raise ValueError(f"bad checksum {digest!r}")
        checksum = int(digest, 16)
    return Section(None, array, nbytes, offset, checksum)


def _filter(entry: dict[str, Any], version: int, uncompressed: bool) -> str | None:
    """An array's filter: format version 2 and a compressed file only, from a closed set."""
    name = entry.get("filter")
    if name is None:
        return None
    if version < 2 or uncompressed:
        raise ValueError("'filter' needs format version 2 and a codec")
    if name not in FILTERS:
        raise ValueError(f"unknown filter {name!r}")
    return str(name)


def _layout(value: object, manifest_end: int) -> Layout:
    manifest = _object(value, "the manifest")
    version = _size(manifest, "format_version")
    _field(manifest, "object_type", str)
    _size(manifest, "protocol")
    _size(manifest, "level")
    codec = manifest["codec"]
    if codec is not None and type(codec) is not str:
        raise TypeError(f"'codec' must be a string or null, got {codec!r}")
    uncompressed = codec is None
    sections = [_section(_object(manifest["pickle"], "'pickle'"), None, uncompressed)]
    for item in _field(manifest, "arrays", list):
        entry = _object(item, "an array entry")
        _check_dtype(entry["dtype"])
        shape = _check_shape(entry["shape"])
        order = _field(entry, "order", str)
        if order not in ("C", "F"):
            raise ValueError(f"'order' must be 'C' or 'F', got {order!r}")
        section = _section(entry, (shape, order), uncompressed)
        section.filter = _filter(entry, version, uncompressed)
        sections.append(section)
    if _size(manifest, "arrays_nbytes") != sum(s.nbytes for s in sections[1:]):
        raise ValueError("'arrays_nbytes' is not the sum of the arrays' sizes")
    if _size(manifest, "total_nbytes") != sum(s.nbytes for s in sections):
        raise ValueError("'total_nbytes' is not the sum of the sections' sizes")
    chunk_size = data_nbytes = 0
    if uncompressed:
        data_nbytes = _size(manifest, "data_nbytes")
        if any(s.offset + s.nbytes > data_nbytes for s in sections):  # type: ignore[operator]
            raise ValueError("a section ends past data_nbytes")
    else:
        chunk_size = _size(manifest, "chunk_size")
        if not 0 < chunk_size < 1 << 32:  # a frame records a chunk's size in 32 bits
            raise ValueError(f"'chunk_size' must be from 1 to 2**32 - 1, got {chunk_size}")
    return Layout(manifest, manifest_end, codec, chunk_size, data_nbytes, sections)


def _numpy_dtype(description: Any) -> Any:
    import numpy as np

    def fields(items: list[Any]) -> list[tuple[Any, ...]]:
        return [
            (
                tuple(field[0]) if isinstance(field[0], list) else field[0],
                fields(field[1]) if isinstance(field[1], list) else field[1],
                *([tuple(field[2])] if len(field) == 3 else []),
            )
            for field in items
        ]

    return np.dtype(description if isinstance(description, str) else fields(description))


def check_array_sizes(layout: Layout) -> None:
    """Each array's ``nbytes`` must be its ``shape`` times its ``dtype``'s item size.

    Needs numpy, so only loads call it: a mapped array's bytes are not
    checksummed, and a size that disagrees would fail deep inside numpy.
    """
    for index, (entry, section) in enumerate(
        zip(layout.manifest["arrays"], layout.sections[1:], strict=True)
    ):
        try:
            dtype = _numpy_dtype(entry["dtype"])
        except (TypeError, ValueError, KeyError, OverflowError) as error:
            raise CorruptFileError(
                f"corrupt joblite file: array {index} has an unreadable dtype ({error})"
            ) from None
        if dtype.hasobject:  # object arrays are pickled in-band, never as raw bytes
            raise CorruptFileError(f"corrupt joblite file: array {index} has an object dtype")
        itemsize = dtype.itemsize
        if math.prod(entry["shape"]) * itemsize != section.nbytes:
            raise CorruptFileError(
                f"corrupt joblite file: array {index} declares {section.nbytes} bytes, "
                f"its shape and dtype need {math.prod(entry['shape']) * itemsize}"
            )
