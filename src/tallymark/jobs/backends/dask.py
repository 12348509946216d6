"""The Dask backend: a job's supervisor runs as a task on a worker; its script, as a child of it.

    job = TrainingJob(algorithm="xgboost", hyperparameters={...}, backend="dask://10.0.0.5:8786")
    job = TrainingJob(entry_point="train.py", backend=client)     # a distributed.Client

The task calls :func:`tallymark.jobs.supervisor.supervise` on the worker, with a
:class:`~tallymark.jobs.sink.StoreSink` built there from picklable settings, so the job's inputs,
attempts, outputs and final status are handled exactly as on the local backend. A running Dask
task cannot be interrupted (dask/distributed#4694); the script is a child process of the task, so
``stop()`` and ``max_run`` end the child (SIGTERM to its group, grace, SIGKILL) and the task then
returns. The task secedes from the worker's thread pool while the child runs, so the worker keeps
its threads for other work — the built-in XGBoost trainer's own ``xgboost.dask`` tasks included:
for ``algorithm="xgboost"`` the child gets ``TALLYMARK_DASK_SCHEDULER`` and trains across the
cluster's workers.

The task is submitted with ``fire_and_forget``: like a local job, it outlives the process that
submitted it. Dask re-runs a task whose worker died; the job does not run twice: the re-run ends
what the lost worker left running (on the same machine) and fails the job, saying so.
Where the workers run on other machines, give the job an ``s3://`` ``output_path``
and a ``TALLYMARK_URL`` server (the worker's embedded home is not the submitter's).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from tallymark.jobs.spec import FINAL_STATUSES, JobSpec
from tallymark.settings import DASK_SCHEDULER_ENV

__all__ = ["SCHEDULER_ENV", "DaskBackend", "DaskHandle", "run_on_worker"]

SCHEDULER_ENV = DASK_SCHEDULER_ENV
CONNECT_TIMEOUT = 30  # seconds to reach the scheduler


def _address(target: str) -> str:
    """``dask://HOST:PORT`` → ``tcp://HOST:PORT`` (``dask+tls://`` → ``tls://``)."""
    if target.startswith("dask+tls://"):
        return "tls://" + target[len("dask+tls://") :]
    if target.startswith("dask://"):
        rest = target[len("dask://") :]
        if not rest or "/" in rest:
            raise ValueError(f"backend {target!r}: write dask://HOST:PORT")
        return "tcp://" + rest
    raise ValueError(f"backend {target!r}: write dask://HOST:PORT, or pass a distributed.Client")


def _worker_root(given: str, name: str) -> Path:
    """The job's root on this worker: the submitter's path when it can be used here (same machine
    or a shared file system), else this worker's own ``TALLYMARK_HOME/jobs/NAME``."""
    root = Path(given)
    try:
        root.mkdir(parents=True, exist_ok=True)
        if os.access(root, os.W_OK):
            return root
    except OSError:
        pass
    from tallymark.jobs.contract import job_root

    return job_root(name)


def _end_orphan(info: dict[str, Any], name: str) -> bool:
    """Kill the process group a lost worker left running, when it is on this machine and is this
    job's (its environment names the job: a pid reused by another process is left alone)."""
    pid, host = info.get("pid"), info.get("host")
    if not isinstance(pid, int) or pid <= 1 or host != socket.gethostname():
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    if f'"job_name": "{name}"'.encode() not in environ:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return True
        time.sleep(1.0)
    return True


def _rerun_after_lost_worker(sink: Any, spec: JobSpec) -> dict[str, Any] | None:
    """Dask re-runs a task whose worker died. A job must not run twice: if this job has started
    before, end what the lost worker left behind and record the loss instead."""
    info = sink.transport.call("get_job", workspace=spec.workspace, name=spec.name)
    if info.get("started_at") is None and info.get("status") not in FINAL_STATUSES:
        return None
    if info.get("status") in FINAL_STATUSES:
        return {"status": info["status"]}
    ended = _end_orphan(info, spec.name)
    final = {
        "status": "Failed",
        "secondary_status": "Failed",
        "ended_at": int(time.time() * 1000),
        "exit_code": None,
        "failure_reason": "the Dask worker running the job was lost"
        + ("; its script was ended" if ended else "")
        + " (the job is not run again: start a new one)",
    }
    sink.status(**final)
    return final


