"""The SageMaker Python SDK's names over tallymark jobs, so a notebook needs only an import change.

    from tallymark.jobs.sagemaker import Estimator, SKLearnProcessor, ProcessingInput, ProcessingOutput

    SKLearnProcessor(framework_version="1.0-1", role=role, instance_type="ml.t3.medium",
                     instance_count=1).run(
        code="preprocess.py",
        inputs=[ProcessingInput(source=raw_uri, destination="/opt/ml/processing/input")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output", destination=out_uri)])
    est = Estimator(image_uri=image_uris.retrieve("xgboost", region, "1.7-1"), role=role,
                    instance_count=1, instance_type="ml.m5.large", output_path=out,
                    hyperparameters={"objective": "binary:logistic", "num_round": 100}, max_run=1800)
    est.fit({"train": train_uri, "validation": val_uri})
    predictor = est.deploy(initial_instance_count=1, instance_type="ml.m5.xlarge")
    predictor.predict(X_test); predictor.delete_endpoint()

``role``, ``instance_type``, ``instance_count``, ``framework_version`` (and the other infrastructure
arguments listed in ``RECORDED``) are accepted and recorded in the job's ``resources``; nothing
is provisioned. An ``image_uri`` that names XGBoost runs the built-in XGBoost trainer
(:mod:`tallymark.jobs.builtin.xgboost_train`); any other image needs an ``entry_point`` script,
since tallymark runs no containers. ``backend="dask://HOST:PORT"`` (or a ``distributed.Client``)
runs the job on a Dask cluster. docs/sagemaker.md has the whole list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Estimator",
    "Predictor",
    "ProcessingInput",
    "ProcessingOutput",
    "SKLearnProcessor",
    "TrainingInput",
    "describe_training_job",
    "get_execution_role",
    "image_uris",
]

# Infrastructure arguments SageMaker takes that mean nothing here: accepted, recorded, not acted on.
RECORDED = (
    "role",
    "instance_count",
    "instance_type",
    "framework_version",
    "py_version",
    "volume_size",
    "max_wait",
    "use_spot_instances",
    "tags",
    "subnets",
    "security_group_ids",
    "enable_network_isolation",
    "encrypt_inter_container_traffic",
    "volume_kms_key",
    "output_kms_key",
    "checkpoint_s3_uri",
    "keep_alive_period_in_seconds",
    "metric_definitions",
    "disable_profiler",
)
_TIMESTAMP = re.compile(r"-\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}(-\d{1,6})?$")
_BUILTIN_PREFIX = "tallymark/builtin-"


def get_execution_role(*_args: Any, **_kwargs: Any) -> str:
    """A stand-in for ``sagemaker.get_execution_role()``: a role name that is recorded, never used."""
    return "arn:tallymark:iam::local:role/tallymark-local"


class image_uris:  # noqa: N801 - SageMaker's module name, used as ``image_uris.retrieve(...)``
    """``sagemaker.image_uris``: ``retrieve("xgboost", region, version)`` names the built-in trainer."""

    @staticmethod
    def retrieve(
        framework: str, region: str | None = None, version: str | None = None, **_kwargs: Any
    ) -> str:
        name = str(framework).strip().lower()
        if name == "xgboost":
            return f"{_BUILTIN_PREFIX}xgboost:{version or 'latest'}"
        if name in ("sklearn", "scikit-learn"):
            return f"tallymark/sklearn:{version or 'latest'}"  # SKLearnProcessor runs this Python
        raise ValueError(
            f"no tallymark image for {framework!r}: the built-in algorithm is 'xgboost'; other "
            "frameworks run as an Estimator with entry_point= (your script, on this Python)"
        )


def _algorithm(image_uri: str | None) -> str | None:
    """``xgboost`` when the image is SageMaker's XGBoost algorithm (any registry) or ours."""
    if not image_uri:
        return None
    repo = image_uri.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0].lower()
    return "xgboost" if "xgboost" in repo else None


@dataclass(frozen=True)
class TrainingInput:
    """``sagemaker.inputs.TrainingInput``: a channel's location and, optionally, its content type."""

    s3_data: str
    content_type: str | None = None
    distribution: str | None = None
    s3_data_type: str | None = None
    input_mode: str | None = None
    compression: str | None = None


