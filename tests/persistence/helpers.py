"""Comparison helpers shared by the persistence tests."""

from __future__ import annotations

import json
import os
import pathlib
import struct
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np

from joblite._core import fileformat
from joblite._core._sections import checksum

HEADER = struct.Struct("<8sHHIQQ")


def assert_same(loaded: Any, expected: Any) -> None:
    """Equal values, and for arrays also equal dtype (byte order included) and shape."""
    assert type(loaded) is type(expected) or (
        isinstance(expected, np.ndarray) and isinstance(loaded, np.ndarray)
    ), (type(loaded), type(expected))
    if isinstance(expected, np.ndarray):
        assert loaded.dtype == expected.dtype
        assert loaded.dtype.byteorder == expected.dtype.byteorder
        assert loaded.shape == expected.shape
        if expected.dtype.hasobject:
            for a, b in zip(loaded.ravel(), expected.ravel(), strict=True):
                assert_same(a, b)
        else:
            # Random bytes viewed as long double include invalid x87 encodings; numpy 2.2
            # (the last for Python 3.10) warns comparing them. The bytes check is stricter.
            with np.errstate(invalid="ignore"):
                np.testing.assert_array_equal(loaded, expected, strict=True)
            # Compare raw bytes too: NaN payloads, -0.0, padding of structured dtypes.
            assert (
                np.ascontiguousarray(loaded).tobytes() == np.ascontiguousarray(expected).tobytes()
            )
        if expected.ndim > 1 and expected.flags.f_contiguous and not expected.flags.c_contiguous:
            assert loaded.flags.f_contiguous
    elif isinstance(expected, dict):
        assert list(loaded) == list(expected)
        for key in expected:
            assert_same(loaded[key], expected[key])
    elif isinstance(expected, (list, tuple)):
        assert len(loaded) == len(expected)
        for a, b in zip(loaded, expected, strict=True):
            assert_same(a, b)
    elif isinstance(expected, float) and expected != expected:
        assert loaded != loaded
    else:
        assert loaded == expected


# Every codec joblite ships: the contract tests run over all of them.
ALL_CODECS = ["bz2", "gzip", "lz4", "lzma", "xz", "zlib", "zstd"]


def file_layout(data: bytes) -> tuple[int, dict[str, Any]]:
    """Where the manifest of a joblite file ends, and the manifest."""
    manifest_length = HEADER.unpack(data[: HEADER.size])[4]
    manifest = json.loads(data[HEADER.size : HEADER.size + manifest_length])
    return HEADER.size + manifest_length, manifest


def rewrite_manifest(data: bytes, change: Any) -> bytes:
    """Alter the manifest and recompute its checksum: a well-formed but wrong file."""
    manifest_end, manifest = file_layout(data)
    change(manifest)
    manifest_bytes = json.dumps(manifest).encode()
    version = manifest.get("format_version", 1)
    head = HEADER.pack(fileformat.MAGIC, version, 0, 0, len(manifest_bytes), 0)[:24]
    header = head + struct.pack("<Q", checksum(head + manifest_bytes))
    rest = data[manifest_end:]
    if manifest["codec"] is None:  # keep the aligned data start where it was
        old_start = fileformat._align(manifest_end)
        new_start = fileformat._align(len(header) + len(manifest_bytes))
        rest = b"\0" * (new_start - len(header) - len(manifest_bytes)) + data[old_start:]
    return header + manifest_bytes + rest


def run_script(script: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (dedented) in a fresh interpreter with ``tmp_path`` as its argument."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
