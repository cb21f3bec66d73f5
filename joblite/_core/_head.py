"""The head of a joblite file: the 32-byte header and the manifest after it.

Written by :func:`encode_head` (or, for a file holding only a pickle stream,
formatted directly by :func:`plain_small_file`), read back and checked by
:func:`read_layout` from a file object or :func:`whole_layout` from a small
file read whole. The byte layout is documented in :mod:`joblite._core.fileformat`.

Example::

    >>> head = encode_head({"format_version": 1})
    >>> head[:8], len(head) == HEADER.size + len(b'{"format_version":1}')
    (b'\\x89JOBLITE', True)
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

from joblite._core import _sections
from joblite._core._manifest import Layout, parse_manifest, parse_plain_manifest
from joblite._core._reading import read_exact
from joblite.exceptions import (
    CorruptFileError,
    ForeignFileError,
    InvalidFileError,
    UnsupportedVersionError,
)

__all__ = [
    "ALIGNMENT",
    "ARRAYS_WRITABLE",
    "BASE_VERSION",
    "FILTERS_VERSION",
    "FORMAT_VERSION",
    "HEADER",
    "MAGIC",
    "align",
    "encode_head",
    "plain_small_file",
    "read_layout",
    "type_name",
    "whole_layout",
]

MAGIC = b"\x89JOBLITE"
FORMAT_VERSION = 2  # the newest version this joblite reads and writes
# What a file needs: version 1 unless an array is filtered (see _filters).
BASE_VERSION = 1
FILTERS_VERSION = 2
ALIGNMENT = 64
HEADER = struct.Struct("<8sHHIQQ")
_HEADER_START = struct.Struct("<8sHHIQ")  # the header before its checksum
_CHECKSUM = struct.Struct("<Q")
ARRAYS_WRITABLE = 1
_MAX_MANIFEST = 256 * 1024 * 1024
# Built once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)

# First bytes of files joblib writes: a pickle, or one of its compressors' streams.
_JOBLIB_SIGNATURES = {
    b"\x80": "an uncompressed joblib or pickle file",
    b"\x78": "a zlib-compressed joblib file",
    b"ZF": "a zlib-compressed joblib file (old format)",
    b"\x1f\x8b": "a gzip-compressed joblib file",
    b"BZh": "a bz2-compressed joblib file",
    b"\xfd7zXZ": "an xz-compressed joblib file",
    b"\x5d\x00\x00": "an lzma-compressed joblib file",
    b"\x04\x22\x4d\x18": "an lz4-compressed joblib file",
    b"\x28\xb5\x2f\xfd": "a zstd-compressed file",
}


def align(offset: int) -> int:
    """``offset`` rounded up to the next multiple of ``ALIGNMENT``."""
    return -(-offset // ALIGNMENT) * ALIGNMENT


def type_name(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def encode_head(manifest: dict[str, object]) -> bytes:
    """The header and the manifest, ready to write."""
    manifest_bytes = _ENCODER.encode(manifest).encode()
    version = int(manifest["format_version"])  # type: ignore[call-overload]
    header_start = _HEADER_START.pack(MAGIC, version, 0, 0, len(manifest_bytes))
    manifest_checksum = _sections.checksum(header_start + manifest_bytes)
    return header_start + _CHECKSUM.pack(manifest_checksum) + manifest_bytes


# The manifest of a file holding only a pickle stream (no arrays, no codec),
# laid out as encode_head would write it; formatted directly because Memory
# writes one per cache miss (a test checks both agree, and _manifest's
# parse_plain_manifest reads this form back without the JSON decoder).
_PLAIN_MANIFEST = (
    b'{"format_version":%d,"object_type":%s,"protocol":%d,"codec":null,"level":0,'
    b'"chunk_size":null,"pickle":{"nbytes":%d,"offset":0,"checksum":"%016x"},'
    b'"arrays":[],"arrays_nbytes":0,"total_nbytes":%d,"data_nbytes":%d}'
)


def plain_small_file(obj: object, data: bytes, protocol: int) -> bytes:
    """The whole file of a small object without arrays, uncompressed."""
    nbytes = len(data)
    checksum = _sections.section_checksum(memoryview(data))
    manifest = _PLAIN_MANIFEST % (
        BASE_VERSION,
        _encoded_type_name(obj),
        protocol,
        nbytes,
        checksum,
        nbytes,
        nbytes,
    )
    header_start = _HEADER_START.pack(MAGIC, BASE_VERSION, 0, 0, len(manifest))
    head_size = HEADER.size + len(manifest)
    return b"".join(
        (
            header_start,
            _CHECKSUM.pack(_sections.checksum(header_start + manifest)),
            manifest,
            bytes(align(head_size) - head_size),
            data,
        )
    )


# The JSON of the object type names small files were written for: encoding one
# costs more than formatting the rest of the manifest (a Memory miss writes one).
_TYPE_NAMES: dict[str, bytes] = {}
_MAX_TYPE_NAMES = 256


def _encoded_type_name(obj: object) -> bytes:
    name = type_name(obj)
    encoded = _TYPE_NAMES.get(name)
    if encoded is None:
        if len(_TYPE_NAMES) >= _MAX_TYPE_NAMES:
            _TYPE_NAMES.clear()
        encoded = _TYPE_NAMES[name] = _ENCODER.encode(name).encode()
    return encoded


def _foreign_file_error(head: bytes) -> InvalidFileError:
    for signature, description in _JOBLIB_SIGNATURES.items():
        if head.startswith(signature):
            return ForeignFileError(
                f"not a joblite file: it looks like {description}; "
                "load it with joblib.load (or pickle) if you trust it"
            )
    return InvalidFileError("not a joblite file: the magic bytes are missing")


def _check_header(head: bytes) -> tuple[int, int, int, int]:
    """The header's version, flags, manifest length and manifest checksum, checked."""
    if not head.startswith(MAGIC[: len(head)]) or not head:
        raise _foreign_file_error(head) if head else InvalidFileError("not a joblite file: empty")
    if len(head) < HEADER.size:
        raise CorruptFileError(f"truncated joblite file: only {len(head)} header bytes")
    _, version, flags, _, manifest_length, expected = HEADER.unpack(head)
    if version > FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"the file uses joblite format version {version}; this joblite reads versions "
            f"up to {FORMAT_VERSION}: upgrade joblite to load it"
        )
    if version < 1 or flags & ~ARRAYS_WRITABLE or manifest_length > _MAX_MANIFEST:
        raise CorruptFileError("corrupt joblite header (bad version, flags or manifest size)")
    return version, flags, manifest_length, expected