@dataclass(frozen=True)
class ProcessingInput:
    """``sagemaker.processing.ProcessingInput``: ``source`` lands at ``destination`` for the script."""

    source: str
    destination: str
    input_name: str | None = None
    s3_data_type: str | None = None
    s3_input_mode: str | None = None


@dataclass(frozen=True)
class ProcessingOutput:
    """``sagemaker.processing.ProcessingOutput``: what the script wrote under ``source`` goes to
    ``destination`` (a path, ``s3://…`` or ``artifact://WS/NAME``)."""

    source: str
    destination: str
    output_name: str | None = None
    s3_upload_mode: str | None = None


def _resources(values: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    from tallymark import jsonvalue

    out: dict[str, Any] = {}
    for key, value in {**values, **extra}.items():
        if value is None:
            continue
        try:
            jsonvalue.dumps(value)
        except TypeError:
            value = str(value)
        out[key] = value
    return out


def _split_recorded(kwargs: dict[str, Any], what: str) -> dict[str, Any]:
    recorded = {k: kwargs.pop(k) for k in list(kwargs) if k in RECORDED}
    kwargs.pop("sagemaker_session", None)  # a boto session: nothing to record
    if kwargs:
        raise TypeError(f"{what}() got unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    return recorded


def _as_channels(inputs: Any) -> dict[str, Any]:
    from tallymark.jobs.spec import Channel

    if inputs is None:
        return {}
    if isinstance(inputs, (str, TrainingInput)):
        inputs = {"training": inputs}  # SageMaker's name for a single unnamed channel
    if not isinstance(inputs, Mapping):
        raise TypeError("fit() takes a channel URI, a TrainingInput or a dict of them")
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, TrainingInput):
            out[str(name)] = Channel(name=str(name), uri=value.s3_data, content_type=value.content_type)
        else:
            out[str(name)] = Channel(name=str(name), uri=str(value))
    return out


class _TrainingJobHandle:
    """``estimator.latest_training_job``: the job's name, SageMaker-style ``describe()``, wait, stop."""

    def __init__(self, job: Any) -> None:
        self.job = job

    @property
    def job_name(self) -> str:
        return str(self.job.job_name)

    name = job_name

    def describe(self) -> dict[str, Any]:
        return describe_training_job(self.job.refresh())

    def wait(self, logs: bool = False) -> None:
        self.job.wait(logs=logs)

    def stop(self) -> None:
        self.job.stop()


class Estimator:
    """``sagemaker.estimator.Estimator`` over a :class:`~tallymark.jobs.TrainingJob`."""

    def __init__(
        self,
        image_uri: str | None = None,
        role: str | None = None,
        instance_count: int | None = 1,
        instance_type: str | None = None,
        *,
        output_path: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        max_run: int = 24 * 60 * 60,
        entry_point: str | None = None,
        source_dir: str | None = None,
        base_job_name: str | None = None,
        environment: Mapping[str, str] | None = None,
        backend: Any = "local",
        workspace: str | None = None,
        project_name: str | None = None,
        retries: int = 0,
        **kwargs: Any,
    ) -> None:
        recorded = _split_recorded(dict(kwargs), type(self).__name__)
        self.image_uri = image_uri
        self.algorithm = _algorithm(image_uri) if entry_point is None else None
        if self.algorithm is None and entry_point is None:
            raise ValueError(
                f"image_uri {image_uri!r} is not the built-in XGBoost algorithm and no entry_point is "
                "given: tallymark runs no containers (use image_uris.retrieve('xgboost', …) or entry_point=)"
            )
        self.role = role
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.output_path = output_path
        self._hyperparameters = dict(hyperparameters or {})
        self.max_run = int(max_run)
        self.entry_point = entry_point
        self.source_dir = source_dir
        self.base_job_name = base_job_name
        self.environment = dict(environment or {})
        self.backend = backend
        self.workspace = workspace
        self.project_name = project_name
        self.retries = retries
        self.resources = _resources(
            {"role": role, "instance_count": instance_count, "instance_type": instance_type},
            {**recorded, **({"image_uri": image_uri} if image_uri else {})},
        )
        self.latest_training_job: _TrainingJobHandle | None = None
        self._job: Any = None

    def set_hyperparameters(self, **kwargs: Any) -> None:
        self._hyperparameters.update(kwargs)

    def hyperparameters(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._hyperparameters.items()}

    def _base_name(self) -> str:
        if self.base_job_name:
            return self.base_job_name
        if self.algorithm:
            return f"{self.algorithm}-train"
        from pathlib import Path

        return Path(str(self.entry_point)).stem.replace("_", "-") or "training"

    def fit(
        self, inputs: Any = None, wait: bool = True, logs: bool = True, job_name: str | None = None
    ) -> None:
        """Run the training job on ``inputs`` (a URI, a :class:`TrainingInput` or a dict by channel)."""
        from tallymark.jobs.job import TrainingJob

        job = TrainingJob(
            entry_point=self.entry_point,
            algorithm=self.algorithm,
            backend=self.backend,
            source_dir=self.source_dir,
            hyperparameters=self._hyperparameters,
            output_path=self.output_path,
            max_run=self.max_run,
            workspace=self.workspace,
            project=self.project_name,
            base_job_name=self._base_name(),
            environment=self.environment,
            resources=self.resources,
            retries=self.retries,
        )
        self._job = job
        self.latest_training_job = _TrainingJobHandle(job)
        job.fit(list(_as_channels(inputs).values()), wait=wait, logs=wait and logs, job_name=job_name)

    @property
    def job(self) -> Any:
        """The :class:`~tallymark.jobs.TrainingJob` of the last ``fit`` (None before)."""
        return self._job

    @property
    def model_data(self) -> str | None:
        """``…/JOB/output/model.tar.gz`` of the last training job, as SageMaker gives it."""
        return None if self._job is None else self._job.model_data

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str | None = None,
        serializer: Any = None,
        deserializer: Any = None,
        endpoint_name: str | None = None,
        *,
        model_name: str | None = None,
        port: int | None = None,
        wait: bool = True,
        **_kwargs: Any,
    ) -> Predictor:
        """Register the last job's model and serve it behind an endpoint; a :class:`Predictor`."""
        if self._job is None:
            raise RuntimeError("deploy() needs a trained model: call fit() first")
        from tallymark.integration.jobs import deploy_job

        endpoint = deploy_job(self._job, model_name, port=port, endpoint_name=endpoint_name)
        return Predictor(
            endpoint,
            resources={"initial_instance_count": initial_instance_count, "instance_type": instance_type},
        )


