"""End to end: a cached function on Dask worker processes sharing one cache on S3."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from joblite import Memory, Parallel, delayed
from joblite.memory import FsspecStore

pytest.importorskip("distributed", reason="needs the dask extra")
pytest.importorskip("s3fs", reason="the S3 tests need the test extra (s3fs, moto[server])")


def simulate(x: int, log: str) -> int:
    # O_APPEND writes of a few bytes do not interleave: one line per computation.
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x * x


@pytest.mark.slow
def test_each_argument_is_computed_once_across_workers(s3_server: str, tmp_path: Path) -> None:
    from ..parallel._tasks import dask_test_client

    url = f"{s3_server}/{uuid.uuid4().hex}"
    log = tmp_path / "computed"
    log.touch()
    slow = Memory(url, verbose=0).cache(simulate, ignore=["log"])
    # Every argument twice: the two worker processes race for the same entries.
    args = [x for x in range(6) for _ in range(2)]
    try:
        with dask_test_client(processes=True) as client, client.as_current():
            first = Parallel(backend="dask")(delayed(slow)(x, str(log)) for x in args)
            second = Parallel(backend="dask")(delayed(slow)(x, str(log)) for x in args)
        assert first == second == [x * x for x in args]
        assert sorted(int(line) for line in log.read_text().split()) == list(range(6))
    finally:
        FsspecStore(url).delete("")
