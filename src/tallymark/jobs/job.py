"""ProcessingJob and TrainingJob: run a script (or the built-in XGBoost trainer) as a job.

>>> from tallymark.jobs import ProcessingJob, TrainingJob                         # doctest: +SKIP
>>> ProcessingJob("preprocess.py", workspace="risk").run(                        # doctest: +SKIP
...     inputs={"input": "artifact://risk/fraud-dataset:raw"},
...     outputs={"output": "artifact://risk/fraud-dataset:preprocessed"})
>>> job = TrainingJob(entry_point="train.py", hyperparameters={"max_depth": 5},  # doctest: +SKIP
...                   max_run=1800, workspace="risk")
>>> job.fit({"train": "data/train", "validation": "s3://bank/val/"})            # doctest: +SKIP
>>> job.status, job.model_data                                                   # doctest: +SKIP
('Completed', '/home/me/.tallymark/jobs/train-2026-12-02-01-55-03-123/output/model.tar.gz')

A job is a row in the store (the embedded home, or the server of ``TALLYMARK_URL``), so
``tallymark jobs list|show|logs -f|stop`` see and stop it from any other process. Its properties
are read from the store each time. See docs/jobs.md.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tallymark.jobs.spec import FINAL_STATUSES, Channel, JobSpec, OutputSpec

__all__ = ["Job", "ProcessingJob", "TrainingJob"]

POLL = 0.2  # seconds between status reads while waiting


class Job:
    """What ProcessingJob and TrainingJob share: submission, status, logs, wait, stop."""

    kind = "training"

    def __init__(
        self,
        *,
        script: str | os.PathLike[str] | None = None,
        algorithm: str | None = None,
        backend: Any = "local",
        workspace: str | None = None,
        project: str | None = None,
        environment: Mapping[str, str] | None = None,
        max_run: int = 86400,
        retries: int = 0,
        stop_grace: float = 10.0,
        hyperparameters: Mapping[str, Any] | None = None,
        output_path: str | None = None,
        source_dir: str | os.PathLike[str] | None = None,
        command: Sequence[str] | None = None,
        base_job_name: str | None = None,
        resources: Mapping[str, Any] | None = None,
        url: str | None = None,
        api_key: str | None = None,
    ) -> None:
        from tallymark.settings import ClientSettings

        self.settings = ClientSettings.from_env().with_overrides(url=url or None, api_key=api_key or None)
        self.script = None if script is None else os.fspath(script)
        self.algorithm = algorithm
        self.backend = backend
        self.workspace = workspace or self.settings.workspace
        self.project = project
        self.environment = {str(k): str(v) for k, v in (environment or {}).items()}
        self.max_run = int(max_run)
        self.retries = int(retries)
        self.stop_grace = float(stop_grace)
        # SageMaker passes hyperparameters as strings (JSON for lists and dicts)
        self.hyperparameters = {str(k): _hp(v) for k, v in (hyperparameters or {}).items()}
        self.output_path = output_path
        self.source_dir = None if source_dir is None else os.fspath(source_dir)
        self.command = tuple(command or ())
        self.base_job_name = base_job_name
        self.resources = dict(resources or {})
        self.job_name: str | None = None
        self._transport: Any = None
        self._handle: Any = None
        self._info: dict[str, Any] | None = None

    # ---- submission ------------------------------------------------------------------------

    @property
    def transport(self) -> Any:
        if self._transport is None:
            from tallymark.sdk.transport import default_transport

            self._transport = default_transport(settings=self.settings)
        return self._transport

    def _submit(
        self,
        inputs: tuple[Channel, ...],
        outputs: tuple[OutputSpec, ...],
        arguments: Sequence[Any],
        job_name: str | None,
        wait: bool,
        logs: bool,
    ) -> None:
        from tallymark.jobs.backends import get_backend
        from tallymark.jobs.contract import job_root
        from tallymark.jobs.names import job_name as make_name
        from tallymark.jobs.sink import sink_settings

        if self.job_name is not None:
            raise RuntimeError(f"this object ran job {self.job_name} already; make a new one for another run")
        if self.script is not None:
            script = Path(self.source_dir, self.script) if self.source_dir else Path(self.script)
            if not script.is_file():
                raise FileNotFoundError(f"the job's script {str(script)!r} does not exist (or is not a file)")
        backend = get_backend(self.backend)
        name = job_name or make_name(self.base_job_name or self.script or self.algorithm or "job")
        spec = JobSpec(
            name=name,
            kind=self.kind,  # type: ignore[arg-type]
            workspace=self.workspace,
            project=self.project,
            script=None
            if self.script is None
            else str(Path(self.script).resolve())
            if not self.source_dir
            else self.script,
            source_dir=None if self.source_dir is None else str(Path(self.source_dir).resolve()),
            algorithm=self.algorithm,
            command=self.command,
            arguments=tuple(str(a) for a in arguments),
            hyperparameters=self.hyperparameters,
            inputs=inputs,
            outputs=outputs,
            output_path=_abs(self.output_path),
            environment=self.environment,
            max_run=self.max_run,
            stop_grace=self.stop_grace,
            retries=self.retries,
            backend=backend.name,
            resources=self.resources,
        )
        self._info = self.transport.call("create_job", workspace=self.workspace, spec=spec.to_dict())
        self.job_name = name
        self.spec = spec
        root = job_root(name, self.settings.home_path)
        root.mkdir(parents=True, exist_ok=True)
        try:
            self._handle = backend.submit(spec, root, sink_settings(self.settings))
        except Exception as exc:
            self.transport.call(
                "job_status",
                workspace=self.workspace,
                name=name,
                fields={"status": "Failed", "failure_reason": f"the backend could not start the job: {exc}"},
            )
            raise
        if wait:
            self.wait(logs=logs)

    # ---- reading -----------------------------------------------------------------------------

    def _require(self) -> str:
        if self.job_name is None:
            raise RuntimeError("this job has not been submitted yet (call run() or fit())")
        return self.job_name

    def refresh(self) -> dict[str, Any]:
        """The job's row as stored now."""
        info: dict[str, Any] = self.transport.call("get_job", workspace=self.workspace, name=self._require())
        self._info = info
        return info

    @property
    def status(self) -> str:
        """InProgress, Completed, Failed, Stopped or TimedOut."""
        return str(self.refresh()["status"])

    @property
    def exit_code(self) -> int | None:
        return self.refresh()["exit_code"]

    @property
    def failure_reason(self) -> str | None:
        return self.refresh()["failure_reason"]

    @property
    def model_data(self) -> str | None:
        """Where model.tar.gz is (OUTPUT_PATH/NAME/output/model.tar.gz), once the job completed."""
        return self.refresh()["model_data"]

    def describe(self) -> dict[str, Any]:
        """The job as SageMaker's DescribeTrainingJob / DescribeProcessingJob shows one."""
        from tallymark.jobs.describe import describe

        return describe(self.refresh())

    def logs(self, follow: bool = False, *, out: Any = None) -> str:
        """The job's output as stored (a marker where the log limit left bytes out).

        ``follow=True`` prints it as it comes (to ``out``, default stdout) until the job ends."""
        from tallymark.jobs.follow import follow_logs, read_logs

        name = self._require()
        if not follow:
            return read_logs(self.transport, self.workspace, name)
        return follow_logs(self.transport, self.workspace, name, out or sys.stdout)

    def wait(self, timeout: float | None = None, logs: bool = False) -> str:
        """Wait until the job has ended (``logs=True`` prints its output meanwhile); its status."""
        name = self._require()
        if logs:
            from tallymark.jobs.follow import follow_logs

            follow_logs(self.transport, self.workspace, name, sys.stdout, timeout=timeout)
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.refresh()
            if info["status"] in FINAL_STATUSES:
                return str(info["status"])
            if self._handle is not None and self._handle.poll():
                self._handle_gone(info)
            if end is not None and time.monotonic() >= end:
                raise TimeoutError(f"job {name} is still {info['status']} after {timeout}s")
            time.sleep(POLL)

    def _handle_gone(self, info: dict[str, Any]) -> None:
        """The supervisor ended but the job is not final: give its last report a moment, then say so."""
        time.sleep(1.0)
        if self.refresh()["status"] in FINAL_STATUSES:
            return
        from tallymark.jobs.contract import job_root

        log = job_root(self._require(), self.settings.home_path) / "logs" / "supervisor.log"
        self.transport.call(
            "job_status",
            workspace=self.workspace,
            name=self._require(),
            fields={
                "status": "Failed",
                "failure_reason": f"the job's supervisor process ended without recording the end; see {log}",
            },
        )

    def stop(self) -> None:
        """Ask the job to stop (SIGTERM to its process group, SIGKILL after the grace): ``Stopped``."""
        self.transport.call("stop_job", workspace=self.workspace, name=self._require())

    @classmethod
    def attach(cls, job_name: str, workspace: str | None = None, **kwargs: Any) -> Job:
        """A handle on an existing job (submitted by any process)."""
        job = cls.__new__(cls)
        Job.__init__(job, **kwargs)  # not cls(): a TrainingJob's own checks are about a new job
        if workspace:
            job.workspace = workspace
        job.job_name = job_name
        info = job.refresh()
        job.spec = spec = JobSpec.from_dict(info["spec"])
        job.script, job.algorithm, job.source_dir = spec.script, spec.algorithm, spec.source_dir
        job.hyperparameters, job.output_path = dict(spec.hyperparameters), spec.output_path
        job.max_run, job.retries, job.backend = spec.max_run, spec.retries, spec.backend
        job.project, job.environment = spec.project, dict(spec.environment)
        return job

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.job_name or '(not submitted)'}>"


