"""The SageMaker script contract: a job's root with the /opt/ml layout, its SM_* environment and
its command line, so scripts written for SageMaker run unchanged (docs/jobs.md lists it all).

A job's root is ``TALLYMARK_HOME/jobs/NAME`` on the machine that runs it::

    input/data/CHANNEL/            training channels (copies: the script may not change the source)
    input/config/hyperparameters.json   values as strings, as SageMaker writes them
    input/config/inputdataconfig.json   one entry per channel
    input/config/resourceconfig.json    {"current_host": "algo-1", "hosts": ["algo-1"], …}
    model/                         what the script saves (packed as OUTPUT_PATH/NAME/output/model.tar.gz)
    output/data/                   other output (packed as output.tar.gz beside model.tar.gz)
    output/failure                 a script that fails may write why here (it becomes failure_reason)
    code/                          the script (or its source_dir), the working directory
    processing/…                   processing inputs/outputs whose paths are under /opt/ml/processing
    logs/output.log                the job's whole output (the store keeps a capped copy)

With a private mount namespace (:mod:`tallymark.jobs.mounts`) the root is seen at ``/opt/ml`` and
the variables name /opt/ml paths; without one they name the root's real paths.

:func:`prepare_root` lays the root out and materialises the inputs before the script starts (a
missing input fails the job there, with its name); :func:`finish_root` publishes the outputs and
packs ``model.tar.gz`` after a successful attempt.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

from tallymark.jobs.spec import JobSpec
from tallymark.settings import JOB_NAME_ENV, JOB_WORKSPACE_ENV

__all__ = [
    "ML",
    "JobInputError",
    "JobOutputError",
    "command",
    "environment",
    "finish_root",
    "inside",
    "job_root",
    "prepare_root",
    "script_path",
]

ML = "/opt/ml"
HOST = "algo-1"
MOUNTS = ".mounts"  # paths outside /opt/ml (processing), bound at their real place in the namespace


class JobInputError(Exception):
    """An input could not be read: the job fails with this message before its script starts."""


class JobOutputError(Exception):
    """An output could not be written (or the model dir is empty): the job fails with this message."""


def job_root(name: str, home: Path | None = None) -> Path:
    """Where job ``name`` lives on this machine: ``TALLYMARK_HOME/jobs/NAME``."""
    if home is None:
        from tallymark.settings import ClientSettings

        home = ClientSettings.from_env().home_path
    return Path(home).expanduser() / "jobs" / name


def inside(root: Path, path: str, name: str = "") -> Path:
    """Where a path the script uses (``/opt/ml/...`` or elsewhere) is in the job's root."""
    if path == ML or path.startswith(ML + "/"):
        rel = path[len(ML) :].strip("/")
        return root / rel if rel else root
    return root / MOUNTS / (name or path.strip("/").replace("/", "_"))


def extra_mounts(spec: JobSpec, root: Path) -> list[tuple[Path, str]]:
    """(root dir, path in the namespace) of processing paths outside /opt/ml, to bind there."""
    out = []
    for c in spec.inputs:
        if c.destination and not c.destination.startswith(ML + "/"):
            out.append((inside(root, c.destination, "in-" + c.name), c.destination))
    for o in spec.outputs:
        if not o.source.startswith(ML + "/"):
            out.append((inside(root, o.source, "out-" + o.name), o.source))
    return out


def channel_dir(spec: JobSpec, root: Path, c: Any) -> Path:
    if c.destination:
        return inside(root, c.destination, "in-" + c.name)
    return root / "input" / "data" / c.name


def script_path(spec: JobSpec, base: str) -> str:
    """The script the job runs, as the script sees it."""
    if spec.algorithm is not None:
        return str(Path(__file__).resolve().parent / "builtin" / f"{spec.algorithm}_train.py")
    assert spec.script is not None
    if spec.source_dir:
        return (
            f"{base}/code/{spec.script}"
            if not os.path.isabs(spec.script)
            else (f"{base}/code/{os.path.relpath(spec.script, spec.source_dir)}")
        )
    return f"{base}/code/{Path(spec.script).name}"


def _hp_value(v: str) -> Any:
    try:
        return json.loads(v)
    except ValueError:
        return v


