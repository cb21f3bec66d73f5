"""A Parallel call inside each backend's workers, run as a script.

``python -m tests.parallel._nested_scenarios OUTER INNER`` prints one line per
outer task: the inner results, or the inner error's type; warnings go to
stderr (every one: workers write there too). With ``dask`` on either side a local cluster is started
and made the default client of this process (its workers have none). Not
collected by pytest (leading underscore).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from math import sqrt
from typing import Any

from joblite.parallel import Parallel, delayed


def inner(backend: str) -> str:
    warnings.simplefilter("always")  # spawned workers start with the default filters
    try:
        results = Parallel(n_jobs=2, backend=backend)(delayed(sqrt)(0.25) for _ in range(3))
    except Exception as exc:
        return type(exc).__name__
    return repr(results)


def main(outer: str, inner_backend: str) -> None:
    warnings.simplefilter("always")
    with contextlib.ExitStack() as stack:
        if "dask" in (outer, inner_backend):
            from distributed import Client, LocalCluster

            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2,
                    threads_per_worker=1,
                    processes=False,
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                )
            )
            stack.enter_context(Client(cluster))
        lines: Any = Parallel(n_jobs=2, backend=outer)(
            delayed(inner)(inner_backend) for _ in range(2)
        )
        for line in lines:
            print(line, flush=True)
    print("end of script", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
