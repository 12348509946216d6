"""Demo-like experiments for the UI tests, the screenshots and the UI benchmark.

Two XGBoost-style fraud-detection runs with what ``tallymark demo`` logs — parameters, per-round
``train_auc``/``validation_auc``, ``test_*`` metrics, a Normal/Fraud confusion matrix, ``roc_curve``
and ``pr_curve`` — made of small synthetic numbers so nothing needs training. Logged through the
real SDK (``tallymark.Experiment``) into whatever home ``TALLYMARK_HOME`` points at.
"""

from __future__ import annotations

import math
import os
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
    run: dict[str, Any], rounds: int = 100, workspace: str = WORKSPACE, project: str = PROJECT
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
        print("done")
        return exp.get_key()


def log_demo_like(home: Path, rounds: int = 100) -> list[str]:
    """Both runs into ``home`` (as ``TALLYMARK_HOME``); returns their keys."""
    old = {k: os.environ.get(k) for k in ("TALLYMARK_HOME", "TALLYMARK_URL")}
    os.environ["TALLYMARK_HOME"] = str(home)
    os.environ.pop("TALLYMARK_URL", None)
    try:
        return [log_run(run, rounds) for run in RUNS]
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