def _layout(head: bytes, manifest_bytes: bytes, version: int, flags: int, expected: int) -> Layout:
    if _sections.checksum(head[:24] + manifest_bytes) != expected:
        raise CorruptFileError("corrupt joblite file: the manifest checksum does not match")
    manifest_end = HEADER.size + len(manifest_bytes)
    layout = parse_plain_manifest(manifest_bytes, manifest_end)
    if layout is None:
        layout = parse_manifest(manifest_bytes, manifest_end)
    if layout.manifest["format_version"] != version:
        raise CorruptFileError("corrupt joblite file: the header and manifest versions differ")
    layout.arrays_writable = bool(flags & ARRAYS_WRITABLE)
    if layout.arrays_writable:
        for section in layout.sections[1:]:
            section.checksum = None
    return layout


def read_layout(fileobj: BinaryIO) -> Layout:
    """Read and check the header and manifest at ``fileobj``'s position; it is left after them."""
    head = read_exact(fileobj, HEADER.size, what="header", truncated_ok=True)
    version, flags, manifest_length, expected = _check_header(head)
    manifest_bytes = read_exact(fileobj, manifest_length, what="manifest")
    return _layout(head, manifest_bytes, version, flags, expected)


def whole_layout(whole: bytes) -> Layout:
    """:func:`read_layout` of a file held whole in memory (no file object to go through)."""
    head = whole[: HEADER.size]
    version, flags, manifest_length, expected = _check_header(head)
    manifest_bytes = whole[HEADER.size : HEADER.size + manifest_length]
    if len(manifest_bytes) != manifest_length:
        raise CorruptFileError(
            f"truncated joblite file: the manifest needs {manifest_length} bytes, "
            f"only {len(manifest_bytes)} remain"
        )
    return _layout(head, manifest_bytes, version, flags, expected)
