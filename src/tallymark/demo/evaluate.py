"""Evaluating a deployed model from the predictions its endpoint returned over HTTP.

The demo does not score the test set in-process: it sends the rows to the endpoint in batches
(:func:`score_through_endpoint`), so the metrics, the confusion matrix and the curves describe what
a client of the endpoint gets, and every prediction lands in the endpoint's prediction log, where
the labels are joined afterwards (``log_ground_truth``). :func:`evaluate_scores` turns labels and
scores into the logged numbers; :func:`log_evaluation` logs them to the model's experiment under
the names the first demo used (``test_auc_pr``, ``test_auc_roc``, ``test_precision``,
``test_recall``, ``test_f1``; ``roc_curve``, ``pr_curve``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BATCH_ROWS", "Evaluation", "evaluate_scores", "log_evaluation", "score_through_endpoint"]

BATCH_ROWS = 2_000  # rows per request: ~0.6 MB of JSON, well under an endpoint's body limit
THRESHOLD = 0.5
CLASS_LABELS = ["Normal", "Fraud"]


@dataclass
class Evaluation:
    """Metrics of one scored split: ``metrics`` by logged name, ``[[tn, fp], [fn, tp]]``, curves."""

    metrics: dict[str, float]
    confusion_matrix: list[list[int]]
    curves: dict[str, tuple[list[float], list[float]]]
    rows: int


def evaluate_scores(y_true: Any, scores: Any, prefix: str = "test") -> Evaluation:
    """AUC-ROC, AUC-PR (average precision), and precision/recall/F1 at 0.5 of ``scores``.

    Curves are downsampled to at most 500 points, as the first demo logged them.
    """
    from sklearn.metrics import (
        average_precision_score,
        confusion_matrix,
        f1_score,
        precision_recall_curve,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    from tallymark.demo.train import downsample_curve

    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    predicted = (s >= THRESHOLD).astype(np.int64)
    metrics = {
        f"{prefix}_precision": float(precision_score(y, predicted, zero_division=0)),
        f"{prefix}_recall": float(recall_score(y, predicted, zero_division=0)),
        f"{prefix}_f1": float(f1_score(y, predicted, zero_division=0)),
        f"{prefix}_auc_roc": float(roc_auc_score(y, s)),
        f"{prefix}_auc_pr": float(average_precision_score(y, s)),
    }
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, predicted, labels=[0, 1]).ravel())
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    curves = {"roc_curve": downsample_curve(fpr, tpr), "pr_curve": downsample_curve(recall, precision)}
    return Evaluation(metrics=metrics, confusion_matrix=[[tn, fp], [fn, tp]], curves=curves, rows=len(y))


def score_through_endpoint(
    endpoint: Any,
    X: Any,
    batch_rows: int = BATCH_ROWS,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[str]]:
    """Scores of every row of the DataFrame ``X`` from ``endpoint.predict``, in batches over HTTP.

    Returns ``(scores, row_ids)``: the ids (``REQUEST_ID:ROW``) the endpoint logged each row under,
    for ``endpoint.log_ground_truth``. ``on_batch(rows_done, rows_total)`` follows progress.
    """
    total = len(X)
    parts: list[np.ndarray] = []
    ids: list[str] = []
    for start in range(0, total, batch_rows):
        batch = X.iloc[start : start + batch_rows]
        scores, row_ids = endpoint.predict(batch, return_ids=True)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(batch) or len(row_ids) != len(batch):
            raise RuntimeError(f"the endpoint answered {len(scores)} scores for {len(batch)} rows")
        parts.append(scores)
        ids.extend(row_ids)
        if on_batch is not None:
            on_batch(min(start + batch_rows, total), total)
    return (np.concatenate(parts) if parts else np.zeros(0)), ids


def log_evaluation(exp: Any, evaluation: Evaluation, source: str) -> None:
    """Log ``evaluation`` to ``exp``: metrics, the confusion matrix, ROC and PR curves, and where the
    scores came from (``evaluation_source``)."""
    exp.log_metrics(evaluation.metrics)
    exp.log_confusion_matrix(
        matrix=evaluation.confusion_matrix, labels=list(CLASS_LABELS), title="Test confusion matrix"
    )
    for name, (x, y) in evaluation.curves.items():
        exp.log_curve(name, x=x, y=y)
    exp.log_others({"evaluation_source": source, "evaluation_rows": evaluation.rows})