class ProcessingJob(Job):
    """A script that turns inputs into outputs (SageMaker Processing).

    ``inputs``: ``{name: uri}`` (each lands at /opt/ml/processing/input/NAME, or at
    /opt/ml/processing/input for a single input named ``input``) or a list of
    :class:`~tallymark.jobs.spec.Channel` with ``destination``; ``outputs``: ``{name: uri}``
    (read from /opt/ml/processing/output/NAME, or /opt/ml/processing/output for a single one
    named ``output``) or :class:`~tallymark.jobs.spec.OutputSpec` with ``source``."""

    kind = "processing"

    def __init__(self, script: str | os.PathLike[str], backend: Any = "local", **kwargs: Any) -> None:
        super().__init__(script=script, backend=backend, **kwargs)

    def run(
        self,
        inputs: Mapping[str, str] | Sequence[Channel] | None = None,
        outputs: Mapping[str, str] | Sequence[OutputSpec] | None = None,
        arguments: Sequence[Any] | None = None,
        wait: bool = True,
        logs: bool = False,
        job_name: str | None = None,
    ) -> ProcessingJob:
        ins = _channels(inputs, "/opt/ml/processing/input")
        outs = _outputs(outputs)
        self._submit(ins, outs, arguments or (), job_name, wait, logs)
        return self


