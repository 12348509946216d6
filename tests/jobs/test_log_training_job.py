"""log_training_job: what Comet's SageMaker logger records, plus channels as consumed artifact
versions with hashes, exit code, logs, per-round metrics, the model with its feature schema, and
the job in lineage. Real jobs on the local backend, a real embedded store."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import pytest
from builtin_data import imbalanced, write_csv

import tallymark
from tallymark.integration.jobs import log_training_job
from tallymark.jobs import TrainingJob
from tallymark.jobs.sagemaker import Estimator, image_uris

HPS = {"objective": "binary:logistic", "num_round": 8, "eval_metric": "auc,aucpr", "learning_rate": 0.3}
# The fields Comet's log_sagemaker_training_job_v1 logs as "others" (comet_ml/integration/sagemaker).
COMET_OTHERS = {
    "BillableTimeInSeconds",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "EnableNetworkIsolation",
    "RoleArn",
    "TrainingJobArn",
    "TrainingJobName",
    "TrainingJobStatus",
    "TrainingTimeInSeconds",
    "TrainingImage",
    "TrainingInputMode",
    "ModelArtifacts.S3ModelArtifacts",
    "OutputDataConfig.S3OutputPath",
    "ResourceConfig.InstanceCount",
    "ResourceConfig.InstanceType",
    "ResourceConfig.VolumeSizeInGB",
    "InputDataConfig.0.ChannelName",
    "InputDataConfig.0.DataSource.S3DataSource.S3Uri",
}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _others(exp) -> dict:
    return {o["name"]: o["valueCurrent"] for o in exp.get_others_summary()}


def test_new_experiment_records_comet_fields_and_more(home: Path, tmp_path: Path) -> None:
    X, y = imbalanced(rows=1200, seed=2)
    train = write_csv(tmp_path / "train", X[:900], y[:900])
    write_csv(tmp_path / "validation", X[900:], y[900:])
    est = Estimator(
        image_uri=image_uris.retrieve("xgboost", "us-east-1", "1.7-1"),
        role="arn:aws:iam::1:role/sm",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=str(tmp_path / "out"),
        hyperparameters=HPS,
        workspace="risk",
        project_name="fraud",
    )
    est.fit({"train": str(tmp_path / "train"), "validation": str(tmp_path / "validation")}, logs=False)
    name = est.latest_training_job.job_name
    read_by_job = _sha(train)
    train.write_text("1,2,3,4,5,6,7\n")  # the source changes after the job: lineage keeps what it read

    exp = log_training_job(est)
    api = tallymark.API()
    got = api.get_experiment_by_key(exp.get_key())
    assert got.name == name and got.project_name == "fraud" and got.status == "ended"

    others = _others(got)
    assert COMET_OTHERS <= set(others)
    assert others["TrainingJobName"] == name
    assert others["TrainingJobStatus"] == "Completed"
    assert others["RoleArn"] == "arn:aws:iam::1:role/sm"
    assert others["ModelArtifacts.S3ModelArtifacts"] == est.model_data
    assert others["ExitCode"] == 0
    assert {"TrainingStartTime", "TrainingEndTime", "Backend"} <= set(others)

    params = {p["name"]: p["valueCurrent"] for p in got.get_parameters_summary()}
    assert params == {
        "objective": "binary:logistic",
        "num_round": 8,
        "eval_metric": "auc,aucpr",
        "learning_rate": 0.3,
    }

    auc = got.get_metrics("validation_aucpr")
    assert [m["step"] for m in auc] == list(range(1, 9))
    summary = {m["name"] for m in got.get_metrics_summary()}
    assert {"train_auc", "train_aucpr", "validation_auc", "validation_aucpr"} <= summary

    assets = {a["fileName"] for a in got.get_asset_list()}
    assert f"job-logs/{name}.log" in assets

    (model,) = got.get_logged_models()
    meta = model["metadata"]
    assert meta["framework"] == "xgboost" and meta["format"] == "ubj"
    assert meta["model_file"] == "model/xgboost-model"
    assert meta["signature"]["inputs"][0] == {"name": "f0", "type": "double"}
    assert len(meta["signature"]["inputs"]) == 6

    lineage = got.get_lineage()
    edges = {(e["src"].split(":")[0], e["dst"].split(":")[0], e["relation"]) for e in lineage["edges"]}
    assert ("artifact", "job", "consumed") in edges
    assert ("job", "experiment", "trained") in edges
    datasets = [n for n in lineage["nodes"] if n["kind"] == "artifact_version"]
    train_version = next(n for n in datasets if n["metadata"]["channel"] == "train")
    assert train_version["files"][0]["sha256"] == read_by_job
    assert train_version["metadata"]["source"] == str(tmp_path / "train")


def test_into_a_running_experiment_by_key_leaves_it_running(home: Path, tmp_path: Path) -> None:
    X, y = imbalanced(rows=600, seed=4)
    write_csv(tmp_path / "train", X, y)
    job = TrainingJob(
        algorithm="xgboost", hyperparameters={**HPS, "eval_metric": "logloss"}, workspace="risk"
    )
    job.fit({"train": str(tmp_path / "train")})
    with tallymark.Experiment(
        project_name="fraud",
        workspace="risk",
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    ) as mine:
        mine.log_parameter("mine", 1)
        log_training_job(job, experiment_key=mine.get_key())
        mine.log_metric("after", 1.0)  # still running: the logger did not end it
        mine.flush()
        got = tallymark.API().get_experiment_by_key(mine.get_key())
        assert got.status == "running"
    params = {p["name"] for p in got.get_parameters_summary()}
    assert {"mine", "objective", "num_round"} <= params
    assert {m["name"] for m in got.get_metrics_summary()} >= {"after", "train_logloss"}
    assert job.refresh()["experiment_key"] == mine.get_key()


def test_artifact_channel_is_consumed_at_the_version_the_job_read(home: Path, tmp_path: Path) -> None:
    X, y = imbalanced(rows=600, seed=6)
    write_csv(tmp_path / "d", X, y)
    with tallymark.Experiment(
        project_name="prep",
        workspace="risk",
        log_code=False,
        log_env=False,
        log_git=False,
        log_system_metrics=False,
        capture_stdout=False,
    ) as prep:
        art = tallymark.Artifact("fraud-train", artifact_type="dataset", aliases=["preprocessed"])
        art.add(tmp_path / "d" / "part.csv", "part.csv")
        logged = prep.log_artifact(art)
    job = TrainingJob(
        algorithm="xgboost",
        hyperparameters={"num_round": 3, "objective": "binary:logistic"},
        workspace="risk",
    )
    job.fit({"train": "artifact://risk/fraud-train:preprocessed"})
    assert job.status == "Completed", job.failure_reason
    exp = log_training_job(job)
    lineage = tallymark.API().get_experiment_by_key(exp.get_key()).get_lineage()
    ref = f"artifact:risk/fraud-train:{logged.version}"
    assert {"src": ref, "dst": f"experiment:{exp.get_key()}", "relation": "consumed"} in lineage["edges"]
    assert {"src": ref, "dst": f"job:{job.job_name}", "relation": "consumed"} in lineage["edges"]


def test_failed_and_running_jobs(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nprint('about to fail')\nsys.exit(3)\n")
    job = TrainingJob(entry_point=str(bad), workspace="risk")
    job.fit({})
    assert job.status == "Failed"
    exp = log_training_job(job)
    others = _others(tallymark.API().get_experiment_by_key(exp.get_key()))
    assert others["TrainingJobStatus"] == "Failed" and others["ExitCode"] == 3
    assert "exited with code 3" in others["FailureReason"]

    slow = tmp_path / "slow.py"
    slow.write_text(textwrap.dedent("import time\nprint('up', flush=True)\ntime.sleep(600)\n"))
    running = TrainingJob(entry_point=str(slow), workspace="risk", stop_grace=1)
    running.fit({}, wait=False)
    try:
        with pytest.raises(ValueError, match="still InProgress"):
            log_training_job(running)
    finally:
        running.stop()
        assert running.wait(timeout=60) == "Stopped"
    with pytest.raises(ValueError, match="call fit"):
        log_training_job(Estimator(image_uri=image_uris.retrieve("xgboost")))


def test_job_deploy_registers_from_the_logged_experiment(home: Path, tmp_path: Path) -> None:
    import numpy as np

    X, y = imbalanced(rows=800, seed=8)
    write_csv(tmp_path / "train", X, y)
    job = TrainingJob(
        algorithm="xgboost",
        hyperparameters={"num_round": 4, "objective": "binary:logistic"},
        workspace="risk",
    )
    job.fit({"train": str(tmp_path / "train")})
    exp = log_training_job(job)
    endpoint = job.deploy("fraud-xgb")
    try:
        assert tuple(endpoint.model)[:2] == ("risk", "fraud-xgb")
        scores = endpoint.predict(X[:5])
        assert scores.shape == (5,) and np.all((scores > 0) & (scores < 1))
    finally:
        endpoint.delete()
    model = tallymark.API().get_model("risk", "fraud-xgb")
    (version,) = model.find_versions()
    assert version == tuple(endpoint.model)[2]
    assert model.get_details(version)["experimentKey"] == exp.get_key()  # no second experiment
