"""A finished job, recorded in an experiment: ``log_training_job`` (and ``job.deploy`` on top of it).

    from tallymark.integration.jobs import log_training_job
    exp = log_training_job(estimator)                 # a new experiment named after the job
    log_training_job(job, experiment=exp)             # or into yours (it stays yours to end)
    log_training_job(job, experiment_key=exp.get_key())

It records what Comet's SageMaker logger records, under the same names (the job's SageMaker-style
description: ``TrainingJobName``, ``TrainingJobStatus``, ``BillableTimeInSeconds``,
``TrainingTimeInSeconds``, ``RoleArn``, ``AlgorithmSpecification.TrainingImage``,
``ResourceConfig.*``, ``InputDataConfig.N.*``, ``OutputDataConfig.*``, ``ModelArtifacts.*``; the
hyperparameters as parameters), plus what that logger cannot: the start and end times, the exit
code and failure reason, the job's whole output as an asset, the per-round metrics the built-in
trainer wrote (``train-auc`` becomes ``train_auc``, step = round), each channel as a consumed
artifact version with its files' hashes, the model with its feature schema, and the lineage
edges dataset version → job → experiment → model. docs/sagemaker.md has the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["deploy_job", "log_training_job"]

_RUNNING = "InProgress"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def _job_of(obj: Any) -> Any:
    """The tallymark job behind a job, an Estimator, or its ``latest_training_job``."""
    if hasattr(obj, "latest_training_job"):
        if obj.latest_training_job is None:
            raise ValueError("the Estimator has not trained a model: call fit() first")
        obj = obj.latest_training_job
    job = getattr(obj, "job", None)
    if job is not None and hasattr(job, "job_name"):
        obj = job
    if not hasattr(obj, "job_name") or not hasattr(obj, "refresh"):
        raise TypeError("log_training_job takes a TrainingJob or a SageMaker-style Estimator")
    return obj


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}.{i}")
    elif isinstance(value, dt.datetime):
        yield prefix, value.isoformat()
    else:
        yield prefix, value


def _others(desc: Mapping[str, Any]) -> dict[str, Any]:
    """The ``log_other`` fields, named as Comet's SageMaker logger names them, plus tallymark's."""
    out: dict[str, Any] = {}
    for name in (
        "BillableTimeInSeconds",
        "EnableInterContainerTrafficEncryption",
        "EnableManagedSpotTraining",
        "EnableNetworkIsolation",
        "RoleArn",
        "TrainingJobArn",
        "TrainingJobName",
        "TrainingJobStatus",
        "TrainingTimeInSeconds",
        "SecondaryStatus",
        "FailureReason",
    ):
        if desc.get(name) not in (None, ""):
            out[name] = desc[name]
    algo = desc.get("AlgorithmSpecification") or {}
    for field in ("TrainingImage", "TrainingInputMode"):
        if algo.get(field):
            out[field] = algo[field]
    for field in ("ModelArtifacts", "OutputDataConfig", "ResourceConfig", "StoppingCondition"):
        out.update(_flatten(desc.get(field) or {}, field))
    for i, entry in enumerate(desc.get("InputDataConfig") or []):
        out.update(_flatten(entry, f"InputDataConfig.{i}"))
    for field in ("CreationTime", "TrainingStartTime", "TrainingEndTime"):
        if desc.get(field) is not None:
            out[field] = desc[field].isoformat()
    out["ExitCode"] = desc.get("ExitCode")
    out["Backend"] = desc.get("Backend")
    out["Attempts"] = len(desc.get("attempts") or []) or 1
    return {k: v for k, v in out.items() if v is not None}


def _param_value(raw: Any) -> Any:
    """Hyperparameters arrive as strings; numbers are logged as numbers so queries compare them."""
    if not isinstance(raw, str):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, bool)) else raw


def _open_experiment(info: Mapping[str, Any], experiment: Any, experiment_key: str | None) -> tuple[Any, str]:
    """(experiment, "given" | "attached" | "new")."""

    if experiment is not None:
        if experiment_key is not None and experiment_key != experiment.get_key():
            raise ValueError("give experiment or experiment_key, not two different experiments")
        return experiment, "given"
    if experiment_key is not None:
        from tallymark.sdk.api import API

        found = API().get_experiment_by_key(experiment_key)
        return _quiet(found.project_name, found.workspace, None, found.key), "attached"
    project = (info.get("spec") or {}).get("project") or None
    return _quiet(project, info["workspace"], info["name"], None), "new"


def _quiet(project: str | None, workspace: str, name: str | None, key: str | None) -> Any:
    """An Experiment that records only what it is told (no code, environment, stdout or system
    metrics of this process: the job ran elsewhere)."""
    from tallymark.sdk.experiment import Experiment

    return Experiment(
        project_name=project,
        workspace=workspace,
        name=name,
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
        _existing_key=key,
    )


def _read_all_logs(t: Any, workspace: str, name: str) -> bytes:
    parts: list[bytes] = []
    after = -1
    while True:
        out = t.call("job_logs", workspace=workspace, name=name, after=after)
        parts.append(bytes(out["data"]))
        if out["next"] == after or not out["data"]:
            break
        after = out["next"]
    return b"".join(parts)


def _fetch_file(uri: str, dest: Path) -> Path | None:
    """``uri`` (a local path or s3://) copied to ``dest``; None when it is not there."""
    if uri.startswith("s3://"):
        from tallymark.jobs.uris import s3_client

        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            s3_client().download_file(bucket, key, str(dest))
        except Exception:
            return None
        return dest
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()
    if not path.is_file():
        return None
    shutil.copyfile(path, dest)
    return dest


def _unpack(tarball: Path, into: Path) -> None:
    """Extract a model.tar.gz we made ourselves, still refusing links and paths out of ``into``."""
    with tarfile.open(tarball, "r:gz") as tar:
        tar.extractall(into, filter="data")


def _model_metadata(model_dir: Path, logical_base: str) -> dict[str, Any] | None:
    """The feature-schema metadata (docs: framework, format, model_file, signature) of an XGBoost
    model dir; None when the dir holds no XGBoost model in a data format."""
    candidates = [
        model_dir / "xgboost-model",
        *sorted(model_dir.glob("*.ubj")),
        *sorted(model_dir.glob("*.json")),
    ]
    for path in candidates:
        if not path.is_file() or path.name == "signature.json":
            continue
        head = path.read_bytes()[:2]
        if head[:1] != b"{":
            continue  # XGBoost's old binary format (or a pickle): no data format to promise
        fmt = "json" if head[1:2] in (b'"', b"\n", b"\r", b"\t", b" ", b"}") else "ubj"
        meta: dict[str, Any] = {
            "framework": "xgboost",
            "format": fmt,
            "model_file": f"{logical_base}/{path.relative_to(model_dir).as_posix()}",
        }
        signature = model_dir / "signature.json"
        if signature.is_file():
            meta["signature"] = json.loads(signature.read_text())
        else:
            meta["signature"] = _signature_from_booster(path)
        return meta
    return None


def _signature_from_booster(path: Path) -> dict[str, Any]:
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(path.read_bytes()))
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    types = {"int": "long", "i": "boolean", "float": "double", "q": "double"}
    ftypes = booster.feature_types or ["float"] * len(names)
    return {
        "inputs": [{"name": n, "type": types.get(t, "double")} for n, t in zip(names, ftypes, strict=True)],
        "outputs": [{"name": "score", "type": "double"}],
    }