def environment(spec: JobSpec, root: Path, namespaced: bool) -> dict[str, str]:
    """The SM_* variables (and a few of SageMaker's others) for this job."""
    base = ML if namespaced else str(root)
    channels = [c.name for c in spec.inputs] if spec.kind == "training" else []
    hps = {k: _hp_value(v) for k, v in spec.hyperparameters.items()}
    chan_dirs = {c: f"{base}/input/data/{c}" for c in channels}
    ncpu = os.cpu_count() or 1
    training_env = {
        "job_name": spec.name,
        "channel_input_dirs": chan_dirs,
        "current_host": HOST,
        "hosts": [HOST],
        "hyperparameters": hps,
        "input_config_dir": f"{base}/input/config",
        "input_data_config": _input_data_config(spec),
        "input_dir": f"{base}/input",
        "model_dir": f"{base}/model",
        "module_dir": f"{base}/code",
        "module_name": Path(spec.script or f"{spec.algorithm}_train.py").stem,
        "num_cpus": ncpu,
        "num_gpus": 0,
        "output_data_dir": f"{base}/output/data",
        "output_dir": f"{base}/output",
        "resource_config": _resource_config(),
        "user_entry_point": Path(spec.script or "").name,
    }
    env = {
        "SM_MODEL_DIR": f"{base}/model",
        "SM_CHANNELS": json.dumps(channels),
        "SM_HPS": json.dumps(hps),
        "SM_OUTPUT_DATA_DIR": f"{base}/output/data",
        "SM_OUTPUT_DIR": f"{base}/output",
        "SM_OUTPUT_FAILURE": f"{base}/output/failure",
        "SM_INPUT_DIR": f"{base}/input",
        "SM_INPUT_CONFIG_DIR": f"{base}/input/config",
        "SM_INPUT_DATA_CONFIG": json.dumps(_input_data_config(spec)),
        "SM_RESOURCE_CONFIG": json.dumps(_resource_config()),
        "SM_MODULE_DIR": f"{base}/code",
        "SM_MODULE_NAME": str(training_env["module_name"]),
        "SM_CURRENT_HOST": HOST,
        "SM_HOSTS": json.dumps([HOST]),
        "SM_NUM_CPUS": str(ncpu),
        "SM_NUM_GPUS": "0",
        "SM_USER_ARGS": json.dumps(list(arguments(spec))),
        "SM_TRAINING_ENV": json.dumps(training_env),
        "TRAINING_JOB_NAME" if spec.kind == "training" else "PROCESSING_JOB_NAME": spec.name,
        JOB_NAME_ENV: spec.name,
        JOB_WORKSPACE_ENV: spec.workspace,
        "PYTHONUNBUFFERED": "1",  # output reaches the log as it is printed, not at exit
    }
    for c in channels:
        env[f"SM_CHANNEL_{c.upper().replace('-', '_').replace('.', '_')}"] = chan_dirs[c]
    for k, v in spec.hyperparameters.items():
        env[f"SM_HP_{k.upper().replace('-', '_').replace('.', '_')}"] = v
    return env


def arguments(spec: JobSpec) -> tuple[str, ...]:
    """The script's arguments: hyperparameters as ``--key value`` (training), then ``arguments``."""
    hp: list[str] = []
    for k, v in spec.hyperparameters.items():
        hp += [f"--{k}", v]
    return (*hp, *spec.arguments)


def command(spec: JobSpec, root: Path, namespaced: bool) -> list[str]:
    """The command line of the job's process (as run inside the namespace, if any)."""
    base = ML if namespaced else str(root)
    interpreter = list(spec.command) or [sys.executable]
    return [*interpreter, script_path(spec, base), *arguments(spec)]


def _input_data_config(spec: JobSpec) -> dict[str, Any]:
    return {
        c.name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
            **({"ContentType": c.content_type} if c.content_type else {}),
        }
        for c in spec.inputs
        if spec.kind == "training"
    }


def _resource_config() -> dict[str, Any]:
    return {"current_host": HOST, "hosts": [HOST], "network_interface_name": "lo"}


