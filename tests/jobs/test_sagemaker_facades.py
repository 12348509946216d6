"""The reference notebook's SageMaker names over tallymark jobs (local backend, real processes,
a real endpoint process for deploy)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
from builtin_data import imbalanced, write_csv

from tallymark.jobs.sagemaker import (
    Estimator,
    ProcessingInput,
    ProcessingOutput,
    SKLearnProcessor,
    TrainingInput,
    image_uris,
)

HPS = {"objective": "binary:logistic", "num_round": 12, "eval_metric": "auc", "eta": 0.3, "seed": 1}


def _data(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    X, y = imbalanced(rows=2000, seed=11)
    write_csv(tmp_path / "train", X[:1500], y[:1500])
    write_csv(tmp_path / "validation", X[1500:], y[1500:])
    return X, y


def test_estimator_fit_describe_deploy_predict(home: Path, tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    X, y = _data(tmp_path)
    est = Estimator(
        image_uri=image_uris.retrieve("xgboost", "us-east-1", "1.7-1"),
        role="arn:aws:iam::111122223333:role/SageMakerRole",
        instance_count=1,
        instance_type="ml.m5.large",
        output_path=str(tmp_path / "out"),
        hyperparameters=HPS,
        max_run=600,
        volume_size=5,
        workspace="risk",
    )
    est.fit(
        {
            "train": str(tmp_path / "train"),
            "validation": TrainingInput(str(tmp_path / "validation"), "text/csv"),
        },
        logs=False,
    )
    name = est.latest_training_job.job_name
    assert est.model_data == str(tmp_path / "out" / name / "output" / "model.tar.gz")
    assert Path(est.model_data).is_file()

    desc = est.latest_training_job.describe()
    assert desc["TrainingJobStatus"] == "Completed"
    assert desc["RoleArn"] == "arn:aws:iam::111122223333:role/SageMakerRole"
    assert desc["AlgorithmSpecification"]["TrainingImage"] == "tallymark/builtin-xgboost:1.7-1"
    assert desc["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5}
    assert desc["HyperParameters"]["num_round"] == "12"
    assert desc["InputDataConfig"][1]["ContentType"] == "text/csv"
    resources = est.job.refresh()["resources"]
    assert resources["role"] == "arn:aws:iam::111122223333:role/SageMakerRole"
    assert resources["instance_type"] == "ml.m5.large" and resources["volume_size"] == 5

    predictor = est.deploy(initial_instance_count=1, instance_type="ml.m5.xlarge")
    try:
        scores = predictor.predict(X[1500:])
        assert scores.shape == (500,)
        # The endpoint serves the job's model: its AUC is the last round's validation AUC.
        last = [ln for ln in est.job.logs().splitlines() if ln.startswith("[12]")][0]
        reported = float(last.rsplit("validation-auc:", 1)[1])
        assert roc_auc_score(y[1500:], scores) == pytest.approx(reported, abs=1e-4)
        csv = "\n".join(",".join(f"{v:.17g}" for v in row) for row in X[1500:1505])
        np.testing.assert_allclose(predictor.predict(csv), scores[:5], rtol=1e-6)
        import pandas as pd

        frame = pd.DataFrame(X[1500:1505], columns=[f"f{i}" for i in range(X.shape[1])])
        np.testing.assert_allclose(predictor.predict(frame), scores[:5], rtol=1e-6)
    finally:
        predictor.delete_endpoint()
    from tallymark.sdk.transport import default_transport

    ep = default_transport().call("get_endpoint", workspace="risk", name=predictor.endpoint_name)
    assert ep["status"] == "Deleted"


def test_sklearn_processor_runs_an_opt_ml_script(home: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "data.csv").write_text("a,b\n1,2\n3,4\n")
    code = tmp_path / "preprocess.py"
    code.write_text(
        textwrap.dedent(
            """
            import argparse, os
            p = argparse.ArgumentParser()
            p.add_argument("--scale", type=int)
            args = p.parse_args()
            rows = open("/opt/ml/processing/input/data.csv").read().splitlines()[1:]
            os.makedirs("/opt/ml/processing/output", exist_ok=True)
            with open("/opt/ml/processing/output/scaled.csv", "w") as f:
                for r in rows:
                    f.write(",".join(str(int(v) * args.scale) for v in r.split(",")) + "\\n")
            print("processed", len(rows))
            """
        )
    )
    proc = SKLearnProcessor(
        framework_version="1.0-1",
        role="arn:aws:iam::1:role/r",
        instance_type="ml.t3.medium",
        instance_count=1,
        workspace="risk",
    )
    proc.run(
        code=str(code),
        inputs=[ProcessingInput(source=str(raw), destination="/opt/ml/processing/input")],
        outputs=[ProcessingOutput(source="/opt/ml/processing/output", destination=str(tmp_path / "done"))],
        arguments=["--scale", "10"],
        logs=False,
    )
    job = proc.latest_job
    assert job.status == "Completed", job.failure_reason
    assert (tmp_path / "done" / "scaled.csv").read_text() == "10,20\n30,40\n"
    assert "processed 2" in job.logs()
    resources = job.refresh()["resources"]
    assert resources["framework_version"] == "1.0-1"
    assert resources["instance_type"] == "ml.t3.medium"


def test_what_the_facades_refuse() -> None:
    with pytest.raises(ValueError, match="runs no containers"):
        Estimator(image_uri="123.dkr.ecr.us-east-1.amazonaws.com/my-image:1", role="r")
    with pytest.raises(TypeError, match="unexpected keyword arguments: instance_typo"):
        Estimator(image_uri=image_uris.retrieve("xgboost"), instance_typo="ml.m5.large")
    with pytest.raises(ValueError, match="no tallymark image for 'pytorch'"):
        image_uris.retrieve("pytorch", "us-east-1", "2.1")
    # SageMaker's own XGBoost image names select the built-in trainer too.
    est = Estimator(
        image_uri="683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1", role="r"
    )
    assert est.algorithm == "xgboost"
    with pytest.raises(RuntimeError, match="call fit"):
        est.deploy(1, "ml.m5.large")