def _metrics_lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("round"), int):
            rows.append(row)
    return rows


def _channel_artifact_name(channel: str, uri: str) -> str:
    tail = _SLUG.sub("-", uri.rstrip("/").rsplit("/", 1)[-1]).strip("-.") or "data"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:8]
    stem = channel if tail == channel else f"{channel}-{tail}"
    return f"{stem[:80]}-{digest}"


def _channel_copy(job: Any, info: Mapping[str, Any], channel: Mapping[str, Any]) -> Path | None:
    """The job's own copy of a channel (its root's input/data/NAME), when it is on this machine:
    exactly the bytes the job read, even if the source changed since."""
    from tallymark.jobs.contract import channel_dir, job_root
    from tallymark.jobs.spec import Channel, JobSpec

    try:
        spec = JobSpec.from_dict(dict(info["spec"]))
        root = job_root(str(info["name"]), job.settings.home_path)
        folder = channel_dir(spec, root, Channel(**dict(channel)))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
        return folder
    return None


def _consume_channels(t: Any, job: Any, exp: Any, info: Mapping[str, Any], tmp: Path) -> list[str]:
    """Each channel as an artifact version consumed by the job and the experiment; the refs."""
    from tallymark.sdk.artifact import Artifact, upload_files

    ws, name = info["workspace"], info["name"]
    linked = {link["ref"] for link in info.get("links") or [] if link.get("relation") == "consumed"}
    refs: list[str] = []
    for c in (info.get("spec") or {}).get("inputs") or []:
        uri = str(c.get("uri"))
        if uri.startswith("artifact://"):
            from tallymark.jobs.uris import parse_artifact

            # A sub-path (…:2.0.0/train) reads part of the version; the version is what is consumed.
            a_ws, a_name, ver, _sub = parse_artifact(uri)
            # The version the job read (an alias may have moved since): the job's consumed link,
            # the one naming this very version when the channel gave a version number.
            exact = sorted(r for r in linked if r.startswith(f"artifact:{a_ws}/{a_name}:"))
            if f"artifact:{a_ws}/{a_name}:{ver}" in exact:
                exact = [f"artifact:{a_ws}/{a_name}:{ver}"]
            version = exact[0].rsplit(":", 1)[1] if exact else ver
            if f"artifact:{a_ws}/{a_name}:{version}" not in refs:  # two channels, one version
                version = exp.get_artifact(a_name, version, workspace=a_ws).version
            ref = f"artifact:{a_ws}/{a_name}:{version}"
        else:
            folder = _channel_copy(job, info, c) or tmp / "channels" / str(c.get("name"))
            if not folder.exists():  # the job ran elsewhere: read the source again
                from tallymark.jobs import uris

                folder.mkdir(parents=True)
                uris.fetch(uri, folder, what=f"channel {c.get('name')!r}")
            art_name = _channel_artifact_name(str(c.get("name")), uri)
            art = Artifact(
                art_name,
                artifact_type="dataset",
                metadata={"source": uri, "job": name, "channel": c.get("name")},
            )
            for p in sorted(q for q in folder.rglob("*") if q.is_file()):
                art.add(p, p.relative_to(folder).as_posix())
            manifest = upload_files(t, art._items)
            body = {"artifact_type": "dataset", "aliases": [], "metadata": art.metadata, "files": manifest}
            logged = t.call("log_artifact_version", workspace=exp.workspace, name=art_name, body=body)
            exp.get_artifact(art_name, logged["version"], workspace=exp.workspace)
            ref = f"artifact:{exp.workspace}/{art_name}:{logged['version']}"
        if ref not in linked:
            t.call("job_link", workspace=ws, name=name, body={"relation": "consumed", "ref": ref})
            linked.add(ref)
        refs.append(ref)
    return refs


