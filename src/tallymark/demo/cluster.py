"""The local Dask cluster behind ``tallymark demo --backend dask``.

Two worker processes with one thread each on loopback, no dashboard: the smallest cluster on which
the jobs really leave the demo's process (a script job runs as a child of a worker; the built-in
XGBoost trainer trains with ``xgboost.dask`` across both workers). The cluster lives as long as the
``with`` block and is closed even when a step fails, so the demo never leaves worker processes behind.

The workers' own output (Dask's lifecycle lines, XGBoost's "got rank" lines) would tear the demo's
live progress display, so the worker processes are started with their stdout and stderr on a log
file; the jobs' output reaches the store anyway, through each job's log.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["WORKERS", "local_cluster"]

WORKERS = 2


@contextmanager
def _inherited_output(log: Path) -> Iterator[None]:
    """While inside, file descriptors 1 and 2 are ``log``: what child processes started now inherit."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = (os.dup(1), os.dup(2))
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@contextmanager
def local_cluster(log: Path, workers: int = WORKERS) -> Iterator[Any]:
    """A ``distributed.Client`` on a fresh ``LocalCluster`` of ``workers`` processes whose output
    goes to ``log``. Start it before any live display: the display is paused meanwhile."""
    from tallymark.extras import require

    require("distributed", "jobs", "tallymark demo --backend dask")
    from distributed import Client, LocalCluster

    with _inherited_output(log), warnings.catch_warnings():
        # Another cluster on this machine may hold the default HTTP port; ours takes a free one.
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,  # logging.ERROR
        )
    try:
        client = Client(cluster)
        try:
            client.wait_for_workers(workers, timeout=60)
            yield client
        finally:
            client.close()
    finally:
        cluster.close()