def prepare_root(spec: JobSpec, root: Path, transport: Any = None) -> list[dict[str, Any]]:
    """Lay out the job's root and fetch its inputs (local paths, s3://, artifact://).

    Returns what was fetched (``{"name", "uri", "ref"?, "files"?}``; ``ref`` for an artifact
    version, recorded as consumed by the job). Raises :class:`JobInputError` naming the input that
    could not be read. Safe to call again for a retry: inputs are fetched afresh."""
    from tallymark.jobs import uris

    root = Path(root)
    for d in ("input/data", "input/config", "model", "output/data", "code", "logs"):
        (root / d).mkdir(parents=True, exist_ok=True)
    cfg = root / "input" / "config"
    (cfg / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters))
    (cfg / "inputdataconfig.json").write_text(json.dumps(_input_data_config(spec)))
    (cfg / "resourceconfig.json").write_text(json.dumps(_resource_config()))
    _copy_code(spec, root / "code")
    fetched = []
    for c in spec.inputs:
        dest = channel_dir(spec, root, c)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        info = uris.fetch(c.uri, dest, what=f"input {c.name!r}", transport=transport)
        fetched.append({"name": c.name, "uri": c.uri, **info})
    for o in spec.outputs:
        src = inside(root, o.source, "out-" + o.name)
        if src.exists():
            shutil.rmtree(src)
        src.mkdir(parents=True)
    for folder, _ in extra_mounts(spec, root):
        folder.mkdir(parents=True, exist_ok=True)
    return fetched


def _copy_code(spec: JobSpec, code: Path) -> None:
    if spec.algorithm is not None:
        return
    assert spec.script is not None
    if spec.source_dir:
        src = Path(spec.source_dir)
        if not src.is_dir():
            raise JobInputError(f"source_dir {spec.source_dir!r} is not a folder")
        from tallymark.store.paths import safe_walk

        for entry in safe_walk(src):
            target = code / entry.logical_path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(entry.path, target)
        script = Path(spec.script) if os.path.isabs(spec.script) else src / spec.script
    else:
        script = Path(spec.script)
        if script.is_file():
            shutil.copy2(script, code / script.name)
    if not script.is_file():
        raise JobInputError(f"the job's script {spec.script!r} does not exist (or is not a file)")


def finish_root(spec: JobSpec, root: Path, transport: Any = None) -> dict[str, Any]:
    """Publish a successful attempt's outputs: processing outputs to their destinations, a training
    job's model dir as ``OUTPUT_PATH/NAME/output/model.tar.gz`` (and output/data as
    ``output.tar.gz`` when the script wrote any). Returns ``{"model_data": uri | None,
    "outputs": [...]}``; raises :class:`JobOutputError` (an empty model dir, a destination that
    cannot be written)."""
    from tallymark.jobs import uris

    root = Path(root)
    out: dict[str, Any] = {"model_data": None, "outputs": []}
    for o in spec.outputs:
        src = inside(root, o.source, "out-" + o.name)
        info = uris.publish(src, o.destination, what=f"output {o.name!r}", job=spec.name, transport=transport)
        out["outputs"].append({"name": o.name, "uri": o.destination, **info})
    if spec.kind != "training":
        return out
    model = root / "model"
    if not model.is_dir() or not any(model.iterdir()):
        raise JobOutputError(
            f"the model directory {ML}/model (SM_MODEL_DIR) is empty: the script saved no model"
        )
    default = root.parent  # OUTPUT_PATH default: TALLYMARK_HOME/jobs, so the tarball is ROOT/output/
    dest = spec.output_path or str(default)
    packed = root / "output" / "model.tar.gz"
    _pack(model, packed)
    data_dir = root / "output" / "data"
    extra = root / "output" / "output.tar.gz"
    if data_dir.is_dir() and any(data_dir.iterdir()):
        _pack(data_dir, extra)
    prefix = f"{dest.rstrip('/')}/{spec.name}/output"
    out["model_data"] = uris.place(packed, f"{prefix}/model.tar.gz", what="the model (output_path)")
    if extra.exists():
        out["output_data"] = uris.place(extra, f"{prefix}/output.tar.gz", what="output data (output_path)")
    return out


def _pack(folder: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".part")
    with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
        for p in sorted(folder.rglob("*")):
            if p.is_symlink():
                continue  # a link could point anywhere on this machine: never packed
            tar.add(p, arcname=str(p.relative_to(folder)), recursive=False)
    os.replace(tmp, target)