def log_training_job(job_or_estimator: Any, experiment: Any = None, experiment_key: str | None = None) -> Any:
    """Record a finished training job in an experiment and return the experiment.

    ``experiment`` (an :class:`~tallymark.Experiment`) or ``experiment_key`` log into that one and
    leave it running; with neither, a new experiment named after the job is made and ended. A job
    still running is refused (call ``wait()`` first), as Comet refuses one not completed.
    """
    job = _job_of(job_or_estimator)
    t = job.transport
    info = job.refresh()
    if info.get("kind") != "training":
        raise ValueError(
            f"job {info['name']!r} is a {info.get('kind')} job; log_training_job takes a training job"
        )
    if info["status"] == _RUNNING:
        raise ValueError(f"job {info['name']!r} is still {_RUNNING}: call wait() before logging it")
    from tallymark.jobs.sagemaker import base_name, describe_training_job

    desc = describe_training_job(info)
    exp, how = _open_experiment(info, experiment, experiment_key)
    with tempfile.TemporaryDirectory(prefix="tallymark-logjob-") as tmp_name:
        tmp = Path(tmp_name)
        exp.log_parameters({k: _param_value(v) for k, v in desc["HyperParameters"].items()})
        exp.log_others(_others(desc))
        _consume_channels(t, job, exp, info, tmp)
        _log_job_code(exp, job, info)
        t.call(
            "job_link",
            workspace=info["workspace"],
            name=info["name"],
            body={"relation": "trained", "ref": f"experiment:{exp.get_key()}"},
        )
        logs = tmp / f"{info['name']}.log"
        logs.write_bytes(_read_all_logs(t, info["workspace"], info["name"]))
        exp.log_asset(logs, file_name=f"job-logs/{info['name']}.log")
        model_data = info.get("model_data")
        if model_data:
            _log_outputs(exp, str(model_data), base_name(info["name"]), tmp)
        exp.flush()
    if how == "new":
        exp.end()
    elif how == "attached":
        exp._detach()
    job._tallymark_experiment = (exp.workspace, exp.get_key())
    return exp


