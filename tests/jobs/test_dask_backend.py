"""Jobs on a real Dask cluster: a LocalCluster of 2 worker processes on loopback, started once for
this module. Script jobs run as children of a task on a worker (so stop and max_run really end
them, and their output reaches the store); the built-in XGBoost trainer trains with xgboost.dask
across both workers."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builtin_data import imbalanced, write_csv

from tallymark.jobs import TrainingJob

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from distributed import Client, LocalCluster

    lc = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=40,
    )
    client = Client(lc)
    try:
        yield client
    finally:
        client.close()
        lc.close()


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(body))
    return path


def _wait_for_log(job: TrainingJob, text: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in job.logs():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the job's log: {job.logs()!r}")


def _gone(pid: int) -> bool:
    from procutil import pid_alive  # a zombie counts as gone

    return not pid_alive(pid)


def test_script_job_runs_on_a_worker_and_its_logs_reach_the_store(
    home: Path, tmp_path: Path, cluster
) -> None:
    address = cluster.scheduler.address
    script = _script(
        tmp_path,
        """
        import os, sys
        print("hello from", os.environ["SM_CURRENT_HOST"], flush=True)
        print("warning on stderr", file=sys.stderr, flush=True)
        open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("m")
        """,
    )
    job = TrainingJob(
        entry_point=str(script), backend="dask://" + address.split("://", 1)[1], workspace="risk"
    )
    job.fit({}, wait=False)
    assert job.wait(timeout=120) == "Completed", job.failure_reason
    info = job.refresh()
    assert info["backend"] == "dask://" + address.split("://", 1)[1]
    logs = job.logs()
    assert "hello from algo-1" in logs
    assert "warning on stderr" in logs
    assert job.exit_code == 0
    assert job.model_data is not None and Path(job.model_data).is_file()
    assert job._handle.wait(timeout=30)  # the worker's task has returned


def test_stop_ends_the_child_on_the_worker(home: Path, tmp_path: Path, cluster) -> None:
    script = _script(
        tmp_path,
        """
        import time
        print("started", flush=True)
        time.sleep(600)
        """,
    )
    job = TrainingJob(entry_point=str(script), backend=cluster, workspace="risk")
    job.fit({}, wait=False)
    _wait_for_log(job, "started")
    pid = job.refresh()["pid"]
    job.stop()
    assert job.wait(timeout=60) == "Stopped"
    assert job.failure_reason == "stopped on request"
    assert job._handle.wait(timeout=30)
    assert _gone(pid)


def test_max_run_times_out_on_the_worker(home: Path, tmp_path: Path, cluster) -> None:
    script = _script(
        tmp_path,
        """
        import time
        print("working", flush=True)
        while True:
            time.sleep(1)
        """,
    )
    job = TrainingJob(entry_point=str(script), backend=cluster, workspace="risk", max_run=2, stop_grace=1)
    job.fit({}, wait=False)
    assert job.wait(timeout=60) == "TimedOut"
    assert "max_run=2s" in (job.failure_reason or "")
    assert "working" in job.logs()


def _auc(y, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, scores))


def test_builtin_xgboost_trains_across_the_workers(home: Path, tmp_path: Path, cluster) -> None:
    import tarfile

    import xgboost as xgb

    from tallymark.jobs.builtin import xgboost_train
    from tallymark.jobs.sagemaker import Estimator, image_uris

    X, y = imbalanced(rows=4000, seed=3)
    train, val, test = slice(0, 2400), slice(2400, 3200), slice(3200, 4000)
    write_csv(tmp_path / "train", X[train], y[train])
    write_csv(tmp_path / "validation", X[val], y[val])
    hps = {
        "objective": "binary:logistic",
        "num_round": "15",
        "eta": "0.2",
        "max_depth": "4",
        "eval_metric": "auc",
        "seed": "5",
    }

    # The bar: the same trainer on one machine, scored on the same held-out rows.
    local = tmp_path / "local"
    env = {
        "SM_CHANNEL_TRAIN": str(tmp_path / "train"),
        "SM_CHANNEL_VALIDATION": str(tmp_path / "validation"),
        "SM_MODEL_DIR": str(local / "model"),
        "SM_OUTPUT_DATA_DIR": str(local / "data"),
        "SM_OUTPUT_FAILURE": str(local / "failure"),
        "SM_HPS": json.dumps(hps),
    }
    assert xgboost_train.run(env, []) == 0
    local_model = xgb.Booster()
    local_model.load_model(bytearray((local / "model" / "xgboost-model").read_bytes()))
    local_auc = _auc(y[test], local_model.predict(xgb.DMatrix(X[test])))
    assert local_auc > 0.8  # the data is learnable at all; otherwise the comparison below is empty

    est = Estimator(
        image_uri=image_uris.retrieve("xgboost", "eu-west-1", "1.7-1"),
        role="arn:aws:iam::123:role/sm",
        instance_count=2,
        instance_type="ml.m5.large",
        hyperparameters=hps,
        output_path=str(tmp_path / "out"),
        backend=cluster,
        workspace="risk",
    )
    est.fit({"train": str(tmp_path / "train"), "validation": str(tmp_path / "validation")}, logs=False)
    job = est.latest_training_job.job
    assert job.status == "Completed", job.failure_reason
    logs = job.logs()
    assert "training on 2 Dask workers" in logs
    assert "[15]#011train-auc:" in logs

    with tarfile.open(est.model_data) as tar:
        data = tar.extractfile("xgboost-model").read()
    model = xgb.Booster()
    model.load_model(bytearray(data))
    assert model.num_boosted_rounds() == 15
    dask_auc = _auc(y[test], model.predict(xgb.DMatrix(X[test])))
    # Distributed histograms differ a little from one machine's; a sane model stays close.
    assert dask_auc >= local_auc - 0.03, (dask_auc, local_auc)


def test_a_lost_worker_fails_the_job_once_and_ends_its_script(home: Path, tmp_path: Path, cluster) -> None:
    import os
    import signal

    script = _script(
        tmp_path,
        """
        import time
        print("running", flush=True)
        time.sleep(600)
        """,
    )
    job = TrainingJob(entry_point=str(script), backend=cluster, workspace="risk", stop_grace=1)
    job.fit({}, wait=False)
    _wait_for_log(job, "running")
    child = job.refresh()["pid"]
    key = job._handle.future.key
    (worker,) = [w for w, keys in cluster.processing().items() if key in keys]
    worker_pid = cluster.run(os.getpid, workers=[worker])[worker]
    os.kill(worker_pid, signal.SIGKILL)  # the nanny starts a new worker; Dask re-runs the task
    assert job.wait(timeout=120) == "Failed"
    reason = job.failure_reason or ""
    assert "worker running the job was lost" in reason, reason
    assert "its script was ended" in reason
    end = time.monotonic() + 10
    while not _gone(child) and time.monotonic() < end:
        time.sleep(0.1)
    assert _gone(child)
    assert job.refresh()["attempt"] == 1  # not run a second time
    cluster.wait_for_workers(2, timeout=60)