class Predictor:
    """``sagemaker.predictor.Predictor`` over a tallymark endpoint.

    ``predict(data)`` takes what SageMaker's CSVSerializer takes for XGBoost (a numpy array, a
    pandas DataFrame, a list of rows, or CSV text with one row per line and no label) and returns the
    scores as a numpy array (SageMaker returns CSV bytes unless a deserializer is set).
    """

    def __init__(self, endpoint: Any, resources: Mapping[str, Any] | None = None) -> None:
        self.endpoint = endpoint
        self.resources = dict(resources or {})

    @property
    def endpoint_name(self) -> str:
        return str(self.endpoint.name)

    def predict(self, data: Any, initial_args: Any = None) -> Any:
        return self.endpoint.predict(_rows(data))

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        self.endpoint.delete()

    def delete_model(self) -> None:
        """The registered model version stays in the registry (it is part of the lineage)."""


def _rows(data: Any) -> Any:
    import numpy as np

    if isinstance(data, bytes):
        data = data.decode("utf-8")
    if isinstance(data, str):
        lines = [ln for ln in data.strip().splitlines() if ln.strip()]
        try:
            return np.array([[float(v) for v in ln.split(",")] for ln in lines], dtype=np.float64)
        except ValueError:
            raise ValueError("CSV input must be numbers separated by commas, one row per line") from None
    return data


