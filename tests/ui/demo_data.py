"""Demo-like experiments for the UI tests, the screenshots and the UI benchmark.

Two XGBoost-style fraud-detection runs with what ``tallymark demo`` logs — parameters, per-round
``train_auc``/``validation_auc``, ``test_*`` metrics, a Normal/Fraud confusion matrix, ``roc_curve``
and ``pr_curve`` — made of small synthetic numbers so nothing needs training. Logged through the
real SDK (``tallymark.Experiment``) into whatever home ``TALLYMARK_HOME`` points at.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKSPACE = "demo"
PROJECT = "fraud-detection"

RUNS: list[dict[str, Any]] = [
    {
        "name": "xgb-baseline",
        "tags": ["baseline", "xgboost"],
        "params": {
            "objective": "binary:logistic",
            "num_round": 100,
            "eval_metric": "auc",
            "learning_rate": 0.15,
            "booster": "gbtree",
            "max_depth": 6,
        },
        "speed": 0.055,
        "ceiling": 0.975,
        "matrix": [[56840, 24], [19, 79]],
        "roc_power": 0.055,
        "test": {"test_precision": 0.767, "test_recall": 0.806, "test_f1": 0.786, "test_auc_roc": 0.972},
        "auc_pr": 0.812,
    },
    {
        "name": "xgb-deeper-slower",
        "tags": ["tuned", "xgboost"],
        "params": {
            "objective": "binary:logistic",
            "num_round": 100,
            "eval_metric": "auc",
            "learning_rate": 0.05,
            "booster": "gbtree",
            "max_depth": 8,
            "scale_pos_weight": 25,
        },
        "speed": 0.03,
        "ceiling": 0.984,
        "matrix": [[56829, 35], [12, 86]],
        "roc_power": 0.035,
        "test": {"test_precision": 0.711, "test_recall": 0.878, "test_f1": 0.786, "test_auc_roc": 0.981},
        "auc_pr": 0.846,
    },
]


def _curves(power: float, n: int = 60) -> dict[str, tuple[list[float], list[float]]]:
    fpr = [(i / (n - 1)) ** 3 for i in range(n)]
    tpr = [min(1.0, f**power) if f > 0 else 0.0 for f in fpr]
    recall = [1 - i / (n - 1) for i in range(n)]
    precision = [max(0.0017, min(1.0, 1 - 0.9 * r ** (1 / (power * 6)))) for r in recall]
    return {"roc_curve": (fpr, tpr), "pr_curve": (recall, precision)}


def log_run(
    run: dict[str, Any],
    rounds: int = 100,
    workspace: str = WORKSPACE,
    project: str = PROJECT,
    then: Callable[[Any, dict[str, Any]], None] | None = None,
) -> str:
    """Log one demo-like run through the SDK; returns its key."""
    from tallymark import Experiment

    exp = Experiment(
        project_name=project,
        workspace=workspace,
        name=run["name"],
        tags=run["tags"],
        log_code=False,
        log_git=True,
        log_env=True,
        log_system_metrics=False,
        capture_stdout=True,
    )
    with exp:
        exp.log_code(str(Path(__file__).resolve()))
        exp.log_parameters(run["params"])
        exp.log_others({"dataset_rows": 284807, "fraud_rate": 0.00172})
        print(f"training {run['name']} for {rounds} rounds")
        for step in range(1, rounds + 1):
            grow = 1 - math.exp(-run["speed"] * step)
            wiggle = 0.004 * math.sin(step / 3.0)
            exp.log_metric("train_auc", min(0.9999, 0.90 + (run["ceiling"] + 0.015 - 0.90) * grow), step=step)
            exp.log_metric("validation_auc", 0.88 + (run["ceiling"] - 0.88) * grow + wiggle, step=step)
            exp.log_metric("sys.cpu.percent", 40 + 20 * math.sin(step / 7.0), step=step)
        print(f"[{rounds}] validation_auc: {run['ceiling']:.4f}")
        exp.log_metrics({**run["test"], "test_auc_pr": run["auc_pr"]})
        exp.log_confusion_matrix(
            matrix=run["matrix"], labels=["Normal", "Fraud"], title="Test confusion matrix"
        )
        for name, (x, y) in _curves(run["roc_power"]).items():
            exp.log_curve(name, x=x, y=y)
        exp.log_table(
            "feature_importance.csv", [["feature", "gain"], ["V14", 41.2], ["V4", 17.9], ["V12", 11.3]]
        )
        if then is not None:
            then(exp, run)
        print("done")
        return exp.get_key()


DATASET = "fraud-dataset"
MODEL = "fraud-xgb"
REQUESTER = "alice"


def _files(home: Path) -> Path:
    folder = home / "demo-files"
    (folder / "splits").mkdir(parents=True, exist_ok=True)
    (folder / "creditcard.csv").write_text("Time,V1,Amount,Class\n0,-1.36,149.62,0\n406,-2.31,0.0,1\n")
    (folder / "splits" / "train.csv").write_text("V1,Amount,Class\n-1.36,149.62,0\n")
    (folder / "splits" / "test.csv").write_text("V1,Amount,Class\n-2.31,0.0,1\n")
    return folder


def log_datasets(home: Path, workspace: str = WORKSPACE) -> str:
    """``fraud-dataset`` 1.0.0 (alias ``raw``: a stored file and a remote reference) and 2.0.0
    (``preprocessed``), both from a ``data-prep`` experiment that consumes the raw version."""
    from tallymark import Artifact, Experiment

    folder = _files(home)
    quiet = {"log_code": False, "log_git": False, "log_env": False, "log_system_metrics": False}
    with Experiment(
        project_name="data-prep", workspace=workspace, name="fraud-data-prep", capture_stdout=False, **quiet
    ) as exp:
        raw = Artifact(
            DATASET, artifact_type="dataset", aliases=["raw"], metadata={"rows": 284807, "source": "kaggle"}
        )
        raw.add(folder / "creditcard.csv")
        raw.add_remote(
            "s3://bank-data/creditcard.csv",
            logical_path="original/creditcard.csv",
            metadata={"etag": "9a0364b9e99bb480dd25e1f0284c8555"},
        )
        exp.log_artifact(raw)
        exp.get_artifact(DATASET, "raw")
        pre = Artifact(
            DATASET,
            artifact_type="dataset",
            aliases=["preprocessed"],
            metadata={"split": "70/30 stratified", "derived_from": "1.0.0", "scaler": {"Amount": "robust"}},
        )
        pre.add(folder / "splits", logical_path="splits")
        exp.log_artifact(pre)
        return exp.get_key()


def train_and_register(exp: Any, run: dict[str, Any]) -> None:
    """Inside a run: consume ``preprocessed``, log a model file and register it as ``fraud-xgb``."""
    exp.get_artifact(DATASET, "preprocessed")
    path = Path(os.environ["TALLYMARK_HOME"]) / "demo-files" / f"{run['name']}.ubj"
    path.write_bytes(f"booster {run['name']} {run['params']}".encode())
    exp.log_model(MODEL, path, metadata={"framework": "xgboost"})
    exp.register_model(MODEL, description="credit-card fraud detection", tags=[run["name"]])


def request_production(workspace: str = WORKSPACE) -> list[dict[str, Any]]:
    """As ``alice``: ask for 1.0.0 and 2.0.0 in production (both stay pending: four eyes)."""
    from tallymark import API

    api = API()
    try:
        model = api.get_model(workspace, MODEL)
        return [
            model.request_status("1.0.0", "production", comment="first model for the launch"),
            model.request_status("2.0.0", "production", comment="beats 1.0.0 on AUC-PR (0.846 vs 0.812)"),
        ]
    finally:
        api.close()


def log_demo_like(home: Path, rounds: int = 100) -> list[str]:
    """Both runs into ``home`` (as ``TALLYMARK_HOME``); returns their keys. With them: the dataset
    versions they consume, the models they register and alice's pending production requests."""
    old = {k: os.environ.get(k) for k in ("TALLYMARK_HOME", "TALLYMARK_URL", "TALLYMARK_USER")}
    os.environ["TALLYMARK_HOME"] = str(home)
    os.environ["TALLYMARK_USER"] = REQUESTER
    os.environ.pop("TALLYMARK_URL", None)
    try:
        log_datasets(home)
        keys = [log_run(run, rounds, then=train_and_register) for run in RUNS]
        request_production()
        return keys
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