def _log_job_code(exp: Any, job: Any, info: Mapping[str, Any]) -> None:
    """The code that trained the model: the job's own copy of its script and source_dir (what it
    ran, even if the source changed since), else the script as given; for a built-in algorithm,
    the trainer's modules (each file once, as the experiment's code)."""
    spec = info.get("spec") or {}
    files: list[Path] = []
    if spec.get("algorithm"):
        import tallymark.jobs.builtin as builtin

        files = sorted(Path(builtin.__file__).parent.glob("*.py"))
    else:
        from tallymark.jobs.contract import job_root

        try:
            code = job_root(str(info["name"]), job.settings.home_path) / "code"
        except (AttributeError, KeyError, TypeError, ValueError):
            code = None
        if code is not None and code.is_dir():
            files = sorted(p for p in code.rglob("*.py") if p.is_file() and not p.is_symlink())
        elif spec.get("script") and Path(str(spec["script"])).is_file():
            files = [Path(str(spec["script"]))]
    for path in files[:200]:  # a source_dir is code, not data: a cap keeps a stray venv out
        exp.log_code(path)


def _log_outputs(exp: Any, model_data: str, model_name: str, tmp: Path) -> None:
    """The per-round metrics (output.tar.gz beside model.tar.gz) and the model with its schema."""
    out_dir = tmp / "output-data"
    out_dir.mkdir()
    extra = _fetch_file(model_data.rsplit("/", 1)[0] + "/output.tar.gz", tmp / "output.tar.gz")
    if extra is not None:
        _unpack(extra, out_dir)
    for row in _metrics_lines(out_dir):
        values = {
            k.replace("-", "_"): v for k, v in row.items() if k != "round" and isinstance(v, (int, float))
        }
        exp.log_metrics(values, step=row["round"])
    tarball = _fetch_file(model_data, tmp / "model.tar.gz")
    if tarball is None:
        return
    model_dir = tmp / "model"
    model_dir.mkdir()
    _unpack(tarball, model_dir)
    meta = _model_metadata(model_dir, model_dir.name)
    exp.log_model(model_name, model_dir, metadata=meta)


def deploy_job(
    job: Any,
    model_name: str | None = None,
    *,
    workspace: str | None = None,
    port: int | None = None,
    endpoint_name: str | None = None,
) -> Any:
    """``job.deploy()``: register the job's model (logging the job first if nobody has) and serve it.

    The model is registered under ``model_name`` (default: the job's name without its timestamp)
    in ``workspace`` (default: the job's), from the experiment ``log_training_job`` recorded the job
    in; the new version is what :meth:`Model.deploy` serves. Returns the :class:`Endpoint`.
    """
    from tallymark.jobs.sagemaker import base_name
    from tallymark.sdk.api import API

    job = _job_of(job)
    info = job.refresh()
    if info.get("status") != "Completed":
        raise ValueError(
            f"job {info.get('name')!r} is {info.get('status')}: only a Completed job has a model"
        )
    logged_name = base_name(str(info["name"]))
    key = info.get("experiment_key") or (getattr(job, "_tallymark_experiment", None) or (None, None))[1]
    if key is None:
        key = log_training_job(job).get_key()
    api = API()
    ws = workspace or api.get_experiment_by_key(key).workspace
    # Registering reads the experiment's logged model; an ended experiment allows it.
    registered = job.transport.call(
        "register_model",
        workspace=ws,
        name=model_name or logged_name,
        body={
            "experiment_key": key,
            "experiment_model": logged_name,
            "version": None,
            "status": "development",
            "description": f"trained by job {info['name']}",
            "tags": [],
        },
    )
    model = api.get_model(ws, model_name or logged_name)
    kwargs: dict[str, Any] = {"port": port}
    if endpoint_name:
        kwargs["name"] = endpoint_name
    return model.deploy(str(registered["version"]), **kwargs)