class SKLearnProcessor:
    """``sagemaker.sklearn.processing.SKLearnProcessor`` over a :class:`~tallymark.jobs.ProcessingJob`
    (the script runs on this Python, whose scikit-learn stands in for the framework image)."""

    def __init__(
        self,
        framework_version: str | None = None,
        role: str | None = None,
        instance_type: str | None = None,
        instance_count: int | None = 1,
        *,
        command: Sequence[str] | None = None,
        base_job_name: str | None = None,
        env: Mapping[str, str] | None = None,
        max_runtime_in_seconds: int | None = None,
        backend: Any = "local",
        workspace: str | None = None,
        project_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        recorded = _split_recorded(dict(kwargs), type(self).__name__)
        self.framework_version = framework_version
        self.role = role
        self.instance_type = instance_type
        self.instance_count = instance_count
        self.command = list(command) if command else None
        self.base_job_name = base_job_name
        self.env = dict(env or {})
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.backend = backend
        self.workspace = workspace
        self.project_name = project_name
        self.resources = _resources(
            {
                "framework_version": framework_version,
                "role": role,
                "instance_type": instance_type,
                "instance_count": instance_count,
            },
            recorded,
        )
        self.latest_job: Any = None
        self.jobs: list[Any] = []

    def run(
        self,
        code: str,
        inputs: Sequence[ProcessingInput] | None = None,
        outputs: Sequence[ProcessingOutput] | None = None,
        arguments: Sequence[str] | None = None,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
    ) -> None:
        from pathlib import Path

        from tallymark.jobs.job import ProcessingJob
        from tallymark.jobs.spec import Channel, OutputSpec

        ins = [
            Channel(name=i.input_name or f"input-{n + 1}", uri=i.source, destination=i.destination)
            for n, i in enumerate(inputs or [])
        ]
        outs = [
            OutputSpec(name=o.output_name or f"output-{n + 1}", source=o.source, destination=o.destination)
            for n, o in enumerate(outputs or [])
        ]
        job = ProcessingJob(
            code,
            backend=self.backend,
            command=self.command,
            workspace=self.workspace,
            project=self.project_name,
            base_job_name=self.base_job_name or Path(code).stem.replace("_", "-"),
            environment=self.env,
            max_run=self.max_runtime_in_seconds or 24 * 60 * 60,
            resources=self.resources,
        )
        self.latest_job = job
        self.jobs.append(job)
        job.run(
            inputs=ins,
            outputs=outs,
            arguments=list(arguments or []),
            wait=wait,
            logs=wait and logs,
            job_name=job_name,
        )


def base_name(job_name: str) -> str:
    """A job name without the timestamp suffix SageMaker-style names carry (``xgb-2026-…`` → ``xgb``)."""
    return _TIMESTAMP.sub("", job_name) or job_name


def describe_training_job(info: Mapping[str, Any]) -> dict[str, Any]:
    """A job's stored row (``job.refresh()``) as SageMaker's ``DescribeTrainingJob`` shows it.

    :func:`tallymark.jobs.describe.describe` plus what only the facade knows: the ``RoleArn``, the
    ``image_uri`` as ``TrainingImage``, and the infrastructure flags recorded in ``resources``.
    """
    from tallymark.jobs.describe import describe

    out = describe(dict(info))
    resources = dict(info.get("resources") or {})
    if resources.get("role"):
        out["RoleArn"] = resources["role"]
    out["TrainingJobArn"] = f"job:{info.get('name')}"
    algo = dict(out.get("AlgorithmSpecification") or {})
    if resources.get("image_uri"):
        algo["TrainingImage"] = resources["image_uri"]
    elif (info.get("spec") or {}).get("algorithm"):
        algo["TrainingImage"] = f"{_BUILTIN_PREFIX}{info['spec']['algorithm']}:latest"
    out["AlgorithmSpecification"] = algo
    if resources.get("volume_size") is not None:
        out.setdefault("ResourceConfig", {})["VolumeSizeInGB"] = resources["volume_size"]
    out["EnableNetworkIsolation"] = bool(resources.get("enable_network_isolation", False))
    out["EnableInterContainerTrafficEncryption"] = bool(
        resources.get("encrypt_inter_container_traffic", False)
    )
    out["EnableManagedSpotTraining"] = bool(resources.get("use_spot_instances", False))
    return out