class TrainingJob(Job):
    """A training script (``entry_point``) or the built-in trainer (``algorithm="xgboost"``)."""

    kind = "training"

    def __init__(
        self,
        entry_point: str | os.PathLike[str] | None = None,
        *,
        algorithm: str | None = None,
        backend: Any = "local",
        **kwargs: Any,
    ) -> None:
        if (entry_point is None) == (algorithm is None):
            raise ValueError("give entry_point= (a script) or algorithm= (a built-in trainer), not both")
        super().__init__(script=entry_point, algorithm=algorithm, backend=backend, **kwargs)

    def fit(
        self,
        channels: Mapping[str, str] | Sequence[Channel] | str | None = None,
        wait: bool = True,
        logs: bool = False,
        job_name: str | None = None,
    ) -> TrainingJob:
        """Train on ``channels`` (``{"train": uri, "validation": uri}``; a single URI is the
        ``training`` channel, as in SageMaker)."""
        if isinstance(channels, (str, os.PathLike)):
            channels = {"training": os.fspath(channels)}
        ins = _channels(channels, None)
        self._submit(ins, (), (), job_name, wait, logs)
        return self

    def deploy(
        self, model_name: str | None = None, *, workspace: str | None = None, port: int | None = None
    ) -> Any:
        """Register this job's model and serve it: an Endpoint (tallymark.integration.jobs.deploy_job)."""
        from tallymark.integration.jobs import deploy_job

        return deploy_job(self, model_name, workspace=workspace, port=port)


def _hp(v: Any) -> str:
    import json

    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v)


def _abs(uri: str | None) -> str | None:
    if uri is None or "://" in uri:
        return uri
    return str(Path(uri).expanduser().resolve())


def _uri(uri: Any) -> str:
    u = os.fspath(uri) if isinstance(uri, os.PathLike) else uri
    if not isinstance(u, str):
        raise TypeError(f"{uri!r} is not a URI or path")
    return u if "://" in u else str(Path(u).expanduser().resolve())


def _channels(given: Any, base: str | None) -> tuple[Channel, ...]:
    if given is None:
        return ()
    if isinstance(given, Mapping):
        items = list(given.items())
        if base is None:
            return tuple(Channel(name=str(k), uri=_uri(v)) for k, v in items)
        single = len(items) == 1 and items[0][0] == "input"
        return tuple(
            Channel(name=str(k), uri=_uri(v), destination=base if single else f"{base}/{k}") for k, v in items
        )
    out = []
    for c in given:
        if not isinstance(c, Channel):
            raise TypeError(f"{c!r}: give Channel(name, uri, destination) objects or a dict name → uri")
        out.append(Channel(c.name, _uri(c.uri), c.destination, c.content_type))
    return tuple(out)


def _outputs(given: Any) -> tuple[OutputSpec, ...]:
    if given is None:
        return ()
    base = "/opt/ml/processing/output"
    if isinstance(given, Mapping):
        items = list(given.items())
        single = len(items) == 1 and items[0][0] == "output"
        return tuple(
            OutputSpec(name=str(k), source=base if single else f"{base}/{k}", destination=_uri(v))
            for k, v in items
        )
    out = []
    for o in given:
        if not isinstance(o, OutputSpec):
            raise TypeError(f"{o!r}: give OutputSpec(name, source, destination) objects or a dict name → uri")
        out.append(OutputSpec(o.name, o.source, _uri(o.destination)))
    return tuple(out)
