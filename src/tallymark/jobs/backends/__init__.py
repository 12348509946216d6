"""Where a job runs: the backend interface, and how a ``backend=`` argument picks one.

A backend takes a submitted job (its row exists in the store, status ``InProgress``) and runs it
to its end, reporting through a :class:`~tallymark.jobs.sink.StoreSink`::

    class Backend(Protocol):
        name: str                                      # recorded as the job's backend
        def submit(self, spec: JobSpec, job_root: Path, settings: dict) -> JobHandle: ...

    class JobHandle(Protocol):
        def poll(self) -> bool: ...                    # True once the job's run has ended here
        def wait(self, timeout: float | None = None) -> bool: ...
        def stop(self) -> None: ...                    # best effort; job.stop() goes through the store

``settings`` is :func:`tallymark.jobs.sink.sink_settings` (picklable). A backend normally runs
:func:`tallymark.jobs.supervisor.supervise` where the job runs (the local backend: in a detached
process; Dask: on a worker).

``backend="local"`` (default) is :class:`~tallymark.jobs.backends.local.LocalBackend`;
``"dask://HOST:PORT"``, ``"dask"`` or a ``distributed.Client`` are
``tallymark.jobs.backends.dask.DaskBackend(target)`` (imported only then).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from tallymark.jobs.spec import JobSpec

__all__ = ["Backend", "JobHandle", "get_backend"]


class JobHandle(Protocol):
    def poll(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...

    def stop(self) -> None: ...


class Backend(Protocol):
    name: str

    def submit(self, spec: JobSpec, job_root: Path, settings: dict[str, Any]) -> JobHandle: ...


def get_backend(backend: Any) -> Backend:
    """The backend a job's ``backend=`` argument names."""
    if backend is None or backend == "local":
        from tallymark.jobs.backends.local import LocalBackend

        return LocalBackend()
    if isinstance(backend, str) and not backend.startswith("dask"):
        raise ValueError(f"backend {backend!r}: 'local', 'dask://HOST:PORT' or a distributed.Client")
    if not isinstance(backend, str) and type(backend).__module__.split(".")[0] != "distributed":
        raise ValueError(f"backend {backend!r}: 'local', 'dask://HOST:PORT' or a distributed.Client")
    import importlib

    try:
        dask_backend = importlib.import_module("tallymark.jobs.backends.dask")
    except ImportError as exc:
        raise ImportError(
            f"the Dask backend needs dask[distributed] (pip install 'tallymark[jobs]'): {exc}"
        ) from exc
    made: Backend = dask_backend.DaskBackend(backend)
    return made
