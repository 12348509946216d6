"""A job's whole life on the machine that runs it: inputs, attempts, outputs, the final status.

:func:`supervise` is what every backend runs for a script job (the local backend in a detached
process, ``python -m tallymark.jobs.supervisor ROOT``; the Dask backend on a worker):

1. :func:`~tallymark.jobs.contract.prepare_root` — a missing or unreadable input fails the job
   here, naming the input, before the script starts; artifact inputs are linked as consumed.
2. up to ``retries + 1`` attempts of :func:`~tallymark.jobs.runner.run_attempt` (a retry only
   after ``Failed``; each attempt is recorded in ``attempts``, the job keeps its name);
3. after ``Completed``: :func:`~tallymark.jobs.contract.finish_root` (outputs, model.tar.gz; an
   empty model dir fails the job), artifact outputs linked as produced;
4. the final status, after the last of the output has been shipped.

Why a detached process for ``local``: the job outlives the call that submitted it — a notebook
kernel restarted, a terminal closed — and its stop and status still go through the store.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tallymark.jobs.contract import JobInputError, JobOutputError, finish_root, prepare_root
from tallymark.jobs.spec import AttemptOutcome, JobSpec
from tallymark.settings import JOB_SINK_ENV, take_handoff

__all__ = ["SINK_ENV", "main", "supervise"]

SINK_ENV = JOB_SINK_ENV  # the sink settings (JSON) handed to a detached supervisor
SECONDARY = {
    "Completed": "Completed",
    "Failed": "Failed",
    "Stopped": "Stopped",
    "TimedOut": "MaxRuntimeExceeded",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def supervise(
    spec: JobSpec,
    root: Path,
    sink: Any,
    transport: Any = None,
    run: Callable[[JobSpec, Path, Any, int], AttemptOutcome] | None = None,
) -> dict[str, Any]:
    """Run job ``spec`` to its end in ``root``, reporting to ``sink``; returns the final fields."""
    from tallymark.jobs.runner import run_attempt

    runner = run if run is not None else run_attempt
    root = Path(root)
    transport = transport if transport is not None else getattr(sink, "transport", None)
    final: dict[str, Any]
    attempts: list[dict[str, Any]] = []
    started = now_ms()
    try:
        # Only inputs that come from elsewhere are worth a "Downloading" report: for local ones the
        # first report waits until the script runs (the store is opened while it starts).
        if any(c.uri.startswith(("s3://", "artifact://")) for c in spec.inputs):
            sink.status(started_at=started, secondary_status="Downloading", host=socket.gethostname())
        final = _run(spec, root, sink, transport, runner, attempts)
    except Exception as exc:  # never leave a job InProgress because of our own failure
        final = {"status": "Failed", "failure_reason": f"tallymark could not run the job: {exc!r}"}
    final.setdefault("exit_code", None)
    final.setdefault("failure_reason", None)
    final["ended_at"] = now_ms()
    final.setdefault("started_at", attempts[0]["started_at"] if attempts else started)
    final["secondary_status"] = SECONDARY[final["status"]]
    if attempts:
        final["attempts"] = attempts
    try:
        sink.close()  # the output first: a reader that sees the final status has the whole log
    except Exception:
        pass
    try:
        sink.status(**final)
    except Exception as exc:
        print(f"tallymark: could not record the end of job {spec.name}: {exc!r}", file=sys.stderr)
    return final


def _run(
    spec: JobSpec,
    root: Path,
    sink: Any,
    transport: Any,
    run: Callable[[JobSpec, Path, Any, int], AttemptOutcome],
    attempts: list[dict[str, Any]],
) -> dict[str, Any]:
    outcome: AttemptOutcome | None = None
    for n in range(1, spec.retries + 2):
        try:
            fetched = prepare_root(spec, root, transport)
        except JobInputError as exc:
            return {"status": "Failed", "failure_reason": str(exc)}
        if n == 1:
            for f in fetched:
                if f.get("ref"):
                    _link(transport, spec, "consumed", f["ref"])
        if n > 1 and sink.should_stop():  # (the first attempt's runner polls it as soon as it runs)
            return {"status": "Stopped", "failure_reason": "stopped on request before the script started"}
        outcome = run(spec, root, sink, n)
        attempts.append({"attempt": n, **asdict(outcome)})
        if n > 1 or spec.retries:
            sink.status(attempt=n, attempts=attempts)
        if outcome.status != "Failed":
            break
    assert outcome is not None
    final: dict[str, Any] = {
        "started_at": attempts[0]["started_at"],
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "failure_reason": outcome.failure_reason,
        "attempt": len(attempts),
    }
    if outcome.status != "Completed":
        return final
    sink.status(secondary_status="Uploading")
    try:
        done = finish_root(spec, root, transport)
    except JobOutputError as exc:
        return {**final, "status": "Failed", "failure_reason": str(exc)}
    for o in done["outputs"]:
        if o.get("ref"):
            _link(transport, spec, "produced", o["ref"])
    if done.get("model_data"):
        final["model_data"] = done["model_data"]
    return final


def _link(transport: Any, spec: JobSpec, relation: str, ref: str) -> None:
    transport.call(
        "job_link", workspace=spec.workspace, name=spec.name, body={"relation": relation, "ref": ref}
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m tallymark.jobs.supervisor ROOT``: the local backend's detached supervisor."""
    from tallymark.jobs.sink import StoreSink

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0])
    spec = JobSpec.from_dict(json.loads((root / "spec.json").read_text()))
    settings = json.loads(take_handoff(SINK_ENV) or "{}")
    sink = StoreSink(settings, spec.workspace, spec.name)
    # SIGTERM/SIGINT to the supervisor (a machine shutting down, the local handle's stop()): stop
    # the job the same way a stop request does, then record it.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: sink.local_stop.set())
    try:
        supervise(spec, root, sink)
    finally:
        sink.close_transport()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
