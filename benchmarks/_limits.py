"""The physical references ("limits") the benchmark rows are held against.

Each is the least work any library could do for the row: one ``write`` of the
buffer, one ``readinto`` a fresh array, a ``memcpy`` into a fresh array. They
are timed in the same run, on the same file system, as the two libraries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WRITE = "one write of the buffer to a new file"
READINTO = "one readinto a fresh array of the same bytes"
MEMCPY = "one memcpy of the array into a fresh array"


def write_once(buffer: Any, path: str | Path) -> None:
    """One unbuffered ``write`` of ``buffer`` (bytes or a contiguous array) to a new file."""
    with open(path, "wb", buffering=0) as file:
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view):  # a single write may be short above 2 GiB
            written += file.write(view[written:])


def readinto_fresh(path: str | Path, nbytes: int) -> Any:
    """The first ``nbytes`` of ``path`` read into a freshly allocated array."""
    import numpy as np

    out = np.empty(nbytes, dtype=np.uint8)
    view = memoryview(out)
    with open(path, "rb", buffering=0) as file:
        done = 0
        while done < nbytes:
            got = file.readinto(view[done:])
            if not got:
                raise EOFError(f"{path} has fewer than {nbytes} bytes")
            done += got
    return out


def memcpy_fresh(array: Any) -> Any:
    """A copy of ``array`` into freshly allocated memory (page faults included, as in a load)."""
    import numpy as np

    out = np.empty_like(array)
    np.copyto(out, array)
    return out
