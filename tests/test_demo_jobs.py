"""``tallymark demo`` v2 end to end: jobs, an endpoint over real HTTP, evaluation, approval, lineage.

Everything is real: the ProcessingJob and TrainingJobs are child processes (locally, or on the
workers of a 2-process Dask LocalCluster the demo starts), the endpoint is its own process answering
HTTP on loopback, the store is a temporary embedded home. ``rows`` is small so a run takes seconds
of training; the checks read everything back through ``tallymark.API`` and the transport.
"""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROWS = 5_000


def _run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> tuple[Any, str]:
    monkeypatch.setenv("TALLYMARK_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TALLYMARK_URL", raising=False)
    monkeypatch.delenv("TALLYMARK_API_KEY", raising=False)
    from rich.console import Console

    from tallymark.demo.workflow import run_demo

    out = io.StringIO()
    result = run_demo(rows=ROWS, console=Console(file=out, width=200, color_system=None), **kwargs)
    return result, out.getvalue()


def _lineage_refs(api: Any, node: str) -> set[str]:
    return {n["ref"] for n in api.get_lineage(node, "upstream")["nodes"]}


def _check_common(result: Any, text: str) -> Any:
    import tallymark
    from tallymark.demo.workflow import BASELINE, IMBALANCE
    from tallymark.sdk.transport import default_transport

    assert [run.name for run in result.runs] == [BASELINE.name, IMBALANCE.name]
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in result.keys)
    assert len({run.job_name for run in result.runs} | {result.processing_job}) == 3
    assert result.datasets == {"raw": "1.0.0", "preprocessed": "2.0.0"}
    assert result.dataset["dataset_rows_raw"] == ROWS
    best = result.best
    assert best.metrics["validation_auc_pr"] == max(run.metrics["validation_auc_pr"] for run in result.runs)

    api = tallymark.API()
    transport = default_transport()
    # Every job ran to the end and is a row in the store.
    for name in (result.processing_job, *(run.job_name for run in result.runs)):
        job = transport.call("get_job", workspace="demo", name=name)
        assert job["status"] == "Completed", job

    # The preprocessed version is the ProcessingJob's output; it was made from the raw version.
    pre = api.get_artifact("demo", "fraud-dataset", "preprocessed")
    assert pre.version == "2.0.0"
    logical = {f["logicalPath"] for f in pre.assets}
    assert {"train/train.parquet", "validation/validation.parquet", "test/test.parquet"} <= logical
    # The unmodified SageMaker-style script did what the in-process preprocessing does.
    from tallymark.demo.data import generate
    from tallymark.demo.preprocess import preprocess

    expected = preprocess(generate(ROWS, seed=0), seed=0)
    folder = Path(tempfile.mkdtemp(prefix="demo-pre-"))
    pre.download(folder)
    for split in ("train", "validation", "test"):
        got = pd.read_parquet(folder / split / f"{split}.parquet")
        assert list(got.columns) == ["Class", *expected.feature_names]  # label first
        assert np.array_equal(got["Class"].to_numpy(), getattr(expected, f"y_{split}"))
        assert np.allclose(got[expected.feature_names].to_numpy(), getattr(expected, f"X_{split}").to_numpy())
    shutil.rmtree(folder)
    # The training channels are sub-paths of that exact version (no split logged on its own).
    assert sorted(a["name"] for a in api.get_artifacts("demo")) == ["fraud-dataset"]
    for run in result.runs:
        job = transport.call("get_job", workspace="demo", name=run.job_name)
        assert {c["name"]: c["uri"] for c in job["spec"]["inputs"]} == {
            "train": "artifact://demo/fraud-dataset:2.0.0/train",
            "validation": "artifact://demo/fraud-dataset:2.0.0/validation",
        }
        consumed = {link["ref"] for link in job["links"] if link["relation"] == "consumed"}
        assert consumed == {"artifact:demo/fraud-dataset:2.0.0"}
    pre_refs = _lineage_refs(api, "artifact:demo/fraud-dataset:2.0.0")
    assert f"job:{result.processing_job}" in pre_refs and "artifact:demo/fraud-dataset:1.0.0" in pre_refs

    # Both models registered; the deployed one is in production, approved by a second identity.
    model = api.get_model("demo", "fraud-xgb")
    assert model.find_versions() == [run.model_version for run in result.runs]
    assert model.find_versions(status="production") == [best.model_version] == [result.production]
    history = model.get_details(result.production)["history"]
    assert history[-1]["to"] == "production" and history[-1]["actor"] == "risk-officer"

    # The deployed model's lineage reaches the raw data through both jobs.
    refs = _lineage_refs(api, f"model:demo/fraud-xgb:{best.model_version}")
    assert {f"job:{best.job_name}", f"job:{result.processing_job}", f"experiment:{best.key}"} <= refs
    assert {"artifact:demo/fraud-dataset:1.0.0", "artifact:demo/fraud-dataset:2.0.0"} <= refs
    assert "Lineage of the deployed model" in text and best.job_name in text and "fraud-dataset 1.0.0" in text

    # Each experiment records its job (log_training_job) and its validation scores.
    for run in result.runs:
        experiment = api.get_experiment_by_key(run.key)
        summary = {row["name"]: row for row in experiment.get_metrics_summary()}
        for name in ("validation_auc_pr", "validation_auc_roc"):
            assert float(summary[name]["valueCurrent"]) == pytest.approx(run.metrics[name], rel=1e-9), name
        params = {row["name"]: str(row["valueCurrent"]) for row in experiment.get_parameters_summary()}
        assert params["learning_rate"] == str(run.params["learning_rate"])
        assert str(run.params["num_round"]) == params["num_round"]
        assert run.key in text and run.url in text

    # The deployed model's test evaluation came from the endpoint's answers: the same rows are in
    # its prediction log, with the labels joined.
    experiment = api.get_experiment_by_key(best.key)
    summary = {row["name"]: row for row in experiment.get_metrics_summary()}
    for name in ("test_auc_pr", "test_auc_roc", "test_precision", "test_recall", "test_f1"):
        assert float(summary[name]["valueCurrent"]) == pytest.approx(best.metrics[name], rel=1e-9), name
    others = {row["name"]: row["valueCurrent"] for row in experiment.get_others_summary()}
    assert result.endpoint_name in str(others["evaluation_source"])
    (matrix,) = experiment.get_confusion_matrices()
    assert {c["name"] for c in experiment.get_curves()} >= {"roc_curve", "pr_curve"}
    (tn, fp), (fn, tp) = best.confusion_matrix
    assert tn + fp + fn + tp == result.dataset["test_rows"]
    assert fn + tp == result.dataset["test_frauds"]
    assert matrix is not None
    for run in result.runs:
        if run is not best:
            assert "test_auc_pr" not in run.metrics and run.confusion_matrix is None

    from tallymark.sdk.predictions import read_predictions

    # A kept endpoint ships its prediction log in the background (a deleted one drained it on
    # close): wait for the rows, then check them all.
    deadline = time.monotonic() + 60
    logged = read_predictions("demo", result.endpoint_name)
    while logged.num_rows < result.dataset["test_rows"] and time.monotonic() < deadline:
        time.sleep(0.2)
        logged = read_predictions("demo", result.endpoint_name)
    assert logged.num_rows == result.dataset["test_rows"]
    labels = logged.column("label").to_numpy(zero_copy_only=False)
    assert not np.isnan(labels.astype(np.float64)).any()
    assert int(np.nansum(labels.astype(np.float64))) == result.dataset["test_frauds"]

    assert f"tallymark experiments compare {result.keys[0]} {result.keys[1]}" in text
    assert "tallymark ui" in text
    api.close()
    return transport