def run_on_worker(spec_data: dict[str, Any], root: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The task: supervise the job here, to its end (returns the final status fields)."""
    from tallymark.jobs.sink import StoreSink
    from tallymark.jobs.supervisor import supervise

    spec = JobSpec.from_dict(spec_data)
    sink = StoreSink(settings, spec.workspace, spec.name)
    try:
        again = _rerun_after_lost_worker(sink, spec)
    except Exception:
        sink.close_transport()
        raise
    if again is not None:
        sink.close_transport()
        return again
    seceded = False
    try:
        from distributed import secede

        secede()  # the worker's thread slot is free for other tasks while the child runs
        seceded = True
    except (ImportError, ValueError):  # not inside a worker (called directly): nothing to free
        pass
    try:
        return supervise(spec, _worker_root(root, spec.name), sink)
    finally:
        sink.close_transport()
        if seceded:
            from distributed import rejoin

            rejoin()


class DaskHandle:
    """A job's task on the cluster. ``poll`` reports a task that died without recording the end
    (a worker lost, say) as the job's failure, once."""

    def __init__(
        self, future: Any, client: Any, owned: bool, spec: JobSpec, settings: dict[str, Any]
    ) -> None:
        self.future = future
        self.client = client
        self.owned = owned
        self.spec = spec
        self.settings = settings
        self._reported = False
        self._lock = threading.Lock()

    def poll(self) -> bool:
        if not self.future.done():
            return False
        self._report_failure()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        from distributed import wait as dask_wait

        try:
            dask_wait([self.future], timeout=timeout)
        except TimeoutError:
            return False
        return self.poll()

    def stop(self) -> None:
        """Stopping goes through the store (the supervisor polls it); the task cannot be cancelled."""

    def close(self) -> None:
        if self.owned:
            self.client.close()

    def _report_failure(self) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        if self.future.status == "finished":
            return
        try:
            exc = self.future.exception(timeout=5)
        except Exception as err:  # cancelled, or the scheduler went away
            exc = err
        from tallymark.sdk.transport import default_transport
        from tallymark.settings import ClientSettings

        client = ClientSettings.from_env().with_overrides(**{k: v for k, v in self.settings.items() if v})
        t = default_transport(settings=client)
        try:
            info = t.call("get_job", workspace=self.spec.workspace, name=self.spec.name)
            if info["status"] not in FINAL_STATUSES:
                t.call(
                    "job_status",
                    workspace=self.spec.workspace,
                    name=self.spec.name,
                    fields={
                        "status": "Failed",
                        "failure_reason": f"the job's Dask task ended without recording the end: {exc!r}",
                    },
                )
        finally:
            close = getattr(t, "close", None)
            if close is not None:
                close()


class DaskBackend:
    """``backend="dask://HOST:PORT"``, ``"dask"`` (this process's default client) or a Client."""

    def __init__(self, target: Any) -> None:
        self.target = target
        if isinstance(target, str) and target != "dask":
            self.address = _address(target)
            self.name = target
        else:
            client = self._client_now(target)
            self.address = str(client.scheduler.address)
            self.name = "dask://" + self.address.split("://", 1)[-1]

    @staticmethod
    def _client_now(target: Any) -> Any:
        if isinstance(target, str):
            from distributed import get_client

            try:
                return get_client()
            except ValueError:
                raise ValueError('backend "dask" needs a distributed.Client in this process') from None
        return target

    def _client(self) -> tuple[Any, bool]:
        if isinstance(self.target, str) and self.target != "dask":
            from distributed import Client

            try:
                return Client(self.address, timeout=CONNECT_TIMEOUT, set_as_default=False), True
            except OSError as exc:
                raise ConnectionError(f"cannot reach the Dask scheduler at {self.address}: {exc}") from None
        return self._client_now(self.target), False

    def submit(self, spec: JobSpec, job_root: Path, settings: dict[str, Any]) -> DaskHandle:
        from distributed import fire_and_forget

        client, owned = self._client()
        run = spec
        if spec.algorithm is not None:
            # The built-in trainer connects back to this cluster for xgboost.dask.
            run = dataclasses.replace(spec, environment={**spec.environment, SCHEDULER_ENV: self.address})
        future = client.submit(
            run_on_worker,
            run.to_dict(),
            str(job_root),
            dict(settings),
            key=f"tallymark-job-{spec.name}",
            pure=False,
            retries=0,  # a job's retries are its own (spec.retries), never Dask's re-runs
        )
        fire_and_forget(future)
        return DaskHandle(future, client, owned, spec, dict(settings))
