"""The physical references ("limits") the benchmark rows are held against.

Each is the least work any library could do for the row: one ``write`` of the
buffer, one ``readinto`` a fresh array, a ``memcpy`` into a fresh array, one
``mmap``, pickling plus one write. They are timed in the same run, on the
same file system, as the two libraries. (The codec alone, the limit of a
compressed file, is in ``bench_persistence``: it follows the filters joblite
chose for that file.)
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

WRITE = "one write of the buffer to a new file"
READINTO = "one readinto a fresh array of the same bytes"
MEMCPY = "one memcpy of the array into a fresh array"
MMAP = "one read-only numpy.memmap of the file"
PICKLE_WRITE = "pickle.dumps + one write to a new file"
READ_UNPICKLE = "one read of the file + pickle.loads"


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


def mmap_file(path: str | Path) -> Any:
    import numpy as np

    return np.memmap(path, dtype=np.uint8, mode="r")


def pickle_write(value: object, path: str | Path) -> None:
    write_once(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), path)


def read_unpickle(path: str | Path) -> object:
    with open(path, "rb") as file:
        return pickle.loads(file.read())