def test_demo_runs_the_workflow_as_local_jobs_and_an_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result, text = _run(tmp_path, monkeypatch)
    assert result.backend == "local" and not result.endpoint_kept
    transport = _check_common(result, text)
    endpoint = transport.call("get_endpoint", workspace="demo", name=result.endpoint_name)
    assert endpoint["status"] == "Deleted", endpoint  # deleted at the end
    assert endpoint["model"]["version"] == result.best.model_version
    assert "was deleted" in text


@pytest.mark.slow
def test_demo_on_a_local_dask_cluster_keeps_the_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from tallymark.sdk.endpoint import Endpoint

    result, text = _run(tmp_path, monkeypatch, backend="dask", keep_endpoint=True)
    transport = None
    try:
        assert result.backend == "dask" and result.endpoint_kept
        transport = _check_common(result, text)
        for name in (result.processing_job, *(run.job_name for run in result.runs)):
            job = transport.call("get_job", workspace="demo", name=name)
            assert str(job["backend"]).startswith("dask://127.0.0.1:"), job
        assert "Dask cluster" in text and result.endpoint_url in text
        # --keep-endpoint: it still answers after the demo has returned (and closed its cluster).
        ready = httpx.get(result.endpoint_url.rstrip("/") + "/v2/health/ready", timeout=10)
        assert ready.status_code == 200
    finally:
        from tallymark.sdk.transport import default_transport

        t = transport or default_transport()
        Endpoint(t, t.call("get_endpoint", workspace="demo", name=result.endpoint_name)).delete()
