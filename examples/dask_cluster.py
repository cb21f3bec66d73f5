"""Run Parallel tasks on a dask distributed cluster.

Everything inside ``parallel_config(backend="dask")`` runs on the cluster of
the current ``distributed.Client``: code written for joblite (or joblib,
scikit-learn's ``n_jobs``) needs no change. Here the script starts a small
local cluster itself; against a real one, connect with
``Client("scheduler-host:8786")`` instead. Needs ``pip install "joblite[dask]"``.

    python examples/dask_cluster.py

``JOBLITE_EXAMPLE_SIZE=small`` runs fewer, smaller tasks.
"""

from __future__ import annotations

import os

import numpy as np
from distributed import Client, LocalCluster

from joblite import Parallel, delayed, parallel_config

SMALL = os.environ.get("JOBLITE_EXAMPLE_SIZE") == "small"


def estimate_pi(seed: int, samples: int) -> float:
    """Monte Carlo estimate of pi from ``samples`` random points."""
    points = np.random.default_rng(seed).random((samples, 2))
    return 4.0 * float((np.square(points).sum(axis=1) <= 1.0).mean())


def main() -> None:
    n_tasks, samples = (8, 10_000) if SMALL else (200, 2_000_000)
    # processes=False: one worker inside this process, talking to the scheduler in
    # memory (inproc://, no network port); no dashboard
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        workers = len(client.scheduler_info()["workers"])
        with parallel_config(backend="dask"):
            estimates = Parallel()(delayed(estimate_pi)(seed, samples) for seed in range(n_tasks))
    print(f"{n_tasks} tasks on a dask cluster of {workers} worker(s)")
    print(f"pi is about {np.mean(estimates):.4f}")


if __name__ == "__main__":
    main()
