"""What a job is, as every part of the jobs runtime passes it around (plain data, picklable).

A :class:`JobSpec` is built by :class:`~tallymark.jobs.job.ProcessingJob` /
:class:`~tallymark.jobs.job.TrainingJob` (or the SageMaker facades), stored as the job's
``spec_json`` row, and handed to a backend. A backend (``local``, ``dask``) runs attempts: each
attempt is :func:`tallymark.jobs.runner.run_attempt` (one supervised child process) on the
machine that runs it, reporting through a :class:`JobSink`.

Statuses are SageMaker's: ``InProgress`` then one of ``Completed``, ``Failed``, ``Stopped``,
``TimedOut``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

__all__ = [
    "FINAL_STATUSES",
    "STATUSES",
    "AttemptOutcome",
    "Channel",
    "JobSink",
    "JobSpec",
    "OutputSpec",
]

JobKind = Literal["processing", "training"]
STATUSES: tuple[str, ...] = ("InProgress", "Completed", "Failed", "Stopped", "TimedOut")
FINAL_STATUSES: frozenset[str] = frozenset(STATUSES[1:])


@dataclass(frozen=True)
class Channel:
    """An input: a training channel (``name`` = channel, lands at /opt/ml/input/data/NAME) or a
    processing input (``destination`` = where the script finds it, e.g. /opt/ml/processing/input).

    ``uri``: a local path, ``s3://BUCKET/KEY`` (the configured S3-compatible store) or
    ``artifact://WS/NAME:ALIAS_OR_VERSION`` (consumed: lineage with hashes)."""

    name: str
    uri: str
    destination: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class OutputSpec:
    """A processing output: what the script wrote under ``source`` goes to ``destination`` (a local
    path, ``s3://…`` or ``artifact://WS/NAME``, logged as the artifact's next version)."""

    name: str
    source: str
    destination: str


@dataclass(frozen=True)
class JobSpec:
    name: str  # unique job name, e.g. "xgb-train-2026-12-02-01-55-03-123"
    kind: JobKind
    workspace: str
    project: str | None = None
    # what runs: a script (processing ``code`` / training ``entry_point``) or a built-in algorithm
    script: str | None = None  # path of the script as given; its folder is copied as the job's code
    source_dir: str | None = None
    algorithm: str | None = None  # "xgboost": tallymark.jobs.builtin.xgboost
    command: tuple[str, ...] = ()  # interpreter override, e.g. ("python3",); default: this Python
    arguments: tuple[str, ...] = ()
    hyperparameters: dict[str, str] = field(default_factory=dict)  # values as strings (SageMaker)
    inputs: tuple[Channel, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    output_path: str | None = None  # training: model.tar.gz lands at OUTPUT_PATH/NAME/output/
    environment: dict[str, str] = field(default_factory=dict)
    max_run: int = 86400  # seconds; then SIGTERM to the group, grace, SIGKILL: TimedOut
    stop_grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    retries: int = 0  # extra attempts after a Failed one (not after Stopped/TimedOut)
    backend: str = "local"  # "local" | "dask://host:port" | "dask" (a Client given in-process)
    resources: dict[str, Any] = field(default_factory=dict)  # instance_type, instance_count, role, …

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        d = dict(data)
        d["inputs"] = tuple(Channel(**c) for c in d.get("inputs", ()))
        d["outputs"] = tuple(OutputSpec(**o) for o in d.get("outputs", ()))
        d["command"] = tuple(d.get("command", ()))
        d["arguments"] = tuple(d.get("arguments", ()))
        return cls(**d)


@dataclass(frozen=True)
class AttemptOutcome:
    """How one attempt ended."""

    status: str  # one of FINAL_STATUSES
    exit_code: int | None
    failure_reason: str | None
    started_at: int  # ms since the epoch
    ended_at: int
    host: str = ""


class JobSink(Protocol):
    """Where a running attempt reports (the store, through the SDK transport, from any machine)."""

    def log(self, data: bytes) -> None:
        """Output as it comes (buffered and shipped in batches by the sink)."""

    def status(self, **fields: Any) -> None:
        """Status and timing fields of the job row (status, secondary_status, started_at, pid, …)."""

    def should_stop(self) -> bool:
        """True once someone asked the job to stop (polled by the supervisor)."""

    def close(self) -> None:
        """Ship what is buffered; called once the attempt has ended."""
